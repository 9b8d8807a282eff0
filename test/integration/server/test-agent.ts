/**
 * A tiny scripted OpAMP agent for server tests: raw `ws` and `fetch` plus the wire codecs,
 * so each test says exactly which bytes go out. Not the SDK client.
 */

import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import type { EventEmitter } from "eventemitter3";
import WebSocket from "ws";
import {
  type AgentToServer,
  AgentToServerSchema,
  ComponentHealthSchema,
  type ServerToAgent,
  ServerToAgentSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import type { Agent, OpAMPServer, ServerEvents } from "../../../src/server/index.js";
import {
  AgentCapability,
  agentDescription,
  decodeWsMessage,
  encodeWsFrame,
  gunzip,
  gzip,
  newInstanceUid,
  PROTOBUF_CONTENT_TYPE,
} from "../../../src/wire/index.js";

export type Transport = "websocket" | "http";
export type AgentInit = MessageInitShape<typeof AgentToServerSchema>;

/** Capabilities most tests use. */
export const DEFAULT_CAPS =
  AgentCapability.ReportsStatus |
  AgentCapability.AcceptsRemoteConfig |
  AgentCapability.ReportsRemoteConfig |
  AgentCapability.ReportsEffectiveConfig |
  AgentCapability.ReportsHealth;

/** The outcome of one HTTP exchange when it is not a 200. */
export class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    readonly headers: Headers,
  ) {
    super(`HTTP ${status}`);
  }
}

export interface TestAgentOptions {
  readonly headers?: Record<string, string>;
  readonly uid?: Uint8Array;
  readonly capabilities?: bigint;
  /** gzip the HTTP request body. */
  readonly gzipRequest?: boolean;
  /** send Accept-Encoding: gzip. */
  readonly acceptGzip?: boolean;
  /** TLS material for https/wss: trusted CA and an optional client certificate. */
  readonly tls?: { readonly ca: string; readonly cert?: string; readonly key?: string };
}

/** One scripted agent on one transport. */
export class TestAgent {
  uid: Uint8Array;
  capabilities: bigint;
  /** sequence_num of the next message. */
  seq = 0n;
  /** Every ServerToAgent received, in order. */
  readonly received: ServerToAgent[] = [];
  /** Close code and reason once the WebSocket closed. */
  closed: { code: number; reason: string } | undefined;
  /** Headers of the last HTTP response. */
  lastResponseHeaders: Headers | undefined;
  #waiters: { match: (m: ServerToAgent) => boolean; resolve: (m: ServerToAgent) => void }[] = [];
  #closeWaiters: (() => void)[] = [];
  #cursor = 0;

  private constructor(
    readonly transport: Transport,
    readonly url: string,
    readonly options: TestAgentOptions,
    readonly ws: WebSocket | undefined,
  ) {
    this.uid = options.uid ?? newInstanceUid();
    this.capabilities = options.capabilities ?? DEFAULT_CAPS;
    if (ws) {
      ws.on("message", (data: Buffer) => this.#push(decodeWsMessage(ServerToAgentSchema, new Uint8Array(data))));
      ws.on("close", (code, reason) => {
        this.closed = { code, reason: reason.toString() };
        for (const w of this.#closeWaiters.splice(0)) w();
      });
      ws.on("error", () => undefined);
    }
  }

  /** Connects; `httpUrl` is the server's http:// OpAMP URL. */
  static async connect(transport: Transport, httpUrl: string, options: TestAgentOptions = {}): Promise<TestAgent> {
    if (transport === "http") return new TestAgent("http", httpUrl, options, undefined);
    const wsUrl = httpUrl.replace(/^http/, "ws");
    const ws = new WebSocket(wsUrl, { headers: options.headers ?? {}, ...options.tls });
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("unexpected-response", (_req, res) => reject(new HttpStatusError(res.statusCode ?? 0, new Headers())));
      ws.once("error", reject);
    });
    return new TestAgent("websocket", wsUrl, options, ws);
  }

  #push(message: ServerToAgent): void {
    this.received.push(message);
    const i = this.#waiters.findIndex((w) => w.match(message));
    if (i >= 0) {
      const [w] = this.#waiters.splice(i, 1);
      this.#cursor = this.received.length;
      w!.resolve(message);
    }
  }

  /** Waits for the next received message (after the last one waited for) that matches. */
  next(match: (m: ServerToAgent) => boolean = () => true): Promise<ServerToAgent> {
    for (let i = this.#cursor; i < this.received.length; i++) {
      const m = this.received[i]!;
      if (match(m)) {
        this.#cursor = i + 1;
        return Promise.resolve(m);
      }
    }
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }

  /** Builds a message with uid, sequence number and capabilities filled in. */
  message(init: AgentInit = {}): AgentToServer {
    const msg = create(AgentToServerSchema, init);
    if (init.instanceUid === undefined) msg.instanceUid = this.uid;
    if (init.sequenceNum === undefined) msg.sequenceNum = this.seq;
    if (init.capabilities === undefined) msg.capabilities = this.capabilities;
    this.seq = msg.sequenceNum + 1n;
    return msg;
  }

  /** A full report: description and health unless `init` sets them. */
  fullState(init: AgentInit = {}): AgentToServer {
    const msg = this.message(init);
    msg.agentDescription ??= agentDescription({ identifying: { "service.name": "test-agent" } });
    msg.health ??= create(ComponentHealthSchema, { healthy: true });
    return msg;
  }

  /** Sends and returns the reply (the next message on WS; the response on HTTP). */
  async send(message: AgentToServer): Promise<ServerToAgent> {
    if (this.ws) {
      const reply = this.next((m) => m.errorResponse !== undefined || m.instanceUid.length > 0);
      this.ws.send(encodeWsFrame(toBinary(AgentToServerSchema, message)));
      return reply;
    }
    return this.post(toBinary(AgentToServerSchema, message));
  }

  /** Posts raw body bytes (HTTP only); throws HttpStatusError for a non-200. */
  async post(body: Uint8Array, headers: Record<string, string> = {}): Promise<ServerToAgent> {
    const h: Record<string, string> = { "content-type": PROTOBUF_CONTENT_TYPE, ...this.options.headers, ...headers };
    let payload = body;
    if (this.options.gzipRequest) {
      payload = await gzip(body);
      h["content-encoding"] = "gzip";
    }
    if (this.options.acceptGzip) h["accept-encoding"] = "gzip";
    // node:http rather than fetch: fetch inflates gzip itself and hides what the server sent.
    const res = await rawPost(this.url, h, payload, this.options.tls);
    this.lastResponseHeaders = res.headers;
    const bytes = res.body;
    if (res.status !== 200) throw new HttpStatusError(res.status, res.headers);
    const raw = res.headers.get("content-encoding") === "gzip" ? await gunzip(bytes) : bytes;
    const reply = fromBinary(ServerToAgentSchema, raw);
    this.#push(reply);
    return reply;
  }

  /** Sends raw bytes as one binary WebSocket message. */
  sendRaw(data: Uint8Array | string): void {
    this.ws!.send(data);
  }

  /** Resolves when the WebSocket has closed. */
  waitClosed(): Promise<{ code: number; reason: string }> {
    if (this.closed) return Promise.resolve(this.closed);
    return new Promise((resolve) => this.#closeWaiters.push(() => resolve(this.closed!)));
  }

  /** Closes the WebSocket (no AgentDisconnect). */
  close(): void {
    this.ws?.close(1000);
  }
}

/** One POST over node:http; the body comes back exactly as sent. */
export function rawPost(
  url: string,
  headers: Record<string, string>,
  body: Uint8Array,
  tls?: TestAgentOptions["tls"],
): Promise<{ status: number; headers: Headers; body: Uint8Array }> {
  return new Promise((resolve, reject) => {
    const request = url.startsWith("https:") ? httpsRequest : httpRequest;
    const req = request(
      url,
      { method: "POST", headers: { ...headers, "content-length": String(body.length) }, ...tls },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const h = new Headers();
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === "string") h.set(k, v);
          resolve({ status: res.statusCode ?? 0, headers: h, body: new Uint8Array(Buffer.concat(chunks)) });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** Resolves with the arguments of the next `event` for which `match` is true. */
export function waitFor<E extends keyof ServerEvents>(
  server: EventEmitter<ServerEvents> | OpAMPServer,
  event: E,
  match: (...args: Parameters<ServerEvents[E]>) => boolean = () => true,
): Promise<Parameters<ServerEvents[E]>> {
  const emitter = server as EventEmitter<ServerEvents>;
  return new Promise((resolve) => {
    const listener = (...args: Parameters<ServerEvents[E]>) => {
      if (!match(...args)) return;
      (emitter.off as (e: E, l: typeof listener) => void)(event, listener);
      resolve(args);
    };
    (emitter.on as (e: E, l: typeof listener) => void)(event, listener);
  });
}

/** True when the agent's UID equals `uid`. */
export function isAgent(uid: Uint8Array): (agent: Agent) => boolean {
  return (agent) => agent.instanceUid.length === uid.length && agent.instanceUid.every((b, i) => b === uid[i]);
}
