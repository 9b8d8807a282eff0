/**
 * HTTP-polling agents (Bindplane's gateway serves WebSocket only). Each agent is one link
 * across its polls, keyed by instance UID and kept on one upstream (the server sees it as
 * an agent of that WebSocket). A poll is authenticated (delegated: one `connect` per
 * request, as the server would authenticate each request), its message forwarded as it
 * came (decompressed), and answered with the next server message for its UID. Server
 * messages that arrive between polls are held for the next one, the latest of each kind
 * (flags added up, custom messages queued), as OpAMPServer holds them for HTTP agents.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type AgentToServer,
  AgentToServerSchema,
  type CustomMessage,
  type ServerToAgent,
  ServerToAgentSchema,
} from "../gen/opamp/v1/opamp_pb.js";
import type { TimerHandle } from "../internal/clock.js";
import { authenticate, flattenHeaders, retryAfterSeconds, STATUS_TEXT } from "../server/auth.js";
import { acceptsGzip, isProtobufRequest } from "../server/http-exchange.js";
import { nodeGzip } from "../server/node-gzip.js";
import { peerCertificate, readNodeBody, requestUrl, tlsVerdict } from "../server/node-http-adapter.js";
import { ServerToAgentFlag } from "../wire/capabilities.js";
import { OpampError } from "../wire/errors.js";
import { decodeWsFrame, encodeWsFrame, parse } from "../wire/frame.js";
import { PROTOBUF_CONTENT_TYPE } from "../wire/http-body.js";
import { DEFAULT_GZIP_MIN_BYTES } from "../wire/limits.js";
import { instanceUidToString, isInstanceUid } from "../wire/uid.js";
import { badRequest } from "./frames.js";
import { goHeaders, goRemoteAddress } from "./headers.js";
import { AgentLink, type LinkCloseReason } from "./link.js";
import type { DownstreamHost } from "./ws-downstream.js";

function now(): number {
  return performance.now();
}

/** A poll waiting for the server's answer. */
interface Waiter {
  readonly resolve: (outcome: PollOutcome) => void;
}

type PollOutcome =
  | { readonly t: "reply"; readonly message: ServerToAgent }
  | { readonly t: "closed"; readonly status: number; readonly reason: string };

/** One HTTP-polling agent across its polls. */
export class HttpLink extends AgentLink {
  readonly transport = "http" as const;
  lastSeen: number;
  /** Polls in flight. */
  inFlight = 0;
  readonly #waiters: Waiter[] = [];
  #held: ServerToAgent | undefined;
  readonly #custom: CustomMessage[] = [];
  #fullState = false;
  reason: LinkCloseReason = "closed";

  constructor(
    readonly host: DownstreamHost,
    readonly key: string,
    auth: AgentLink["auth"],
    remoteAddress: string | undefined,
  ) {
    super(auth, remoteAddress);
    this.lastSeen = host.core.options.clock.now();
  }

  get paused(): boolean {
    return false;
  }

  pauseReading(): void {
    // One message per request: the queue holds at most the polls in flight.
  }

  resumeReading(): void {}

  /** Waits for the next server message for this agent (the answer to the poll just forwarded). */
  wait(): Promise<PollOutcome> {
    return new Promise((resolve) => this.#waiters.push({ resolve }));
  }

  /**
   * The oldest waiting poll ran out of time (polls wait in order, so it is the one): it
   * gets whatever is held, else 504.
   */
  abandon(): void {
    const first = this.#waiters.shift();
    if (first === undefined) return;
    const held = this.take();
    if (held !== undefined) first.resolve({ t: "reply", message: held });
    else first.resolve({ t: "closed", status: 504, reason: "the server did not answer in time" });
  }

  deliver(frame: Uint8Array, receivedAt: number): void {
    let message: ServerToAgent;
    try {
      message = fromBinary(ServerToAgentSchema, decodeWsFrame(frame));
    } catch (e) {
      this.host.core.events.emit("error", OpampError.from(e, "malformed_message"));
      return;
    }
    this.#hold(message);
    this.host.core.metrics.message("downstream", frame.length, now() - receivedAt);
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter.resolve({ t: "reply", message: this.take()! });
  }

  /** Folds a server message into what is held: the latest of each field, flags added up, custom messages queued. */
  #hold(message: ServerToAgent): void {
    if (message.customMessage !== undefined) {
      if (this.#custom.length >= this.host.core.options.maxPendingCustomMessages) {
        this.#custom.shift();
        this.host.core.events.emit(
          "error",
          new OpampError(
            "limit_exceeded",
            `HTTP agent ${this.key} has ${this.host.core.options.maxPendingCustomMessages} custom messages waiting: the oldest was dropped`,
            { details: { limit: this.host.core.options.maxPendingCustomMessages, instanceUid: this.key } },
          ),
        );
      }
      this.#custom.push(message.customMessage);
      message.customMessage = undefined;
    }
    const held = this.#held;
    if (held === undefined) {
      this.#held = message;
      return;
    }
    held.instanceUid = message.instanceUid;
    held.flags |= message.flags;
    if (message.capabilities !== 0n) held.capabilities = message.capabilities;
    if (message.errorResponse !== undefined) held.errorResponse = message.errorResponse;
    if (message.remoteConfig !== undefined) held.remoteConfig = message.remoteConfig;
    if (message.connectionSettings !== undefined) held.connectionSettings = message.connectionSettings;
    if (message.packagesAvailable !== undefined) held.packagesAvailable = message.packagesAvailable;
    if (message.agentIdentification !== undefined) held.agentIdentification = message.agentIdentification;
    if (message.command !== undefined) held.command = message.command;
    if (message.customCapabilities !== undefined) held.customCapabilities = message.customCapabilities;
  }

  /** What the next answer carries: the held message, one queued custom message, a full-state request. */
  take(): ServerToAgent | undefined {
    let message = this.#held;
    this.#held = undefined;
    const custom = this.#custom.shift();
    if (message === undefined && custom === undefined && !this.#fullState) return undefined;
    message ??= create(ServerToAgentSchema, { instanceUid: [...this.uids.values()][0]?.bytes ?? new Uint8Array(0) });
    if (custom !== undefined) message.customMessage = custom;
    if (this.#fullState) message.flags |= ServerToAgentFlag.ReportFullState;
    this.#fullState = false;
    return message;
  }

  close(_code: number, reason: string, status: number, why: LinkCloseReason): void {
    this.reason = why;
    for (const waiter of this.#waiters.splice(0)) waiter.resolve({ t: "closed", status, reason });
    this.host.core.release(this);
    this.host.linkEnded(this, why);
  }

  requestFullState(): void {
    this.#fullState = true;
  }
}

interface Reply {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array | undefined;
}

function plain(status: number, message: string, headers: Record<string, string> = {}): Reply {
  return {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...headers },
    body: new TextEncoder().encode(message),
  };
}

function write(res: ServerResponse, reply: Reply): void {
  res.writeHead(reply.status, STATUS_TEXT[reply.status], reply.headers);
  res.end(reply.body === undefined ? undefined : Buffer.from(reply.body));
}

/** The HTTP-polling agents of one gateway run. */
export class HttpDownstream {
  readonly #links = new Map<string, HttpLink>();
  #sweepTimer: TimerHandle | undefined;

  constructor(readonly host: DownstreamHost) {}

  /** HTTP agents currently known. */
  get size(): number {
    return this.#links.size;
  }

  /** Starts the sweep that finds agents that stopped polling. */
  startSweep(): void {
    const options = this.host.core.options;
    const sweep = () => {
      this.sweep();
      this.#sweepTimer = options.clock.setTimeout(sweep, options.sweepIntervalMs);
    };
    this.#sweepTimer = options.clock.setTimeout(sweep, options.sweepIntervalMs);
  }

  /**
   * Agents silent for longer than `heartbeat.httpAgentTimeoutMs` are gone: the server is
   * told (`agent_disconnect`) and their state dropped.
   */
  sweep(): void {
    const options = this.host.core.options;
    const deadline = options.clock.now() - options.httpAgentTimeoutMs;
    for (const link of [...this.#links.values()]) {
      if (link.inFlight > 0 || link.lastSeen > deadline) continue;
      this.#forget(link, "timeout");
    }
  }

  #forget(link: HttpLink, why: LinkCloseReason): void {
    if (this.#links.get(link.key) === link) this.#links.delete(link.key);
    if (link.state === "closed") return;
    this.host.core.linkClosed(link);
    link.reason = why;
    this.host.linkEnded(link, why);
  }

  /** Stops the sweep and forgets every agent (stop). */
  stopAll(): void {
    const clock = this.host.core.options.clock;
    if (this.#sweepTimer !== undefined) clock.clearTimeout(this.#sweepTimer);
    this.#sweepTimer = undefined;
    for (const link of [...this.#links.values()]) {
      this.#links.delete(link.key);
      link.close(1001, "gateway stopping", 503, "stopped");
    }
  }

  /** Handles one request that the gateway's path matched. Never throws. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const gate = this.host.gate;
    const options = this.host.core.options;
    const retry = { "retry-after": retryAfterSeconds(options.retryAfterMs) };
    if (!this.host.accepting || !gate.tryAcquire()) {
      write(res, plain(503, "the gateway is not taking requests", retry));
      req.resume();
      return;
    }
    let reply: Reply;
    try {
      reply = await this.#exchange(req);
    } catch (e) {
      const error = OpampError.from(e);
      this.host.core.events.emit("error", error);
      reply = plain(500, "internal error");
    } finally {
      gate.release();
    }
    if (reply.status === 413 || reply.status === 408) reply.headers["connection"] = "close";
    write(res, reply);
  }

  async #exchange(req: IncomingMessage): Promise<Reply> {
    const core = this.host.core;
    const options = core.options;
    const retry = { "retry-after": retryAfterSeconds(options.retryAfterMs) };
    if (req.method !== "POST") return plain(405, "OpAMP over HTTP uses POST", { allow: "POST" });
    if (req.headers.upgrade !== undefined) return plain(426, "upgrade not mounted");
    if (!isProtobufRequest(req.headers["content-type"])) {
      return plain(415, `Content-Type must be ${PROTOBUF_CONTENT_TYPE}`);
    }
    const length = Number(req.headers["content-length"] ?? Number.NaN);
    if (Number.isFinite(length) && length > options.maxMessageBytes) return plain(413, "message too large");
    const mode = options.auth.mode;
    if (mode === "local") {
      const { url } = requestUrl(req, false);
      if (url === undefined) return plain(400, "bad Host header");
      try {
        const decision = await authenticate(
          options.auth.authenticate,
          {
            headers: flattenHeaders(req.headers),
            url,
            remoteAddress: req.socket.remoteAddress,
            tlsPeerCertificate: peerCertificate(req),
            ...tlsVerdict(req),
            transport: "http",
          },
          { clock: options.clock, timeoutMs: options.handshakeTimeoutMs, pending: this.host.authentications },
        );
        if (!decision.accept) return plain(decision.status, decision.message ?? "refused", { ...decision.headers });
      } catch (e) {
        const error = OpampError.from(e, "hook_failed");
        if (error.code === "aborted") return plain(503, error.message, retry);
        core.events.emit("error", error);
        return error.code === "timeout" ? plain(503, error.message, retry) : plain(500, "authentication failed");
      }
    }
    // The body is read before a delegated authentication: its instance UID decides which
    // upstream (and so which server connection) the agent belongs to.
    let payload: Uint8Array;
    let message: AgentToServer;
    try {
      const body = await readNodeBody(req, options.maxMessageBytes, core);
      const encoding = (req.headers["content-encoding"] ?? "").trim().toLowerCase();
      if (encoding === "gzip" || encoding === "x-gzip") payload = await nodeGzip.gunzip(body, options.maxMessageBytes);
      else if (encoding === "" || encoding === "identity") payload = body;
      else return plain(400, `unsupported Content-Encoding "${encoding}"`);
      message = parse(AgentToServerSchema, payload);
    } catch (e) {
      const error = OpampError.from(e);
      if (error.code === "message_too_large") return plain(413, error.message);
      if (error.code === "timeout") {
        core.events.emit("error", error);
        return plain(408, error.message);
      }
      return plain(400, error.message);
    }
    const accept = acceptsGzip(req.headers["accept-encoding"]);
    if (!isInstanceUid(message.instanceUid)) {
      return this.#protobuf(badRequest(message.instanceUid, "instance_uid must be 16 bytes"), accept);
    }
    const key = instanceUidToString(message.instanceUid);
    const auth = { headers: goHeaders(req), remoteAddress: goRemoteAddress(req) };
    let link = this.#links.get(key);
    let fresh = false;
    if (link === undefined || link.state === "closed") {
      link = new HttpLink(this.host, key, auth, req.socket.remoteAddress);
      if (!core.assign(link)) return plain(503, "no upstream connection is open", retry);
      this.#links.set(key, link);
      fresh = true;
    } else {
      link.auth = auth;
    }
    const admitted = await this.#poll(link, key, fresh, message, payload, accept);
    if (fresh && admitted.status !== 200 && link.inFlight === 0) {
      // Never admitted: no trace of it stays (counts, routes, events).
      if (this.#links.get(key) === link) this.#links.delete(key);
      core.release(link);
    }
    return admitted;
  }

  async #poll(
    link: HttpLink,
    key: string,
    fresh: boolean,
    message: AgentToServer,
    payload: Uint8Array,
    accept: boolean,
  ): Promise<Reply> {
    const core = this.host.core;
    const options = core.options;
    const mode = options.auth.mode;
    const retry = { "retry-after": retryAfterSeconds(options.retryAfterMs) };
    if (link.upstream === undefined || !link.upstream.open) {
      // Its upstream dropped and no other is open yet.
      return plain(503, "no upstream connection is open", retry);
    }
    link.lastSeen = options.clock.now();
    link.inFlight++;
    try {
      let requestUid: string | undefined;
      if (mode === "delegate") {
        const outcome = await core.authenticate(link);
        if (outcome.t === "refused") return plain(outcome.status, "refused by the server", { ...outcome.headers });
        if (outcome.t === "timeout") {
          core.events.emit(
            "error",
            new OpampError("timeout", `the server did not answer the authentication of ${key} in time`),
          );
          return plain(504, "the server did not answer the authentication", retry);
        }
        if (outcome.t === "unavailable") return plain(503, "no upstream connection is open", retry);
        requestUid = outcome.requestUid;
        // A new request each poll: the UID is tied to it again before the message.
        for (const entry of link.uids.values()) entry.attached = false;
      }
      if (link.state === "closed") return plain(503, "the gateway is stopping", retry);
      if (fresh) this.host.linkStarted(link);
      core.ready(link, requestUid);
      const answer = link.wait();
      core.agentMessage(link, encodeWsFrame(payload), message, now());
      const outcome = await this.#within(link, answer, options.upstreamReplyTimeoutMs);
      if (outcome.t === "closed") return plain(outcome.status, outcome.reason, outcome.status >= 500 ? retry : {});
      return this.#protobuf(toBinary(ServerToAgentSchema, outcome.message), accept);
    } finally {
      link.inFlight--;
      link.lastSeen = options.clock.now();
      const entry = link.uids.get(key);
      if (entry?.goodbye === true) this.#forget(link, "closed");
    }
  }

  #within(link: HttpLink, answer: Promise<PollOutcome>, ms: number): Promise<PollOutcome> {
    const clock = this.host.core.options.clock;
    return new Promise((resolve) => {
      const timer = clock.setTimeout(() => link.abandon(), ms);
      void answer.then((outcome) => {
        clock.clearTimeout(timer);
        resolve(outcome);
      });
    });
  }

  async #protobuf(bytes: Uint8Array, gzipIt: boolean): Promise<Reply> {
    const headers: Record<string, string> = { "content-type": PROTOBUF_CONTENT_TYPE };
    // A small reply gzipped grows (gzip's framing alone is 18 bytes), as on the server.
    if (gzipIt && bytes.length >= DEFAULT_GZIP_MIN_BYTES) {
      headers["content-encoding"] = "gzip";
      return { status: 200, headers, body: await nodeGzip.gzip(bytes) };
    }
    return { status: 200, headers, body: bytes };
  }
}
