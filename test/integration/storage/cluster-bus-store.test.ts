// The bus and store of node:cluster workers, each end of the IPC channel in this process
// (test/support/port-pair.ts stands for the channel): the ServerBus and ServerStore
// contracts over both of Node's serializations, and what the contracts do not cover —
// a worker's channel closing, a primary that does not answer, a failing store.
import * as vitest from "vitest";
import { describe, expect, it } from "vitest";
import {
  ClusterHub,
  type ClusterSerialization,
  ClusterServerBus,
  ClusterServerStore,
} from "../../../src/server/cluster/index.js";
import { InMemoryServerStore, type ServerStore } from "../../../src/server/index.js";
import { ManualClock, serverBusContract, serverStoreContract } from "../../../src/testing/index.js";
import { OpampError } from "../../../src/wire/index.js";
import { portPair } from "../../support/port-pair.js";

function wired(serialization: ClusterSerialization, store?: ServerStore) {
  const hub = new ClusterHub(store === undefined ? {} : { store });
  const [primaryEnd, workerEnd] = portPair(serialization);
  const detach = hub.attach(primaryEnd, { serialization });
  return { hub, primaryEnd, workerEnd, detach };
}

for (const serialization of ["advanced", "json"] as const) {
  serverBusContract(vitest, `ClusterServerBus (${serialization})`, () => {
    const { workerEnd, detach } = wired(serialization);
    return { bus: new ClusterServerBus({ port: workerEnd, serialization }), dispose: detach };
  });
  serverStoreContract(vitest, `ClusterServerStore (${serialization})`, () => {
    const { workerEnd, detach } = wired(serialization);
    return { store: new ClusterServerStore({ port: workerEnd, serialization }), dispose: detach };
  });
}

const UID = "018f2c6e-0000-7000-8000-00000000c1a5";

describe("ClusterServerBus across two workers", () => {
  it("relays between workers, and a worker whose channel is detached (it died) leaves at once", async () => {
    const hub = new ClusterHub();
    const [p1, w1] = portPair();
    const [p2, w2] = portPair();
    const detach1 = hub.attach(p1);
    hub.attach(p2);
    const got: string[] = [];
    const a = await new ClusterServerBus({ port: w1 }).join("worker-1", () => undefined);
    const b = await new ClusterServerBus({ port: w2 }).join("worker-2", (from, payload) =>
      got.push(`${from}:${new TextDecoder().decode(payload)}`),
    );
    expect([...hub.replicas].sort()).toEqual(["worker-1", "worker-2"]);
    await a.claim([UID]);
    expect(await b.locate(UID)).toBe("worker-1");
    await a.send("worker-2", new TextEncoder().encode("hi"));
    await vitest.vi.waitFor(() => expect(got).toEqual(["worker-1:hi"]));

    detach1();
    expect(hub.replicas).toEqual(["worker-2"]);
    expect(await b.locate(UID)).toBeUndefined();
    // The agent reconnected to worker 2: nobody to tell that it moved.
    expect([...(await b.claim([UID]))]).toEqual([]);
  });

  it("sends the requests of one turn together, at most 256 to an IPC message", async () => {
    const { workerEnd } = wired("advanced");
    const member = await new ClusterServerBus({ port: workerEnd }).join("worker-1", () => undefined);
    const before = workerEnd.sent.length;
    const uids = Array.from({ length: 500 }, (_, i) => `018f2c6e-0000-7000-8000-${String(i).padStart(12, "0")}`);
    await Promise.all(uids.map((uid) => member.claim([uid])));
    // At most 256 requests a message: 500 claims make two.
    expect(workerEnd.sent.length - before).toBe(2);
    expect(await member.locate(uids[499]!)).toBe("worker-1");
  });

  it("a member replaced by a later join with its id is refused (not_running), and its claims are gone", async () => {
    const { workerEnd } = wired("advanced");
    const bus = new ClusterServerBus({ port: workerEnd });
    const first = await bus.join("worker-1", () => undefined);
    await first.claim([UID]);
    const second = await bus.join("worker-1", () => undefined);
    expect(await second.locate(UID)).toBeUndefined();
    await expect(first.claim([UID])).rejects.toMatchObject({ code: "not_running" });
  });
});

describe("ClusterServerStore failures", () => {
  it("gives the primary store's error code to the worker", async () => {
    const failing = new InMemoryServerStore();
    failing.putDesired = async () => {
      throw new OpampError("limit_exceeded", "the primary's store is full");
    };
    failing.getAgent = async () => {
      throw new Error("disk on fire");
    };
    const { workerEnd } = wired("advanced", failing);
    const store = new ClusterServerStore({ port: workerEnd });
    await expect(store.putDesired(UID, { remoteConfig: new Uint8Array([1]) })).rejects.toMatchObject({
      code: "limit_exceeded",
      message: "the primary's store is full",
    });
    const error = await store.getAgent(UID).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpampError);
    expect(error).toMatchObject({ code: "storage_failed", message: "disk on fire" });
  });

  it("fails a request the primary does not answer with timeout after requestTimeoutMs (fake time)", async () => {
    // A primary that never answers: nothing attached at the other end.
    const [, workerEnd] = portPair();
    const clock = new ManualClock(0);
    const store = new ClusterServerStore({ port: workerEnd, clock, requestTimeoutMs: 2_000 });
    let settled = false;
    const read = store.getDesired(UID).finally(() => {
      settled = true;
    });
    clock.advance(1_999);
    await new Promise((r) => setImmediate(r));
    expect(settled).toBe(false);
    clock.advance(1);
    await expect(read).rejects.toMatchObject({ code: "timeout" });
  });

  it("fails what waits, and what follows, with storage_failed once the channel to the primary closes", async () => {
    const [, workerEnd] = portPair();
    const store = new ClusterServerStore({ port: workerEnd });
    const waiting = store.getAgent(UID);
    workerEnd.disconnect();
    await expect(waiting).rejects.toMatchObject({ code: "storage_failed" });
    await expect(store.putDesired(UID, {})).rejects.toMatchObject({ code: "storage_failed" });
  });

  it("refuses bytes packed for another serialization with malformed_message, naming the fix", async () => {
    // The worker packs for "advanced"; the channel is JSON (cluster.fork's default).
    const hub = new ClusterHub();
    const [primaryEnd, workerEnd] = portPair("json");
    hub.attach(primaryEnd, { serialization: "json" });
    const store = new ClusterServerStore({ port: workerEnd, serialization: "advanced" });
    const error = await store.putDesired(UID, { remoteConfig: new Uint8Array([1, 2]) }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "malformed_message" });
    expect((error as Error).message).toContain("serialization");
  });

  it("refuses bad options and a process without an IPC channel", () => {
    const [, workerEnd] = portPair();
    expect(() => new ClusterServerStore({ port: workerEnd, requestTimeoutMs: 0 })).toThrow(OpampError);
    // vitest's worker threads have no process.send.
    if (typeof process.send !== "function") {
      expect(() => new ClusterServerBus()).toThrow(/IPC channel/);
    }
    new ClusterServerStore({ port: workerEnd, serialization: "advanced" });
    expect(() => new ClusterServerBus({ port: workerEnd, serialization: "json" })).toThrow(/already used/);
  });

  it("answers a request it does not know with malformed_message, and keeps serving", async () => {
    const { workerEnd } = wired("advanced");
    const answers: unknown[] = [];
    workerEnd.on("message", (m) => answers.push(m));
    workerEnd.send({ tag: "opamp-sdk/cluster", items: [{ id: 7, op: "constructor", args: [] }] });
    await vitest.vi.waitFor(() => expect(answers.length).toBe(1));
    expect(answers[0]).toMatchObject({ items: [{ re: 7, ok: false, code: "malformed_message" }] });
    const store = new ClusterServerStore({ port: workerEnd });
    await store.putDesired(UID, { remoteConfig: new Uint8Array([3]) });
    expect((await store.getDesired(UID))?.remoteConfig).toEqual(new Uint8Array([3]));
  });

  it("leaves the application's own messages on the channel alone", async () => {
    const { primaryEnd, workerEnd } = wired("advanced");
    const seen: unknown[] = [];
    primaryEnd.on("message", (m) => seen.push(m));
    workerEnd.send({ hello: "app" });
    const store = new ClusterServerStore({ port: workerEnd });
    await store.putDesired(UID, { remoteConfig: new Uint8Array([7]) });
    expect((await store.getDesired(UID))?.remoteConfig).toEqual(new Uint8Array([7]));
    expect(seen[0]).toEqual({ hello: "app" });
  });
});
