/**
 * The client's connection: one transport at a time, chosen by the active settings' URL
 * scheme and replaced when new settings move the client to the other transport.
 */
import type { ServerToAgent } from "../gen/opamp/v1/opamp_pb.js";
import { clampDelay } from "../internal/backoff.js";
import { type ConnectionState, INITIAL_CONNECTION_STATE } from "../transport/connection-state.js";
import { createTransport } from "../transport/create-transport.js";
import type { ReceiveOutcome, Transport, TransportHost } from "../transport/types.js";
import type { OpampError } from "../wire/errors.js";
import { type ConnectionSettingsManager, kindOf } from "./connection-settings.js";
import type { ClientCore } from "./core.js";
import type { ResolvedClientOptions } from "./options.js";

/** What the connection needs from the client. */
export interface ConnectionDeps {
  readonly options: ResolvedClientOptions;
  readonly core: ClientCore;
  readonly settings: ConnectionSettingsManager;
  /** An answer from the server on the current transport. */
  receive(message: ServerToAgent): ReceiveOutcome;
  /** A state change of the current transport. */
  stateChanged(state: ConnectionState, previous: ConnectionState): void;
  error(error: OpampError): void;
}

/** Owns the transport; every call is a no-op after {@link ClientConnection.stop}. */
export class ClientConnection {
  #transport: Transport;
  #kind: "ws" | "http";
  #state: ConnectionState = INITIAL_CONNECTION_STATE;
  #stopped = false;
  /** The endpoint the last connection's first message went to. */
  #endpoint: string | undefined;

  constructor(private readonly deps: ConnectionDeps) {
    this.#kind = kindOf(deps.settings.active.endpoint) ?? deps.options.transportKind;
    this.#transport = this.#create(this.#kind);
  }

  /** The current transport's state. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** Starts connecting. */
  start(): void {
    this.#transport.start();
  }

  /** Something new waits to be sent (or the heartbeat interval changed). */
  notifyPending(): void {
    this.#transport.notifyPending();
  }

  /**
   * Says goodbye (agent_disconnect, when connected) and connects again with the active
   * settings, replacing the transport when their URL selects the other kind.
   */
  async reconnect(): Promise<void> {
    if (this.#stopped) return;
    const old = this.#transport;
    const goodbye = () => this.deps.core.takeDisconnect();
    const kind = kindOf(this.deps.settings.active.endpoint) ?? this.#kind;
    if (kind === this.#kind) {
      await old.reconnect(goodbye);
      return;
    }
    const next = this.#create(kind);
    this.#transport = next;
    this.#kind = kind;
    await old.stop(goodbye);
    if (!this.#stopped && this.#transport === next) next.start();
  }

  /** Sends agent_disconnect when connected, closes, and stops every timer. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.#transport.stop(() => this.deps.core.takeDisconnect());
  }

  #create(kind: "ws" | "http"): Transport {
    const { options, core, settings } = this.deps;
    // Callbacks from a transport that was replaced (while it says goodbye) are ignored.
    let self: Transport | undefined;
    const current = () => self !== undefined && self === this.#transport;
    const host: TransportHost = {
      takeMessage: (reason) => {
        if (reason === "connect") {
          // A new endpoint may be another server that has never heard of this agent: the
          // first message there carries the full state, not one compressed against the old.
          const endpoint = settings.target().url;
          if (this.#endpoint !== undefined && endpoint !== this.#endpoint) core.requestFullState();
          this.#endpoint = endpoint;
        }
        return core.take(reason);
      },
      returnMessage: (message) => core.returned(message),
      messageSent: (message) => core.sent(message),
      messageDropped: (message, error) => {
        core.dropped(message, error);
        this.deps.error(error);
      },
      receive: (message) => (current() ? this.deps.receive(message) : {}),
      target: () => settings.target(),
      heartbeatIntervalMs: () => {
        const offered = settings.heartbeatIntervalMs();
        // spec: 0 disables WS heartbeats, but an HTTP client must keep polling.
        if (offered === undefined || (offered === 0 && kind === "http")) return options.heartbeatIntervalMs;
        // An offer of 3,000,000 s (or 2^64-1) would overflow the timer, which then fires
        // after 1 ms: a heartbeat storm. The bound also covers a value read from the store.
        return clampDelay(offered, options.maxHeartbeatIntervalMs);
      },
      stateChanged: (state, previous) => {
        if (!current()) return;
        this.#state = state;
        this.deps.stateChanged(state, previous);
      },
      error: (error) => this.deps.error(error),
    };
    const transportSettings = {
      clock: options.clock,
      backoff: options.retry,
      random: options.random,
      maxMessageBytes: options.maxMessageBytes,
      responseTimeoutMs: options.responseTimeoutMs,
      closeTimeoutMs: options.closeTimeoutMs,
      connectTimeoutMs: options.connectTimeoutMs,
      maxRetryAfterMs: options.maxRetryAfterMs,
    };
    self = createTransport(kind, host, transportSettings, options);
    return self;
  }
}
