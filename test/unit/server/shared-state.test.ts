/**
 * Holding many agents cheaply: shared effective configs, parts detached from the received
 * buffer, the full state written by concatenation, and the in-memory store sharing large
 * fields — each equal in content to the straightforward way.
 */
import { create, equals, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { AgentToServerSchema, RemoteConfigStatuses } from "../../../src/gen/opamp/v1/opamp_pb.js";
import { AgentRecord } from "../../../src/server/agent-record.js";
import { InMemoryServerStore } from "../../../src/server/index.js";
import { mergeReport, newStateTables } from "../../../src/server/merge-report.js";
import { agentDescription, instanceUidToString, newInstanceUid } from "../../../src/wire/index.js";

const body = new TextEncoder().encode("receivers: {}\n".repeat(600)); // ~8 KiB

function report(uid: Uint8Array, seq: bigint, text = body) {
  const message = create(AgentToServerSchema, {
    instanceUid: uid,
    sequenceNum: seq,
    capabilities: 0x7fn,
    agentDescription: agentDescription({ identifying: { "service.name": "a" }, nonIdentifying: { host: "h" } }),
    health: { healthy: true, status: "ok" },
    effectiveConfig: { configMap: { configMap: { "c.yaml": { body: text, contentType: "text/yaml" } } } },
    remoteConfigStatus: {
      lastRemoteConfigHash: new Uint8Array(32).fill(3),
      status: RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
    },
    packageStatuses: { serverProvidedAllPackagesHash: new Uint8Array([1, 2]), packages: { p: { name: "p" } } },
    customCapabilities: { capabilities: ["io.x"] },
    connectionSettingsStatus: { lastConnectionSettingsHash: new Uint8Array([5]) },
    availableComponents: { hash: new Uint8Array([9]), components: { receivers: { metadata: [] } } },
  });
  // As received from `ws`: decoded from one Buffer, so bytes fields are Buffer views into it
  // (and Buffer#slice is a view too, not a copy).
  return fromBinary(AgentToServerSchema, Buffer.from(toBinary(AgentToServerSchema, message)));
}

function record(uid: Uint8Array) {
  return new AgentRecord(instanceUidToString(uid), uid, "websocket", 0);
}

describe("shared agent state", () => {
  it("holds one effective config for every agent reporting the same one, detached from the message", () => {
    const components = newStateTables(1 << 24);
    const a = record(newInstanceUid());
    const b = record(newInstanceUid());
    const ma = report(a.instanceUid, 0n);
    mergeReport(a, ma, components);
    mergeReport(b, report(b.instanceUid, 0n), components);
    expect(a.effectiveConfig).toBe(b.effectiveConfig);
    const kept = a.effectiveConfig!.configMap!.configMap["c.yaml"]!.body;
    expect(kept).toEqual(body);
    // Not a view into the received message.
    expect(kept.buffer).not.toBe(ma.effectiveConfig!.configMap!.configMap["c.yaml"]!.body.buffer);
    expect(a.remoteConfigStatus!.lastRemoteConfigHash.buffer.byteLength).toBe(32);
    // Package statuses are held encoded and decoded on each read; the hash replies need is kept apart.
    expect(a.packageStatuses!.serverProvidedAllPackagesHash.buffer).not.toBe(
      ma.packageStatuses!.serverProvidedAllPackagesHash.buffer,
    );
    expect(a.packageStatuses).not.toBe(a.packageStatuses);
    expect(a.reportedPackagesHash!.buffer.byteLength).toBe(2);
    expect(a.connectionSettingsStatus!.lastConnectionSettingsHash.buffer.byteLength).toBe(1);
    // Another config is another object, and reported as a change.
    const other = new TextEncoder().encode("exporters: {}\n");
    const merged = mergeReport(
      b,
      create(AgentToServerSchema, {
        instanceUid: b.instanceUid,
        effectiveConfig: { configMap: { configMap: { "c.yaml": { body: other } } } },
      }),
      components,
    );
    expect(merged.changes).toEqual(["effectiveConfig"]);
    expect(b.effectiveConfig).not.toBe(a.effectiveConfig);
  });

  it("writes the full state by concatenation, equal to toBinary of the same state", () => {
    const r = record(newInstanceUid());
    mergeReport(r, report(r.instanceUid, 0n), newStateTables(1 << 24));
    r.sequenceNum = 300n;
    const expected = create(AgentToServerSchema, {
      instanceUid: r.instanceUid,
      sequenceNum: 300n,
      capabilities: r.capabilities,
      agentDescription: r.agentDescription,
      health: r.health,
      effectiveConfig: r.effectiveConfig,
      remoteConfigStatus: r.remoteConfigStatus,
      packageStatuses: r.packageStatuses,
      customCapabilities: r.customCapabilities,
      availableComponents: r.availableComponents,
      connectionSettingsStatus: r.connectionSettingsStatus,
    });
    const decoded = fromBinary(AgentToServerSchema, r.fullStateBytes());
    expect(equals(AgentToServerSchema, decoded, expected)).toBe(true);
    // A changed part is encoded again; the others come from the cache.
    mergeReport(r, create(AgentToServerSchema, { health: { healthy: false } }), newStateTables(1 << 24));
    expect(fromBinary(AgentToServerSchema, r.fullStateBytes()).health?.healthy).toBe(false);
  });

  it("takes each part's encoding from the received bytes, except a field sent twice", () => {
    const uid = newInstanceUid();
    const message = report(uid, 7n);
    const raw = toBinary(AgentToServerSchema, message);
    // health sent twice: decoders merge the two, so neither copy alone is the value.
    const second = toBinary(AgentToServerSchema, create(AgentToServerSchema, { health: { lastError: "x" } }));
    const twice = new Uint8Array([...raw, ...second]);
    const decoded = fromBinary(AgentToServerSchema, twice);
    const r = record(uid);
    mergeReport(r, decoded, newStateTables(1 << 24), { raw: twice });
    r.sequenceNum = 7n;
    const back = fromBinary(AgentToServerSchema, r.fullStateBytes());
    expect(back.health?.healthy).toBe(true);
    expect(back.health?.lastError).toBe("x");
    expect(equals(AgentToServerSchema, back, decoded)).toBe(true);
    // Kept encodings are copies, not views into the received bytes.
    expect(r.encodedPart("agentDescription")?.buffer).not.toBe(twice.buffer);
  });

  it("in-memory store: states sharing a large field come back exactly as written", async () => {
    const store = new InMemoryServerStore();
    const states = [0, 1, 2].map((i) => {
      const uid = newInstanceUid();
      const r = record(uid);
      mergeReport(r, report(uid, 0n, i === 2 ? new TextEncoder().encode("other") : body), newStateTables(1 << 24));
      return { instanceUid: r.id, state: r.fullStateBytes(), lastSeen: i };
    });
    for (const s of states) await store.putAgent(s);
    // Written again after a change of a small field.
    const changed = { ...states[0]!, state: new Uint8Array([...states[0]!.state, 0x10, 0x07]), lastSeen: 9 };
    await store.putAgent(changed);
    for (const s of [changed, states[1]!, states[2]!]) {
      const got = await store.getAgent(s.instanceUid);
      expect(got?.lastSeen).toBe(s.lastSeen);
      expect(got?.state).toEqual(s.state);
    }
    // Bytes that are not protobuf are kept as they are.
    await store.putAgent({ instanceUid: "x", state: new Uint8Array([0xff, 0xff]), lastSeen: 1 });
    expect((await store.getAgent("x"))?.state).toEqual(new Uint8Array([0xff, 0xff]));
  });
});
