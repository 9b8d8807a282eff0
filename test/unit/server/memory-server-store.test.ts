import { create, equals, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as vitest from "vitest";
import { describe, expect, it } from "vitest";
import { AgentDescriptionSchema, AgentToServerSchema } from "../../../src/gen/opamp/v1/opamp_pb.js";
import { AgentRecord } from "../../../src/server/agent-record.js";
import { InMemoryServerStore } from "../../../src/server/index.js";
import { mergeReport, newStateTables } from "../../../src/server/merge-report.js";
import { ManualClock } from "../../../src/testing/client-manual-clock.js";
import { serverStoreContract } from "../../../src/testing/server-store-contract.js";
import { agentDescription, instanceUidToString, newInstanceUid } from "../../../src/wire/index.js";

serverStoreContract(vitest, "InMemoryServerStore", () => new InMemoryServerStore());

describe("InMemoryServerStore", () => {
  it("keeps at most maxDeliveriesPerAgent deliveries, dropping the oldest", async () => {
    const store = new InMemoryServerStore({ maxDeliveriesPerAgent: 2 });
    for (const h of [1, 2, 3]) {
      await store.appendDelivery("a", "remoteConfig", new Uint8Array([h]), { status: "offered", at: h });
    }
    expect((await store.listDeliveries("a")).map((d) => d.hash[0])).toEqual([2, 3]);
  });

  it("gives back the exact bytes of states with large descriptions and configs, shared or not", async () => {
    const field = (n: number, body: Uint8Array) => {
      // tag, two-byte varint length (bodies here are 128..16383 bytes), body
      const out = new Uint8Array(3 + body.length);
      out[0] = (n << 3) | 2;
      out[1] = (body.length & 0x7f) | 0x80;
      out[2] = body.length >> 7;
      out.set(body, 3);
      return out;
    };
    const concat = (parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
    const config = field(6, new Uint8Array(8000).fill(7));
    const store = new InMemoryServerStore();
    const states = [1, 2].map((i) =>
      concat([
        field(1, new Uint8Array(16).fill(i)),
        field(3, new Uint8Array(2000).fill(i)),
        config,
        field(7, new Uint8Array(200).fill(i)),
      ]),
    );
    await store.putAgent({ instanceUid: "a", state: states[0]!, lastSeen: 1 });
    await store.putAgent({ instanceUid: "b", state: states[1]!, lastSeen: 2 });
    await store.putAgent({ instanceUid: "a", state: states[0]!, lastSeen: 3 });
    expect((await store.getAgent("a"))?.state).toEqual(states[0]);
    expect((await store.getAgent("b"))?.state).toEqual(states[1]);
  });
});

describe("InMemoryServerStore: states written in pieces (stateFields)", () => {
  const concat = (parts: readonly Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
  /** A StoredAgent whose `state` must not be needed: the store has the pieces. */
  const inPieces = (instanceUid: string, stateFields: Uint8Array[], lastSeen = 1) => ({
    instanceUid,
    lastSeen,
    stateFields,
    get state(): Uint8Array {
      throw new Error("state read although stateFields were given");
    },
  });

  it("keeps the pieces and gives back their concatenation, without reading state", async () => {
    const store = new InMemoryServerStore();
    const config = new Uint8Array(8000).fill(7);
    config[0] = (6 << 3) | 2;
    const a = [Uint8Array.from([0x0a, 1, 0xa]), Uint8Array.from([0x1a, 2, 1, 1]), config];
    const b = [Uint8Array.from([0x0a, 1, 0xb]), Uint8Array.from([0x1a, 1, 2]), config];
    await store.putAgent(inPieces("a", a, 1));
    await store.putAgent(inPieces("b", b, 2));
    const got = await store.getAgent("a");
    expect(got?.state).toEqual(concat(a));
    expect(got?.lastSeen).toBe(1);
    expect(got).not.toHaveProperty("stateFields");
    expect((await store.getAgent("b"))?.state).toEqual(concat(b));
  });

  it("keeps the very pieces it was given (no copy): a piece changed afterwards shows", async () => {
    // The server never changes a piece it wrote; changing one here only makes the sharing visible.
    const store = new InMemoryServerStore();
    const shared = Uint8Array.from([0x2a, 2, 5, 5]);
    await store.putAgent(inPieces("a", [Uint8Array.from([0x10, 1]), shared]));
    await store.putAgent(inPieces("b", [Uint8Array.from([0x10, 2]), shared]));
    shared[3] = 6;
    expect((await store.getAgent("a"))?.state).toEqual(Uint8Array.from([0x10, 1, 0x2a, 2, 5, 6]));
    expect((await store.getAgent("b"))?.state).toEqual(Uint8Array.from([0x10, 2, 0x2a, 2, 5, 6]));
    // The list itself is the store's own: pieces added to it later do not show.
    const list = [Uint8Array.from([0x10, 3])];
    await store.putAgent(inPieces("c", list));
    list.push(Uint8Array.from([0x18, 1]));
    expect((await store.getAgent("c"))?.state).toEqual(Uint8Array.from([0x10, 3]));
  });

  it("copies a state given only as bytes, as before", async () => {
    const store = new InMemoryServerStore();
    const state = Uint8Array.from([0x10, 1, 0x2a, 2, 5, 5]);
    await store.putAgent({ instanceUid: "a", lastSeen: 1, state });
    state[5] = 6;
    expect((await store.getAgent("a"))?.state).toEqual(Uint8Array.from([0x10, 1, 0x2a, 2, 5, 5]));
    // In pieces, then whole again: each write replaces the last.
    await store.putAgent(inPieces("a", [Uint8Array.from([0x10, 2])], 2));
    expect((await store.getAgent("a"))?.state).toEqual(Uint8Array.from([0x10, 2]));
    await store.putAgent({ instanceUid: "a", lastSeen: 3, state: Uint8Array.from([0x10, 3]) });
    expect((await store.getAgent("a"))?.state).toEqual(Uint8Array.from([0x10, 3]));
  });
});

describe("InMemoryServerStore with an AgentRecord's pieces", () => {
  it("still gives back the state as written after the agent reported changes", async () => {
    const uid = newInstanceUid();
    const record = new AgentRecord(instanceUidToString(uid), uid, "websocket", 0);
    const report = (seq: bigint, name: string) =>
      create(AgentToServerSchema, {
        instanceUid: uid,
        sequenceNum: seq,
        capabilities: 3n,
        agentDescription: agentDescription({ identifying: { "service.name": name } }),
        health: { healthy: true, status: name },
        effectiveConfig: { configMap: { configMap: { "c.yaml": { body: new TextEncoder().encode(name) } } } },
      });
    const merge = (seq: bigint, name: string) => {
      const raw = toBinary(AgentToServerSchema, report(seq, name));
      mergeReport(record, fromBinary(AgentToServerSchema, raw), newStateTables(1 << 24), { raw: raw });
      record.sequenceNum = seq;
    };
    merge(0n, "first");
    const store = new InMemoryServerStore();
    const stateFields = record.stateFields();
    const written = record.fullStateBytes();
    await store.putAgent({ instanceUid: record.id, lastSeen: 1, stateFields, state: written });
    // Same lengths ("first" → "again"), so a change written over the old pieces would show.
    merge(1n, "again");
    merge(2n, "other name");
    const got = await store.getAgent(record.id);
    expect(got?.state).toEqual(written);
    const back = fromBinary(AgentToServerSchema, got!.state);
    expect(back.sequenceNum).toBe(0n);
    expect(
      equals(
        AgentDescriptionSchema,
        back.agentDescription!,
        agentDescription({ identifying: { "service.name": "first" } }),
      ),
    ).toBe(true);
    expect(back.health?.status).toBe("first");
    expect(fromBinary(AgentToServerSchema, record.fullStateBytes()).health?.status).toBe("other name");
  });
});

describe("InMemoryServerStore: bounds (issue 16, defect 4)", () => {
  const state = (fill: number, size: number) => {
    const bytes = new Uint8Array(size).fill(fill);
    bytes[0] = 0x1a; // a description field, never shared
    return bytes;
  };
  const uid = (i: number) => `018f2c6e-0000-7000-8000-${String(i).padStart(12, "0")}`;

  it("forgets an agent not written for agentTtlMs (state and deliveries; its desired state stays)", async () => {
    const clock = new ManualClock(0);
    const store = new InMemoryServerStore({ agentTtlMs: 1000, clock });
    await store.putAgent({ instanceUid: uid(1), state: state(1, 10), lastSeen: 0 });
    await store.appendDelivery(uid(1), "remoteConfig", Uint8Array.of(1), { status: "offered", at: 0 });
    await store.putDesired(uid(1), { remoteConfig: Uint8Array.of(9) });
    clock.advance(999);
    expect(await store.getAgent(uid(1))).toBeDefined();
    await store.putAgent({ instanceUid: uid(2), state: state(2, 10), lastSeen: 999 });
    clock.advance(1);
    expect(await store.getAgent(uid(1))).toBeUndefined();
    expect(await store.listDeliveries(uid(1))).toEqual([]);
    expect((await store.getDesired(uid(1)))?.remoteConfig).toEqual(Uint8Array.of(9));
    expect(await store.getAgent(uid(2))).toBeDefined();
    expect(store.agentCount).toBe(1);
    // A write keeps an agent: the clock counts from the last one.
    clock.advance(998);
    await store.appendDelivery(uid(2), "remoteConfig", Uint8Array.of(2), { status: "applied", at: 1 });
    clock.advance(998);
    expect(await store.getAgent(uid(2))).toBeDefined();
  });

  it("keeps at most maxAgents, forgetting the least recently written", async () => {
    const store = new InMemoryServerStore({ maxAgents: 3 });
    for (const i of [1, 2, 3]) await store.putAgent({ instanceUid: uid(i), state: state(i, 10), lastSeen: i });
    await store.putAgent({ instanceUid: uid(1), state: state(1, 12), lastSeen: 4 }); // 1 is now the most recent
    for (const i of [4, 5]) await store.putAgent({ instanceUid: uid(i), state: state(i, 10), lastSeen: i });
    const held = await Promise.all([1, 2, 3, 4, 5].map(async (i) => (await store.getAgent(uid(i))) !== undefined));
    expect(held).toEqual([true, false, false, true, true]);
    expect(store.agentCount).toBe(3);
  });

  it("keeps the write order over thousands of rewrites while one agent is never written again", async () => {
    const store = new InMemoryServerStore({ maxAgents: 10 });
    for (let i = 0; i < 10; i++) await store.putAgent({ instanceUid: uid(i), state: state(i, 10), lastSeen: i });
    // Agent 0 stays the least recently written while 1..9 are written again and again.
    for (let round = 0; round < 1000; round++) {
      for (let i = 1; i < 10; i++) await store.putAgent({ instanceUid: uid(i), state: state(i, 10), lastSeen: round });
    }
    await store.putAgent({ instanceUid: uid(100), state: state(100, 10), lastSeen: 0 });
    expect(await store.getAgent(uid(0))).toBeUndefined();
    expect(await store.getAgent(uid(1))).toBeDefined();
    // Then 1, the least recently written of the rest, then 2.
    await store.putAgent({ instanceUid: uid(101), state: state(101, 10), lastSeen: 0 });
    await store.putAgent({ instanceUid: uid(102), state: state(102, 10), lastSeen: 0 });
    const held = await Promise.all(
      [1, 2, 3, 9, 100, 101, 102].map(async (i) => (await store.getAgent(uid(i))) !== undefined),
    );
    expect(held).toEqual([false, false, true, true, true, true, true]);
    expect(store.agentCount).toBe(10);
  });

  it("keeps at most maxBytes, counting a state piece shared by many agents once", async () => {
    const store = new InMemoryServerStore({ maxBytes: 64 * 1024 });
    const config = new Uint8Array(8 * 1024).fill(6);
    const own = (i: number) => state(i, 100);
    for (let i = 0; i < 20; i++) {
      await store.putAgent({
        instanceUid: uid(i),
        stateFields: [own(i), config],
        state: new Uint8Array(0),
        lastSeen: i,
      });
    }
    // 8 KiB once, plus each agent's 100 bytes and overhead: all 20 fit.
    expect(store.agentCount).toBe(20);
    expect(store.heldBytes).toBe(config.length + 20 * (100 + 256));
    // Invented agents with large descriptions: the oldest go, the bound holds.
    for (let i = 100; i < 140; i++) {
      await store.putAgent({ instanceUid: uid(i), state: state(i, 16 * 1024), lastSeen: i });
      expect(store.heldBytes).toBeLessThanOrEqual(64 * 1024);
    }
    expect(await store.getAgent(uid(0))).toBeUndefined();
    expect(await store.getAgent(uid(139))).toBeDefined();
    // Everything deleted: nothing held.
    for (let i = 0; i < 140; i++) await store.deleteAgent(uid(i));
    expect(store.heldBytes).toBe(0);
    expect(store.agentCount).toBe(0);
  });

  it("counts deliveries against maxBytes too, and holds nothing for an empty desired state", async () => {
    const store = new InMemoryServerStore({ maxBytes: 10_000 });
    for (let i = 0; i < 50; i++) {
      await store.appendDelivery(uid(i), "remoteConfig", new Uint8Array(32), {
        status: "failed",
        at: i,
        errorMessage: "x".repeat(1000),
      });
      expect(store.heldBytes).toBeLessThanOrEqual(10_000);
    }
    expect((await store.listDeliveries(uid(49))).length).toBe(1);
    expect(await store.listDeliveries(uid(0))).toEqual([]);
    await store.putDesired(uid(1), {});
    expect(await store.getDesired(uid(1))).toBeUndefined();
  });

  it.each([
    ["maxAgents", { maxAgents: 0 }],
    ["maxBytes", { maxBytes: 1.5 }],
    ["agentTtlMs", { agentTtlMs: -1 }],
    ["maxDeliveriesPerAgent", { maxDeliveriesPerAgent: Number.NaN }],
  ])("refuses a bad %s with invalid_argument", (_name, options) => {
    expect(() => new InMemoryServerStore(options)).toThrow(expect.objectContaining({ code: "invalid_argument" }));
  });
});
