/**
 * Replicas: two OpAMPServers sharing one store and one bus, with this SDK's OpAMPClient as
 * the agent, over both transports, on the in-memory bus, PGlite and PostgreSQL. A push made
 * on replica A for an agent connected to replica B is carried out by B; HTTP polls that a
 * load balancer spreads over both replicas keep one consistent agent; when B goes away its
 * agent reconnects to A with its desired config intact.
 */

import { fromBinary } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { OpAMPClient } from "../../../src/client/index.js";
import { AgentToServerSchema, RemoteConfigStatuses } from "../../../src/gen/opamp/v1/opamp_pb.js";
import {
  type Agent,
  InMemoryServerBus,
  InMemoryServerStore,
  type OpAMPServer,
  type ServerBus,
  type ServerStore,
} from "../../../src/server/index.js";
import { PostgresServerBus, PostgresServerStore, type SqlDatabase } from "../../../src/storage/postgres/index.js";
import { ManualClock } from "../../../src/testing/index.js";
import { newInstanceUid, OpampError } from "../../../src/wire/index.js";
import { freshSchema, pglite, pgPool, postgresUrl } from "../../support/postgres.js";
import { type RoundRobin, startRoundRobin } from "../../support/round-robin.js";
import { startServer, stopAll } from "./helpers.js";
import { waitFor } from "./test-agent.js";

interface Backend {
  /** A store and a bus for one replica; `shared` is what both replicas share (torn down last). */
  replica(): Promise<{ store: ServerStore; bus: ServerBus }>;
  close(): Promise<void>;
}

const backends: Record<string, (() => Promise<Backend>) | undefined> = {
  "in-memory": async () => {
    const store = new InMemoryServerStore();
    const bus = new InMemoryServerBus();
    return { replica: async () => ({ store, bus }), close: async () => undefined };
  },
  PGlite: async () => {
    const db = await pglite();
    const schema = freshSchema();
    const opened: { close(): Promise<void> }[] = [];
    return {
      async replica() {
        const store = await PostgresServerStore.open(db, { schema });
        const bus = await PostgresServerBus.open(db, { schema });
        opened.push(store, bus);
        return { store, bus };
      },
      async close() {
        for (const o of opened) await o.close();
        await db.close();
      },
    };
  },
};
const pgUrl = postgresUrl();
if (pgUrl !== undefined) {
  backends.PostgreSQL = async () => {
    const schema = freshSchema();
    const pools: SqlDatabase[] = [];
    const opened: { close(): Promise<void> }[] = [];
    return {
      async replica() {
        // Each replica its own pool, as separate processes would have.
        const db = pgPool(pgUrl);
        pools.push(db);
        const store = await PostgresServerStore.open(db, { schema });
        const bus = await PostgresServerBus.open(db, { schema });
        opened.push(store, bus);
        return { store, bus };
      },
      async close() {
        for (const o of opened) await o.close();
        for (const p of pools) await p.close();
      },
    };
  };
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await stopAll();
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function twoReplicas(make: () => Promise<Backend>) {
  const backend = await make();
  cleanups.push(() => backend.close());
  const options = { heartbeat: { intervalSeconds: 1 }, customCapabilities: ["io.example.echo"] };
  const a = await startServer({ ...options, ...(await backend.replica()), replicaId: "replica-a" });
  const b = await startServer({ ...options, ...(await backend.replica()), replicaId: "replica-b" });
  return { a, b };
}

/** OpAMP settings offered to each client (the clients refuse them, so they stay where they are). */
const offered = new WeakMap<OpAMPClient, { endpoint: string; headers: Record<string, string> }[]>();

function client(url: string, scheme: "ws" | "http"): OpAMPClient {
  const seen: { endpoint: string; headers: Record<string, string> }[] = [];
  const c: OpAMPClient = new OpAMPClient({
    transport: { url: url.replace(/^http/, scheme), heartbeatIntervalMs: 200 },
    agent: {
      description: {
        identifyingAttributes: [{ key: "service.name", value: { value: { case: "stringValue", value: "replica" } } }],
      },
      capabilities: { reportsEffectiveConfig: true },
      customCapabilities: ["io.example.echo"],
    },
    hooks: {
      onRemoteConfig: async () => ({ status: "applied" }),
      onOpampConnectionSettings: async (offer) => {
        const headers = Object.fromEntries((offer.settings.headers?.headers ?? []).map((h) => [h.key, h.value]));
        seen.push({ endpoint: offer.settings.destinationEndpoint, headers });
        return false;
      },
    },
  });
  offered.set(c, seen);
  cleanups.push(() => c.stop());
  return c;
}

/** Waits until `check` holds, looking every 25 ms (for state with no event on this side, like the bus). */
async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const applied = (hash: Uint8Array) => (a: Agent) =>
  a.remoteConfigStatus?.status === RemoteConfigStatuses.RemoteConfigStatuses_APPLIED &&
  Buffer.compare(Buffer.from(a.remoteConfigStatus.lastRemoteConfigHash), Buffer.from(hash)) === 0;

for (const [name, make] of Object.entries(backends)) {
  if (make === undefined) continue;
  // PGlite runs PostgreSQL in WebAssembly on this process's own thread: slow on a loaded machine.
  describe(`replicas on ${name}`, { timeout: 90_000 }, () => {
    describe.each(["ws", "http"] as const)("over %s", (scheme) => {
      it("a push made on replica A reaches the agent connected to replica B", async () => {
        const { a, b } = await twoReplicas(make);
        const connected = waitFor(b.server, "agentConnected");
        const agent = client(b.url, scheme);
        await agent.start();
        const [onB] = await connected;
        await until("A to locate the agent on B", async () => (await a.server.locate(onB.id)) === "replica-b");
        expect(a.server.getAgent(onB.id)).toBeUndefined();

        // A config: carried out by B, stored, APPLIED.
        const config = await a.server.prepareRemoteConfig({ "c.yaml": "x: 1" });
        const done = waitFor(b.server, "agentUpdated", applied(config.hash));
        const result = await a.server.setRemoteConfig(onB.id, config);
        expect(result.sent).toEqual([]);
        expect(result.forwarded.map((f) => f.id)).toEqual([onB.id]);
        await done;
        // Both replicas read the same history from the shared store.
        await until("the APPLIED step in the store", async () => {
          const history = (await a.server.deliveries(onB.id)).find((d) => d.kind === "remoteConfig")?.history;
          return history?.some((h) => h.status === "applied") ? history : undefined;
        });
        const history = (await a.server.deliveries(onB.id))[0]!.history.map((h) => h.status);
        expect(history[0]).toBe("offered");

        // A one-shot command: `done` settles once B sent it; the agent gets it.
        const received = new Promise<string>((resolve) =>
          agent.on("message", (m) => m.customMessage && resolve(m.customMessage.type)),
        );
        const custom = a.server.sendCustomMessage(onB.id, { capability: "io.example.echo", type: "ping" });
        expect(custom.forwarded.map((f) => f.id)).toEqual([onB.id]);
        await custom.forwarded[0]!.done;
        expect(await received).toBe("ping");

        // Connection settings: plain header records carried over, the endpoint filled in by B
        // (the one the agent connected to there).
        const settings = await a.server.offerConnectionSettings(onB.id, {
          opamp: { headers: { Authorization: "Bearer xag_forwarded" } },
        });
        expect(settings.forwarded.map((f) => f.id)).toEqual([onB.id]);
        const seen = offered.get(agent)!;
        await until("the settings offer on the agent", () => seen[0]);
        expect(seen[0]).toEqual({
          endpoint: b.url.replace(/^http/, scheme),
          headers: { Authorization: "Bearer xag_forwarded" },
        });

        // B's refusal comes back to the caller on A, and no replica holds a made-up agent.
        await expect(a.server.offerPackages(onB.id, { packages: {} })).rejects.toMatchObject({
          code: "capability_missing",
        });
        const nobody = newInstanceUid();
        const refused = await a.server.setRemoteConfig(nobody, config).catch((e: unknown) => e);
        expect(refused).toBeInstanceOf(OpampError);
        expect((refused as OpampError).code).toBe("unknown_agent");
        const restart = a.server.sendRestart(nobody);
        await expect(restart.forwarded[0]!.done).rejects.toMatchObject({ code: "unknown_agent" });
      });
    });

    it("HTTP polls spread over both replicas by a load balancer keep one agent, with its state in the store", async () => {
      const { a, b } = await twoReplicas(make);
      const lb = await startRoundRobin([new URL(a.url).port, new URL(b.url).port].map(Number));
      cleanups.push(() => lb.close());
      let full = 0;
      let polls = 0;
      for (const s of [a.server, b.server]) {
        s.on("message", (_agent, m) => {
          polls++;
          if (m.agentDescription !== undefined) full++;
        });
      }
      const moved: string[] = [];
      for (const s of [a.server, b.server]) s.on("agentDisconnected", (_x, reason) => moved.push(reason));
      const agent = client(`${lb.url}/v1/opamp`, "http");
      const first = Promise.race([waitFor(a.server, "agentConnected"), waitFor(b.server, "agentConnected")]);
      await agent.start();
      const [seen] = await first;
      const config = await a.server.prepareRemoteConfig({ "c.yaml": "y: 2" });
      // Every poll may be the agent's first on that replica (agentConnected): watch messages.
      const done = Promise.race([
        waitFor(a.server, "message", applied(config.hash)),
        waitFor(b.server, "message", applied(config.hash)),
      ]);
      // Wherever the agent is now, the push reaches it (locally or forwarded).
      await until("a replica to hold the agent", () => a.server.locate(seen.id));
      await a.server.setRemoteConfig(seen.id, config);
      await done;
      await until("ten polls", () => polls >= 10 || undefined);
      // The polls alternated, and the replicas handed the agent over each time …
      expect(new Set(lb.routed).size).toBe(2);
      expect(moved.filter((r) => r === "moved").length).toBeGreaterThan(2);
      // … without asking it for its full state at every poll: its state is in the store.
      expect(full).toBeLessThan(polls / 2);
      const stored = await (a.server.store as ServerStore).getAgent(seen.id);
      const state = fromBinary(AgentToServerSchema, stored!.state);
      expect(state.remoteConfigStatus?.status).toBe(RemoteConfigStatuses.RemoteConfigStatuses_APPLIED);
    });

    it("when replica B goes away its WebSocket agent reconnects to A, desired config intact", async () => {
      const { a, b } = await twoReplicas(make);
      const lb: RoundRobin = await startRoundRobin([new URL(a.url).port, new URL(b.url).port].map(Number));
      cleanups.push(() => lb.close());
      lb.pin(Number(new URL(b.url).port));
      const onB = waitFor(b.server, "agentConnected");
      const agent = client(`${lb.url}/v1/opamp`, "ws");
      await agent.start();
      const [seen] = await onB;
      await until("A to locate the agent on B", async () => (await a.server.locate(seen.id)) === "replica-b");
      const config = await a.server.prepareRemoteConfig({ "c.yaml": "z: 3" });
      const done = waitFor(b.server, "agentUpdated", applied(config.hash));
      await a.server.setRemoteConfig(seen.id, config);
      await done;

      lb.pin(undefined);
      const back = waitFor(a.server, "agentConnected");
      await b.server.stop();
      const [onA] = await back;
      expect(onA.id).toBe(seen.id);
      // Its desired config came from the store; the agent already runs it: nothing resent.
      expect(Buffer.from(onA.desiredConfigHash ?? []).equals(Buffer.from(config.hash))).toBe(true);
      await until("A to hold the agent", async () => (await a.server.locate(seen.id)) === "replica-a");
      const offers = (await a.server.deliveries(seen.id))[0]!.history.filter((h) => h.status === "offered");
      expect(offers.length).toBe(1);
    });
  });
}

describe("replicas: a holder that does not answer", () => {
  it("fails a forwarded push with timeout after limits.busRequestTimeoutMs (fake time)", async () => {
    const bus = new InMemoryServerBus();
    const clock = new ManualClock(1_000_000);
    const { server } = await startServer({
      bus,
      clock,
      replicaId: "replica-a",
      limits: { busRequestTimeoutMs: 3_000 },
    });
    // A replica that claims an agent and then never answers (hung, or dead but not yet taken for gone).
    const received: Uint8Array[] = [];
    const ghost = await bus.join("ghost", (_from, payload) => received.push(payload));
    const uid = "018f2c6e-0000-7000-8000-00000000dead";
    await ghost.claim([uid]);
    expect(await server.locate(uid)).toBe("ghost");
    const pending = server.setRemoteConfig(uid, { a: "b" }).catch((e: unknown) => e);
    const restart = server.sendRestart(uid);
    await until("both requests on the bus", () => (received.length === 2 ? true : undefined));
    clock.advance(2_999);
    let settled = false;
    void restart.forwarded[0]!.done.catch(() => {
      settled = true;
    });
    await new Promise((r) => setImmediate(r));
    expect(settled).toBe(false);
    clock.advance(1);
    const error = await pending;
    expect(error).toBeInstanceOf(OpampError);
    expect((error as OpampError).code).toBe("timeout");
    await expect(restart.forwarded[0]!.done).rejects.toMatchObject({ code: "timeout" });
    // What was sent to it is a push request the holder could have carried out.
    const sent = received.map((p) => JSON.parse(new TextDecoder().decode(p)) as { t: string; uid: string; op: string });
    expect(sent.map((m) => [m.t, m.uid, m.op]).sort()).toEqual([
      ["push", uid, "remoteConfig"],
      ["push", uid, "restart"],
    ]);
    await ghost.leave();
  });
});

describe("replicas: options", () => {
  it("a server without a bus is its own and only replica", async () => {
    const { server }: { server: OpAMPServer } = await startServer({ replicaId: "solo" });
    expect(server.replicaId).toBe("solo");
    expect(await server.locate(newInstanceUid())).toBeUndefined();
    await expect(server.setRemoteConfig(newInstanceUid(), { a: "b" })).rejects.toMatchObject({ code: "unknown_agent" });
  });

  it("refuses an empty replicaId", async () => {
    await expect(startServer({ replicaId: "" })).rejects.toMatchObject({ code: "invalid_argument" });
  });
});
