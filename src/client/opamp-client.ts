/**
 * The public OpAMP client: lifecycle, setters, hooks and events around the
 * transport-blind {@link ClientCore} and one transport chosen by the URL scheme.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import {
  type AgentConfigMap,
  AgentConfigMapSchema,
  AgentDescriptionSchema,
  AvailableComponentsSchema,
  CertificateRequestSchema,
  ComponentHealthSchema,
  ConnectionSettingsRequestSchema,
  CustomCapabilitiesSchema,
  type CustomMessage,
  CustomMessageSchema,
  EffectiveConfigSchema,
  OpAMPConnectionSettingsRequestSchema,
} from "../gen/opamp/v1/opamp_pb.js";
import { describeValue } from "../internal/check-options.js";
import { TypedEmitter } from "../internal/emitter.js";
import type { Logger } from "../internal/logger.js";
import type { ConnectionState } from "../transport/connection-state.js";
import { INITIAL_CONNECTION_STATE } from "../transport/connection-state.js";
import { type AgentCapabilityFlags, agentCapabilities, hasBit, ServerCapability } from "../wire/capabilities.js";
import { configMap as configMapOf } from "../wire/config-hash.js";
import { OpampError } from "../wire/errors.js";
import { newInstanceUid } from "../wire/uid.js";
import { agentCapabilityBits } from "./capability-bits.js";
import { createClientParts, settingsSupport } from "./client-parts.js";
import { ClientConnection } from "./connection.js";
import { assertUsable, type ConnectionSettingsManager, initialConnectionSettings } from "./connection-settings.js";
import { ClientCore } from "./core.js";
import type { OpAMPClientEvents } from "./events.js";
import type { EffectiveConfigInput } from "./hooks.js";
import {
  type AgentDescriptionInput,
  type OpAMPClientOptions,
  type ResolvedClientOptions,
  resolveAgentDescription,
  resolveClientOptions,
} from "./options.js";
import type { PackageSyncer } from "./package-syncer.js";
import { processServerMessage, type ReceiveContext } from "./receive.js";
import type { RemoteConfigHandler } from "./remote-config.js";
import { type ClientStateChange, StatePersister } from "./state-persister.js";

type Lifecycle = "new" | "starting" | "running" | "stopping" | "stopped";

/**
 * An OpAMP client for one agent. Create it with options, call `start()`, report status
 * with the setters, and `stop()` when done. A stopped client cannot be started again.
 *
 * @example
 * const client = new OpAMPClient({ transport: { url: "wss://opamp.example.com/v1/opamp" } });
 * client.on("connect", () => console.log("connected"));
 * await client.start();
 */
export class OpAMPClient extends TypedEmitter<OpAMPClientEvents> {
  /** The options after defaults; never mutated. */
  readonly options: ResolvedClientOptions;
  /** Set by stop(): no event fires after it resolves. */
  #closed = false;
  /** `whenConnected()` calls waiting for a connection. */
  readonly #connectWaiters = new Set<{ resolve(): void; reject(error: OpampError): void }>();
  readonly #log: Logger;
  readonly #abort = new AbortController();
  #lifecycle: Lifecycle = "new";
  #core: ClientCore | undefined;
  #connection: ClientConnection | undefined;
  #settings: ConnectionSettingsManager | undefined;
  #remoteConfig: RemoteConfigHandler | undefined;
  #packages: PackageSyncer | undefined;
  #state: ConnectionState = INITIAL_CONNECTION_STATE;
  readonly #store: StatePersister;
  #extraCapabilities: bigint;
  #reportsHealth: boolean;
  #reportsComponents = false;
  #serverCapabilities = 0n;
  #serverCustomCapabilities: readonly string[] = [];
  #stopPromise: Promise<void> | undefined;
  #startPromise: Promise<void> | undefined;
  #receiveCtx: ReceiveContext | undefined;

  /** @throws OpampError `invalid_argument` / `invalid_instance_uid` for bad options. */
  constructor(options: OpAMPClientOptions) {
    const resolved = resolveClientOptions(options);
    const log = resolved.logger;
    super({
      listenerFailed: (cause, event) => {
        if (event === "error") {
          // An `error` listener that fails has nowhere else to report to.
          log.error({ err: cause }, "an 'error' listener of OpAMPClient threw or rejected");
          return;
        }
        this.emit("error", OpampError.from(cause, "hook_failed"));
      },
      unhandledError: (error) => {
        const e = OpampError.from(error);
        log.warn({ err: e, code: e.code }, `error with no 'error' listener: ${e.code}: ${e.message}`);
      },
      tooManyListeners: (event, count) =>
        log.warn({ event: String(event), count }, `${count} listeners of "${String(event)}": a leak?`),
    });
    this.options = resolved;
    this.#log = log;
    this.#store = new StatePersister(this.options.stateStore, (cause) => this.#error(cause, "storage_failed"));
    this.#extraCapabilities = agentCapabilities(this.options.agent.capabilities ?? {});
    this.#reportsHealth = this.options.agent.health !== undefined;
  }

  /**
   * Calls the listeners of `event` (see {@link OpAMPClientEvents}); the client emits its
   * own events, and nothing fires once `stop()` has resolved. A listener that throws or
   * rejects is reported as `error` (`hook_failed`); an `error` with no listener is logged
   * as a warning through `logger`.
   */
  override emit<E extends keyof OpAMPClientEvents>(event: E, ...args: OpAMPClientEvents[E]): boolean {
    if (this.#closed) return false;
    return super.emit(event, ...args);
  }

  /**
   * Where the connection stands: `{ status: "connected" }`, `{ status: "backoff", attempt,
   * until, error }`… (`t` is the same tag, kept as a short alias).
   */
  get state(): ConnectionState {
    return this.#state;
  }

  /**
   * Resolves once the client is connected (at once when it is). May be called before
   * `start()`.
   * @param options.signal - gives up waiting; e.g. `AbortSignal.timeout(10_000)`.
   * @throws OpampError (as a rejection) `not_running` when the client stops first;
   *   `aborted` (or `timeout` for a timeout signal) when `signal` fires first.
   */
  whenConnected(options: { readonly signal?: AbortSignal } = {}): Promise<void> {
    if (this.#state.t === "connected" && this.#lifecycle === "running") return Promise.resolve();
    if (this.#lifecycle === "stopping" || this.#lifecycle === "stopped") {
      return Promise.reject(new OpampError("not_running", "the client is stopped"));
    }
    const signal = options.signal;
    if (signal?.aborted === true) return Promise.reject(OpampError.from(signal.reason, "aborted"));
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.#connectWaiters.delete(waiter);
        reject(OpampError.from(signal?.reason, "aborted"));
      };
      const waiter = {
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
        reject: (error: OpampError) => {
          signal?.removeEventListener("abort", onAbort);
          reject(error);
        },
      };
      this.#connectWaiters.add(waiter);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** The instance UID in use; undefined before start(). */
  get instanceUid(): Uint8Array | undefined {
    return this.#core?.instanceUid.slice();
  }

  /** The server's last non-zero capability bits (0 before the first answer). */
  get serverCapabilities(): bigint {
    return this.#serverCapabilities;
  }

  /** Custom capabilities the server announced last (empty until it does). */
  get serverCustomCapabilities(): readonly string[] {
    return this.#serverCustomCapabilities;
  }

  /** Capability bits sent on every message. */
  get capabilities(): bigint {
    return this.#core?.capabilities ?? this.#capabilityBits();
  }

  /**
   * Loads persisted state, reads the effective config and starts connecting. Resolves
   * once the transport is started, not once connected (listen for `connect`).
   * @throws OpampError `not_running` if already started; `storage_failed` if the store fails;
   *   `invalid_argument` if the committed connection settings in the store cannot be
   *   applied by this client (TLS settings for HTTP without `transport.tlsFetch`, a proxy
   *   without `transport.proxyConnector`); `hook_failed` if getEffectiveConfig rejects;
   *   `aborted` if stop() was called meanwhile.
   */
  start(): Promise<void> {
    if (this.#lifecycle !== "new") {
      return Promise.reject(new OpampError("not_running", "an OpAMPClient can be started once"));
    }
    this.#lifecycle = "starting";
    this.#startPromise = this.#start();
    return this.#startPromise;
  }

  async #start(): Promise<void> {
    const opts = this.options;
    try {
      await this.#store.load();
    } catch (cause) {
      if (this.#lifecycle === "starting") this.#lifecycle = "stopped";
      throw OpampError.from(cause, "storage_failed");
    }
    // stop() called while starting wins: nothing more is read, written or connected.
    this.#throwIfStopped();
    try {
      // Committed settings this client cannot apply (TLS over HTTP without tlsFetch, a proxy
      // without proxyConnector) would fail every connection attempt, for ever.
      assertUsable(initialConnectionSettings(opts, this.#store.state.connectionSettings), settingsSupport(opts));
    } catch (cause) {
      this.#lifecycle = "stopped";
      throw cause;
    }
    const uid = opts.agent.instanceUid ?? this.#store.state.instanceUid ?? newInstanceUid();
    const core = new ClientCore(uid, () => this.#connection?.notifyPending(), opts.maxPendingCustomMessages);
    this.#core = core;
    if (this.#store.state.instanceUid === undefined || opts.agent.instanceUid !== undefined) {
      await this.#persist({ instanceUid: uid });
    }
    if (opts.agent.requestInstanceUid === true) core.setRequestInstanceUid(true);
    if (opts.agent.description !== undefined) {
      // Already resolved to the message's init shape by the options.
      core.set(
        "agentDescription",
        create(AgentDescriptionSchema, opts.agent.description as MessageInitShape<typeof AgentDescriptionSchema>),
      );
    }
    if (opts.agent.health !== undefined) core.set("health", create(ComponentHealthSchema, opts.agent.health));
    if (opts.agent.customCapabilities !== undefined) {
      core.set(
        "customCapabilities",
        create(CustomCapabilitiesSchema, { capabilities: [...opts.agent.customCapabilities] }),
      );
    }
    this.#throwIfStopped();
    // Before the parts: restored statuses are only reported under their capability bits.
    core.setCapabilities(this.#capabilityBits());
    const parts = await createClientParts({
      options: opts,
      core,
      signal: this.#abort.signal,
      stored: this.#store.state,
      persist: (change) => this.#persist(change),
      emit: (event, ...args) => this.#emit(event, ...args),
      refreshEffectiveConfig: (alongWith) =>
        this.#reportEffectiveConfig(alongWith).catch((e: unknown) => this.#error(e, "hook_failed")),
      reconnect: async () => {
        if (this.#lifecycle === "running") await this.#connection?.reconnect();
      },
      heartbeatChanged: () => this.#connection?.notifyPending(),
    });
    this.#settings = parts.settings;
    this.#remoteConfig = parts.remoteConfig;
    this.#packages = parts.packages;
    this.#throwIfStopped();
    if (opts.hooks.getEffectiveConfig !== undefined) await this.reportEffectiveConfig();
    this.#throwIfStopped();
    const settings = parts.settings;
    this.#connection = new ClientConnection({
      options: opts,
      core,
      settings,
      receive: (message) => {
        if (this.#lifecycle !== "running") return {};
        this.#emit("message", message);
        this.#receiveCtx ??= this.#receiveContext();
        return processServerMessage(this.#receiveCtx, message);
      },
      stateChanged: (state, previous) => this.#stateChanged(state, previous),
      error: (error) => this.#emit("error", error),
    });
    this.#throwIfStopped();
    this.#lifecycle = "running";
    this.#connection.start();
  }

  /**
   * Sends agent_disconnect (WS: then the close handshake; HTTP: as a last POST) within
   * `transport.closeTimeoutMs`, stops every timer and aborts running hooks. After it
   * resolves no hook is called and no event fires. Safe to call more than once.
   */
  stop(): Promise<void> {
    if (this.#stopPromise !== undefined) return this.#stopPromise;
    this.#stopPromise = this.#stop();
    return this.#stopPromise;
  }

  async #stop(): Promise<void> {
    this.#lifecycle = "stopping";
    const stopped = new OpampError("not_running", "the client stopped before it connected");
    for (const waiter of this.#connectWaiters) waiter.reject(stopped);
    this.#connectWaiters.clear();
    this.#abort.abort(new OpampError("aborted", "the client was stopped"));
    // A start() in progress sees the abort at its next step and rejects; waiting for it
    // keeps its store writes and hook calls from landing after stop() resolved.
    await this.#startPromise?.catch(() => undefined);
    const wasRunning = this.#connection !== undefined;
    if (wasRunning) await this.#connection?.stop();
    this.#core?.failPending(new OpampError("not_running", "the client stopped before the message was sent"));
    await this.#store.flush();
    this.#lifecycle = "stopped";
    this.#closed = true;
    this.removeAllListeners();
  }

  /**
   * Replaces the agent description (plain records or a message, as `agent.description`);
   * sent if it changed.
   * @throws OpampError `invalid_argument` for something that is no description;
   *   `not_running` before start().
   */
  setAgentDescription(description: AgentDescriptionInput): void {
    const core = this.#requireCore();
    core.set(
      "agentDescription",
      create(AgentDescriptionSchema, resolveAgentDescription(description, "the agent description")),
    );
  }

  /** Replaces the health tree; declares ReportsHealth from now on. */
  setHealth(health: MessageInitShape<typeof ComponentHealthSchema>): void {
    const core = this.#requireCore();
    this.#reportsHealth = true;
    core.setCapabilities(this.#capabilityBits());
    core.set("health", create(ComponentHealthSchema, health));
  }

  /** Replaces the custom capabilities list. */
  setCustomCapabilities(capabilities: readonly string[]): void {
    this.#requireCore().set(
      "customCapabilities",
      create(CustomCapabilitiesSchema, { capabilities: [...capabilities] }),
    );
  }

  /** Replaces the available components (hash first; the full map when the server asks). Declares ReportsAvailableComponents. */
  setAvailableComponents(components: MessageInitShape<typeof AvailableComponentsSchema>): void {
    const core = this.#requireCore();
    this.#reportsComponents = true;
    core.setCapabilities(this.#capabilityBits());
    core.set("availableComponents", create(AvailableComponentsSchema, components));
  }

  /** Replaces the extra capability bits given as `agent.capabilities`. */
  setCapabilities(flags: AgentCapabilityFlags): void {
    this.#extraCapabilities = agentCapabilities(flags);
    this.#core?.setCapabilities(this.#capabilityBits());
  }

  /**
   * Re-reads the effective config through `hooks.getEffectiveConfig` and reports it if
   * it changed. @throws OpampError `hook_failed` when the hook rejects.
   */
  async reportEffectiveConfig(): Promise<void> {
    await this.#reportEffectiveConfig(() => undefined);
  }

  /** Reads the effective config; `alongWith` runs in the same tick as the update so both share a message. */
  async #reportEffectiveConfig(alongWith: () => void): Promise<void> {
    const hook = this.options.hooks.getEffectiveConfig;
    const core = this.#requireCore();
    if (hook === undefined || this.#abort.signal.aborted) {
      alongWith();
      return;
    }
    let configMap: AgentConfigMap;
    try {
      configMap = effectiveConfigMap(await hook(this.#abort.signal));
    } catch (cause) {
      alongWith();
      throw OpampError.from(cause, "hook_failed");
    }
    if (!this.#abort.signal.aborted) core.set("effectiveConfig", create(EffectiveConfigSchema, { configMap }));
    alongWith();
  }

  /**
   * Sends a custom message. Messages go one per AgentToServer, in order. Resolves when
   * handed to the network. @throws OpampError `limit_exceeded` when
   * `limits.maxPendingCustomMessages` are waiting; `not_running` if stopped first.
   */
  sendCustomMessage(message: { capability: string; type: string; data: Uint8Array } | CustomMessage): Promise<void> {
    const core = this.#requireCore();
    const announced = core.get("customCapabilities")?.capabilities ?? [];
    if (!announced.includes(message.capability)) {
      // spec: custom messages belong to a custom capability the agent announced.
      return Promise.reject(
        new OpampError(
          "capability_missing",
          `custom capability ${JSON.stringify(message.capability)} was not announced`,
        ),
      );
    }
    return core.sendCustomMessage(create(CustomMessageSchema, { ...message }));
  }

  /**
   * Asks the server for a client certificate (spec: CSR flow). `csr` is a PEM CSR and
   * `privateKey` the PEM key it was made from: the server's certificate offer carries no
   * private key, so the client pairs the offered certificate with this one (it is then
   * persisted with the committed settings in the state store). Requires
   * `hooks.onOpampConnectionSettings` and, in Node, a `wss:` endpoint or an `https:` one
   * with `transport.tlsFetch`, as the certificate arrives as an OpAMP connection settings
   * offer.
   * @throws OpampError `capability_missing` when the server said it does not accept
   *   ConnectionSettingsRequest; `not_running` before start().
   */
  requestCertificate(csr: Uint8Array, privateKey: Uint8Array): void {
    const core = this.#requireCore();
    const server = this.#serverCapabilities;
    if (server !== 0n && !hasBit(server, ServerCapability.AcceptsConnectionSettingsRequest)) {
      throw new OpampError("capability_missing", "the server does not accept connection settings requests");
    }
    this.#settings?.expectCertificate(privateKey);
    core.requestConnectionSettings(
      create(ConnectionSettingsRequestSchema, {
        opamp: create(OpAMPConnectionSettingsRequestSchema, {
          certificateRequest: create(CertificateRequestSchema, { csr }),
        }),
      }),
    );
  }

  /** Settles when every remote config offered so far has been handled (for tests and supervisors). */
  async idle(): Promise<void> {
    await this.#remoteConfig?.idle();
    await this.#packages?.idle();
  }

  #throwIfStopped(): void {
    if (this.#lifecycle !== "starting") throw new OpampError("aborted", "stop() was called during start()");
  }

  #requireCore(): ClientCore {
    if (this.#core === undefined) throw notStarted();
    return this.#core;
  }

  #capabilityBits(): bigint {
    return agentCapabilityBits({
      hooks: this.options.hooks,
      packages: this.options.packageStore !== undefined,
      health: this.#reportsHealth,
      availableComponents: this.#reportsComponents,
      extra: this.#extraCapabilities,
    });
  }

  #emit<E extends keyof OpAMPClientEvents>(event: E, ...args: OpAMPClientEvents[E]): void {
    this.emit(event, ...args);
  }

  #error(cause: unknown, code: OpampError["code"]): void {
    this.#emit("error", OpampError.from(cause, code));
  }

  #persist(change: ClientStateChange): Promise<void> {
    return this.#store.update(change);
  }

  #stateChanged(state: ConnectionState, previous: ConnectionState): void {
    this.#state = state;
    this.#emit("stateChange", state, previous);
    if (state.t === "connected") {
      this.#log.info({ url: this.options.url }, "connected");
      for (const waiter of this.#connectWaiters) waiter.resolve();
      this.#connectWaiters.clear();
      this.#emit("connect");
      void this.#settings?.connected();
    } else if (state.t === "backoff") {
      const lost = previous.t === "connected";
      this.#log[lost ? "info" : "debug"](
        { err: state.error, attempt: state.attempt, retryInMs: Math.max(0, state.until - this.options.clock.now()) },
        lost ? `disconnected: ${state.error.message}` : `connection attempt failed: ${state.error.message}`,
      );
      this.#emit(lost ? "disconnect" : "connectFailed", state.error);
      if (this.#settings?.verifying === true) {
        // spec: new OpAMP settings that fail to connect are rolled back at once.
        void this.#settings.failed(state.error).then((rolledBack) => {
          if (rolledBack && this.#lifecycle === "running") void this.#connection?.reconnect();
        });
      }
    }
  }

  #receiveContext(): ReceiveContext {
    return {
      core: this.#core!,
      options: this.options,
      signal: this.#abort.signal,
      remoteConfig: this.#remoteConfig,
      settings: this.#settings!,
      packages: this.#packages,
      setServerCapabilities: (bits: bigint) => {
        this.#serverCapabilities = bits;
      },
      setServerCustomCapabilities: (capabilities: readonly string[]) => {
        this.#serverCustomCapabilities = Object.freeze([...capabilities]);
      },
      adoptInstanceUid: (uid: Uint8Array) => {
        this.#core!.setInstanceUid(uid);
        this.#core!.setRequestInstanceUid(false);
        void this.#persist({ instanceUid: uid.slice() });
        this.#emit("instanceUid", uid.slice());
      },
      reportEffectiveConfig: () => this.reportEffectiveConfig().catch((e: unknown) => this.#error(e, "hook_failed")),
      emitError: (error: OpampError) => this.#emit("error", error),
    };
  }
}

/**
 * The AgentConfigMap of what `getEffectiveConfig` returned: a message as it is, the init
 * shape `{ configMap: { name: { body, contentType } } }`, or a plain record of files.
 * @throws OpampError `invalid_argument` for anything else (reported as `hook_failed`).
 */
function effectiveConfigMap(value: EffectiveConfigInput): AgentConfigMap {
  if (typeof value !== "object" || value === null) {
    throw new OpampError(
      "invalid_argument",
      `getEffectiveConfig must return a record of config files or an AgentConfigMap, got ${describeValue(value)}`,
    );
  }
  if ("$typeName" in value) return value as AgentConfigMap;
  const keys = Object.keys(value);
  const inner = (value as Record<string, unknown>)["configMap"];
  if (
    keys.length === 1 &&
    typeof inner === "object" &&
    inner !== null &&
    Object.values(inner).every(
      (file) => typeof file === "object" && file !== null && (file as { body?: unknown }).body instanceof Uint8Array,
    )
  ) {
    // The init shape the hook used to be typed with.
    return create(AgentConfigMapSchema, value as never);
  }
  return configMapOf(value as Parameters<typeof configMapOf>[0]);
}

function notStarted(): OpampError {
  return new OpampError("not_running", "call start() first");
}
