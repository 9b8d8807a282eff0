import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AnyValueSchema, KeyValueSchema } from "../../../src/gen/opamp/v1/anyvalue_pb.js";
import { AgentDescriptionSchema } from "../../../src/gen/opamp/v1/opamp_pb.js";
import {
  type AttributeValue,
  agentDescription,
  describeAgent,
  fromAnyValue,
  fromKeyValues,
  OpampError,
  toAnyValue,
  toKeyValues,
} from "../../../src/wire/index.js";
import { everyAnyValue } from "./fixtures.js";

/** Through the wire as well, so the value is what a peer would read. */
const viaWire = (value: AttributeValue) =>
  fromAnyValue(fromBinary(AnyValueSchema, toBinary(AnyValueSchema, toAnyValue(value))));

describe("toAnyValue", () => {
  it.each([
    ["a string", "text", "stringValue", "text"],
    ["a boolean", false, "boolValue", false],
    ["an integer number", 42, "intValue", 42n],
    ["a negative integer", -7, "intValue", -7n],
    ["a fraction", 1.25, "doubleValue", 1.25],
    ["a bigint", 2n ** 60n, "intValue", 2n ** 60n],
    ["int64 min", -(2n ** 63n), "intValue", -(2n ** 63n)],
    ["int64 max", 2n ** 63n - 1n, "intValue", 2n ** 63n - 1n],
    ["an integer beyond int64", 2 ** 70, "doubleValue", 2 ** 70],
    ["NaN", Number.NaN, "doubleValue", Number.NaN],
    ["Infinity", Number.POSITIVE_INFINITY, "doubleValue", Number.POSITIVE_INFINITY],
    ["-0 (keeps its sign as a double)", -0, "doubleValue", -0],
    ["bytes", new Uint8Array([1, 2]), "bytesValue", new Uint8Array([1, 2])],
  ] as const)("maps %s to %s", (_name, input, expectedCase, expectedValue) => {
    const any = toAnyValue(input);
    expect(any.value.case).toBe(expectedCase);
    expect(any.value.value).toEqual(expectedValue);
  });

  it("maps null to an AnyValue with no case set (encodes as zero bytes)", () => {
    const any = toAnyValue(null);
    expect(any.value.case).toBeUndefined();
    expect(toBinary(AnyValueSchema, any)).toHaveLength(0);
  });

  it("maps arrays and plain objects, nested, keeping key order", () => {
    const any = toAnyValue({ b: [1, "x", { c: null }], a: true });
    expect(any.value.case).toBe("kvlistValue");
    const kv = any.value.case === "kvlistValue" ? any.value.value.values : [];
    expect(kv.map((entry) => entry.key)).toEqual(["b", "a"]);
    const inner = kv[0]!.value!.value;
    expect(inner.case).toBe("arrayValue");
    expect(inner.case === "arrayValue" && inner.value.values.map((v) => v.value.case)).toEqual([
      "intValue",
      "stringValue",
      "kvlistValue",
    ]);
  });

  it("accepts a null-prototype object and skips undefined properties", () => {
    const record = Object.assign(Object.create(null) as Record<string, unknown>, { a: 1, gone: undefined });
    expect(fromAnyValue(toAnyValue(record as AttributeValue))).toEqual({ a: 1 });
  });

  it("accepts the same object twice side by side (not a cycle)", () => {
    const shared = { x: 1 };
    expect(fromAnyValue(toAnyValue([shared, shared]))).toEqual([{ x: 1 }, { x: 1 }]);
  });

  it.each([
    ["a bigint above int64", 2n ** 63n],
    ["a bigint below int64", -(2n ** 63n) - 1n],
    ["undefined", undefined],
    ["a function", () => 1],
    ["a symbol", Symbol("s")],
    ["a Date", new Date(0)],
    ["a Map", new Map()],
    ["an array holding undefined", [1, undefined]],
  ])("rejects %s with invalid_argument", (_name, value) => {
    let error: unknown;
    try {
      toAnyValue(value as AttributeValue);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(OpampError);
    expect((error as OpampError).code).toBe("invalid_argument");
  });

  it("rejects cycles instead of overflowing the stack", () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic["self"] = [cyclic];
    expect(() => toAnyValue(cyclic as AttributeValue)).toThrow(/cyclic/);
  });
});

describe("fromAnyValue", () => {
  it("reads every kind back, nested", () => {
    expect(fromAnyValue(everyAnyValue())).toEqual({
      s: "text ✓",
      b: true,
      i: -(2n ** 63n),
      d: 1.5,
      bytes: new Uint8Array([0, 255, 7]),
      arr: [2n ** 62n],
      null: null,
    });
  });

  it("returns number for safe integers and bigint beyond 2^53, so nothing is rounded", () => {
    expect(viaWire(Number.MAX_SAFE_INTEGER)).toBe(Number.MAX_SAFE_INTEGER);
    expect(viaWire(Number.MIN_SAFE_INTEGER)).toBe(Number.MIN_SAFE_INTEGER);
    expect(viaWire(2n ** 53n)).toBe(2n ** 53n);
    expect(viaWire(2n ** 53n + 1n)).toBe(2n ** 53n + 1n);
    expect(viaWire(-(2n ** 63n))).toBe(-(2n ** 63n));
    expect(viaWire(5n)).toBe(5); // small bigints come back as numbers
  });

  it("maps undefined, an empty AnyValue and a KeyValue without value to null", () => {
    expect(fromAnyValue(undefined)).toBeNull();
    expect(fromAnyValue(create(AnyValueSchema))).toBeNull();
    expect(fromKeyValues([create(KeyValueSchema, { key: "k" })])).toEqual({ k: null });
  });

  it("keeps the last of repeated keys and makes __proto__ an ordinary property", () => {
    const values = [
      create(KeyValueSchema, { key: "k", value: toAnyValue(1) }),
      create(KeyValueSchema, { key: "k", value: toAnyValue(2) }),
      create(KeyValueSchema, { key: "__proto__", value: toAnyValue({ polluted: true }) }),
    ];
    const record = fromKeyValues(values);
    expect(record["k"]).toBe(2);
    expect(Object.hasOwn(record, "__proto__")).toBe(true);
    expect((record as { polluted?: unknown }).polluted).toBeUndefined();
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
  });
});

describe("AttributeValue round trip (property)", () => {
  // Values that come back exactly: integers within the safe range, doubles that are not
  // integers (an integral double beyond 2^53 would come back as a bigint).
  const attribute: fc.Arbitrary<AttributeValue> = fc.letrec<{ value: AttributeValue }>((tie) => ({
    value: fc.oneof(
      { depthSize: "small", withCrossShrink: true },
      fc.string(),
      fc.boolean(),
      fc.constant(null),
      fc.maxSafeInteger(),
      fc.double().filter((d) => !Number.isInteger(d) || Object.is(d, -0)),
      fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).filter((b) => b > 2n ** 53n || b < -(2n ** 53n)),
      fc.uint8Array({ maxLength: 8 }),
      fc.array(tie("value"), { maxLength: 4 }),
      fc.dictionary(fc.string(), tie("value"), { maxKeys: 4 }),
    ),
  })).value;

  it("fromAnyValue(toAnyValue(v)) equals v, also through the wire", () => {
    fc.assert(
      fc.property(attribute, (value) => {
        expect(fromAnyValue(toAnyValue(value))).toEqual(value);
        expect(viaWire(value)).toEqual(value);
      }),
    );
  });

  it("toKeyValues / fromKeyValues round-trip records", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), attribute, { maxKeys: 5 }), (record) => {
        expect(fromKeyValues(toKeyValues(record))).toEqual(record);
      }),
    );
  });
});

describe("agentDescription / describeAgent", () => {
  it("builds both attribute lists and reads them back through the wire", () => {
    const desc = agentDescription({
      identifying: { "service.name": "io.example.agent", "service.instance.id": "abc" },
      nonIdentifying: { "os.type": "linux", "host.cpu.count": 8, "process.start_ns": 2n ** 62n },
    });
    expect(desc.identifyingAttributes.map((kv) => kv.key)).toEqual(["service.name", "service.instance.id"]);
    const decoded = fromBinary(AgentDescriptionSchema, toBinary(AgentDescriptionSchema, desc));
    expect(describeAgent(decoded)).toEqual({
      identifying: { "service.name": "io.example.agent", "service.instance.id": "abc" },
      nonIdentifying: { "os.type": "linux", "host.cpu.count": 8, "process.start_ns": 2n ** 62n },
    });
  });

  it("leaves out a missing group as an empty list", () => {
    const desc = agentDescription({ identifying: { "service.name": "x" } });
    expect(desc.nonIdentifyingAttributes).toEqual([]);
    expect(describeAgent(desc).nonIdentifying).toEqual({});
    expect(describeAgent(agentDescription({}))).toEqual({ identifying: {}, nonIdentifying: {} });
  });

  it("passes on invalid_argument for values AnyValue cannot hold", () => {
    expect(() => agentDescription({ identifying: { when: new Date() as never } })).toThrow(OpampError);
  });
});
