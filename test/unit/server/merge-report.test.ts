/**
 * Issue 16, defects 2 and 4, at the merge: received bytes are kept as a part's stored
 * encoding only when they parse on their own into the decoded part; the state budget
 * refuses a report before it changes anything; available components are shared by content
 * and looked up by hash only within one principal.
 */
import { create, equals, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  type AgentToServer,
  AgentToServerSchema,
  AvailableComponentsSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import { AgentRecord } from "../../../src/server/agent-record.js";
import { mergeReport, newStateTables } from "../../../src/server/merge-report.js";
import type { StatePart } from "../../../src/server/shared-state.js";
import { agentDescription, instanceUidToString, newInstanceUid } from "../../../src/wire/index.js";
import { concat, overrunField, UNKNOWN_FIELD } from "./hand-encoded.js";

function newRecord(): AgentRecord {
  const uid = newInstanceUid();
  return new AgentRecord(instanceUidToString(uid), uid, "websocket", 0);
}

function head(uid: Uint8Array): Uint8Array {
  return toBinary(AgentToServerSchema, create(AgentToServerSchema, { instanceUid: uid, capabilities: 0x7fn }));
}

/** [part, field number, tag of a nested field of the part, trailing bytes the nested field runs over]. */
const OVERRUNS: [StatePart, number, number, Uint8Array | undefined][] = [
  ["agentDescription", 3, 0x0a, undefined], // identifying_attributes (KeyValue)
  ["health", 5, 0x32, undefined], // component_health_map entry
  ["effectiveConfig", 6, 0x0a, undefined], // config_map (AgentConfigMap)
  ["remoteConfigStatus", 7, 0x0a, undefined], // last_remote_config_hash (bytes)
  ["packageStatuses", 8, 0x0a, undefined], // packages entry
  // capabilities (string): the trailing bytes must be valid UTF-8, so a varint field (sequence_num).
  ["customCapabilities", 12, 0x0a, Uint8Array.of(0x10, 0x05)],
  ["availableComponents", 14, 0x0a, undefined], // components entry
  ["connectionSettingsStatus", 15, 0x0a, undefined], // last_connection_settings_hash (bytes)
];

describe("mergeReport keeps only received bytes that parse on their own", () => {
  it.each(OVERRUNS)("%s: a nested field running past the part's end is encoded again", (part, no, tag, trailing) => {
    const r = newRecord();
    const raw = concat(head(r.instanceUid), overrunField(no, tag, trailing));
    const message = fromBinary(AgentToServerSchema, raw);
    expect(message[part as keyof AgentToServer]).toBeDefined();
    const merged = mergeReport(r, message, newStateTables(1 << 20), { raw });
    expect(merged.changes).toContain(part);
    // The stored state parses, and holds the part as the decoder read it.
    const state = fromBinary(AgentToServerSchema, r.fullStateBytes());
    const schema = AgentToServerSchema.fields.find((f) => f.localName === part)!;
    expect(schema.fieldKind).toBe("message");
    if (schema.fieldKind !== "message") return;
    const expected = message[part as keyof AgentToServer] as never;
    const got = state[part as keyof AgentToServer] as never;
    expect(equals(schema.message, got, expected)).toBe(true);
    // Every piece parses alone too (a store may keep them apart).
    for (const piece of r.stateFields()) expect(() => fromBinary(AgentToServerSchema, piece)).not.toThrow();
  });

  it.each(OVERRUNS)(
    "%s: a part sent with wire type 0 is encoded again (found by the fuzzer, seed 20261203)",
    (part, no) => {
      // protobuf-es reads the varint as the message's length and the unknown field after it
      // as its content; a splitter sees a 2-byte varint field, which alone is an empty part.
      const r = newRecord();
      const raw = concat(head(r.instanceUid), Uint8Array.of(no << 3, UNKNOWN_FIELD.length), UNKNOWN_FIELD);
      const message = fromBinary(AgentToServerSchema, raw);
      if (message[part as keyof AgentToServer] === undefined) return; // a part with no message field of that shape
      mergeReport(r, message, newStateTables(1 << 20), { raw });
      r.sequenceNum = 7n;
      // The stored state decodes, and more pieces after it would not be read into the part.
      const state = fromBinary(AgentToServerSchema, concat(r.fullStateBytes(), head(r.instanceUid)));
      expect(state[part as keyof AgentToServer]).toBeDefined();
      for (const piece of r.stateFields()) expect(() => fromBinary(AgentToServerSchema, piece)).not.toThrow();
    },
  );

  it("keeps well-formed received bytes as they are (no second encoding)", () => {
    const r = newRecord();
    const message = create(AgentToServerSchema, {
      instanceUid: r.instanceUid,
      capabilities: 0x7fn,
      agentDescription: agentDescription({ identifying: { "service.name": "a" } }),
    });
    const raw = toBinary(AgentToServerSchema, message);
    mergeReport(r, fromBinary(AgentToServerSchema, raw), newStateTables(1 << 20), { raw });
    const description = toBinary(
      AgentToServerSchema,
      create(AgentToServerSchema, { agentDescription: message.agentDescription }),
    );
    expect(r.encodedPart("agentDescription")).toEqual(description);
  });
});

describe("mergeReport and the state budget", () => {
  const big = (uid: Uint8Array, size: number) =>
    create(AgentToServerSchema, {
      instanceUid: uid,
      capabilities: 0x7fn,
      health: { healthy: true, status: "x".repeat(size) },
    });

  it("merges a report that fits exactly, and refuses one byte less, leaving the record untouched", () => {
    const probe = newRecord();
    mergeReport(probe, big(probe.instanceUid, 1000), newStateTables(1 << 20));
    const size = probe.stateBytes();
    expect(size).toBe(probe.fullStateBytes().length);

    const fits = newRecord();
    fits.instanceUid = probe.instanceUid;
    expect(
      mergeReport(fits, big(probe.instanceUid, 1000), newStateTables(1 << 20), { maxStateBytes: size }).changes,
    ).toEqual(["capabilities", "health"]);

    const over = newRecord();
    over.instanceUid = probe.instanceUid;
    const before = over.fullStateBytes();
    const refused = mergeReport(over, big(probe.instanceUid, 1000), newStateTables(1 << 20), {
      maxStateBytes: size - 1,
    });
    expect(refused).toEqual({ changes: [], needComponents: false, refusedStateBytes: size });
    expect(over.fullStateBytes()).toEqual(before);
    expect(over.capabilities).toBe(0n);
    expect(over.health).toBeUndefined();
  });

  it("counts the parts a report leaves out at their held size", () => {
    const r = newRecord();
    const tables = newStateTables(1 << 20);
    mergeReport(r, big(r.instanceUid, 3000), tables, { maxStateBytes: 4000 });
    const description = create(AgentToServerSchema, {
      instanceUid: r.instanceUid,
      capabilities: 0x7fn,
      agentDescription: agentDescription({ identifying: { "service.name": "y".repeat(1500) } }),
    });
    // Alone it fits; next to the health already held it does not.
    expect(mergeReport(newRecord(), description, tables, { maxStateBytes: 4000 }).refusedStateBytes).toBeUndefined();
    const refused = mergeReport(r, description, tables, { maxStateBytes: 4000 });
    expect(refused.refusedStateBytes).toBeGreaterThan(4500);
    expect(r.agentDescription).toBeUndefined();
    // A smaller health makes room for it.
    mergeReport(r, big(r.instanceUid, 10), tables, { maxStateBytes: 4000 });
    expect(mergeReport(r, description, tables, { maxStateBytes: 4000 }).changes).toEqual(["agentDescription"]);
  });
});

describe("mergeReport and available components", () => {
  const hash = Uint8Array.of(1, 2, 3);
  const entries = {
    "receiver/otlp": {
      metadata: [{ key: "code.namespace", value: { value: { case: "stringValue" as const, value: "a" } } }],
    },
    "exporter/debug": { subComponentMap: { inner: { metadata: [] } } },
  };
  const full = (uid: Uint8Array, order: readonly string[]) =>
    create(AgentToServerSchema, {
      instanceUid: uid,
      capabilities: 0x7fn,
      availableComponents: {
        hash,
        components: Object.fromEntries(order.map((name) => [name, entries[name as keyof typeof entries]])),
      },
    });
  const hashOnly = (uid: Uint8Array) =>
    create(AgentToServerSchema, { instanceUid: uid, capabilities: 0x7fn, availableComponents: { hash } });

  it("holds one encoded set for agents reporting the same components in any order", () => {
    const tables = newStateTables(1 << 20);
    const [a, b] = [newRecord(), newRecord()];
    mergeReport(a, full(a.instanceUid, ["receiver/otlp", "exporter/debug"]), tables, { principal: "p" });
    mergeReport(b, full(b.instanceUid, ["exporter/debug", "receiver/otlp"]), tables, { principal: "q" });
    expect(a.sharedComponents).toBe(b.sharedComponents);
    expect(a.stateFields().at(-1)).toBe(b.stateFields().at(-1));
    const decoded = a.availableComponents!;
    expect(Object.keys(decoded.components).sort()).toEqual(["exporter/debug", "receiver/otlp"]);
    expect(
      equals(
        AvailableComponentsSchema,
        decoded,
        full(a.instanceUid, ["exporter/debug", "receiver/otlp"]).availableComponents!,
      ),
    ).toBe(true);
    // Decoded afresh on each read: changing one read changes nothing held.
    decoded.components = {};
    expect(Object.keys(a.availableComponents!.components)).toHaveLength(2);
  });

  it("fills a hash-only report from a set of the same principal, and asks an agent of another", () => {
    const tables = newStateTables(1 << 20);
    const reporter = newRecord();
    mergeReport(reporter, full(reporter.instanceUid, ["receiver/otlp"]), tables, { principal: "tenant-a" });

    const sameTenant = newRecord();
    const filled = mergeReport(sameTenant, hashOnly(sameTenant.instanceUid), tables, { principal: "tenant-a" });
    expect(filled.needComponents).toBe(false);
    expect(Object.keys(sameTenant.availableComponents!.components)).toEqual(["receiver/otlp"]);

    const otherTenant = newRecord();
    const asked = mergeReport(otherTenant, hashOnly(otherTenant.instanceUid), tables, { principal: "tenant-b" });
    expect(asked.needComponents).toBe(true);
    expect(otherTenant.availableComponents!.components).toEqual({});
    expect(otherTenant.availableComponents!.hash).toEqual(hash);

    // Objects are principals by identity: an equal-looking object is another principal.
    const owner = { tenant: "t" };
    mergeReport(newRecord(), full(newInstanceUid(), ["receiver/otlp"]), tables, { principal: owner });
    expect(mergeReport(newRecord(), hashOnly(newInstanceUid()), tables, { principal: owner }).needComponents).toBe(
      false,
    );
    expect(
      mergeReport(newRecord(), hashOnly(newInstanceUid()), tables, { principal: { tenant: "t" } }).needComponents,
    ).toBe(true);
  });

  it("keeps an agent's own full set when it reports only the same hash again", () => {
    const tables = newStateTables(1 << 20);
    const r = newRecord();
    mergeReport(r, full(r.instanceUid, ["receiver/otlp"]), tables, { principal: "a" });
    const again = mergeReport(r, hashOnly(r.instanceUid), tables, { principal: { other: true } });
    expect(again).toEqual({ changes: [], needComponents: false });
    expect(Object.keys(r.availableComponents!.components)).toEqual(["receiver/otlp"]);
  });
});
