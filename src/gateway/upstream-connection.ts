/**
 * One WebSocket from the gateway to the upstream server, kept open for ever: reconnects
 * with exponential backoff and full jitter (honouring `Retry-After` on a refused upgrade),
 * pings an idle socket, and moves whole frames as bytes — agents' frames go up exactly as
 * they came. Built from the client transport's pieces (backoff, connection state machine,
 * TLS options); the agent's WsTransport itself speaks for one agent (status report on
 * connect, heartbeats as reports), which a relay must not do.
 */
import type { Duplex } from "node:stream";
import WebSocket from "ws";
import { Backoff, type BackoffPolicy, parseRetryAfter } from "../internal/backoff.js";
import type { Clock, TimerHandle } from "../internal/clock.js";
import {
  type ConnectionEvent,
  type ConnectionState,
  INITIAL_CONNECTION_STATE,
  transition,
} from "../transport/connection-state.js";
import { nodeRootCertificates, nodeTlsOptions, type TlsSettings } from "../transport/tls.js";
import { OpampError } from "../wire/errors.js";

/** What an upstream connection reports to its owner. */
export interface UpstreamHandler {
  /** The WebSocket opened. */
  opened(upstream: UpstreamConnection): void;
  /** An open WebSocket closed or failed; a reconnect is scheduled unless stopped. */
  closed(upstream: UpstreamConnection, error: OpampError): void;
  /**
   * An attempt failed before the WebSocket opened. `status` is the HTTP status of a refused
   * upgrade. The owner may `stop()` the connection to give up.
   */
  failed(upstream: UpstreamConnection, error: OpampError, status: number | undefined): void;
  /** One binary message from the server, as received. */
  frame(upstream: UpstreamConnection, data: Uint8Array): void;
  /** A text message, which OpAMP does not use. */
  garbage(upstream: UpstreamConnection, error: OpampError): void;
  /** The socket's write buffer drained below its high-water mark. */
  drained(upstream: UpstreamConnection): void;
}

/** Where and how to connect. */
export interface UpstreamSettings {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly tls: TlsSettings;
  readonly clock: Clock;
  readonly backoff: BackoffPolicy;
  readonly random: () => number;
  readonly maxMessageBytes: number;
  /** Ping period; a socket with no sign of life for a whole period is replaced. 0 disables. */
  readonly pingIntervalMs: number;
  /** How long `stop()` waits for the close handshake. */
  readonly closeTimeoutMs: number;
}

function toBytes(data: WebSocket.RawData): Uint8Array {
  const bytes = Array.isArray(data) ? Buffer.concat(data) : data;
  if (bytes instanceof ArrayBuffer) return new Uint8Array(bytes);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A self-healing WebSocket to the server. */
export class UpstreamConnection {
  #state: ConnectionState = INITIAL_CONNECTION_STATE;
  #socket: WebSocket | undefined;
  #raw: Duplex | undefined;
  #open = false;
  #alive = false;
  #answered = false;
  #retryTimer: TimerHandle | undefined;
  #pingTimer: TimerHandle | undefined;
  readonly #backoff: Backoff;

  constructor(
    /** `upstream-<i>` for pool members (sent as `X-Opamp-Gateway-Connection-Id`). */
    readonly id: string,
    readonly settings: UpstreamSettings,
    readonly handler: UpstreamHandler,
  ) {
    this.#backoff = new Backoff(settings.backoff, settings.random);
  }

  /** The connection state (a tagged union: idle, connecting, connected, backoff, stopping, stopped). */
  get state(): ConnectionState {
    return this.#state;
  }

  /** True while the WebSocket is open (not closing). */
  get open(): boolean {
    return this.#open && this.#socket?.readyState === WebSocket.OPEN;
  }

  /** Bytes handed to the socket and not yet written to the network. */
  get bufferedAmount(): number {
    return this.#socket?.bufferedAmount ?? 0;
  }

  /** Begins connecting; returns at once. */
  start(): void {
    this.#connect();
  }

  /**
   * Sends one binary message (the WebSocket header byte and protobuf, or anything the
   * peer's protocol defines). False when the socket is not open: nothing was sent.
   */
  send(frame: Uint8Array): boolean {
    const socket = this.#socket;
    if (!this.#open || socket === undefined || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(frame, { binary: true });
    return true;
  }

  /** Drops the socket now and reconnects after the backoff (used when the server misbehaves). */
  reset(error: OpampError): void {
    this.#fail(error, undefined, undefined);
  }

  #dispatch(event: ConnectionEvent): void {
    this.#state = transition(this.#state, event);
  }

  #connect(): void {
    this.#retryTimer = undefined;
    if (this.#state.t === "stopping" || this.#state.t === "stopped") return;
    this.#dispatch({ type: "connect" });
    let socket: WebSocket;
    try {
      socket = new WebSocket(this.settings.url, {
        headers: { ...this.settings.headers },
        maxPayload: this.settings.maxMessageBytes,
        perMessageDeflate: false,
        followRedirects: true,
        maxRedirects: 5,
        ...nodeTlsOptions(this.settings.tls, nodeRootCertificates()),
      });
    } catch (e) {
      this.#fail(OpampError.from(e, "transport_failed"), undefined, undefined);
      return;
    }
    this.#socket = socket;
    this.#open = false;
    this.#answered = false;
    socket.on("unexpected-response", (request, response) => {
      if (this.#socket !== socket) return;
      request.destroy();
      const status = response.statusCode ?? 0;
      const retryAfter = parseRetryAfter(firstHeader(response.headers["retry-after"]), this.settings.clock.now());
      const code =
        status === 401 || status === 403
          ? "unauthenticated"
          : status === 429 || status === 503
            ? "unavailable"
            : "http_status";
      this.#fail(
        new OpampError(code, `${this.id}: the server refused the upgrade with HTTP ${status}`, {
          details: retryAfter === undefined ? { status } : { status, retryAfterMs: retryAfter },
        }),
        retryAfter,
        status,
      );
    });
    socket.on("open", () => {
      if (this.#socket !== socket) return;
      this.#open = true;
      this.#alive = true;
      this.#dispatch({ type: "connected" });
      const raw = (socket as unknown as { _socket?: Duplex })._socket;
      this.#raw = raw;
      raw?.on("drain", this.#onDrain);
      this.#armPing();
      this.handler.opened(this);
    });
    socket.on("message", (data, isBinary) => {
      if (this.#socket !== socket) return;
      this.#alive = true;
      this.#markAnswered();
      if (!isBinary) {
        this.handler.garbage(this, new OpampError("malformed_frame", `${this.id}: a text message; OpAMP uses binary`));
        return;
      }
      this.handler.frame(this, toBytes(data));
    });
    socket.on("pong", () => {
      if (this.#socket !== socket) return;
      this.#alive = true;
      this.#markAnswered();
    });
    socket.on("error", (e) => {
      if (this.#socket !== socket) return;
      this.#fail(new OpampError("transport_failed", `${this.id}: ${e.message}`, { cause: e }), undefined, undefined);
    });
    socket.on("close", (code, reason) => {
      if (this.#socket !== socket) return;
      const text = reason.length > 0 ? `: ${reason.toString()}` : "";
      this.#fail(
        new OpampError("transport_failed", `${this.id}: closed by the server (${code}${text})`),
        undefined,
        undefined,
      );
    });
  }

  readonly #onDrain = (): void => {
    if (this.#open) this.handler.drained(this);
  };

  /** A connection the server answered on earns a fresh backoff; one dropped at once does not. */
  #markAnswered(): void {
    if (this.#answered) return;
    this.#answered = true;
    this.#backoff.reset();
  }

  #armPing(): void {
    const interval = this.settings.pingIntervalMs;
    if (interval === 0) return;
    this.#pingTimer = this.settings.clock.setTimeout(() => {
      this.#pingTimer = undefined;
      const socket = this.#socket;
      if (!this.#open || socket === undefined) return;
      if (!this.#alive) {
        this.#fail(new OpampError("timeout", `${this.id}: no sign of life for ${interval} ms`), undefined, undefined);
        return;
      }
      this.#alive = false;
      socket.ping();
      this.#armPing();
    }, interval);
  }

  #detach(): void {
    const socket = this.#socket;
    this.#socket = undefined;
    this.#open = false;
    this.#raw?.off("drain", this.#onDrain);
    this.#raw = undefined;
    if (this.#pingTimer !== undefined) this.settings.clock.clearTimeout(this.#pingTimer);
    this.#pingTimer = undefined;
    if (socket !== undefined) {
      socket.removeAllListeners();
      socket.on("error", () => undefined);
      if (socket.readyState !== WebSocket.CLOSED) socket.terminate();
    }
  }

  #fail(error: OpampError, retryAfterMs: number | undefined, status: number | undefined): void {
    const wasOpen = this.#open;
    const answered = this.#answered;
    this.#detach();
    if (this.#state.t === "stopping" || this.#state.t === "stopped") return;
    // After a connection the server answered, the first retry comes soon (spread over the
    // first window so a fleet of gateways does not come back at once); then it backs off.
    const delay =
      wasOpen && answered && retryAfterMs === undefined
        ? Math.floor(this.settings.random() * this.settings.backoff.initialDelayMs)
        : Math.max(this.#backoff.next(), retryAfterMs ?? 0);
    this.#dispatch({ type: "failed", error, until: this.settings.clock.now() + delay });
    this.#retryTimer = this.settings.clock.setTimeout(() => this.#connect(), delay);
    if (wasOpen) this.handler.closed(this, error);
    else this.handler.failed(this, error, status);
  }

  /**
   * Closes for good: a normal close (1000) and, within `closeTimeoutMs`, the handshake.
   * Idempotent; no timer or socket is left afterwards.
   */
  async stop(): Promise<void> {
    if (this.#state.t === "stopped") return;
    this.#dispatch({ type: "stop" });
    if (this.#retryTimer !== undefined) this.settings.clock.clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    if (this.#pingTimer !== undefined) this.settings.clock.clearTimeout(this.#pingTimer);
    this.#pingTimer = undefined;
    const socket = this.#socket;
    const wasOpen = this.#open;
    if (socket !== undefined) {
      this.#socket = undefined;
      this.#open = false;
      this.#raw?.off("drain", this.#onDrain);
      this.#raw = undefined;
      socket.removeAllListeners("message");
      socket.on("error", () => undefined);
      if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) {
        await new Promise<void>((resolve) => {
          const clock = this.settings.clock;
          const timer = clock.setTimeout(() => {
            socket.terminate();
            resolve();
          }, this.settings.closeTimeoutMs);
          socket.once("close", () => {
            clock.clearTimeout(timer);
            resolve();
          });
          if (socket.readyState === WebSocket.OPEN) socket.close(1000, "gateway stopping");
          else socket.terminate();
        });
      }
    }
    this.#dispatch({ type: "stopped" });
    if (wasOpen) this.handler.closed(this, new OpampError("not_running", `${this.id}: stopped`));
  }
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
