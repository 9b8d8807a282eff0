/**
 * WebSocket transport: one binary frame per message, heartbeats after an idle interval,
 * a deadline on answers to find dead sockets, reconnect with backoff, Retry-After on a
 * refused upgrade, and the close handshake after agent_disconnect.
 */
// spec: WebSocket Transport
import WebSocket from "isomorphic-ws";
import { type AgentToServer, AgentToServerSchema, ServerToAgentSchema } from "../gen/opamp/v1/opamp_pb.js";
import { Backoff, clampDelay, parseRetryAfter } from "../internal/backoff.js";
import type { TimerHandle } from "../internal/clock.js";
import { OpampError } from "../wire/errors.js";
import { decodeWsMessage, encodeWsMessage } from "../wire/frame.js";
import {
  type ConnectionEvent,
  type ConnectionState,
  INITIAL_CONNECTION_STATE,
  transition,
} from "./connection-state.js";
import { notFoundMessage } from "./not-found.js";
import type { ProxyConnector } from "./proxy.js";
import { type BaseTlsOptions, effectiveTls, nodeRootCertificates, nodeTlsOptions } from "./tls.js";
import type { Transport, TransportHost, TransportSettings } from "./types.js";

/** TLS material for `wss:` in Node (the `ws` package's options). */
export type WsTlsOptions = BaseTlsOptions;

/** Minimal view of Node's ClientRequest / IncomingMessage for a refused upgrade. */
interface UpgradeResponse {
  readonly statusCode?: number;
  readonly headers: Record<string, string | string[] | undefined>;
}

/** Node's `ws` exposes EventEmitter methods; browsers do not. */
const IS_NODE_WS = typeof (WebSocket.prototype as { on?: unknown }).on === "function";

/**
 * The WebSocket transport can apply TLS settings and connect through a proxy (Node's
 * `ws`; a browser's WebSocket can do neither).
 */
export const WS_TLS_SUPPORTED = IS_NODE_WS;

function toBytes(data: unknown): Uint8Array | undefined {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data)) {
    const parts = data.filter((part): part is Uint8Array => part instanceof Uint8Array);
    const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
    let offset = 0;
    for (const part of parts) {
      out.set(part, offset);
      offset += part.length;
    }
    return out;
  }
  return undefined;
}

/** A transport over one WebSocket at a time, replaced on failure until stopped. */
export class WsTransport implements Transport {
  #state: ConnectionState = INITIAL_CONNECTION_STATE;
  #socket: WebSocket | undefined;
  #open = false;
  readonly #backoff: Backoff;
  #retryTimer: TimerHandle | undefined;
  #heartbeatTimer: TimerHandle | undefined;
  #deadlineTimer: TimerHandle | undefined;
  /** Deadline of the opening handshake of the current socket. */
  #connectTimer: TimerHandle | undefined;
  #flushQueued = false;
  #heartbeatMs = -1;
  #answered = false;
  /** The close handshake reconnect() is waiting for, if any. */
  #closing: Promise<void> | undefined;
  /** Abandons the proxy tunnel of the current socket while it is being opened. */
  #tunnelAbort: AbortController | undefined;

  constructor(
    private readonly host: TransportHost,
    private readonly settings: TransportSettings,
    private readonly tls: WsTlsOptions = {},
    private readonly proxyConnector?: ProxyConnector,
  ) {
    this.#backoff = new Backoff(settings.backoff, settings.random);
  }

  /** {@inheritDoc Transport.start} */
  start(): void {
    this.#connect();
  }

  /** {@inheritDoc Transport.notifyPending} */
  notifyPending(): void {
    if (this.#open && this.host.heartbeatIntervalMs() !== this.#heartbeatMs) this.#armHeartbeat();
    if (!this.#open || this.#flushQueued) return;
    this.#flushQueued = true;
    // Setter calls made in the same tick coalesce into one message.
    queueMicrotask(() => {
      this.#flushQueued = false;
      this.#flush();
    });
  }

  /** {@inheritDoc Transport.reconnect} */
  async reconnect(goodbye?: () => AgentToServer): Promise<void> {
    if (this.#state.t === "stopping" || this.#state.t === "stopped") return;
    const socket = this.#socket;
    if (socket !== undefined && this.#open) {
      if (goodbye !== undefined) this.#send(goodbye());
      const closing = this.#closeGracefully(socket);
      this.#closing = closing;
      await closing;
      if (this.#closing === closing) this.#closing = undefined;
    } else if (socket !== undefined) {
      this.#detach(socket);
    }
    this.#clearTimers();
    this.#backoff.reset();
    this.#connect();
  }

  /** {@inheritDoc Transport.stop} */
  async stop(goodbye?: () => AgentToServer): Promise<void> {
    if (this.#state.t === "stopped") return;
    const socket = this.#socket;
    const wasOpen = this.#open;
    this.#dispatch({ type: "stop" });
    this.#clearTimers();
    if (socket !== undefined) {
      // spec: agent_disconnect MUST be the last message before the Close frame.
      if (wasOpen && goodbye !== undefined) this.#send(goodbye());
      this.#clearTimers();
      await this.#closeGracefully(socket);
    }
    // A close handshake begun by reconnect() ends before stop() resolves: no socket or
    // timer outlives the transport.
    await this.#closing;
    this.#clearTimers();
    this.#dispatch({ type: "stopped" });
  }

  #dispatch(event: ConnectionEvent): void {
    const previous = this.#state;
    this.#state = transition(previous, event);
    if (this.#state !== previous) this.host.stateChanged(this.#state, previous);
  }

  #connect(): void {
    if (this.#state.t === "stopping" || this.#state.t === "stopped") return;
    this.#retryTimer = undefined;
    this.#dispatch({ type: "connect" });
    const target = this.host.target();
    this.#tunnelAbort?.abort();
    this.#tunnelAbort = undefined;
    let socket: WebSocket;
    let tunnelAbort: AbortController | undefined;
    try {
      // A certificate / TLS settings from accepted connection settings replace the configured ones.
      const tls = IS_NODE_WS ? nodeTlsOptions(effectiveTls(this.tls, target.tls), nodeRootCertificates()) : {};
      let proxied: object = {};
      if (target.proxy !== undefined) {
        if (!IS_NODE_WS || this.proxyConnector === undefined) {
          throw new OpampError(
            "invalid_argument",
            IS_NODE_WS
              ? "a proxy needs transport.proxyConnector (Node: nodeProxyConnector from opamp-sdk/client/node)"
              : "a browser's WebSocket cannot be sent through a proxy",
          );
        }
        tunnelAbort = new AbortController();
        // The tunnel is opened by ws through this, with the TLS options above for wss:.
        proxied = { createConnection: this.proxyConnector.webSocketConnection(target.proxy, tunnelAbort.signal) };
      }
      socket = IS_NODE_WS
        ? new WebSocket(target.url, {
            headers: { ...target.headers },
            maxPayload: this.settings.maxMessageBytes,
            // As opamp-go: a 3xx on the upgrade is followed (http→ws rewrite is done by ws).
            followRedirects: true,
            maxRedirects: 5,
            ...tls,
            ...proxied,
          })
        : new WebSocket(target.url);
    } catch (cause) {
      this.#fail(OpampError.from(cause, "transport_failed"));
      return;
    }
    this.#tunnelAbort = tunnelAbort;
    socket.binaryType = "arraybuffer";
    this.#socket = socket;
    this.#open = false;
    this.#answered = false;
    // An endpoint that accepts TCP and never completes the upgrade (or a proxy that never
    // opens the tunnel) would otherwise leave the client "connecting" for ever, and a
    // connection-settings candidate pointing there would never be rolled back.
    const connectTimeoutMs = this.settings.connectTimeoutMs;
    this.#connectTimer = this.settings.clock.setTimeout(() => {
      this.#connectTimer = undefined;
      if (this.#socket !== socket || this.#open) return;
      this.#fail(
        new OpampError("timeout", `the WebSocket opening handshake did not finish within ${connectTimeoutMs} ms`),
      );
    }, connectTimeoutMs);
    if (IS_NODE_WS) {
      socket.on("unexpected-response", (request: { destroy(): void }, response: UpgradeResponse) => {
        if (this.#socket !== socket) return;
        request.destroy();
        this.#fail(upgradeError(response, target.url, this.settings.clock.now(), this.settings.maxRetryAfterMs));
      });
      socket.on("pong", () => {
        if (this.#socket === socket) this.#clearDeadline();
      });
    }
    socket.onopen = () => {
      if (this.#socket !== socket) return;
      this.#clearConnectTimer();
      this.#open = true;
      this.#dispatch({ type: "connected" });
      // spec: the client MUST send a status report first.
      const first = this.host.takeMessage("connect");
      if (first !== undefined) this.#send(first);
      this.#flush();
    };
    socket.onmessage = (event: { data: unknown }) => {
      if (this.#socket !== socket) return;
      this.#receive(event.data);
    };
    socket.onerror = (event: { message?: string; error?: unknown }) => {
      if (this.#socket !== socket) return;
      this.#fail(this.#socketError(event));
    };
    socket.onclose = (event: { code: number; reason: string }) => {
      if (this.#socket !== socket) return;
      const reason = event.reason === "" ? "" : `: ${event.reason}`;
      this.#fail(new OpampError("transport_failed", `WebSocket closed by the server (${event.code}${reason})`));
    };
  }

  /** What a socket's error event means for the client. */
  #socketError(event: { message?: string; error?: unknown }): OpampError {
    // A proxy's refusal arrives as the OpampError the tunnel failed with (http_status 407, …).
    if (event.error instanceof OpampError) return event.error;
    // ws refuses a frame over maxPayload before buffering it, and closes with 1009.
    if ((event.error as { code?: unknown } | undefined)?.code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") {
      const limit = this.settings.maxMessageBytes;
      return new OpampError("message_too_large", `the server sent a message larger than ${limit} bytes`, {
        cause: event.error,
        details: { limit },
      });
    }
    return new OpampError("transport_failed", `WebSocket error: ${event.message ?? "connection failed"}`, {
      cause: event.error,
    });
  }

  #receive(data: unknown): void {
    this.#clearDeadline();
    const bytes = toBytes(data);
    if (bytes === undefined) {
      this.host.error(new OpampError("malformed_frame", "received a text frame; OpAMP uses binary frames only"));
      return;
    }
    let message: ReturnType<typeof decodeWsMessage<typeof ServerToAgentSchema>>;
    try {
      message = decodeWsMessage(ServerToAgentSchema, bytes, { maxMessageBytes: this.settings.maxMessageBytes });
    } catch (cause) {
      this.host.error(OpampError.from(cause, "malformed_message"));
      return;
    }
    const outcome = this.host.receive(message);
    if (outcome.retryAfterMs !== undefined) {
      // spec: Throttling — on UNAVAILABLE disconnect, wait, reconnect. The backoff is not
      // reset by this answer, so a server that keeps refusing is retried ever more slowly.
      this.#fail(
        new OpampError("unavailable", "server answered UNAVAILABLE", {
          details: { retryAfterMs: outcome.retryAfterMs },
        }),
        outcome.retryAfterMs,
      );
      return;
    }
    if (!this.#answered && this.#socket !== undefined) {
      this.#answered = true;
      this.#backoff.reset();
    }
  }

  #flush(): void {
    if (!this.#open) return;
    for (;;) {
      const message = this.host.takeMessage("pending");
      if (message === undefined) break;
      if (!this.#send(message)) break;
    }
  }

  #send(message: AgentToServer): boolean {
    const socket = this.#socket;
    if (socket === undefined || socket.readyState !== WebSocket.OPEN) {
      // The socket is closing (the server sent a Close frame, whose close event is still
      // to come): nothing more is sent on it. Cleared before the message is returned, whose
      // pending notice would otherwise queue another flush at once, and so on for ever in
      // microtasks, starving the very event that ends it.
      if (socket !== undefined) this.#open = false;
      this.host.returnMessage(message);
      return false;
    }
    let frame: Uint8Array;
    try {
      frame = encodeWsMessage(AgentToServerSchema, message, { maxMessageBytes: this.settings.maxMessageBytes });
    } catch (cause) {
      // spec: a client MUST NOT send an oversized message; the drop is reported.
      this.host.messageDropped(message, OpampError.from(cause));
      return true;
    }
    try {
      socket.send(frame);
    } catch (cause) {
      this.host.returnMessage(message);
      this.#fail(OpampError.from(cause, "transport_failed"));
      return false;
    }
    this.host.messageSent(message);
    this.#armHeartbeat();
    this.#armDeadline(socket);
    return true;
  }

  /** The server must answer (a message, or a pong) within responseTimeoutMs, else the socket is dead. */
  #armDeadline(socket: WebSocket): void {
    if (this.#state.t !== "connected" || this.#deadlineTimer !== undefined) return;
    this.#deadlineTimer = this.settings.clock.setTimeout(() => {
      this.#deadlineTimer = undefined;
      if (this.#socket !== socket) return;
      this.#fail(new OpampError("timeout", `no answer from the server within ${this.settings.responseTimeoutMs} ms`));
    }, this.settings.responseTimeoutMs);
  }

  #armHeartbeat(): void {
    if (this.#heartbeatTimer !== undefined) this.settings.clock.clearTimeout(this.#heartbeatTimer);
    this.#heartbeatTimer = undefined;
    const interval = this.host.heartbeatIntervalMs();
    this.#heartbeatMs = interval;
    if (!this.#open || this.#state.t !== "connected") return;
    // spec: Heartbeats — an interval of 0 from the server disables them. Without
    // heartbeats a Node client still probes an idle socket with a WebSocket ping, so a
    // dead connection is noticed (the pong clears the deadline).
    if (interval <= 0) {
      const socket = this.#socket;
      if (!IS_NODE_WS || socket === undefined) return;
      this.#heartbeatTimer = this.settings.clock.setTimeout(() => {
        this.#heartbeatTimer = undefined;
        if (this.#socket !== socket || !this.#open) return;
        socket.ping();
        this.#armDeadline(socket);
        this.#armHeartbeat();
      }, this.settings.responseTimeoutMs);
      return;
    }
    this.#heartbeatTimer = this.settings.clock.setTimeout(() => {
      this.#heartbeatTimer = undefined;
      if (!this.#open) return;
      const message = this.host.takeMessage("heartbeat");
      if (message !== undefined) this.#send(message);
    }, interval);
  }

  #clearConnectTimer(): void {
    if (this.#connectTimer !== undefined) this.settings.clock.clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
  }

  #clearDeadline(): void {
    if (this.#deadlineTimer !== undefined) this.settings.clock.clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = undefined;
  }

  #clearTimers(): void {
    const clock = this.settings.clock;
    if (this.#retryTimer !== undefined) clock.clearTimeout(this.#retryTimer);
    if (this.#heartbeatTimer !== undefined) clock.clearTimeout(this.#heartbeatTimer);
    this.#retryTimer = undefined;
    this.#heartbeatTimer = undefined;
    this.#clearDeadline();
    this.#clearConnectTimer();
  }

  #detach(socket: WebSocket): void {
    if (this.#socket === socket) {
      this.#socket = undefined;
      this.#open = false;
      this.#abandonTunnel();
    }
    try {
      if (IS_NODE_WS) socket.terminate();
      else socket.close();
    } catch {
      // Already closed; nothing left to release.
    }
  }

  #fail(error: OpampError, retryAfterMs?: number): void {
    const wasConnected = this.#state.t === "connected";
    if (this.#socket !== undefined) this.#detach(this.#socket);
    this.#clearTimers();
    if (this.#state.t === "stopping" || this.#state.t === "stopped") return;
    // spec: after an unexpected break reconnect at once, then back off. Only a connection
    // the server answered earns the quick retry: one that is accepted and then dropped
    // before any answer would otherwise be retried in a tight loop, never backing off.
    // "At once" is spread over [0, initialDelayMs): when a server restarts under a fleet,
    // its agents then come back over that window instead of in one burst.
    const quick = wasConnected && this.#answered && retryAfterMs === undefined && error.code === "transport_failed";
    const delay = quick
      ? Math.floor(this.settings.random() * this.settings.backoff.initialDelayMs)
      : Math.max(
          this.#backoff.next(),
          clampDelay(retryAfterMs ?? error.details.retryAfterMs ?? 0, this.settings.maxRetryAfterMs),
        );
    this.#dispatch({ type: "failed", error, until: this.settings.clock.now() + delay });
    if (delay === 0) queueMicrotask(() => this.#connect());
    else this.#retryTimer = this.settings.clock.setTimeout(() => this.#connect(), delay);
  }

  /** A tunnel still being opened for a socket that is given up is closed, not left to the proxy. */
  #abandonTunnel(): void {
    this.#tunnelAbort?.abort(new OpampError("aborted", "the WebSocket was closed before the proxy tunnel opened"));
    this.#tunnelAbort = undefined;
  }

  async #closeGracefully(socket: WebSocket): Promise<void> {
    if (this.#socket === socket) {
      this.#socket = undefined;
      this.#open = false;
      this.#abandonTunnel();
    }
    if (socket.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      const clock = this.settings.clock;
      const timer = clock.setTimeout(() => {
        try {
          if (IS_NODE_WS) socket.terminate();
        } catch {
          // Already gone.
        }
        resolve();
      }, this.settings.closeTimeoutMs);
      socket.onclose = () => {
        clock.clearTimeout(timer);
        resolve();
      };
      socket.onerror = () => undefined;
      try {
        socket.close(1000);
      } catch {
        clock.clearTimeout(timer);
        resolve();
      }
    });
  }
}

function headerValue(headers: UpgradeResponse["headers"], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Turns a refused upgrade into the error the client reports and the wait it implies. */
function upgradeError(response: UpgradeResponse, url: string, now: number, maxRetryAfterMs: number): OpampError {
  const status = response.statusCode ?? 0;
  if (status === 404) return new OpampError("http_status", notFoundMessage(url), { details: { status } });
  if (status === 401 || status === 403) {
    return new OpampError("unauthenticated", `the server refused the upgrade with HTTP ${status}`, {
      details: { status },
    });
  }
  if (status === 429 || status === 503) {
    const retryAfterMs = parseRetryAfter(headerValue(response.headers, "retry-after"), now, maxRetryAfterMs);
    return new OpampError("unavailable", `the server is unavailable (HTTP ${status})`, {
      details: retryAfterMs === undefined ? { status } : { status, retryAfterMs },
    });
  }
  return new OpampError("http_status", `the server refused the upgrade with HTTP ${status}`, { details: { status } });
}
