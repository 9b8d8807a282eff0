/**
 * AgentRecord holds the description and health tree only as their encoded bytes: reads
 * decode them afresh, a re-report is compared by bytes and then deeply (map order is not
 * a change), unknown fields travel in the bytes, and the state comes out as immutable
 * pieces that a store may keep.
 */
import { create, equals, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  type AgentDescription,
  AgentDescriptionSchema,
  type AgentToServer,
  AgentToServerSchema,
  type ComponentHealth,
  ComponentHealthSchema,
  RemoteConfigStatuses,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import { AgentRecord } from "../../../src/server/agent-record.js";
import { mergeReport, newStateTables } from "../../../src/server/merge-report.js";
import { agentDescription, instanceUidToString, newInstanceUid } from "../../../src/wire/index.js";
import { concat, field, type HealthInit, healthBytes as handHealthBytes, varint } from "./hand-encoded.js";

const COMPONENTS: Record<string, HealthInit> = {
  "receiver/otlp": { healthy: true, status: "StatusOK", startTimeUnixNano: 5n },
  "exporter/debug": { healthy: false, lastError: "connection refused", status: "StatusRecoverableError" },
  pipeline: { healthy: true, componentHealthMap: { inner: { healthy: true, status: "deep" } } },
};

function healthBytes(order: readonly string[], components: Record<string, HealthInit> = COMPONENTS): Uint8Array {
  return handHealthBytes(order, components);
}

const NAMES = Object.keys(COMPONENTS);
const REVERSED = [...NAMES].reverse();

/** A binary AgentToServer: scalars, then the given fields (health 5, description 3) as they are. */
function rawReport(uid: Uint8Array, seq: bigint, parts: { health?: Uint8Array; description?: Uint8Array }) {
  const head = toBinary(
    AgentToServerSchema,
    create(AgentToServerSchema, { instanceUid: uid, sequenceNum: seq, capabilities: 0x7fn }),
  );
  const out = concat(
    head,
    parts.description === undefined ? new Uint8Array(0) : field(3, parts.description),
    parts.health === undefined ? new Uint8Array(0) : field(5, parts.health),
  );
  return { raw: out, message: fromBinary(AgentToServerSchema, out) };
}

function newRecord(): AgentRecord {
  const uid = newInstanceUid();
  return new AgentRecord(instanceUidToString(uid), uid, "websocket", 0);
}

const DESCRIPTION = agentDescription({
  identifying: { "service.name": "collector", "service.instance.id": "i-1" },
  nonIdentifying: { "host.name": "h", "host.id": new Uint8Array([1, 2, 3]), cores: 8 },
});

function fullReport(uid: Uint8Array, seq: bigint, description: AgentDescription = DESCRIPTION): AgentToServer {
  return create(AgentToServerSchema, {
    instanceUid: uid,
    sequenceNum: seq,
    capabilities: 0x7fn,
    agentDescription: description,
    health: fromBinary(ComponentHealthSchema, healthBytes(NAMES)),
    effectiveConfig: { configMap: { configMap: { "c.yaml": { body: new TextEncoder().encode("receivers: {}\n") } } } },
  });
}

function expectEqualHealth(actual: ComponentHealth | undefined, expected: ComponentHealth): void {
  expect(actual).toBeDefined();
  expect(equals(ComponentHealthSchema, actual!, expected)).toBe(true);
}

describe("AgentRecord: description and health held encoded", () => {
  it("reads the description and health back equal to what was reported, with and without the received bytes", () => {
    for (const withRaw of [true, false]) {
      const r = newRecord();
      const message = fullReport(r.instanceUid, 0n);
      const raw = toBinary(AgentToServerSchema, message);
      const merged = mergeReport(r, fromBinary(AgentToServerSchema, raw), newStateTables(1 << 24), {
        raw: withRaw ? raw : undefined,
      });
      expect(merged.changes).toEqual(expect.arrayContaining(["agentDescription", "health"]));
      expect(equals(AgentDescriptionSchema, r.agentDescription!, message.agentDescription!)).toBe(true);
      expectEqualHealth(r.health, message.health!);
      expect(Object.keys(r.health!.componentHealthMap).sort()).toEqual([...NAMES].sort());
      expect(r.health!.componentHealthMap["pipeline"]?.componentHealthMap["inner"]?.status).toBe("deep");
      // And so is the state written from them.
      const back = fromBinary(AgentToServerSchema, r.fullStateBytes());
      expect(equals(AgentDescriptionSchema, back.agentDescription!, message.agentDescription!)).toBe(true);
      expectEqualHealth(back.health, message.health!);
    }
  });

  it("has no description or health before one is reported, and keeps them through reports without them", () => {
    const r = newRecord();
    expect(r.agentDescription).toBeUndefined();
    expect(r.health).toBeUndefined();
    mergeReport(r, fullReport(r.instanceUid, 0n), newStateTables(1 << 24));
    const heartbeat = create(AgentToServerSchema, { instanceUid: r.instanceUid, sequenceNum: 1n, capabilities: 0x7fn });
    const raw = toBinary(AgentToServerSchema, heartbeat);
    expect(mergeReport(r, heartbeat, newStateTables(1 << 24), { raw: raw }).changes).toEqual([]);
    expect(equals(AgentDescriptionSchema, r.agentDescription!, DESCRIPTION)).toBe(true);
    expect(r.health?.status).toBe("running");
  });

  it("takes the same health with its map entries in another order as no change, over bytes or decoded", () => {
    const first = healthBytes(NAMES);
    const reordered = healthBytes(REVERSED);
    // The premise: same tree, other bytes.
    expect(first).not.toEqual(reordered);
    expect(
      equals(
        ComponentHealthSchema,
        fromBinary(ComponentHealthSchema, first),
        fromBinary(ComponentHealthSchema, reordered),
      ),
    ).toBe(true);
    for (const [firstRaw, againRaw] of [
      [true, true],
      [true, false],
      [false, true],
      [false, false],
    ]) {
      const r = newRecord();
      const a = rawReport(r.instanceUid, 0n, { health: first });
      expect(
        mergeReport(r, a.message, newStateTables(1 << 24), { raw: firstRaw ? a.raw : undefined }).changes,
      ).toContain("health");
      const b = rawReport(r.instanceUid, 1n, { health: reordered });
      expect(mergeReport(r, b.message, newStateTables(1 << 24), { raw: againRaw ? b.raw : undefined }).changes).toEqual(
        [],
      );
      expectEqualHealth(r.health, a.message.health!);
    }
  });

  it("takes a changed value deep in the health tree as a change, over bytes or decoded", () => {
    const changed = { ...COMPONENTS, "exporter/debug": { ...COMPONENTS["exporter/debug"], lastError: "timeout" } };
    for (const withRaw of [true, false]) {
      const r = newRecord();
      const a = rawReport(r.instanceUid, 0n, { health: healthBytes(NAMES) });
      mergeReport(r, a.message, newStateTables(1 << 24), { raw: withRaw ? a.raw : undefined });
      // Same entry order: only the value differs.
      const b = rawReport(r.instanceUid, 1n, { health: healthBytes(NAMES, changed) });
      expect(mergeReport(r, b.message, newStateTables(1 << 24), { raw: withRaw ? b.raw : undefined }).changes).toEqual([
        "health",
      ]);
      expect(r.health?.componentHealthMap["exporter/debug"]?.lastError).toBe("timeout");
      expect(
        fromBinary(AgentToServerSchema, r.fullStateBytes()).health?.componentHealthMap["exporter/debug"]?.lastError,
      ).toBe("timeout");
      // A change of the nested map, in another entry order, is a change too.
      const nested = { ...changed, pipeline: { healthy: false, componentHealthMap: { inner: { healthy: false } } } };
      const c = rawReport(r.instanceUid, 2n, { health: healthBytes(REVERSED, nested) });
      expect(mergeReport(r, c.message, newStateTables(1 << 24), { raw: withRaw ? c.raw : undefined }).changes).toEqual([
        "health",
      ]);
      expect(r.health?.componentHealthMap["pipeline"]?.componentHealthMap["inner"]?.healthy).toBe(false);
      // A change that keeps every length ("StatusOK" → "StatusKO"): caught by the bytes.
      const flipped = { ...nested, "receiver/otlp": { ...COMPONENTS["receiver/otlp"], status: "StatusKO" } };
      const e = rawReport(r.instanceUid, 3n, { health: healthBytes(REVERSED, flipped) });
      expect(e.raw.length).toBe(c.raw.length);
      expect(mergeReport(r, e.message, newStateTables(1 << 24), { raw: withRaw ? e.raw : undefined }).changes).toEqual([
        "health",
      ]);
      expect(r.health?.componentHealthMap["receiver/otlp"]?.status).toBe("StatusKO");
      // An entry dropped from the map is a change.
      const d = rawReport(r.instanceUid, 4n, { health: healthBytes(["pipeline"], nested) });
      expect(mergeReport(r, d.message, newStateTables(1 << 24), { raw: withRaw ? d.raw : undefined }).changes).toEqual([
        "health",
      ]);
      expect(Object.keys(r.health!.componentHealthMap)).toEqual(["pipeline"]);
    }
  });

  it("compares a re-sent description by value, and a changed one is a change", () => {
    for (const withRaw of [true, false]) {
      const r = newRecord();
      const first = fullReport(r.instanceUid, 0n);
      const firstRaw = toBinary(AgentToServerSchema, first);
      mergeReport(r, fromBinary(AgentToServerSchema, firstRaw), newStateTables(1 << 24), {
        raw: withRaw ? firstRaw : undefined,
      });
      const same = fullReport(r.instanceUid, 1n);
      const sameRaw = toBinary(AgentToServerSchema, same);
      expect(
        mergeReport(r, fromBinary(AgentToServerSchema, sameRaw), newStateTables(1 << 24), {
          raw: withRaw ? sameRaw : undefined,
        }).changes,
      ).toEqual([]);
      const other = fullReport(r.instanceUid, 2n, agentDescription({ identifying: { "service.name": "other" } }));
      const otherRaw = toBinary(AgentToServerSchema, other);
      expect(
        mergeReport(r, fromBinary(AgentToServerSchema, otherRaw), newStateTables(1 << 24), {
          raw: withRaw ? otherRaw : undefined,
        }).changes,
      ).toEqual(["agentDescription"]);
      expect(r.agentDescription?.identifyingAttributes.map((a) => a.value?.value.value)).toEqual(["other"]);
      expect(r.agentDescription?.nonIdentifyingAttributes).toEqual([]);
    }
  });

  it("keeps a description sent twice in one message as the merge of both (encoded from the decoded message)", () => {
    const r = newRecord();
    const one = toBinary(AgentDescriptionSchema, agentDescription({ identifying: { "service.name": "a" } }));
    const two = toBinary(AgentDescriptionSchema, agentDescription({ nonIdentifying: { "host.name": "h" } }));
    const head = toBinary(AgentToServerSchema, create(AgentToServerSchema, { instanceUid: r.instanceUid }));
    const raw = concat(head, field(3, one), field(3, two));
    const message = fromBinary(AgentToServerSchema, raw);
    // Decoders merge a repeated sub-message: neither occurrence alone is the value.
    expect(message.agentDescription?.identifyingAttributes.length).toBe(1);
    expect(message.agentDescription?.nonIdentifyingAttributes.length).toBe(1);
    mergeReport(r, message, newStateTables(1 << 24), { raw: raw });
    expect(equals(AgentDescriptionSchema, r.agentDescription!, message.agentDescription!)).toBe(true);
    const back = fromBinary(AgentToServerSchema, r.fullStateBytes());
    expect(equals(AgentDescriptionSchema, back.agentDescription!, message.agentDescription!)).toBe(true);
    // The same two occurrences again: no change.
    expect(mergeReport(r, fromBinary(AgentToServerSchema, raw), newStateTables(1 << 24), { raw: raw }).changes).toEqual(
      [],
    );
  });

  it("keeps unknown fields of the description in the state it writes, with and without the received bytes", () => {
    const known = toBinary(AgentDescriptionSchema, DESCRIPTION);
    // Field 99 (varint 42) and field 100 (bytes "future"): not in this schema.
    const unknown = concat(Uint8Array.from([...varint(99 << 3), 42]), field(100, new TextEncoder().encode("future")));
    const description = concat(known, unknown);
    for (const withRaw of [true, false]) {
      const r = newRecord();
      const { raw, message } = rawReport(r.instanceUid, 0n, { description });
      mergeReport(r, message, newStateTables(1 << 24), { raw: withRaw ? raw : undefined });
      const back = fromBinary(AgentToServerSchema, r.fullStateBytes());
      // protobuf-es writes unknown fields after the known ones: the very bytes sent.
      expect(toBinary(AgentDescriptionSchema, back.agentDescription!)).toEqual(description);
      expect(toBinary(AgentDescriptionSchema, r.agentDescription!)).toEqual(description);
      // Re-sent as it was: no change, still there.
      const again = rawReport(r.instanceUid, 1n, { description });
      expect(
        mergeReport(r, again.message, newStateTables(1 << 24), { raw: withRaw ? again.raw : undefined }).changes,
      ).toEqual([]);
      expect(
        toBinary(AgentDescriptionSchema, fromBinary(AgentToServerSchema, r.fullStateBytes()).agentDescription!),
      ).toEqual(description);
    }
  });

  it("returns a fresh object on every read: changing one does not change the record", () => {
    const r = newRecord();
    const message = fullReport(r.instanceUid, 0n);
    const raw = toBinary(AgentToServerSchema, message);
    mergeReport(r, fromBinary(AgentToServerSchema, raw), newStateTables(1 << 24), { raw: raw });
    const before = r.fullStateBytes();
    const description = r.agentDescription!;
    const health = r.health!;
    expect(r.agentDescription).not.toBe(description);
    expect(r.health).not.toBe(health);
    description.identifyingAttributes.push(...agentDescription({ identifying: { x: "y" } }).identifyingAttributes);
    description.nonIdentifyingAttributes = [];
    health.healthy = false;
    health.componentHealthMap["receiver/otlp"]!.status = "changed";
    delete health.componentHealthMap["pipeline"];
    expect(equals(AgentDescriptionSchema, r.agentDescription!, message.agentDescription!)).toBe(true);
    expectEqualHealth(r.health, message.health!);
    expect(r.fullStateBytes()).toEqual(before);
  });

  it("returns a fresh object on every read: changing its bytes values does not change the record", () => {
    const r = newRecord();
    const message = fullReport(r.instanceUid, 0n);
    const raw = toBinary(AgentToServerSchema, message);
    mergeReport(r, fromBinary(AgentToServerSchema, raw), newStateTables(1 << 24), { raw: raw });
    const before = r.fullStateBytes();
    const pieces = r.stateFields().map((p) => Uint8Array.from(p));
    const read = r.agentDescription!;
    const hostId = read.nonIdentifyingAttributes.find((a) => a.key === "host.id")?.value?.value;
    expect(hostId?.case).toBe("bytesValue");
    (hostId!.value as Uint8Array).fill(0xee);
    // Neither the next read nor the state (shared with the store) may change.
    const again = r.agentDescription!.nonIdentifyingAttributes.find((a) => a.key === "host.id")?.value?.value;
    expect(again?.value).toEqual(new Uint8Array([1, 2, 3]));
    expect(r.fullStateBytes()).toEqual(before);
    expect(r.stateFields()).toEqual(pieces);
  });
});

describe("AgentRecord.stateFields", () => {
  it("gives the state as [scalars, packed parts, shared effective config] (no status block without statuses), concatenating to fullStateBytes", () => {
    const components = newStateTables(1 << 24);
    const [a, b] = [newRecord(), newRecord()];
    for (const r of [a, b]) {
      const raw = toBinary(AgentToServerSchema, fullReport(r.instanceUid, 0n));
      mergeReport(r, fromBinary(AgentToServerSchema, raw), components, { raw: raw });
      r.sequenceNum = 4n;
    }
    const fields = a.stateFields();
    expect(fields.length).toBe(3);
    expect(concat(...fields)).toEqual(a.fullStateBytes());
    const head = fromBinary(AgentToServerSchema, fields[0]!);
    expect(head.instanceUid).toEqual(a.instanceUid);
    expect(head.sequenceNum).toBe(4n);
    expect(head.capabilities).toBe(0x7fn);
    expect(fromBinary(AgentToServerSchema, fields[1]!).agentDescription).toBeDefined();
    expect(fromBinary(AgentToServerSchema, fields[2]!).effectiveConfig?.configMap?.configMap["c.yaml"]).toBeDefined();
    // The config piece is one array for both agents; the rest is each agent's own.
    const other = b.stateFields();
    expect(other[2]).toBe(fields[2]);
    expect(other[1]).not.toBe(fields[1]);
    // Nothing changed: the same packed block again.
    expect(a.stateFields()[1]).toBe(fields[1]);
  });

  it("repacks only the status block on a status report: the description and health block stays the same array", () => {
    const r = newRecord();
    const raw = toBinary(AgentToServerSchema, fullReport(r.instanceUid, 0n));
    mergeReport(r, fromBinary(AgentToServerSchema, raw), newStateTables(1 << 24), { raw: raw });
    const before = r.stateFields();
    const hash = new Uint8Array([7, 7, 7]);
    for (const status of [
      RemoteConfigStatuses.RemoteConfigStatuses_APPLYING,
      RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
    ]) {
      const report = create(AgentToServerSchema, {
        instanceUid: r.instanceUid,
        sequenceNum: 1n,
        capabilities: 0x7fn,
        remoteConfigStatus: { lastRemoteConfigHash: hash, status },
      });
      const bytes = toBinary(AgentToServerSchema, report);
      expect(
        mergeReport(r, fromBinary(AgentToServerSchema, bytes), newStateTables(1 << 24), { raw: bytes }).changes,
      ).toEqual(["remoteConfigStatus"]);
    }
    const after = r.stateFields();
    // [head, description + health, status, config]: the first block is the very same array.
    expect(after.length).toBe(4);
    expect(after[1]).toBe(before[1]);
    expect(after[3]).toBe(before[2]);
    const state = fromBinary(AgentToServerSchema, concat(...after));
    expect(state.remoteConfigStatus?.status).toBe(RemoteConfigStatuses.RemoteConfigStatuses_APPLIED);
    expect(state.remoteConfigStatus?.lastRemoteConfigHash).toEqual(hash);
    expect(equals(AgentDescriptionSchema, state.agentDescription!, DESCRIPTION)).toBe(true);
    expectEqualHealth(state.health, fromBinary(ComponentHealthSchema, healthBytes(NAMES)));
    // The snapshot taken before still makes the state without a status.
    expect(fromBinary(AgentToServerSchema, concat(...before)).remoteConfigStatus).toBeUndefined();
  });

  it("leaves out the config piece when there is no effective config", () => {
    const r = newRecord();
    const { raw, message } = rawReport(r.instanceUid, 0n, { health: healthBytes(NAMES) });
    mergeReport(r, message, newStateTables(1 << 24), { raw: raw });
    const fields = r.stateFields();
    expect(fields.length).toBe(2);
    expect(fromBinary(AgentToServerSchema, concat(...fields)).health?.status).toBe("running");
  });

  it("is a snapshot: pieces taken before a change still make the old state", () => {
    const cases: [string, AgentDescription][] = [
      // Same length as before: a change written over the old block in place would show.
      [
        "same length",
        agentDescription({
          identifying: { "service.name": "collectoR", "service.instance.id": "i-1" },
          nonIdentifying: { "host.name": "h", "host.id": new Uint8Array([1, 2, 3]), cores: 8 },
        }),
      ],
      ["other length", agentDescription({ identifying: { "service.name": "a much longer name than before" } })],
    ];
    for (const [, description] of cases) {
      for (const withRaw of [true, false]) {
        const r = newRecord();
        const raw = toBinary(AgentToServerSchema, fullReport(r.instanceUid, 0n));
        mergeReport(r, fromBinary(AgentToServerSchema, raw), newStateTables(1 << 24), { raw: raw });
        const snapshot = r.stateFields();
        const old = concat(...snapshot);
        const next = fullReport(r.instanceUid, 1n, description);
        const nextRaw = toBinary(AgentToServerSchema, next);
        const merged = mergeReport(r, fromBinary(AgentToServerSchema, nextRaw), newStateTables(1 << 24), {
          raw: withRaw ? nextRaw : undefined,
        });
        expect(merged.changes).toEqual(["agentDescription"]);
        r.sequenceNum = 1n;
        // The earlier pieces are untouched…
        expect(concat(...snapshot)).toEqual(old);
        expect(
          equals(AgentDescriptionSchema, fromBinary(AgentToServerSchema, old).agentDescription!, DESCRIPTION),
        ).toBe(true);
        // …and the new ones hold the new state.
        const now = fromBinary(AgentToServerSchema, concat(...r.stateFields()));
        expect(equals(AgentDescriptionSchema, now.agentDescription!, description)).toBe(true);
        expect(now.sequenceNum).toBe(1n);
        expectEqualHealth(now.health, next.health!);
      }
    }
  });
});

describe("AgentRecord: statuses in words", () => {
  it("is undefined until reported, then names each status with its hash, versions and error", () => {
    const r = newRecord();
    expect(r.remoteConfigState).toBeUndefined();
    expect(r.connectionSettingsState).toBeUndefined();
    expect(r.packageStates).toBeUndefined();
    const hash = new Uint8Array([7, 7]);
    mergeReport(
      r,
      create(AgentToServerSchema, {
        instanceUid: r.instanceUid,
        sequenceNum: 0n,
        capabilities: 0x7fn,
        remoteConfigStatus: {
          lastRemoteConfigHash: hash,
          status: RemoteConfigStatuses.RemoteConfigStatuses_FAILED,
          errorMessage: "bad yaml",
        },
        connectionSettingsStatus: { lastConnectionSettingsHash: hash, status: 1 },
        packageStatuses: {
          serverProvidedAllPackagesHash: hash,
          packages: {
            otelcol: { name: "otelcol", agentHasVersion: "1.0", serverOfferedVersion: "1.1", status: 2 },
            broken: { name: "broken", status: 3, errorMessage: "checksum" },
          },
        },
      }),
      newStateTables(1 << 24),
    );
    expect(r.remoteConfigState).toEqual({ status: "failed", hash, errorMessage: "bad yaml" });
    expect(r.connectionSettingsState).toEqual({ status: "applied", hash, errorMessage: "" });
    expect(r.packageStates).toEqual({
      otelcol: { status: "installing", agentHasVersion: "1.0", serverOfferedVersion: "1.1", errorMessage: "" },
      broken: { status: "install_failed", agentHasVersion: "", serverOfferedVersion: "", errorMessage: "checksum" },
    });
  });
});
