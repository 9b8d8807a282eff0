/**
 * Handshakes that do not finish: a request body that stalls (both HTTP adapters bound it
 * with handshakeTimeoutMs) and an authenticate hook still running when stop() is called
 * (stop settles it at once). Time is a manual clock, so nothing here waits for real time.
 */
import type { IncomingHttpHeaders } from "node:http";
import { connect } from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { AgentToServerSchema } from "../../../src/gen/opamp/v1/opamp_pb.js";
import { type AuthDecision, OpAMPServer, type ServerEvents } from "../../../src/server/index.js";
import { ManualClock } from "../../../src/testing/client-manual-clock.js";
import type { TimerHandle } from "../../../src/testing/index.js";
import { AgentCapability, newInstanceUid, type OpampError, PROTOBUF_CONTENT_TYPE } from "../../../src/wire/index.js";
import { startServer, stopAll } from "./helpers.js";
import { rawPost, waitFor } from "./test-agent.js";

afterEach(stopAll);

const HANDSHAKE_MS = 2_000;

/** A manual clock that also says when a timer of a given delay is set. */
class WatchedClock extends ManualClock {
  readonly #waiters: { ms: number; resolve: () => void }[] = [];

  override setTimeout(fn: () => void, ms: number): TimerHandle {
    const handle = super.setTimeout(fn, ms);
    for (const w of this.#waiters.filter((w) => w.ms === ms)) {
      this.#waiters.splice(this.#waiters.indexOf(w), 1);
      w.resolve();
    }
    return handle;
  }

  /** Resolves when the next timer of `ms` is set. */
  whenSet(ms: number): Promise<void> {
    return new Promise((resolve) => this.#waiters.push({ ms, resolve }));
  }
}

function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function report(): Uint8Array {
  return toBinary(
    AgentToServerSchema,
    create(AgentToServerSchema, { instanceUid: newInstanceUid(), capabilities: AgentCapability.ReportsStatus }),
  );
}

function post(server: OpAMPServer, body: BodyInit): Promise<Response> {
  return server.fetch(
    new Request("http://opamp.test/v1/opamp", {
      method: "POST",
      headers: { "content-type": PROTOBUF_CONTENT_TYPE },
      body,
      duplex: "half",
    } as RequestInit),
  );
}

/** A body that sends a few bytes and then nothing, ever; says when it is read past them and when cancelled. */
function stalledBody() {
  const stalled = deferred();
  const cancelled = deferred<unknown>();
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(report().subarray(0, 5));
    },
    pull() {
      stalled.resolve();
      return new Promise<void>(() => undefined);
    },
    cancel(reason) {
      cancelled.resolve(reason);
    },
  });
  return { stream, stalled: stalled.promise, cancelled: cancelled.promise };
}

/** Every event the server emits, by name. */
function recordEvents(server: OpAMPServer): string[] {
  const seen: string[] = [];
  const names: (keyof ServerEvents)[] = ["agentConnected", "agentUpdated", "agentDisconnected", "message", "error"];
  for (const name of names) server.on(name, () => seen.push(name));
  return seen;
}

describe("a request body that stalls", () => {
  it("fetch: answers 408 + Connection: close at handshakeTimeoutMs, frees the slot, cancels the body, reports timeout", async () => {
    const clock = new ManualClock();
    const server = new OpAMPServer({
      allowAnonymous: true,
      clock,
      limits: { handshakeTimeoutMs: HANDSHAKE_MS, maxConnections: 1 },
    });
    await server.start();
    const body = stalledBody();
    const reported = waitFor(server, "error");
    const response = post(server, body.stream);
    await body.stalled;
    // The stalled request holds the only slot.
    expect(server.connectionCount).toBe(1);
    expect((await post(server, new Uint8Array(report()))).status).toBe(503);

    clock.advance(HANDSHAKE_MS);
    const res = await response;
    expect(res.status).toBe(408);
    expect(res.headers.get("connection")).toBe("close");
    expect(server.connectionCount).toBe(0);
    expect(await body.cancelled).toMatchObject({ code: "timeout" });
    const [error] = (await reported) as [OpampError];
    expect(error.code).toBe("timeout");
    // The slot is free again: another agent is served, and its body's timer is cleared.
    expect((await post(server, new Uint8Array(report()))).status).toBe(200);
    expect(clock.pending()).not.toContain(HANDSHAKE_MS);
    await server.stop();
  });

  it("node:http gives the same answer and reports the same error", async () => {
    const clock = new WatchedClock();
    const { server, url } = await startServer({ clock, limits: { handshakeTimeoutMs: HANDSHAKE_MS } });
    const reported = waitFor(server, "error");
    const { hostname, port, pathname } = new URL(url);
    const bodyTimer = clock.whenSet(HANDSHAKE_MS);
    const socket = connect(Number(port), hostname, () => {
      socket.write(
        `POST ${pathname} HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: ${PROTOBUF_CONTENT_TYPE}\r\nContent-Length: 100\r\n\r\nabc`,
      );
    });
    let text = "";
    socket.on("data", (d: Buffer) => {
      text += d.toString("latin1");
    });
    const ended = new Promise<void>((resolve) => socket.on("close", () => resolve()));
    await bodyTimer;
    clock.advance(HANDSHAKE_MS);
    await ended;
    const head = text.split("\r\n\r\n")[0]!.toLowerCase().split("\r\n");
    expect(head[0]).toMatch(/^http\/1\.1 408/);
    expect(head).toContain("connection: close");
    const [error] = (await reported) as [OpampError];
    expect(error.code).toBe("timeout");
    expect(server.connectionCount).toBe(0);
  });
});

describe("stop() while authenticate is still running", () => {
  it("answers the waiting upgrade and requests 503 + Retry-After at once, leaves no timer, ignores the hook's late answer", async () => {
    const clock = new ManualClock();
    const calls: ((decision: AuthDecision) => void)[] = [];
    const allCalled = deferred();
    const { server, url } = await startServer({
      allowAnonymous: false,
      clock,
      // Far beyond anything the test advances to: stop() must not need it.
      limits: { handshakeTimeoutMs: 3_600_000 },
      hooks: {
        authenticate: () =>
          new Promise<AuthDecision>((resolve) => {
            calls.push(resolve);
            if (calls.length === 3) allCalled.resolve();
          }),
      },
    });
    const events = recordEvents(server);

    const ws = new WebSocket(url.replace(/^http/, "ws"));
    ws.on("error", () => undefined);
    const upgrade = new Promise<{ status: number; headers: IncomingHttpHeaders }>((resolve, reject) => {
      ws.once("unexpected-response", (_req, res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, headers: res.headers });
      });
      ws.once("open", () => reject(new Error("upgrade accepted")));
    });
    const request = rawPost(url, { "content-type": PROTOBUF_CONTENT_TYPE, connection: "close" }, report());
    const fetched = post(server, new Uint8Array(report()));
    await allCalled.promise;
    expect(server.connectionCount).toBe(3);

    await server.stop();
    const up = await upgrade;
    expect(up.status).toBe(503);
    expect(up.headers["retry-after"]).toBe("30");
    const res = await request;
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("30");
    const fetchRes = await fetched;
    expect(fetchRes.status).toBe(503);
    expect(fetchRes.headers.get("retry-after")).toBe("30");
    expect(server.connectionCount).toBe(0);
    expect(clock.pending()).toEqual([]);

    // The hook answers after all: nothing is accepted and nothing is reported.
    for (const resolve of calls) resolve({ accept: true });
    await new Promise((r) => setImmediate(r));
    expect(server.connectionCount).toBe(0);
    expect(server.agents.size).toBe(0);
    expect(events).toEqual([]);
    expect(clock.pending()).toEqual([]);
  });
});
