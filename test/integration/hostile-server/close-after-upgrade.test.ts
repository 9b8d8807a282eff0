/**
 * Hostile server against the client: a server that closes every connection right after
 * accepting it (WS: after the upgrade, before any answer; HTTP: the request's socket is
 * destroyed unanswered). The client must back off with full jitter and never spin:
 * on a ManualClock, no attempt happens without time passing, each wait lies inside its
 * backoff window, the windows grow to the cap, and the waits differ (jitter).
 */
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { OpAMPClient } from "../../../src/client/opamp-client.js";
import { ManualClock } from "../../../src/testing/client-manual-clock.js";
import type { OpampError } from "../../../src/wire/errors.js";
import { settle } from "../client/helpers.js";

/** A deterministic PRNG (mulberry32) for the client's jitter. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Accepts and at once drops every WebSocket (after the upgrade) and every HTTP request. */
class Slammer {
  attempts = 0;
  readonly #http: Server;
  readonly #wss = new WebSocketServer({ noServer: true });
  readonly #sockets = new Set<Socket>();

  constructor() {
    this.#http = createServer((req) => {
      this.attempts += 1;
      req.socket.destroy();
    });
    this.#http.on("connection", (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on("close", () => this.#sockets.delete(socket));
    });
    this.#http.on("upgrade", (req, socket, head) => {
      this.attempts += 1;
      this.#wss.handleUpgrade(req, socket, head, (ws) => ws.close(1011, "go away"));
    });
  }

  async start(): Promise<void> {
    this.#http.listen(0, "127.0.0.1");
    await once(this.#http, "listening");
  }

  url(kind: "ws" | "http"): string {
    return `${kind}://127.0.0.1:${(this.#http.address() as AddressInfo).port}/v1/opamp`;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    this.#wss.close();
    await new Promise<void>((resolve) => this.#http.close(() => resolve()));
  }
}

const INITIAL = 1_000;
const CAP = 60_000;
const ATTEMPTS = 30;

describe.each(["ws", "http"] as const)("a server that closes right after every connection, over %s", (kind) => {
  let server: Slammer;
  beforeEach(async () => {
    server = new Slammer();
    await server.start();
  });
  afterEach(async () => {
    await server.close();
  });

  it(`backs off with full jitter over ${ATTEMPTS} attempts and never spins`, async () => {
    const clock = new ManualClock(1_700_000_000_000);
    const client = new OpAMPClient({
      transport: { url: server.url(kind) },
      retry: { initialDelayMs: INITIAL, maxDelayMs: CAP, multiplier: 2 },
      clock,
      random: prng(77),
    });
    const failures: OpampError[] = [];
    let failed: () => void = () => undefined;
    const onFailure = (error: OpampError) => {
      failures.push(error);
      failed();
    };
    client.on("connectFailed", onFailure).on("disconnect", onFailure);
    const nextFailure = () => new Promise<void>((resolve) => (failed = resolve));

    const waits: number[] = [];
    let failure = nextFailure();
    await client.start();
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      await failure;
      await settle();
      await settle();
      // No further attempt without time passing: no tight loop, no zero-delay retry.
      expect(server.attempts).toBe(attempt);
      const state = client.state;
      if (state.t !== "backoff") throw new Error(`expected backoff, got ${state.t}`);
      const wait = state.until - clock.now();
      const ceiling = Math.min(CAP, INITIAL * 2 ** (attempt - 1));
      expect(wait).toBeGreaterThanOrEqual(0);
      expect(wait).toBeLessThan(ceiling);
      waits.push(wait);
      failure = nextFailure();
      clock.advance(wait);
    }
    await client.stop();
    // Full jitter: the waits at the cap are spread over the window, not one fixed value.
    const capped = waits.slice(7);
    expect(new Set(capped).size).toBe(capped.length);
    expect(Math.max(...capped) - Math.min(...capped)).toBeGreaterThan(CAP / 4);
    // Over the whole run, the client waited minutes, not milliseconds.
    expect(waits.reduce((sum, wait) => sum + wait, 0)).toBeGreaterThan(5 * 60_000);
    expect(failures).toHaveLength(ATTEMPTS);
  });
});
