/**
 * startCluster for real: a primary and two OpAMPServer workers (node:cluster, from dist/ —
 * run `npm run build` first) on one port, this SDK's OpAMPClient as the agents, over
 * WebSocket and HTTP polling. Agents land on both workers; a push made on one worker
 * reaches an agent on the other; an HTTP agent's polls are served by either worker; a
 * worker killed with SIGKILL is replaced, and its agents come back with their desired
 * config, which the primary's store kept.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { request } from "node:http";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import { OpAMPClient } from "../../../src/client/index.js";
import { instanceUidToString } from "../../../src/wire/index.js";

const APP = fileURLToPath(new URL("./cluster-app.mjs", import.meta.url));

interface Event {
  readonly ev: string;
  readonly [key: string]: unknown;
}

/** The cluster-app process: its events, and commands to it. */
class App {
  readonly events: Event[] = [];
  readonly #waiters: { pred: (e: Event) => boolean; resolve: (e: Event) => void }[] = [];
  readonly child: ChildProcess;
  #nextId = 1;
  stderr = "";

  constructor(workers: number, env: Record<string, string> = {}) {
    this.child = spawn(process.execPath, [APP, String(workers)], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, ...env },
    });
    let buffered = "";
    this.child.stdout!.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      for (let i = buffered.indexOf("\n"); i >= 0; i = buffered.indexOf("\n")) {
        const line = buffered.slice(0, i);
        buffered = buffered.slice(i + 1);
        if (line.startsWith("{")) this.#add(JSON.parse(line) as Event);
      }
    });
    this.child.stderr!.on("data", (chunk: Buffer) => {
      this.stderr += chunk.toString();
    });
  }

  #add(event: Event): void {
    this.events.push(event);
    for (const w of [...this.#waiters]) {
      if (w.pred(event)) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve(event);
      }
    }
  }

  /** The first event (already seen or to come) matching `pred`; the test's timeout bounds the wait. */
  next(pred: (e: Event) => boolean, fromIndex = 0): Promise<Event> {
    const seen = this.events.slice(fromIndex).find(pred);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => this.#waiters.push({ pred, resolve }));
  }

  send(command: Record<string, unknown>): number {
    const id = this.#nextId++;
    this.child.stdin!.write(`${JSON.stringify({ id, ...command })}\n`);
    return id;
  }

  async ask(command: Record<string, unknown>): Promise<Event> {
    const id = this.send(command);
    return this.next((e) => e.ev === "result" && e.id === id);
  }

  /**
   * Resolves once `worker` can locate the agent on the bus (a claim reaches the primary a
   * moment after the agent's first message), asking again after each answer.
   */
  async located(worker: string, uid: string): Promise<string> {
    for (;;) {
      const answer = await this.ask({ cmd: "locate", worker, uid });
      if (typeof answer.holder === "string") return answer.holder;
    }
  }
}

/** A fetch that opens a new connection for every request, so that node:cluster may hand each poll to another worker. */
const freshConnectionFetch: typeof globalThis.fetch = async (input, init) => {
  const url = new URL(String(input));
  const body = init?.body === undefined || init.body === null ? undefined : Buffer.from(init.body as Uint8Array);
  return new Promise<Response>((resolve, reject) => {
    const req = request(
      url,
      {
        method: init?.method ?? "GET",
        headers: init?.headers as Record<string, string>,
        agent: false,
        ...(init?.signal ? { signal: init.signal } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const headers = new Headers();
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === "string") headers.set(k, v);
          // fetch undoes Content-Encoding; so must this one.
          let payload = Buffer.concat(chunks);
          if (headers.get("content-encoding") === "gzip") {
            payload = gunzipSync(payload);
            headers.delete("content-encoding");
          }
          resolve(new Response(res.statusCode === 204 ? null : payload, { status: res.statusCode ?? 0, headers }));
        });
        res.on("error", reject);
        res.on("close", () => {
          if (!res.complete) reject(new Error("the connection closed before the response was complete"));
        });
      },
    );
    req.on("error", reject);
    req.end(body);
  });
};

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function startApp(workers = 2): Promise<{ app: App; url: string }> {
  const app = new App(workers);
  // SIGKILL, not stop(): a cleanup must not wait on a cluster a failed test left stuck. Its
  // workers exit when the primary's IPC channel closes (node:cluster).
  cleanups.push(async () => {
    if (app.child.exitCode !== null || app.child.signalCode !== null) return;
    const exited = new Promise((r) => app.child.once("exit", r));
    app.child.kill("SIGKILL");
    await exited;
  });
  const started = await Promise.race([
    app.next((e) => e.ev === "started"),
    new Promise<never>((_, reject) =>
      app.child.once("exit", (code) => reject(new Error(`cluster-app exited (${code}): ${app.stderr}`))),
    ),
  ]);
  expect((started.workers as unknown[]).length).toBe(workers);
  const ready = await app.next((e) => e.ev === "worker-ready");
  return { app, url: ready.url as string };
}

interface TestAgent {
  readonly client: OpAMPClient;
  /** Hashes (hex) of the configs offered to it, in order. */
  readonly configs: string[];
  readonly uid: string;
  /** Resolves with the next config offered. */
  nextConfig(): Promise<string>;
}

async function agent(url: string, scheme: "ws" | "http"): Promise<TestAgent> {
  const configs: string[] = [];
  const waiting: ((hash: string) => void)[] = [];
  const client: OpAMPClient = new OpAMPClient({
    transport: {
      url: url.replace(/^http/, scheme),
      heartbeatIntervalMs: 250,
      // A connection node:cluster's primary was handing to the worker as it was killed is
      // never answered: the client gives up on it after this and polls (or connects) again.
      responseTimeoutMs: 2_000,
      ...(scheme === "http" ? { fetch: freshConnectionFetch } : {}),
    },
    retry: { initialDelayMs: 50, maxDelayMs: 500 },
    agent: {
      description: {
        identifyingAttributes: [{ key: "service.name", value: { value: { case: "stringValue", value: "cluster" } } }],
      },
    },
    hooks: {
      onRemoteConfig: async (offer) => {
        const hash = Buffer.from(offer.hash).toString("hex");
        configs.push(hash);
        for (const w of waiting.splice(0)) w(hash);
        return { status: "applied" };
      },
    },
  });
  cleanups.push(() => client.stop());
  await client.start();
  return {
    client,
    configs,
    uid: instanceUidToString(client.instanceUid!),
    nextConfig: () => new Promise((resolve) => waiting.push(resolve)),
  };
}

const connectedOf = (app: App, uid: string, from = 0) => app.next((e) => e.ev === "connected" && e.uid === uid, from);

describe("startCluster: two OpAMPServer workers on one port", { timeout: 60_000 }, () => {
  describe.each(["ws", "http"] as const)("over %s", (scheme) => {
    it("agents land on both workers, and a push made on one worker reaches an agent held by the other", async () => {
      const { app, url } = await startApp(2);
      const agents = await Promise.all(Array.from({ length: 6 }, () => agent(url, scheme)));
      const first = await Promise.all(agents.map((a) => connectedOf(app, a.uid)));
      if (scheme === "ws") {
        // Round-robin over connections: six WebSockets split over both workers.
        expect(new Set(first.map((e) => e.worker))).toEqual(new Set(["worker-1", "worker-2"]));
      } else {
        // Each poll a new connection: both workers answer polls.
        await app.next((e) => e.ev === "message" && e.worker === "worker-1");
        await app.next((e) => e.ev === "message" && e.worker === "worker-2");
      }

      for (const [i, target] of agents.entries()) {
        // The push is made on the worker that did not see the agent connect first.
        const holder = first[i]!.worker;
        const other = holder === "worker-1" ? "worker-2" : "worker-1";
        await app.located(other, target.uid);
        const offered = target.nextConfig();
        const result = await app.ask({ cmd: "push", worker: other, uid: target.uid, config: `n: ${i}` });
        expect(result).toMatchObject({ ok: true });
        if (scheme === "ws") expect(result).toMatchObject({ sent: 0, forwarded: 1 });
        else expect((result.sent as number) + (result.forwarded as number)).toBe(1);
        expect(await offered).toBe(result.hash);
      }
      // A UID no worker holds is refused by whichever worker is asked.
      const unknown = await app.ask({
        cmd: "push",
        worker: "worker-1",
        uid: "018f2c6e-0000-7000-8000-00000000dead",
        config: "x",
      });
      expect(unknown).toMatchObject({ ok: false, code: "unknown_agent" });
    });

    it("a worker killed with SIGKILL is replaced; its agents come back on the others with their desired config", async () => {
      const { app, url } = await startApp(2);
      const agents = await Promise.all(Array.from({ length: 4 }, () => agent(url, scheme)));
      await Promise.all(agents.map((a) => connectedOf(app, a.uid)));
      const hashes = new Map<string, string>();
      for (const [i, a] of agents.entries()) {
        await app.located("worker-1", a.uid);
        const offered = a.nextConfig();
        const result = await app.ask({ cmd: "push", worker: "worker-1", uid: a.uid, config: `k: ${i}` });
        expect(result).toMatchObject({ ok: true });
        hashes.set(a.uid, await offered);
      }
      // Where each agent was last seen arriving: the victim is the first agent's worker.
      const holderOf = (uid: string) =>
        [...app.events].reverse().find((e) => e.ev === "connected" && e.uid === uid)!.worker as string;
      const victim = holderOf(agents[0]!.uid);
      const mark = app.events.length;
      const moving = agents.filter((a) => holderOf(a.uid) === victim);
      app.send({ cmd: "kill", worker: victim });
      const exit = await app.next((e) => e.ev === "worker-exit", mark);
      expect(exit).toMatchObject({ worker: victim, signal: "SIGKILL" });
      // A new worker takes its place.
      const restarted = await app.next((e) => e.ev === "worker-restarted", mark);
      expect(restarted.worker).not.toBe(victim);
      expect((restarted.workers as unknown[]).length).toBe(2);

      // The victim's agents are served again (WebSocket agents reconnect, HTTP agents poll
      // on) by a live worker, which holds their desired config: read from the primary's
      // store when the agent arrived there.
      expect(moving.length).toBeGreaterThan(0);
      for (const a of moving) {
        let from = mark;
        for (;;) {
          const served = await app.next((e) => e.ev === "message" && e.uid === a.uid && e.worker !== victim, from);
          from = app.events.indexOf(served) + 1;
          const there = await app.ask({ cmd: "desired", worker: served.worker, uid: a.uid });
          // An HTTP agent may have moved on since that poll: look where it went next.
          if (!there.here) continue;
          expect(there.desired).toBe(hashes.get(a.uid));
          break;
        }
      }
      // The agents already run it: nothing was offered again.
      for (const a of agents) expect(a.configs).toEqual([hashes.get(a.uid)]);
    });
  });

  it("an HTTP-polling agent is served by any worker, its state kept across them", async () => {
    const { app, url } = await startApp(2);
    const a = await agent(url, "http");
    await connectedOf(app, a.uid);
    const polls = () => app.events.filter((e) => e.ev === "message" && e.uid === a.uid);
    // Wait until both workers have answered it several times.
    await app.next(
      () =>
        polls().filter((e) => e.worker === "worker-1").length >= 4 &&
        polls().filter((e) => e.worker === "worker-2").length >= 4,
    );
    // Each move reads the agent's state from the primary's store: the worker does not ask
    // for the full state again at every poll.
    const full = polls().filter((e) => e.full).length;
    expect(full).toBeLessThan(polls().length / 2);
    const errors = app.events.filter((e) => e.ev === "server-error");
    expect(errors).toEqual([]);
  });

  it("a setup that throws at start makes startCluster reject with hook_failed, no worker left running", async () => {
    const app = new App(2, { CLUSTER_APP_FAIL_SETUP: "1" });
    cleanups.push(async () => void app.child.kill("SIGKILL"));
    const exited = new Promise<number | null>((r) => app.child.once("exit", r));
    const failed = await app.next((e) => e.ev === "start-failed");
    expect(failed).toMatchObject({ code: "hook_failed", workers: 0 });
    expect(failed.message).toContain("no config file");
    expect(await exited).toBe(3);
    expect(app.events.some((e) => e.ev === "started")).toBe(false);
  });

  it("stop() stops every worker and the primary exits", async () => {
    const { app } = await startApp(2);
    const exited = new Promise<number | null>((r) => app.child.once("exit", r));
    app.send({ cmd: "stop" });
    expect(await app.next((e) => e.ev === "stopped")).toMatchObject({ workers: 0 });
    app.child.stdin!.end();
    expect(await exited).toBe(0);
    expect(app.events.filter((e) => e.ev === "worker-exit")).toEqual([]);
  });
});
