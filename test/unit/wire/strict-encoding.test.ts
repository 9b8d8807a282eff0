/**
 * isStrictEncoding: every encoding protobuf-es writes is strict, and whenever a received
 * field's bytes are called strict, they decode on their own to exactly what the decoder read
 * for that field inside the whole message (the property the server relies on to keep them).
 */
import { create, type DescMessage, fromBinary, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  AgentDescriptionSchema,
  type AgentToServer,
  AgentToServerSchema,
  ComponentHealthSchema,
  CustomCapabilitiesSchema,
  EffectiveConfigSchema,
  PackageStatusesSchema,
  RemoteConfigStatusSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import { isStrictEncoding } from "../../../src/wire/strict-encoding.js";
import { agentMessage } from "../../fuzz/generate.js";
import { mutateRaw, mutateTree, parseWire } from "../../fuzz/mutate.js";
import { Rng } from "../../fuzz/random.js";
import { concat, field, overrunField, UNKNOWN_FIELD, varint } from "../server/hand-encoded.js";
import { agentToServer } from "./arbitraries.js";

/** AgentToServer's message-typed fields by number, with their schemas. */
const PARTS: ReadonlyMap<number, { name: keyof AgentToServer; schema: DescMessage }> = new Map([
  [3, { name: "agentDescription", schema: AgentDescriptionSchema }],
  [5, { name: "health", schema: ComponentHealthSchema }],
  [6, { name: "effectiveConfig", schema: EffectiveConfigSchema }],
  [7, { name: "remoteConfigStatus", schema: RemoteConfigStatusSchema }],
  [8, { name: "packageStatuses", schema: PackageStatusesSchema }],
  [12, { name: "customCapabilities", schema: CustomCapabilitiesSchema }],
]);

const bytes = (...values: number[]) => Uint8Array.from(values);
const utf8 = (text: string) => new TextEncoder().encode(text);

describe("isStrictEncoding", () => {
  it("accepts whatever protobuf-es encodes", () => {
    fc.assert(
      fc.property(agentToServer, (message) => {
        expect(isStrictEncoding(AgentToServerSchema, toBinary(AgentToServerSchema, message))).toBe(true);
        for (const { name, schema } of PARTS.values()) {
          const part = message[name];
          if (part !== undefined) expect(isStrictEncoding(schema, toBinary(schema, part as never))).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("accepts the empty message, unknown fields of every wire type and packed repeated scalars", () => {
    expect(isStrictEncoding(AgentDescriptionSchema, new Uint8Array(0))).toBe(true);
    // Unknown field 20 of wire types 0, 1, 2 and 5.
    const unknowns = concat(bytes(0xa0, 0x01, 0x96, 0x01), bytes(0xa1, 0x01, 1, 2, 3, 4, 5, 6, 7, 8), UNKNOWN_FIELD);
    expect(isStrictEncoding(AgentDescriptionSchema, concat(unknowns, bytes(0xa5, 0x01, 1, 2, 3, 4)))).toBe(true);
    // ComponentHealth.start_time_unix_nano (2, fixed64) then status (4, string).
    const health = concat(bytes(0x11, 1, 2, 3, 4, 5, 6, 7, 8), field(4, utf8("ok")));
    expect(isStrictEncoding(ComponentHealthSchema, health)).toBe(true);
  });

  it("refuses a nested message whose last field runs past its declared end", () => {
    // AgentDescription { identifying_attributes (1) declaring 2 bytes, whose key runs on }.
    const overrun = concat(bytes(0x0a, 2, 0x0a, UNKNOWN_FIELD.length), UNKNOWN_FIELD);
    expect(isStrictEncoding(AgentDescriptionSchema, overrun)).toBe(false);
    // The same inside an AgentToServer, as the poisoning tests send it.
    const message = concat(field(1, new Uint8Array(16)), overrunField(3, 0x0a));
    expect(isStrictEncoding(AgentToServerSchema, message)).toBe(false);
  });

  it("refuses a known field of another wire type than its schema type is read with", () => {
    // identifying_attributes (a message) as a varint.
    expect(isStrictEncoding(AgentDescriptionSchema, bytes(0x08, 0x01))).toBe(false);
    // ComponentHealth.healthy (bool, varint) as fixed32.
    expect(isStrictEncoding(ComponentHealthSchema, bytes(0x0d, 1, 0, 0, 0))).toBe(false);
    // ComponentHealth.status (string) as a varint.
    expect(isStrictEncoding(ComponentHealthSchema, bytes(0x20, 0x01))).toBe(false);
    // RemoteConfigStatus.status (enum) as length-delimited.
    expect(isStrictEncoding(RemoteConfigStatusSchema, field(2, bytes(1)))).toBe(false);
  });

  it("refuses truncated values, bad lengths, field number 0, groups and odd map entries", () => {
    expect(isStrictEncoding(AgentDescriptionSchema, bytes(0x0a))).toBe(false); // no length
    expect(isStrictEncoding(AgentDescriptionSchema, bytes(0x0a, 5, 1))).toBe(false); // length past the end
    expect(isStrictEncoding(ComponentHealthSchema, bytes(0x08))).toBe(false); // varint missing
    expect(isStrictEncoding(ComponentHealthSchema, bytes(0x08, 0x80))).toBe(false); // varint unfinished
    expect(isStrictEncoding(ComponentHealthSchema, bytes(0x08, ...Array(10).fill(0x80), 1))).toBe(false); // > 10 bytes
    expect(isStrictEncoding(ComponentHealthSchema, bytes(0x11, 1, 2, 3))).toBe(false); // fixed64 cut short
    expect(isStrictEncoding(AgentDescriptionSchema, bytes(0x02, 0))).toBe(false); // field 0
    expect(isStrictEncoding(AgentDescriptionSchema, bytes(0xa3, 0x01, 0xa4, 0x01))).toBe(false); // a group
    expect(isStrictEncoding(AgentDescriptionSchema, bytes(0xa7, 0x01))).toBe(false); // wire type 7
    // component_health_map (6) entry: key "a", then an extra field 3.
    const entry = concat(field(1, utf8("a")), bytes(0x18, 1));
    expect(isStrictEncoding(ComponentHealthSchema, field(6, entry))).toBe(false);
    // The same entry without the extra field is fine; with a key of the wrong wire type not.
    expect(isStrictEncoding(ComponentHealthSchema, field(6, field(1, utf8("a"))))).toBe(true);
    expect(isStrictEncoding(ComponentHealthSchema, field(6, bytes(0x08, 1)))).toBe(false);
  });

  it("refuses nesting deeper than 64 messages", () => {
    // AnyValue kvlist → KeyValue → AnyValue … built from the inside out.
    const nest = (depth: number): Uint8Array => {
      let value: Uint8Array = new Uint8Array(0); // an empty AnyValue
      for (let i = 0; i < depth; i++) {
        const keyValue = concat(field(1, utf8("k")), field(2, value));
        value = field(6, field(1, keyValue)); // AnyValue.kvlist_value { values: [keyValue] }
      }
      return concat(field(1, concat(field(1, utf8("k")), field(2, value))));
    };
    expect(isStrictEncoding(AgentDescriptionSchema, nest(10))).toBe(true);
    expect(isStrictEncoding(AgentDescriptionSchema, nest(40))).toBe(false);
  });

  it("a strict part alone is not enough: an earlier field may swallow it", () => {
    // agent_description (3) declares 2 bytes — an attribute whose length (4) covers the
    // health field (5) after it — so the decoder reads no health at all.
    const health = bytes(0x08, 0x01);
    const message = concat(bytes(0x1a, 2, 0x0a, 4), field(5, health));
    expect(isStrictEncoding(ComponentHealthSchema, health)).toBe(true);
    expect(fromBinary(AgentToServerSchema, message).health).toBeUndefined();
    expect(isStrictEncoding(AgentToServerSchema, message)).toBe(false);
  });

  it("in a strict message, each part's delimited bytes decode on their own to the part decoded (mutated inputs)", () => {
    const rng = new Rng(0x5717c7, 1);
    const uids: Uint8Array[] = [];
    const pool: Uint8Array[] = [];
    let strictParts = 0;
    let refusedMessages = 0;
    for (let i = 0; i < 4000; i++) {
      const valid = toBinary(AgentToServerSchema, create(AgentToServerSchema, agentMessage(rng, uids)));
      pool.push(valid);
      const input = rng.int(2) === 0 ? mutateTree(rng, valid) : mutateRaw(rng, valid, rng.pick(pool));
      let whole: AgentToServer;
      try {
        whole = fromBinary(AgentToServerSchema, input);
      } catch {
        continue;
      }
      if (!isStrictEncoding(AgentToServerSchema, input)) {
        refusedMessages++;
        continue;
      }
      // (parseWire, a test helper, reads no varint past 35 bits: 64-bit values it skips.)
      const top = parseWire(input);
      if (top === undefined) continue;
      const seen = new Map<number, number>();
      for (const f of top!) seen.set(f.no, (seen.get(f.no) ?? 0) + 1);
      for (const f of top!) {
        const part = PARTS.get(f.no);
        // The server keeps a part's bytes only when it came once, length-delimited.
        if (part === undefined || f.wireType !== 2 || seen.get(f.no) !== 1) continue;
        strictParts++;
        const alone = fromBinary(part.schema, f.raw);
        // Compared by their encodings: equals() holds NaN unequal to itself.
        const inContext = toBinary(part.schema, whole[part.name] as never);
        expect(Buffer.from(toBinary(part.schema, alone)).equals(inContext)).toBe(true);
      }
    }
    // Both answers were exercised.
    expect(strictParts).toBeGreaterThan(1000);
    expect(refusedMessages).toBeGreaterThan(100);
  });

  it("varint helper sanity: a multi-byte length is read", () => {
    const long = utf8("x".repeat(300));
    expect(isStrictEncoding(ComponentHealthSchema, concat(bytes(0x22, ...varint(300)), long))).toBe(true);
  });
});
