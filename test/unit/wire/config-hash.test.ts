import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AgentConfigMapSchema } from "../../../src/gen/opamp/v1/opamp_pb.js";
import { configMap, configMapHash, hashEquals, OpampError } from "../../../src/wire/index.js";

const utf8 = (text: string) => new TextEncoder().encode(text);
const hex = (data: Uint8Array) => Buffer.from(data).toString("hex");

/** The documented canonical encoding, written independently with node:crypto. */
function referenceHash(files: Record<string, { body: Uint8Array; contentType: string }>): string {
  const field = (data: Uint8Array) => {
    const length = Buffer.alloc(8);
    length.writeBigUInt64BE(BigInt(data.length));
    return Buffer.concat([length, data]);
  };
  const count = Buffer.alloc(8);
  const keys = Object.keys(files).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  count.writeBigUInt64BE(BigInt(keys.length));
  const hash = createHash("sha256")
    .update(field(utf8("opamp-sdk/config-map/v1")))
    .update(count);
  for (const key of keys) {
    const file = files[key]!;
    hash
      .update(field(utf8(key)))
      .update(field(utf8(file.contentType)))
      .update(field(file.body));
  }
  return hash.digest("hex");
}

const filesArb = fc.dictionary(
  fc.string(),
  fc.record({
    body: fc.uint8Array({ maxLength: 16 }),
    contentType: fc.constantFrom("", "text/yaml", "application/json"),
  }),
  { maxKeys: 6 },
);

describe("configMapHash", () => {
  it("is the SHA-256 of the documented canonical encoding (locks the format)", async () => {
    const files = {
      "b.yaml": { body: utf8("b: 2"), contentType: "text/yaml" },
      "": { body: utf8("root"), contentType: "" },
      é: { body: new Uint8Array([0, 255]), contentType: "application/octet-stream" },
    };
    const hash = await configMapHash(configMap(files));
    expect(hash).toHaveLength(32);
    expect(hex(hash)).toBe(referenceHash(files));
  });

  it("gives the same hash whatever the insertion order", async () => {
    await fc.assert(
      fc.asyncProperty(filesArb, fc.func(fc.integer()), async (files, order) => {
        const entries = Object.entries(files);
        const shuffled = [...entries].sort(([a], [b]) => order(a) - order(b) || (a < b ? -1 : 1));
        const a = await configMapHash(configMap(Object.fromEntries(entries)));
        const b = await configMapHash(configMap(Object.fromEntries(shuffled.reverse())));
        expect(hashEquals(a, b)).toBe(true);
        expect(hex(a)).toBe(referenceHash(files));
      }),
      { numRuns: 50 },
    );
  });

  it.each([
    ["a body byte", { a: { body: "x: 1" } }, { a: { body: "x: 2" } }],
    [
      "the content type",
      { a: { body: "x", contentType: "text/yaml" } },
      { a: { body: "x", contentType: "text/json" } },
    ],
    ["a key", { a: "x" }, { b: "x" }],
    ["an added file", { a: "x" }, { a: "x", b: "" }],
    ["an empty key vs no key", {}, { "": "" }],
    ["the key/body boundary", { ab: "c" }, { a: "bc" }],
    ["the content type/body boundary", { a: { body: "y", contentType: "x" } }, { a: { body: "xy" } }],
    ["files swapped between keys", { a: "1", b: "2" }, { a: "2", b: "1" }],
  ] as const)("changes when %s changes", async (_name, left, right) => {
    const a = await configMapHash(configMap(left));
    const b = await configMapHash(configMap(right));
    expect(hashEquals(a, b)).toBe(false);
  });

  it("hashes undefined like an empty map, and a missing file like an empty one", async () => {
    const empty = await configMapHash(create(AgentConfigMapSchema));
    expect(hex(await configMapHash(undefined))).toBe(hex(empty));
    expect(hex(empty)).toBe(referenceHash({}));
    const withHole = create(AgentConfigMapSchema);
    (withHole.configMap as Record<string, unknown>)["a"] = undefined;
    expect(hex(await configMapHash(withHole))).toBe(referenceHash({ a: { body: new Uint8Array(), contentType: "" } }));
  });
});

describe("hashEquals", () => {
  it("compares bytes and treats undefined as empty", () => {
    expect(hashEquals(new Uint8Array([1, 2]), new Uint8Array([1, 2]))).toBe(true);
    expect(hashEquals(new Uint8Array([1, 2]), new Uint8Array([1, 3]))).toBe(false);
    expect(hashEquals(new Uint8Array([1]), new Uint8Array([1, 0]))).toBe(false);
    expect(hashEquals(undefined, undefined)).toBe(true);
    expect(hashEquals(undefined, new Uint8Array())).toBe(true);
    expect(hashEquals(undefined, new Uint8Array([0]))).toBe(false);
  });
});

describe("configMap", () => {
  it("stores strings as UTF-8, bytes as given, and optional content types", () => {
    const map = configMap({
      "": "single ✓",
      raw: new Uint8Array([0, 1]),
      typed: { body: "a: 1", contentType: "text/yaml" },
      untyped: { body: new Uint8Array([2]) },
    });
    expect(map.configMap[""]).toMatchObject({ body: utf8("single ✓"), contentType: "" });
    expect(map.configMap["raw"]).toMatchObject({ body: new Uint8Array([0, 1]), contentType: "" });
    expect(map.configMap["typed"]).toMatchObject({ body: utf8("a: 1"), contentType: "text/yaml" });
    expect(map.configMap["untyped"]).toMatchObject({ body: new Uint8Array([2]), contentType: "" });
  });

  it("rejects a body that is neither string nor bytes", () => {
    expect(() => configMap({ bad: { body: 42 } } as never)).toThrow(OpampError);
  });
});
