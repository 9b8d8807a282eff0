/**
 * The contract between the transport-blind client core and a transport. A transport
 * moves whole messages; it owns framing, polling, timers, backoff and Retry-After. The
 * core owns what goes into a message and what an answer means.
 */
import type { AgentToServer, ServerToAgent } from "../gen/opamp/v1/opamp_pb.js";
import type { BackoffPolicy } from "../internal/backoff.js";
import type { Clock } from "../internal/clock.js";
import type { OpampError } from "../wire/errors.js";
import type { ConnectionState } from "./connection-state.js";
import type { ProxySettings } from "./proxy.js";
import type { TargetTls } from "./tls.js";

/** Where and how to connect, asked for before every connection attempt or request. */
export interface ConnectTarget {
  /** OpAMP URL; its scheme matches the transport. */
  readonly url: string;
  /** Headers for the upgrade request or each POST. */
  readonly headers: Readonly<Record<string, string>>;
  /** Client certificate and TLS settings from accepted connection settings (Node only). */
  readonly tls?: TargetTls;
  /** HTTP proxy to connect through (options or accepted connection settings; Node only). */
  readonly proxy?: ProxySettings;
}

/** What the core tells a transport after reading a ServerToAgent. */
export interface ReceiveOutcome {
  /**
   * The server is unavailable: stop sending and retry after this long (or backoff when 0).
   * The core has already bounded it by {@link TransportSettings.maxRetryAfterMs}.
   */
  readonly retryAfterMs?: number;
}

/** The core's side of the contract, called by a transport. */
export interface TransportHost {
  /**
   * The next message to send, or undefined when nothing is pending. `reason` "connect" is
   * the first message on a connection (always returns one); "heartbeat" and "poll" always
   * return one; "pending" returns one only if something changed.
   */
  takeMessage(reason: "connect" | "pending" | "heartbeat" | "poll"): AgentToServer | undefined;
  /** A taken message did not reach the server: keep its changes for the next one. */
  returnMessage(message: AgentToServer): void;
  /** A message was handed to the network. */
  messageSent(message: AgentToServer): void;
  /** A taken message will never be sent or was refused for good (too large, HTTP 400/413). */
  messageDropped(message: AgentToServer, error: OpampError): void;
  /** An answer from the server. */
  receive(message: ServerToAgent): ReceiveOutcome;
  /** Target for the next attempt (may change after connection settings offers). */
  target(): ConnectTarget;
  /** Heartbeat / poll interval in ms, already bounded to what a timer can wait; 0 disables WS heartbeats. */
  heartbeatIntervalMs(): number;
  /** Called on every connection state change, in order. */
  stateChanged(state: ConnectionState, previous: ConnectionState): void;
  /** A failure that does not end the connection (e.g. a malformed message). */
  error(error: OpampError): void;
}

/** Settings every transport gets, already resolved. */
export interface TransportSettings {
  readonly clock: Clock;
  readonly backoff: BackoffPolicy;
  /** Random source for jitter (tests pin it). */
  readonly random: () => number;
  readonly maxMessageBytes: number;
  /** How long to wait for the server's answer before the connection counts as dead. */
  readonly responseTimeoutMs: number;
  /** Bound on the last message and close handshake at stop. */
  readonly closeTimeoutMs: number;
  /** WebSocket: deadline of the opening handshake (TCP, proxy tunnel, TLS, upgrade). */
  readonly connectTimeoutMs: number;
  /** Upper bound of a wait the server asks for (Retry-After, RetryInfo). */
  readonly maxRetryAfterMs: number;
}

/** A transport owned by one client. */
export interface Transport {
  /** Begins connecting; returns at once. */
  start(): void;
  /** Something became pending: send it when the transport may. */
  notifyPending(): void;
  /**
   * Drops the current connection and connects again at once using a fresh
   * {@link TransportHost.target}. When the server is reachable, `goodbye()` is called for
   * the last message (carrying agent_disconnect) and sent first.
   */
  reconnect(goodbye?: () => AgentToServer): Promise<void>;
  /**
   * Closes for good. When the server is reachable (WS open; HTTP: the last request, or the
   * one in flight, was answered) `goodbye()` is sent within the close timeout first.
   */
  stop(goodbye?: () => AgentToServer): Promise<void>;
}
