/**
 * Hostile server against the client: garbage and huge frames (WebSocket) and bodies (HTTP).
 * Each is reported with a typed error from the closed set; nothing crashes; the client
 * keeps (WS) or gets back (HTTP) a working connection that still delivers status.
 */
import { gzipSync } from "node:zlib";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { OpAMPClient } from "../../../src/client/opamp-client.js";
import type { ConnectionState } from "../../../src/transport/connection-state.js";
import { agentDescription } from "../../../src/wire/agent-description.js";
import { OPAMP_ERROR_CODES, type OpampError } from "../../../src/wire/errors.js";
import { FakeServer } from "../client/fake-server.js";
import { eventWhere, makeClient, nextEvent, settle } from "../client/helpers.js";

/** A small deterministic PRNG (mulberry32), so a failure reproduces. */
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

function randomBytes(random: () => number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = Math.floor(random() * 256);
  return out;
}

/**
 * Garbage that cannot be a valid message, with random tails: (WS) a header that is not 0,
 * a truncated varint, a length past the end, field 0 with wire type 7. HTTP bodies have no
 * header byte.
 */
function garbage(kind: "ws" | "http", random: () => number, i: number): Uint8Array {
  const tail = randomBytes(random, 1 + Math.floor(random() * 300));
  const header = kind === "ws" ? [0] : [];
  switch (i % 4) {
    case 0:
      return kind === "ws"
        ? new Uint8Array([1 + Math.floor(random() * 127), ...tail])
        : new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0x0f]);
    case 1:
      return new Uint8Array([...header, 0x80, 0x80, 0x80]);
    case 2:
      return new Uint8Array([...header, 0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, ...tail]);
    default:
      return new Uint8Array([...header, 0x07, ...tail]);
  }
}

/** The next failure of a connection, whether it was up (disconnect) or not (connectFailed). */
function nextFailure(client: OpAMPClient): Promise<OpampError> {
  return new Promise((resolve) => {
    const done = (error: OpampError) => {
      client.off("disconnect", done).off("connectFailed", done);
      resolve(error);
    };
    client.on("disconnect", done).on("connectFailed", done);
  });
}

const LIMIT = 64 * 1024;
const description = (name: string) => agentDescription({ identifying: { "service.name": name } });

describe.each(["ws", "http"] as const)("hostile frames over %s", (kind) => {
  let server: FakeServer;
  beforeEach(async () => {
    server = await FakeServer.start();
  });
  afterEach(async () => {
    await server.close();
  });

  /** Waits out whatever backoff the client is in (HTTP answers that failed back off). */
  async function untilConnected(client: OpAMPClient, clock: { now(): number; advance(ms: number): void }) {
    await settle();
    const state: ConnectionState = client.state;
    if (state.t === "backoff") {
      const connected = nextEvent(client, "connect");
      clock.advance(state.until - clock.now());
      await connected;
    }
  }

  it("reports garbage with typed errors and keeps delivering status", async () => {
    const random = prng(16);
    const { client, clock } = makeClient(server, kind, { agent: { description: description("garbage-0") } });
    const codes: string[] = [];
    const record = (error: OpampError) => codes.push(error.code);
    client.on("error", record).on("connectFailed", record).on("disconnect", record);
    const connected = nextEvent(client, "connect");
    await client.start();
    await connected;
    await server.waitFor();
    const rounds = kind === "ws" ? 200 : 40;
    for (let i = 0; i < rounds; i++) {
      const seen = codes.length;
      const payload = garbage(kind, random, i);
      if (kind === "ws") {
        const reported = eventWhere(client, "error", () => true);
        for (const ws of server.sockets) ws.send(payload);
        await reported;
      } else {
        // HTTP: the garbage answers the next request, which then fails and backs off.
        server.garbage.push(payload);
        const failed = nextFailure(client);
        client.setAgentDescription(description(`garbage-${i + 1}`));
        await failed;
        await untilConnected(client, clock);
      }
      expect(codes.length).toBeGreaterThan(seen);
    }
    expect(codes.every((code) => code === "malformed_frame" || code === "malformed_message")).toBe(true);
    expect(new Set(codes)).toEqual(
      new Set(kind === "ws" ? ["malformed_frame", "malformed_message"] : ["malformed_message"]),
    );
    // WS: the socket survived every frame; the connection still carries status.
    if (kind === "ws") expect(server.upgrades).toHaveLength(1);
    const delivered = server.next((r) => r.message.agentDescription !== undefined);
    client.setAgentDescription(description("still-alive"));
    expect((await delivered).message.agentDescription).toEqual(description("still-alive"));
    await client.stop();
  });

  it("refuses a message over limits.maxMessageBytes with message_too_large and comes back", async () => {
    const { client, clock } = makeClient(server, kind, { limits: { maxMessageBytes: LIMIT } });
    const connected = nextEvent(client, "connect");
    await client.start();
    await connected;
    await server.waitFor();
    const huge = new Uint8Array(LIMIT * 4);
    const refused = nextFailure(client);
    if (kind === "ws") {
      for (const ws of server.sockets) ws.send(huge);
    } else {
      server.garbage.push(huge);
      client.setAgentDescription(description("huge"));
    }
    const error = await refused;
    expect(error.code).toBe("message_too_large");
    expect(error.details.limit).toBe(LIMIT);
    await untilConnected(client, clock);
    const delivered = server.next((r) => r.message.agentDescription !== undefined);
    client.setAgentDescription(description("after-huge"));
    expect((await delivered).message.agentDescription).toEqual(description("after-huge"));
    await client.stop();
  });

  if (kind === "ws")
    it("reports a text frame as malformed_frame and keeps the socket", async () => {
      const { client } = makeClient(server, kind);
      const connected = nextEvent(client, "connect");
      await client.start();
      await connected;
      await server.waitFor();
      const reported = nextEvent(client, "error");
      for (const ws of server.sockets) ws.send('{"hello": "json"}');
      expect((await reported)[0].code).toBe("malformed_frame");
      expect(client.state.t).toBe("connected");
      await client.stop();
    });

  if (kind === "http")
    it("stops a gzip bomb while inflating it", async () => {
      const { client, clock } = makeClient(server, kind, { limits: { maxMessageBytes: LIMIT } });
      const connected = nextEvent(client, "connect");
      await client.start();
      await connected;
      const bomb = new Uint8Array(gzipSync(new Uint8Array(64 * 1024 * 1024)));
      expect(bomb.length).toBeLessThan(LIMIT);
      server.garbage.push({ body: bomb, headers: { "Content-Encoding": "gzip" } });
      const refused = nextFailure(client);
      client.setAgentDescription(description("bomb"));
      const error = await refused;
      expect(error.code).toBe("message_too_large");
      expect(OPAMP_ERROR_CODES).toContain(error.code);
      await untilConnected(client, clock);
      await client.stop();
    });
});
