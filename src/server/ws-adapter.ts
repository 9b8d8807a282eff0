/**
 * WebSocket transport: the `upgrade` handler for an existing node:http(s) server. Uses `ws`
 * in noServer mode so the application keeps its listener.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { type RawData, type WebSocket, WebSocketServer } from "ws";
import { type AgentToServer, AgentToServerSchema } from "../gen/opamp/v1/opamp_pb.js";
import { closeReason } from "../internal/close-reason.js";
import { concatBytes } from "../wire/bytes.js";
import { parse } from "../wire/frame.js";
import { isGatewayControl } from "../wire/gateway-protocol.js";
import { decodeWsFrame, instanceUidToString, isInstanceUid, OpampError } from "../wire/index.js";
import type { AgentRecord, PushChannel } from "./agent-record.js";
import { authenticate, flattenHeaders, retryAfterSeconds, STATUS_TEXT } from "./auth.js";
import type { CoreConnection, ServerCore } from "./core.js";
import { GatewayChannel } from "./gateway-channel.js";
import { type ConnectionGate, peerCertificate, requestUrl, tlsVerdict } from "./node-http-adapter.js";
import type { AuthRequest } from "./types.js";
import { rawSocketOf, writeBinaryFrame } from "./ws-frame-writer.js";

/** WebSocket close codes the server uses (RFC 6455 §7.4.1). */
export const WS_CLOSE = {
  /** 1000: normal closure. */
  normal: 1000,
  /** 1001: the server is stopping (`stop()`). */
  goingAway: 1001,
  /** 1002: the peer broke the WebSocket or OpAMP framing (bad header byte, undecodable message). */
  protocolError: 1002,
  /** 1003: a text frame where OpAMP sends binary. */
  unsupportedData: 1003,
  /**
   * 1008: refused by policy (a message `authorizeMessage` refused, no first message within
   * the handshake timeout, …).
   */
  policyViolation: 1008,
  /** 1009: a message over `limits.maxMessageBytes`. */
  messageTooBig: 1009,
  /** 1011: the server failed while handling a message. */
  internalError: 1011,
  /** 1013: try again later (overload). */
  tryAgainLater: 1013,
} as const;

/** Answers an upgrade request with a bodyless HTTP status and closes the socket. */
export function rejectSocket(socket: Duplex, status: number, headers: Readonly<Record<string, string>> = {}): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const lines = [`HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Error"}`, "Connection: close", "Content-Length: 0"];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  socket.end(`${lines.join("\r\n")}\r\n\r\n`);
}

/**
 * The message as a plain Uint8Array over the same memory: decoded bytes fields are then
 * plain views whose .slice() copies (on a Buffer, .slice() is another view).
 */
export function toBytes(data: RawData): Uint8Array {
  const bytes = Array.isArray(data) ? Buffer.concat(data) : data;
  if (bytes instanceof ArrayBuffer) return new Uint8Array(bytes);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The ping round is split into slices about this far apart (see {@link pingSlices}). */
const PING_SLICE_MS = 1000;
/** At most this many slices per round. */
const MAX_PING_SLICES = 60;

/**
 * Into how many slices a ping round of `intervalMs` is split: one per second of the
 * interval (at most {@link MAX_PING_SLICES}), a single one below two seconds.
 */
function pingSlices(intervalMs: number): number {
  return Math.min(MAX_PING_SLICES, Math.max(1, Math.floor(intervalMs / PING_SLICE_MS)));
}

/** Owns every accepted WebSocket. */
export class WsAdapter {
  readonly #wss: WebSocketServer;
  readonly #sockets = new Set<WebSocket>();
  /** Sockets that showed life (pong or message) since their slice's last ping. */
  readonly #alive = new WeakSet<WebSocket>();
  /** Sockets by ping slice, dealt out in turn as they are accepted. */
  readonly #slices: Set<WebSocket>[];
  #nextSlice = 0;
  #pingTimer: ReturnType<ServerCore["options"]["clock"]["setTimeout"]> | undefined;

  constructor(
    readonly core: ServerCore,
    readonly gate: ConnectionGate,
  ) {
    this.#wss = new WebSocketServer({
      noServer: true,
      // ws closes with 1009 by itself when a message passes this (after inflation).
      maxPayload: core.options.maxMessageBytes,
      perMessageDeflate: core.options.perMessageDeflate,
      clientTracking: false,
    });
    this.#slices = Array.from({ length: pingSlices(core.options.wsPingIntervalMs) }, () => new Set<WebSocket>());
  }

  /**
   * Starts the ping round: every `wsPingIntervalMs` each socket that gave no sign of life
   * since it was last visited is terminated (a half-open TCP connection would otherwise
   * keep its agents online forever), and the others are pinged. One timer for all sockets;
   * the round is spread over the interval in slices (see {@link pingSlices}), so a large
   * fleet is pinged a slice at a time rather than in one long burst of writes that would
   * hold up every agent's messages meanwhile.
   */
  startPing(): void {
    const interval = this.core.options.wsPingIntervalMs;
    if (interval === 0 || this.#pingTimer !== undefined) return;
    const clock = this.core.options.clock;
    const slices = this.#slices;
    const step = interval / slices.length;
    let next = 0;
    const visit = () => {
      for (const ws of slices[next]!) {
        // A timer callback: nothing thrown for one socket may reach the process.
        try {
          if (!this.#alive.has(ws)) {
            ws.terminate();
            continue;
          }
          this.#alive.delete(ws);
          ws.ping();
        } catch (e) {
          this.core.reportError(e);
          ws.terminate();
        }
      }
      next = (next + 1) % slices.length;
      this.#pingTimer = clock.setTimeout(visit, step);
    };
    this.#pingTimer = clock.setTimeout(visit, step);
  }

  /** Open WebSockets. */
  get size(): number {
    return this.#sockets.size;
  }

  /**
   * Handles an `upgrade` event. Returns false without touching the socket when the path is
   * not the OpAMP path, so other upgrade listeners can take it. Never rejects: an
   * unexpected throw is reported on `error` (`internal`) and the socket destroyed.
   */
  async handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<boolean> {
    try {
      return await this.#upgrade(req, socket, head);
    } catch (e) {
      // A bug of ours must cost this one socket, never the process and its other agents.
      this.core.reportError(e);
      socket.destroy();
      return true;
    }
  }

  async #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<boolean> {
    const { pathname, url } = requestUrl(req, true);
    if (pathname !== this.core.options.path) return false;
    if (url === undefined) {
      socket.on("error", () => undefined);
      rejectSocket(socket, 400);
      return true;
    }
    const retry = { "Retry-After": retryAfterSeconds(this.core.options.retryAfterMs) };
    if (!this.core.accepting) {
      rejectSocket(socket, 503, retry);
      return true;
    }
    if (!this.gate.tryAcquire()) {
      // spec: the server MAY answer an upgrade with 503 + Retry-After when overloaded.
      rejectSocket(socket, 503, retry);
      return true;
    }
    let released = false;
    const release = () => {
      if (!released) {
        released = true;
        this.gate.release();
      }
    };
    socket.on("error", () => undefined);
    // ws may refuse a malformed handshake without calling back; the slot still comes back.
    socket.once("close", release);
    try {
      const options = this.core.options;
      const authRequest: AuthRequest = {
        headers: flattenHeaders(req.headers),
        url,
        remoteAddress: req.socket.remoteAddress,
        tlsPeerCertificate: peerCertificate(req),
        ...tlsVerdict(req),
        transport: "websocket",
      };
      const decision = await authenticate(options.authenticate, authRequest, this.core.authLimits(authRequest));
      if (!decision.accept) {
        release();
        rejectSocket(socket, decision.status, decision.headers);
        return true;
      }
      if (!this.core.accepting || socket.destroyed) {
        release();
        rejectSocket(socket, 503, retry);
        return true;
      }
      // No closure made here may refer to `req` or `url`: the connection's closures share
      // this scope, and holding the request for each connection's lifetime costs every
      // agent a few KB.
      const remoteAddress = req.socket.remoteAddress;
      const endpoint = url.origin + url.pathname;
      const principal = decision.principal;
      this.#wss.handleUpgrade(req, socket, head, (ws) => {
        try {
          this.#accept(ws, remoteAddress, endpoint, principal, release);
        } catch (e) {
          // Its close listener, registered first, releases the slot.
          this.core.reportError(e);
          ws.terminate();
        }
      });
    } catch (e) {
      release();
      const error = OpampError.from(e, "hook_failed");
      // Cut short by stop(): refused like any upgrade that arrives while stopping.
      if (error.code !== "aborted") this.core.reportError(error);
      // A hook that did not answer in time: the client may come back later.
      if (error.code === "timeout" || error.code === "aborted") rejectSocket(socket, 503, retry);
      else rejectSocket(socket, 500);
    }
    return true;
  }

  #accept(
    ws: WebSocket,
    remoteAddress: string | undefined,
    endpoint: string,
    principal: unknown,
    release: () => void,
  ): void {
    const core = this.core;
    const options = core.options;
    this.#sockets.add(ws);
    this.#alive.add(ws);
    const slice = this.#slices[this.#nextSlice]!;
    this.#nextSlice = (this.#nextSlice + 1) % this.#slices.length;
    slice.add(ws);
    let closed = false;
    let handshake: ReturnType<typeof options.clock.setTimeout> | undefined;
    const channel: PushChannel = {
      agents: new Set<AgentRecord>(),
      get closed() {
        return closed;
      },
      send: (frame) => {
        if (ws.readyState !== ws.OPEN) return false;
        if (ws.bufferedAmount > options.maxBufferedBytes) {
          core.reportError(
            new OpampError("limit_exceeded", `WebSocket from ${remoteAddress} is not reading; dropped`, {
              details: { limit: options.maxBufferedBytes },
            }),
          );
          ws.terminate();
          return false;
        }
        const socket = rawSocketOf(ws);
        if (socket !== undefined) {
          // One frame written by hand: a shared piece goes out by reference, not copied.
          writeBinaryFrame(socket, frame);
        } else {
          // permessage-deflate: `ws` compresses (asynchronously, queued) the whole message.
          ws.send(frame instanceof Uint8Array ? frame : concatBytes(frame), { binary: true });
        }
        core.telemetry.sent("websocket", frame);
        return true;
      },
    };
    // First, so that whatever fails below, the socket's bookkeeping and slot are released.
    ws.on("close", () => {
      closed = true;
      try {
        if (handshake !== undefined) options.clock.clearTimeout(handshake);
        core.channelClosed(channel);
      } catch (e) {
        core.reportError(e);
      } finally {
        this.#sockets.delete(ws);
        slice.delete(ws);
        release();
      }
    });
    ws.on("error", () => undefined); // a close always follows; ws already chose the close code
    const fail = (code: number, reason: string) => {
      if (ws.readyState !== ws.OPEN) return;
      try {
        // The reason often quotes an error message: cut to what a close frame can carry.
        ws.close(code, closeReason(reason));
      } catch (e) {
        core.reportError(e);
        ws.terminate();
      }
    };
    /**
     * A socket callback that nothing thrown escapes from (into the socket's emitter, where
     * it would end the process with every agent): the throw is reported on `error` and
     * this socket alone is closed with 1011.
     */
    const guarded =
      <A extends unknown[]>(callback: (...args: A) => void) =>
      (...args: A): void => {
        try {
          callback(...args);
        } catch (e) {
          core.reportError(e);
          fail(WS_CLOSE.internalError, "internal error");
        }
      };
    ws.on(
      "pong",
      guarded(() => {
        this.#alive.add(ws);
      }),
    );
    const conn: CoreConnection = {
      transport: "websocket" as const,
      principal,
      remoteAddress,
      channel,
      endpoint,
    };
    /** Made on the first gateway control message (see gateway-channel.ts). */
    let gateway: GatewayChannel | undefined;
    handshake = options.clock.setTimeout(() => {
      handshake = undefined;
      fail(WS_CLOSE.policyViolation, "no OpAMP message in time");
    }, options.handshakeTimeoutMs);
    // Messages of one connection are handled strictly in order.
    let chain: Promise<void> = Promise.resolve();
    ws.on(
      "message",
      guarded((data: RawData, isBinary: boolean) => {
        this.#alive.add(ws);
        if (handshake !== undefined) {
          const timer = handshake;
          handshake = undefined;
          options.clock.clearTimeout(timer);
        }
        if (!isBinary) {
          fail(WS_CLOSE.unsupportedData, "OpAMP messages are binary");
          return;
        }
        let message: AgentToServer;
        let payload: Uint8Array;
        let wireBytes = 0;
        try {
          const frame = toBytes(data);
          wireBytes = frame.length;
          payload = decodeWsFrame(frame, options.maxMessageBytes);
          message = parse(AgentToServerSchema, payload);
        } catch (e) {
          const error = OpampError.from(e);
          if (gateway?.active && error.code !== "message_too_large") {
            // One relayed agent's bad bytes must not disconnect every agent of the gateway.
            core.reportError(error);
            return;
          }
          fail(error.code === "message_too_large" ? WS_CLOSE.messageTooBig : WS_CLOSE.protocolError, error.message);
          return;
        }
        if (options.acceptGateways && message.instanceUid.length === 0 && isGatewayControl(message.customMessage)) {
          gateway ??= new GatewayChannel(core, conn, (frame) => channel.send(frame));
          gateway.handle(message.customMessage);
          return;
        }
        // On a gateway connection each agent speaks with the principal of its own request.
        const relay = gateway?.active === true && isInstanceUid(message.instanceUid) ? gateway : undefined;
        let speaker: CoreConnection = conn;
        let uid = "";
        if (relay !== undefined) {
          uid = instanceUidToString(message.instanceUid);
          const attached = relay.connectionFor(uid);
          if (attached === undefined) {
            const error = new OpampError(
              "unauthenticated",
              `gateway connection from ${remoteAddress} spoke for ${uid} without authenticating it: refused`,
              { details: { instanceUid: uid } },
            );
            chain = chain.then(() => {
              core.reportError(error);
              relay.refuse(message.instanceUid, error);
            });
            return;
          }
          speaker = attached;
        }
        chain = chain
          .then(() => core.handleMessage(speaker, message, payload, wireBytes))
          .then((frame) => {
            channel.send(frame);
            if (relay !== undefined && message.agentDisconnect !== undefined) relay.detach(uid, speaker);
          })
          .catch((e: unknown) => {
            const error = OpampError.from(e);
            if (relay !== undefined) {
              // Only this agent is refused; the gateway's other agents carry on.
              if (error.code !== "unauthenticated") core.reportError(error);
              relay.refuse(message.instanceUid, error);
            } else if (error.code === "unauthenticated") {
              fail(WS_CLOSE.policyViolation, error.message);
            } else {
              core.reportError(error);
              fail(WS_CLOSE.internalError, "internal error");
            }
          });
      }),
    );
  }

  /**
   * Closes every WebSocket with `code` and waits for their close handshakes until
   * `deadline` settles; the sockets still open then are terminated.
   */
  async closeAll(code: number, reason: string, deadline: Promise<void>): Promise<void> {
    if (this.#pingTimer !== undefined) this.core.options.clock.clearTimeout(this.#pingTimer);
    this.#pingTimer = undefined;
    const sockets = [...this.#sockets];
    const closed = sockets.map(
      (ws) =>
        new Promise<void>((resolve) => {
          if (ws.readyState === ws.CLOSED) resolve();
          else ws.once("close", () => resolve());
        }),
    );
    for (const ws of sockets) {
      try {
        ws.close(code, closeReason(reason));
      } catch {
        ws.terminate();
      }
    }
    if (sockets.length > 0) await Promise.race([Promise.all(closed), deadline]);
    for (const ws of sockets) if (ws.readyState !== ws.CLOSED) ws.terminate();
    this.#wss.close();
  }
}
