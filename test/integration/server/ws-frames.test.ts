/**
 * Server messages go out over WebSocket as one frame each (RFC 6455 §5.2), written by the
 * server itself; a large pushed part shared by the fleet is written by reference after the
 * agent's own bytes, not copied per agent. Seen through `ws` (a well-formed ServerToAgent)
 * and through a raw TCP client that reads the frame headers.
 */
import { createHash, randomBytes } from "node:crypto";
import { connect, type Socket } from "node:net";
import { constants, inflateRawSync } from "node:zlib";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { AgentToServerSchema, ServerToAgentSchema } from "../../../src/gen/opamp/v1/opamp_pb.js";
import { SHARED_PIECE_BYTES } from "../../../src/server/outbound.js";
import { agentDescription, hasBit, newInstanceUid, ServerToAgentFlag } from "../../../src/wire/index.js";
import { startServer, stopAll } from "./helpers.js";
import { DEFAULT_CAPS, TestAgent } from "./test-agent.js";

const sockets = new Set<Socket>();
afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets.clear();
  await stopAll();
});

/** A config body well over SHARED_PIECE_BYTES, not compressible to nothing. */
function bigBody(size = 64 * 1024): Uint8Array {
  return new Uint8Array(randomBytes(size));
}

/** The WebSocket payload of a ServerToAgent: header byte 0, then the message. */
function decodePayload(payload: Uint8Array) {
  expect(payload[0]).toBe(0);
  // A plain copy: bytes fields decoded from a Buffer would be Buffers.
  return fromBinary(ServerToAgentSchema, Uint8Array.from(payload.subarray(1)));
}

interface Frame {
  readonly fin: boolean;
  readonly rsv1: boolean;
  readonly opcode: number;
  /** Which length form the header used: 7-bit, 16-bit (126) or 64-bit (127). */
  readonly lengthForm: 7 | 16 | 64;
  readonly payload: Buffer;
}

/**
 * A WebSocket client written on node:net: the upgrade by hand, frames parsed as they come,
 * so a test sees how a message was framed (fragments, compression).
 */
class RawWebSocket {
  /** Data messages received, each as its frames (control frames are left out). */
  readonly messages: Frame[][] = [];
  /** Value of Sec-WebSocket-Extensions in the server's 101 answer ("" when none). */
  extensions = "";
  /** Pings received (each answered with a pong). */
  pings = 0;
  #buffer = Buffer.alloc(0);
  #current: Frame[] = [];
  #waiters: (() => void)[] = [];
  #cursor = 0;

  private constructor(readonly socket: Socket) {}

  static async open(httpUrl: string, offerExtensions?: string): Promise<RawWebSocket> {
    const url = new URL(httpUrl);
    const socket = connect(Number(url.port), url.hostname);
    sockets.add(socket);
    const raw = new RawWebSocket(socket);
    const key = randomBytes(16).toString("base64");
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      let head = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf("\r\n\r\n");
        if (end < 0) return;
        socket.off("data", onData);
        const lines = head.subarray(0, end).toString("latin1").split("\r\n");
        if (!/^HTTP\/1\.1 101 /.test(lines[0]!)) {
          reject(new Error(`upgrade refused: ${lines[0]}`));
          return;
        }
        const headers = new Map(
          lines.slice(1).map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]),
        );
        const accept = createHash("sha1").update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
        if (headers.get("sec-websocket-accept") !== accept) {
          reject(new Error("bad Sec-WebSocket-Accept"));
          return;
        }
        raw.extensions = headers.get("sec-websocket-extensions") ?? "";
        socket.on("data", (c: Buffer) => raw.#read(c));
        raw.#read(head.subarray(end + 4));
        resolve();
      };
      socket.on("data", onData);
      socket.write(
        [
          `GET ${url.pathname} HTTP/1.1`,
          `Host: ${url.host}`,
          "Upgrade: websocket",
          "Connection: Upgrade",
          `Sec-WebSocket-Key: ${key}`,
          "Sec-WebSocket-Version: 13",
          ...(offerExtensions === undefined ? [] : [`Sec-WebSocket-Extensions: ${offerExtensions}`]),
          "",
          "",
        ].join("\r\n"),
      );
    });
    return raw;
  }

  #read(chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      const b = this.#buffer;
      if (b.length < 2) return;
      if (b[1]! & 0x80) throw new Error("a server frame must not be masked");
      let length = b[1]! & 0x7f;
      let offset = 2;
      const lengthForm = length === 126 ? 16 : length === 127 ? 64 : 7;
      if (length === 126) {
        if (b.length < 4) return;
        length = b.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (b.length < 10) return;
        length = Number(b.readBigUInt64BE(2));
        offset = 10;
      }
      if (b.length < offset + length) return;
      const frame = {
        fin: (b[0]! & 0x80) !== 0,
        rsv1: (b[0]! & 0x40) !== 0,
        opcode: b[0]! & 0x0f,
        lengthForm,
        payload: Buffer.from(b.subarray(offset, offset + length)),
      } as const;
      this.#buffer = b.subarray(offset + length);
      if (frame.opcode === 9) {
        // A ping: answered like any client would, and counted.
        this.pings++;
        this.#write(0x8a, frame.payload);
        for (const w of this.#waiters.splice(0)) w();
      }
      if (frame.opcode >= 8) continue; // ping, pong, close
      this.#current.push(frame);
      if (frame.fin) {
        this.messages.push(this.#current);
        this.#current = [];
        for (const w of this.#waiters.splice(0)) w();
      }
    }
  }

  /** The next data message not yet taken, as its frames. */
  async next(): Promise<Frame[]> {
    while (this.messages.length <= this.#cursor) await new Promise<void>((resolve) => this.#waiters.push(resolve));
    return this.messages[this.#cursor++]!;
  }

  /** Resolves once the server has sent more than `count` pings. */
  async pingsAfter(count: number): Promise<void> {
    while (this.pings <= count) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  /** Sends one binary message in one masked frame (clients must mask). */
  send(payload: Uint8Array): void {
    this.#write(0x82, payload);
  }

  /** Writes one masked frame with the given first header byte (FIN + opcode). */
  #write(first: number, payload: Uint8Array): void {
    const mask = randomBytes(4);
    const length = payload.length;
    const head =
      length < 126
        ? Buffer.from([first, 0x80 | length])
        : length < 0x10000
          ? Buffer.from([first, 0x80 | 126, length >> 8, length & 0xff])
          : (() => {
              const h = Buffer.alloc(10);
              h[0] = first;
              h[1] = 0x80 | 127;
              h.writeBigUInt64BE(BigInt(length), 2);
              return h;
            })();
    const body = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!));
    this.socket.write(Buffer.concat([head, mask, body]));
  }
}

/** A full first report from `uid`, as a WebSocket payload. */
function hello(uid: Uint8Array): Uint8Array {
  const message = create(AgentToServerSchema, {
    instanceUid: uid,
    capabilities: DEFAULT_CAPS,
    agentDescription: agentDescription({ identifying: { "service.name": "raw" } }),
    health: { healthy: true },
  });
  return Uint8Array.from([0, ...toBinary(AgentToServerSchema, message)]);
}

describe("WebSocket pushes of large parts", () => {
  it("a 64 KiB config reaches a ws client as one well-formed ServerToAgent", async () => {
    const { server, url } = await startServer();
    const agent = await TestAgent.connect("websocket", url);
    await agent.send(agent.fullState());
    const payloads: Uint8Array[] = [];
    agent.ws!.on("message", (data: Buffer) => payloads.push(new Uint8Array(data)));
    const first = new Promise<Uint8Array>((resolve) =>
      agent.ws!.once("message", (data: Buffer) => resolve(new Uint8Array(data))),
    );
    const body = bigBody();
    const { hash } = await server.setRemoteConfig(agent.uid, { "big.yaml": body });
    const message = decodePayload(await first);
    expect(message.instanceUid).toEqual(agent.uid);
    expect(message.remoteConfig?.configHash).toEqual(hash);
    expect(message.remoteConfig?.config?.configMap["big.yaml"]?.body).toEqual(body);
    // Nothing else came with it: the next message is the answer to the agent's next one.
    await agent.next((m) => m.remoteConfig !== undefined);
    const reply = await agent.send(agent.message());
    expect(reply.instanceUid).toEqual(agent.uid);
    expect(payloads.length).toBe(2);
    expect(decodePayload(payloads[1]!).remoteConfig).toBeUndefined();
    agent.close();
  });

  it("sends each message as one final frame, with 7-bit, 16-bit and 64-bit lengths", async () => {
    const { server, url } = await startServer();
    const ws = await RawWebSocket.open(url);
    expect(ws.extensions).toBe("");
    const uid = newInstanceUid();
    ws.send(hello(uid));
    // The reply: a few dozen bytes, so the 7-bit length form.
    const [reply, ...moreFrames] = await ws.next();
    expect(moreFrames).toEqual([]);
    expect(reply).toMatchObject({ fin: true, opcode: 2, lengthForm: 7 });
    expect(decodePayload(reply!.payload).instanceUid).toEqual(uid);

    // 64 KiB: past SHARED_PIECE_BYTES (written by reference) and past the 16-bit length.
    const body = bigBody();
    const { hash } = await server.setRemoteConfig(uid, { "big.yaml": body });
    const frames = await ws.next();
    expect(frames.map((f) => [f.opcode, f.fin, f.lengthForm])).toEqual([[2, true, 64]]);
    const message = decodePayload(frames[0]!.payload);
    expect(message.instanceUid).toEqual(uid);
    expect(message.remoteConfig?.configHash).toEqual(hash);
    expect(message.remoteConfig?.config?.configMap["big.yaml"]?.body).toEqual(body);

    // A small push after it is a message of its own.
    await server.requestFullState(uid);
    const next = await ws.next();
    expect(next.map((f) => [f.opcode, f.fin, f.lengthForm])).toEqual([[2, true, 7]]);
    expect(hasBit(decodePayload(next[0]!.payload).flags, ServerToAgentFlag.ReportFullState)).toBe(true);
    // 20,000 bytes: shared, in the 16-bit length form.
    const other = bigBody(20_000);
    await server.setRemoteConfig(uid, { "big.yaml": other });
    const again = await ws.next();
    expect(again.map((f) => [f.opcode, f.fin, f.lengthForm])).toEqual([[2, true, 16]]);
    expect(decodePayload(again[0]!.payload).remoteConfig?.config?.configMap["big.yaml"]?.body).toEqual(other);
    expect(SHARED_PIECE_BYTES).toBeLessThan(20_000);
  });

  it("keeps control frames whole between the messages it writes", async () => {
    const { server, url } = await startServer({ heartbeat: { wsPingIntervalMs: 20 } });
    const ws = await RawWebSocket.open(url);
    const uid = newInstanceUid();
    ws.send(hello(uid));
    await ws.next();
    // Pushes and the server's pings share the socket: every frame must still parse.
    for (let i = 0; i < 5; i++) {
      const body = bigBody(10_000 + i);
      await server.setRemoteConfig(uid, { "big.yaml": body });
      const [frame] = await ws.next();
      expect(decodePayload(frame!.payload).remoteConfig?.config?.configMap["big.yaml"]?.body).toEqual(body);
      await ws.pingsAfter(ws.pings);
    }
    expect(server.agents.size).toBe(1);
  });

  it("under permessage-deflate sends the message whole, compressed", async () => {
    const { server, url } = await startServer({ transport: { perMessageDeflate: true } });
    // No context takeover: each compressed message inflates on its own, and ws compresses
    // only messages of at least its threshold.
    const ws = await RawWebSocket.open(
      url,
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    );
    expect(ws.extensions).toContain("permessage-deflate");
    const uid = newInstanceUid();
    ws.send(hello(uid));
    await ws.next();
    // Text compresses well: the whole message must be one compressed frame.
    const body = new TextEncoder().encode("receivers:\n  otlp: {}\n".repeat(3000));
    const { hash } = await server.setRemoteConfig(uid, { "big.yaml": body });
    const frames = await ws.next();
    expect(frames.map((f) => [f.opcode, f.fin, f.rsv1])).toEqual([[2, true, true]]);
    expect(frames[0]!.payload.length).toBeLessThan(body.length);
    const payload = inflateRawSync(Buffer.concat([frames[0]!.payload, Buffer.from([0, 0, 0xff, 0xff])]), {
      finishFlush: constants.Z_SYNC_FLUSH,
    });
    const message = decodePayload(payload);
    expect(message.remoteConfig?.configHash).toEqual(hash);
    expect(message.remoteConfig?.config?.configMap["big.yaml"]?.body).toEqual(body);
  });

  it("refuses a push whose pieces together pass maxMessageBytes", async () => {
    const { server, url } = await startServer({ limits: { maxMessageBytes: 32 * 1024 } });
    const agent = await TestAgent.connect("websocket", url);
    await agent.send(agent.fullState());
    // The per-agent piece is tiny; only the shared one is over the limit.
    await expect(server.setRemoteConfig(agent.uid, { "big.yaml": bigBody(40 * 1024) })).rejects.toMatchObject({
      code: "message_too_large",
    });
    // Nothing was set as desired (it could never be delivered), and nothing went out: the
    // next message the agent gets is the answer to its own.
    expect([...server.agents.values()].map((a) => a.desiredConfigHash)).toEqual([undefined]);
    const reply = await agent.send(agent.message());
    expect(reply.remoteConfig).toBeUndefined();
    expect(agent.received.some((m) => m.remoteConfig !== undefined)).toBe(false);
    agent.close();
  });
});
