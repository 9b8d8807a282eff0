/**
 * Agents' WebSockets: the upgrade (authenticated before it is accepted, as Bindplane's
 * gateway does), then each agent message handed to the core and each server message
 * written back, with a slow consumer dropped rather than allowed to hold memory.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";
import { type AgentToServer, AgentToServerSchema } from "../gen/opamp/v1/opamp_pb.js";
import type { TimerHandle } from "../internal/clock.js";
import type { PendingAuthentications } from "../server/auth.js";
import { authenticate, flattenHeaders, retryAfterSeconds } from "../server/auth.js";
import type { ConnectionGate } from "../server/node-http-adapter.js";
import { peerCertificate, requestUrl, tlsVerdict } from "../server/node-http-adapter.js";
import type { AuthDecision } from "../server/types.js";
import { rejectSocket, toBytes, WS_CLOSE } from "../server/ws-adapter.js";
import { rawSocketOf, writeBinaryFrame } from "../server/ws-frame-writer.js";
import { OpampError } from "../wire/errors.js";
import { decodeWsFrame, parse } from "../wire/frame.js";
import type { GatewayCore } from "./core.js";
import { fullStateRequestFrame } from "./frames.js";
import { forwardedHeaders, goHeaders, goRemoteAddress } from "./headers.js";
import { AgentLink, type LinkCloseReason } from "./link.js";
import type { AuthOutcome } from "./pool.js";
import { RelayUpstream } from "./relay.js";

/** What the WebSocket side needs from the gateway that owns it. */
export interface DownstreamHost {
  readonly core: GatewayCore;
  readonly gate: ConnectionGate;
  readonly authentications: PendingAuthentications;
  /** True while new agents are taken (between start() and stop()). */
  readonly accepting: boolean;
  /** A link's connection ended (events, metrics). */
  linkEnded(link: AgentLink, reason: LinkCloseReason): void;
  /** A link's connection was accepted (events, metrics). */
  linkStarted(link: AgentLink): void;
}

/** Where an accepted WebSocket's messages go: the core (pooled modes) or its own relay. */
interface LinkSink {
  started(): void;
  message(frame: Uint8Array, message: AgentToServer, receivedAt: number): void;
  closed(): void;
}

function now(): number {
  return performance.now();
}

/** An agent's WebSocket as a core link. */
export class WsLink extends AgentLink {
  readonly transport = "websocket" as const;
  ws: WebSocket | undefined;
  /** Why the gateway closed it, when it did. */
  reason: LinkCloseReason = "closed";
  #paused = false;

  constructor(
    readonly host: DownstreamHost,
    auth: AgentLink["auth"],
    remoteAddress: string | undefined,
  ) {
    super(auth, remoteAddress);
  }

  get paused(): boolean {
    return this.#paused;
  }

  deliver(frame: Uint8Array, receivedAt: number): void {
    const ws = this.ws;
    if (ws === undefined || ws.readyState !== ws.OPEN) return;
    const core = this.host.core;
    const limit = core.options.maxBufferedBytesPerAgent;
    if (ws.bufferedAmount > limit) {
      // A slow consumer: only its own connection goes, the upstream reader never waits.
      core.events.emit(
        "error",
        new OpampError("limit_exceeded", `agent ${this.remoteAddress} is not reading its messages: dropped`, {
          details: { limit, ...(this.uids.size === 1 ? { instanceUid: [...this.uids.keys()][0]! } : {}) },
        }),
      );
      this.reason = "slow_consumer";
      ws.terminate();
      return;
    }
    const socket = rawSocketOf(ws);
    if (socket !== undefined) writeBinaryFrame(socket, frame);
    else ws.send(frame, { binary: true });
    core.metrics.message("downstream", frame.length, now() - receivedAt);
  }

  close(code: number, reason: string, _status: number, why: LinkCloseReason): void {
    this.reason = why;
    const ws = this.ws;
    if (ws !== undefined && ws.readyState === ws.OPEN) ws.close(code, reason.slice(0, 120));
    else ws?.terminate();
  }

  pauseReading(): void {
    this.#paused = true;
    this.ws?.pause();
  }

  resumeReading(): void {
    this.#paused = false;
    this.ws?.resume();
  }

  requestFullState(): void {
    for (const entry of this.uids.values()) {
      if (!entry.goodbye && !entry.relayed) this.deliver(fullStateRequestFrame(entry.bytes), now());
    }
  }
}

/** Owns the agents' WebSockets of one gateway run. */
export class WsDownstream {
  readonly #wss: WebSocketServer;
  readonly #links = new Set<WsLink>();
  readonly #alive = new WeakSet<WebSocket>();
  #pingTimer: TimerHandle | undefined;

  constructor(readonly host: DownstreamHost) {
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: host.core.options.maxMessageBytes,
      perMessageDeflate: false,
      clientTracking: false,
    });
  }

  /** Open agent WebSockets. */
  get size(): number {
    return this.#links.size;
  }

  /** The open agent WebSockets' links. */
  links(): WsLink[] {
    return [...this.#links];
  }

  /** Relayed upstreams still closing (stop waits for them). */
  readonly #closing = new Set<Promise<void>>();

  #track(closing: Promise<void>): void {
    this.#closing.add(closing);
    void closing.finally(() => this.#closing.delete(closing));
  }

  /** Starts the ping round (a half-open agent connection is found and dropped). */
  startPing(): void {
    const options = this.host.core.options;
    const interval = options.wsPingIntervalMs;
    if (interval === 0) return;
    const round = () => {
      for (const link of this.#links) {
        const ws = link.ws;
        if (ws === undefined) continue;
        if (!this.#alive.has(ws)) {
          link.reason = "timeout";
          ws.terminate();
          continue;
        }
        this.#alive.delete(ws);
        ws.ping();
      }
      this.#pingTimer = options.clock.setTimeout(round, interval);
    };
    this.#pingTimer = options.clock.setTimeout(round, interval);
  }

  /**
   * Handles an upgrade that the gateway's path matched. Refusals follow Bindplane's gateway:
   * no upstream 503, no answer 504 (both with Retry-After), a refusal its status (0 → 401).
   */
  async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const core = this.host.core;
    const options = core.options;
    const retry = { "Retry-After": retryAfterSeconds(options.retryAfterMs) };
    socket.on("error", () => undefined);
    if (!this.host.accepting || !this.host.gate.tryAcquire()) {
      rejectSocket(socket, 503, retry);
      return;
    }
    let released = false;
    const release = () => {
      if (!released) {
        released = true;
        this.host.gate.release();
      }
    };
    socket.once("close", release);
    const link = new WsLink(
      this.host,
      { headers: goHeaders(req), remoteAddress: goRemoteAddress(req) },
      req.socket.remoteAddress,
    );
    const refuse = (status: number, headers: Readonly<Record<string, string>> = {}) => {
      core.release(link);
      release();
      rejectSocket(socket, status, headers);
    };
    const mode = options.auth.mode;
    if (mode === "passthrough") {
      await this.#relayUpgrade(req, socket, head, link, release, retry);
      return;
    }
    if (mode === "local") {
      let decision: AuthDecision;
      try {
        const { url } = requestUrl(req, true);
        if (url === undefined) {
          refuse(400);
          return;
        }
        decision = await authenticate(
          options.auth.authenticate,
          {
            headers: flattenHeaders(req.headers),
            url,
            remoteAddress: req.socket.remoteAddress,
            tlsPeerCertificate: peerCertificate(req),
            ...tlsVerdict(req),
            transport: "websocket",
          },
          { clock: options.clock, timeoutMs: options.handshakeTimeoutMs, pending: this.host.authentications },
        );
      } catch (e) {
        const error = OpampError.from(e, "hook_failed");
        if (error.code !== "aborted") core.events.emit("error", error);
        if (error.code === "timeout" || error.code === "aborted") refuse(503, retry);
        else refuse(500);
        return;
      }
      if (!decision.accept) {
        refuse(decision.status, decision.headers);
        return;
      }
    }
    // An upstream is assigned first: the delegated handshake goes out on it.
    if (!core.assign(link)) {
      refuse(503, retry);
      return;
    }
    let requestUid: string | undefined;
    if (mode === "delegate") {
      const outcome: AuthOutcome = await core.authenticate(link);
      if (outcome.t === "refused") {
        refuse(outcome.status, outcome.headers);
        return;
      }
      if (outcome.t === "timeout") {
        core.events.emit(
          "error",
          new OpampError("timeout", `the server did not answer the authentication of ${link.remoteAddress} in time`),
        );
        refuse(504, retry);
        return;
      }
      if (outcome.t === "unavailable") {
        refuse(503, retry);
        return;
      }
      requestUid = outcome.requestUid;
    }
    if (!this.host.accepting || socket.destroyed || link.state === "closed") {
      refuse(503, retry);
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      this.#accept(ws, link, release, {
        started: () => core.ready(link, requestUid),
        message: (frame, message, receivedAt) => core.agentMessage(link, frame, message, receivedAt),
        closed: () => core.linkClosed(link),
      });
    });
  }

  /**
   * Pass-through: the agent's own upstream WebSocket is opened first, with the agent's
   * headers; the server's answer to it is the agent's answer.
   */
  async #relayUpgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    link: WsLink,
    release: () => void,
    retry: Readonly<Record<string, string>>,
  ): Promise<void> {
    const options = this.host.core.options;
    const relay = new RelayUpstream(this.host, forwardedHeaders(req, options.forwardHeaders, options.upstreamHeaders));
    const first = await relay.dial();
    if (!first.ok) {
      release();
      const status = first.status === 0 ? 503 : first.status;
      const headers =
        status === 503 || status === 429
          ? { "Retry-After": retryAfterSeconds(first.retryAfterMs ?? options.retryAfterMs) }
          : {};
      rejectSocket(socket, status, headers);
      return;
    }
    if (!this.host.accepting || socket.destroyed) {
      release();
      await relay.close();
      rejectSocket(socket, 503, retry);
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      this.#accept(ws, link, release, {
        started: () => {
          link.state = "ready";
          relay.bind(link);
        },
        message: (frame, message, receivedAt) => relay.agentMessage(frame, message, receivedAt),
        closed: () => this.#track(relay.close()),
      });
    });
  }

  #accept(ws: WebSocket, link: WsLink, release: () => void, sink: LinkSink): void {
    const core = this.host.core;
    const options = core.options;
    link.ws = ws;
    this.#links.add(link);
    this.#alive.add(ws);
    ws.on("pong", () => this.#alive.add(ws));
    let handshake: TimerHandle | undefined = options.clock.setTimeout(() => {
      handshake = undefined;
      link.reason = "timeout";
      ws.close(WS_CLOSE.policyViolation, "no OpAMP message in time");
    }, options.handshakeTimeoutMs);
    this.host.linkStarted(link);
    sink.started();
    ws.on("message", (data, isBinary) => {
      const receivedAt = now();
      this.#alive.add(ws);
      if (handshake !== undefined) {
        options.clock.clearTimeout(handshake);
        handshake = undefined;
      }
      if (!isBinary) {
        link.reason = "protocol_error";
        ws.close(WS_CLOSE.unsupportedData, "OpAMP messages are binary");
        return;
      }
      const frame = toBytes(data);
      let message: AgentToServer;
      try {
        message = parse(AgentToServerSchema, decodeWsFrame(frame, options.maxMessageBytes));
      } catch (e) {
        // Validated here: a bad message must never reach the shared upstream connection.
        const error = OpampError.from(e);
        link.reason = "protocol_error";
        ws.close(
          error.code === "message_too_large" ? WS_CLOSE.messageTooBig : WS_CLOSE.protocolError,
          error.message.slice(0, 120),
        );
        return;
      }
      sink.message(frame, message, receivedAt);
    });
    ws.on("error", () => undefined);
    ws.on("close", () => {
      if (handshake !== undefined) options.clock.clearTimeout(handshake);
      this.#links.delete(link);
      sink.closed();
      this.host.linkEnded(link, link.reason);
      release();
    });
  }

  /**
   * Closes every agent WebSocket with `code` (stop: 1001, going away) and waits up to
   * `timeoutMs` for the close handshakes; stragglers are terminated.
   */
  async closeAll(code: number, reason: string, timeoutMs: number): Promise<void> {
    const clock = this.host.core.options.clock;
    if (this.#pingTimer !== undefined) clock.clearTimeout(this.#pingTimer);
    this.#pingTimer = undefined;
    const sockets = [...this.#links].flatMap((link) => {
      link.reason = "stopped";
      return link.ws === undefined ? [] : [link.ws];
    });
    const closed = sockets.map(
      (ws) =>
        new Promise<void>((resolve) => {
          if (ws.readyState === ws.CLOSED) resolve();
          else ws.once("close", () => resolve());
        }),
    );
    for (const ws of sockets) ws.close(code, reason);
    let timer: TimerHandle | undefined;
    await Promise.race([
      Promise.all(closed),
      new Promise<void>((resolve) => {
        timer = clock.setTimeout(resolve, timeoutMs);
      }),
    ]);
    if (timer !== undefined) clock.clearTimeout(timer);
    for (const ws of sockets) if (ws.readyState !== ws.CLOSED) ws.terminate();
    // A terminated socket reports its close a tick later; its relay starts closing then.
    await Promise.all(closed);
    this.#wss.close();
    await Promise.all([...this.#closing]);
  }
}
