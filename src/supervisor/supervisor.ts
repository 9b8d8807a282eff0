/**
 * The supervisor: a drop-in for the Collector's opampsupervisor built on this SDK. It
 * holds the only connection to the management server (an OpAMPClient), runs the agent as
 * a child process, learns the agent's state from a local OpAMPServer its opamp extension
 * reports to, and relays between the two. Configs, restarts and package switches run one
 * at a time through one queue.
 */

import type { Server } from "node:http";
import { create } from "@bufbuild/protobuf";
import { EventEmitter } from "eventemitter3";
import { OpAMPClient } from "../client/opamp-client.js";
import { type KeyValue, KeyValueSchema } from "../gen/opamp/v1/anyvalue_pb.js";
import {
  AgentConfigFileSchema,
  type AgentConfigMap,
  AgentConfigMapSchema,
  type AgentDescription,
  AgentDescriptionSchema,
  type AgentRemoteConfig,
  type AvailableComponents,
  type ComponentHealth,
  type ConnectionSettingsOffers,
  type EffectiveConfig,
} from "../gen/opamp/v1/opamp_pb.js";
import { type Clock, systemClock } from "../internal/clock.js";
import { toAnyValue } from "../wire/any-value.js";
import { sameBytes } from "../wire/bytes.js";
import { OpampError } from "../wire/errors.js";
import { instanceUidFromString, instanceUidToString, newInstanceUid } from "../wire/uid.js";
import { AgentRunner } from "./agent-runner.js";
import { bootstrapCollector } from "./collector/bootstrap.js";
import {
  ALLOW_NO_PIPELINES_GATE,
  probeAllowNoPipelines,
  validateCollectorConfig,
} from "./collector/collector-tools.js";
import { bootstrapConfig, composeCollectorConfig } from "./collector/compose.js";
import type { SupervisorConfig } from "./config/supervisor-config.js";
import { ConfigApplier } from "./config-applier.js";
import { startHealthEndpoint } from "./health-endpoint.js";
import { LocalAgentServer } from "./local-server.js";
import type {
  ComposedAgentConfig,
  SupervisorEvents,
  SupervisorHooks,
  SupervisorLogger,
  SupervisorOptions,
} from "./options.js";
import { PackageInstaller } from "./packages/package-installer.js";
import type { AgentCommand } from "./process/agent-process.js";
import { processExists } from "./process/agent-process.js";
import { sweepOrphanedAgent } from "./process/orphan-sweep.js";
import { StateDirectory } from "./state/state-dir.js";
import { serverConfigHash, type UpstreamHost, upstreamClientOptions, upstreamHooks } from "./upstream.js";

type Lifecycle = "new" | "starting" | "running" | "stopping" | "stopped";

/** Storage directories a supervisor of this process holds (supervisor.pid cannot tell them apart). */
const CLAIMED = new Set<string>();

const SILENT: SupervisorLogger = { debug() {}, info() {}, warn() {}, error() {} };

function withOverrides(list: readonly KeyValue[], overrides: Readonly<Record<string, string>>): KeyValue[] {
  const byKey = new Map(list.map((kv) => [kv.key, kv]));
  for (const [key, value] of Object.entries(overrides)) {
    byKey.set(key, create(KeyValueSchema, { key, value: toAnyValue(value) }));
  }
  return [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/**
 * Supervises one agent (by default an OpenTelemetry Collector) for one OpAMP server.
 *
 * @example
 * const { config } = await loadSupervisorConfig("supervisor.yaml");
 * const supervisor = new Supervisor({ config });
 * supervisor.on("remoteConfigStatus", (s) => console.log(s.status, s.errorMessage));
 * await supervisor.start();
 */
export class Supervisor extends EventEmitter<SupervisorEvents> {
  /** The resolved config the supervisor runs with (read-only). */
  readonly config: SupervisorConfig;
  readonly #hooks: SupervisorHooks;
  readonly #log: SupervisorLogger;
  readonly #clock: Clock;
  readonly #state: StateDirectory;
  readonly #local: LocalAgentServer;
  readonly #runner: AgentRunner;
  readonly #applier: ConfigApplier;
  readonly #packages: PackageInstaller | undefined;
  readonly #abort = new AbortController();
  #lifecycle: Lifecycle = "new";
  #client: OpAMPClient | undefined;
  #uid: Uint8Array = new Uint8Array(16);
  #allowNoPipelines = false;
  #description: AgentDescription | undefined;
  #components: AvailableComponents | undefined;
  #agentEffective: EffectiveConfig | undefined;
  #lastHealth: { health: ComponentHealth; at: number } | undefined;
  #ownTelemetry: ConnectionSettingsOffers | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #reenrolled = false;
  #health: Server | undefined;
  #stopPromise: Promise<void> | undefined;
  #claimed = false;

  /** @throws OpampError `invalid_argument` for a bad `agent.package.public_key`. */
  constructor(options: SupervisorOptions) {
    super();
    this.config = options.config;
    this.#hooks = Object.freeze({ ...(options.hooks ?? {}) });
    this.#log = options.logger ?? SILENT;
    this.#clock = options.clock ?? systemClock;
    this.#state = new StateDirectory(this.config.storage.directory);
    this.#local = new LocalAgentServer(() => this.#uid);
    this.#packages = this.config.capabilities.acceptsPackages
      ? new PackageInstaller(this.#state.packagesDirectory, this.config.agent.package, (exe) => this.#activate(exe))
      : undefined;
    this.#runner = new AgentRunner({
      agent: this.config.agent,
      state: this.#state,
      clock: this.#clock,
      random: options.random ?? Math.random,
      command: () => this.#command(),
      checkHealth: (input) => this.#checkHealth(input.pid, input.startedAt, input.signal),
      schedule: (restart) => {
        this.#enqueue(restart).catch((e: unknown) => {
          if (OpampError.from(e).code !== "not_running") this.#emitError(e, "agent_failed");
        });
      },
    });
    this.#applier = new ConfigApplier({
      config: this.config,
      runner: this.#runner,
      local: this.#local,
      state: this.#state,
      clock: this.#clock,
      log: this.#log,
      compose: (remote) => this.#compose(remote),
      validate: (composed) =>
        this.#hooks.composeConfig !== undefined
          ? Promise.resolve(undefined)
          : validateCollectorConfig(
              this.#executable(),
              this.#state.directory,
              composed.content,
              this.#featureGateArgs(),
              this.config.agent.env,
            ),
      setHealth: (health) => this.#setHealth(health),
    });
    this.#wireRunner();
    this.#wireLocal();
  }

  /** The instance UID the agent and the supervisor use. */
  get instanceUid(): string {
    return instanceUidToString(this.#uid);
  }

  /** The upstream OpAMPClient (replaced on re-enrollment); undefined before start(). */
  get client(): OpAMPClient | undefined {
    return this.#client;
  }

  /** The running agent's pid, if any. */
  get agentPid(): number | undefined {
    return this.#runner.pid;
  }

  /** The storage directory's paths. */
  get storage(): StateDirectory {
    return this.#state;
  }

  #emitError(cause: unknown, code: OpampError["code"]): void {
    const error = OpampError.from(cause, code);
    this.#log.error(error.message, { code: error.code });
    if (this.#lifecycle !== "stopped") this.emit("error", error);
  }

  /** Runs operations on the agent one at a time, in order. */
  #enqueue<T>(op: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(() => {
      if (this.#lifecycle === "stopping" || this.#lifecycle === "stopped") {
        throw new OpampError("not_running", "the supervisor is stopping");
      }
      return op();
    });
    this.#queue = next.catch(() => undefined);
    return next;
  }

  #wireRunner(): void {
    this.#runner.on("started", (pid) => {
      this.#log.info("agent started", { pid });
      this.emit("agentStarted", pid);
    });
    this.#runner.on("exited", (exit) => {
      this.#log[exit.expected ? "info" : "warn"]("agent exited", {
        pid: exit.pid,
        code: exit.code,
        signal: exit.signal,
        expected: exit.expected,
      });
      if (!exit.expected && this.#lifecycle === "running") {
        const how = exit.signal !== null ? `signal ${exit.signal}` : `exit code ${exit.code}`;
        const tail = exit.logTail === "" ? "" : `\nAgent log tail:\n${exit.logTail}`;
        this.#setHealth({
          healthy: false,
          lastError: `Agent process PID=${exit.pid} exited unexpectedly, ${how}.${tail}`,
        });
      }
      this.emit("agentExited", exit);
    });
    this.#runner.on("restartScheduled", (delayMs, attempt) => {
      this.#log.info("agent restart scheduled", { delayMs, attempt });
      this.emit("restartScheduled", delayMs, attempt);
    });
    this.#runner.on("output", (line, stream) =>
      this.#log[stream === "stderr" ? "error" : "info"](line, { logger: "agent" }),
    );
    this.#runner.on("error", (error) => this.#emitError(error, "agent_failed"));
  }

  #wireLocal(): void {
    const local = this.#local;
    local.on("error", (error) => this.#emitError(error, "internal"));
    local.on("description", (description) => {
      const d = this.config.agent.description;
      this.#description = create(AgentDescriptionSchema, {
        identifyingAttributes: withOverrides(description.identifyingAttributes, d.identifyingAttributes),
        nonIdentifyingAttributes: withOverrides(description.nonIdentifyingAttributes, d.nonIdentifyingAttributes),
      });
      this.#client?.setAgentDescription(this.#description);
    });
    local.on("health", (health) => {
      this.#lastHealth = { health, at: this.#clock.now() };
      this.#setHealth(health);
    });
    local.on("effectiveConfig", (config) => {
      this.#agentEffective = config;
      void this.#client?.reportEffectiveConfig().catch((e: unknown) => this.#emitError(e, "hook_failed"));
    });
    local.on("availableComponents", (components) => {
      this.#components = components;
      if (this.config.capabilities.reportsAvailableComponents) this.#client?.setAvailableComponents(components);
    });
    local.on("customCapabilities", (capabilities) => this.#client?.setCustomCapabilities(capabilities));
    local.on("customMessage", (message) => {
      this.#client?.sendCustomMessage(message).catch((e: unknown) => this.#emitError(e, "limit_exceeded"));
    });
  }

  #setHealth(health: { healthy: boolean; lastError?: string } | ComponentHealth): void {
    if (this.config.capabilities.reportsHealth && this.#client !== undefined && this.#lifecycle !== "stopped") {
      this.#client.setHealth(health);
    }
  }

  /**
   * Starts: takes the storage directory, stops an agent an earlier supervisor left behind,
   * bootstraps the agent's description, connects upstream and starts the agent on the
   * last working config. Resolves once the agent's first start is over (healthy or not;
   * a failed start is retried with backoff).
   * @throws OpampError `not_running` when called twice; `storage_failed` when the
   *   directory cannot be used (or another live supervisor holds it); `timeout` /
   *   `agent_failed` when the bootstrap gets no description; `transport_failed` when the
   *   local OpAMP port cannot be bound.
   */
  async start(): Promise<void> {
    if (this.#lifecycle !== "new") throw new OpampError("not_running", "a Supervisor can be started once");
    this.#lifecycle = "starting";
    try {
      await this.#start();
    } catch (cause) {
      await this.stop();
      throw OpampError.from(cause, "internal");
    }
  }

  async #start(): Promise<void> {
    const state = this.#state;
    const config = this.config;
    await state.create();
    const holder = await state.readPid(state.supervisorPidPath);
    if (CLAIMED.has(state.directory) || (holder !== undefined && holder !== process.pid && processExists(holder))) {
      throw new OpampError(
        "storage_failed",
        `${state.directory} is in use by another supervisor (pid ${holder ?? process.pid})`,
      );
    }
    CLAIMED.add(state.directory);
    this.#claimed = true;
    await state.writePid(state.supervisorPidPath, process.pid);
    const swept = await sweepOrphanedAgent(state, config.agent.stopTimeoutMs);
    if (swept !== undefined) this.#log.warn("stopped an agent left running by an earlier supervisor", { pid: swept });

    // Identity and persisted state.
    const persisted = await state.readPersistentState();
    const store = state.clientStore();
    const clientState = (await store.load()) ?? {};
    this.#uid =
      persisted.instanceUid ??
      clientState.instanceUid ??
      (config.agent.instanceId !== undefined ? instanceUidFromString(config.agent.instanceId) : newInstanceUid());
    const serverHash = serverConfigHash(config);
    let seeded = { ...clientState, instanceUid: this.#uid };
    if (persisted.serverConfigHash !== undefined && persisted.serverConfigHash !== serverHash) {
      // The operator changed server: offered settings (an agent key) belong to the old one.
      const { connectionSettings: _c, candidateConnectionSettings: _d, ...rest } = seeded;
      seeded = { ...rest, instanceUid: this.#uid };
      this.#log.info("server settings changed in the config; offered connection settings dropped");
    }
    if (seeded.remoteConfig === undefined && persisted.remoteConfig !== undefined) {
      seeded = { ...seeded, remoteConfig: persisted.remoteConfig };
    }
    const working = await this.#applier.load();
    // The agent comes back on the last working config, so that is what the first report
    // must say. The client reports a status before its store has it on disk; a kill in
    // between would otherwise bring back an older status, or none (a FAILED for another
    // hash is kept: it is the last outcome, and the last working config runs meanwhile).
    const stored = seeded.remoteConfig;
    if (working !== undefined && stored?.status !== "failed" && !sameBytes(stored?.hash, working.configHash)) {
      seeded = { ...seeded, remoteConfig: { hash: working.configHash, status: "applied", errorMessage: "" } };
    }
    await store.save(seeded);
    await state.writePersistentState({
      instanceUid: this.#uid,
      serverConfigHash: serverHash,
      remoteConfig: seeded.remoteConfig,
    });
    this.#ownTelemetry = await state.readOwnTelemetry();
    await this.#packages?.load();

    if (this.#hooks.command === undefined) {
      this.#allowNoPipelines = await probeAllowNoPipelines(this.#executable(), config.agent.env);
    }
    await this.#local.start(config.agent.opampServerPort);
    this.#throwIfStopping();

    const bootstrap =
      this.#hooks.bootstrap ??
      (() =>
        bootstrapCollector({
          agent: config.agent,
          state,
          local: this.#local,
          clock: this.#clock,
          log: this.#log,
          config: bootstrapConfig(this.#extensionSettings(), this.#allowNoPipelines),
          wantComponents: config.capabilities.reportsAvailableComponents,
          command: () => this.#command(),
        }));
    const info = await bootstrap(this.#abort.signal);
    this.#throwIfStopping();
    if (info.description !== undefined && this.#description === undefined)
      this.#local.emit("description", info.description);
    if (info.availableComponents !== undefined) this.#components ??= info.availableComponents;

    this.#client = this.#createClient(store);
    this.#lifecycle = "running";
    await this.#client.start();
    this.#primeClient(this.#client);
    const endpoint = config.healthcheck.endpoint;
    if (endpoint !== undefined) {
      this.#health = await startHealthEndpoint(endpoint, () => ({
        running: this.#lifecycle === "running",
        instanceUid: this.instanceUid,
        agentPid: this.#runner.pid,
        agentHealthy: this.#lastHealth?.health.healthy ?? false,
      }));
    }
    await this.#enqueue(() => this.#applier.startup());
  }

  #throwIfStopping(): void {
    if (this.#lifecycle !== "starting") throw new OpampError("aborted", "stop() was called during start()");
  }

  /** The executable to run: the selected package's, else the configured one. */
  #executable(): string {
    return this.#packages?.executable ?? this.config.agent.executable;
  }

  #featureGateArgs(): string[] {
    return this.#allowNoPipelines ? ["--feature-gates", ALLOW_NO_PIPELINES_GATE] : [];
  }

  async #command(): Promise<AgentCommand> {
    const input = {
      executable: this.#executable(),
      configPath: this.#state.effectiveConfigPath,
      featureGateArgs: this.#featureGateArgs(),
    };
    if (this.#hooks.command !== undefined) return this.#hooks.command(input);
    return {
      executable: input.executable,
      args: ["--config", input.configPath, ...input.featureGateArgs, ...this.config.agent.args],
      env: this.config.agent.env,
    };
  }

  /** Default health check: a healthy report from the agent's OpAMP client after this start. */
  #checkHealth(pid: number, startedAt: number, signal: AbortSignal): Promise<{ healthy: boolean; lastError?: string }> {
    if (this.#hooks.checkHealth !== undefined) return this.#hooks.checkHealth({ pid, startedAt, signal });
    // The report may have come in while the pid file was written: count it.
    const last = this.#lastHealth;
    if (last !== undefined && last.at >= startedAt && last.health.healthy) return Promise.resolve({ healthy: true });
    return new Promise((resolve) => {
      const onHealth = (health: ComponentHealth) => {
        if (!health.healthy) return;
        this.#local.off("health", onHealth);
        resolve({ healthy: true });
      };
      this.#local.on("health", onHealth);
      signal.addEventListener("abort", () => {
        this.#local.off("health", onHealth);
        resolve({ healthy: false, lastError: this.#lastHealth?.health.lastError ?? "" });
      });
    });
  }

  #extensionSettings() {
    return {
      instanceUid: instanceUidToString(this.#uid),
      endpoint: this.#local.url,
      ppid: process.pid,
      ppidPollIntervalMs: this.config.agent.orphanDetectionIntervalMs,
      reportsAvailableComponents: this.config.capabilities.reportsAvailableComponents,
      includeResourceAttributes: this.config.agent.description.includeResourceAttributes,
    };
  }

  async #compose(remote: AgentRemoteConfig | undefined): Promise<ComposedAgentConfig> {
    if (this.#hooks.composeConfig !== undefined) {
      return this.#hooks.composeConfig({
        remote,
        ownTelemetry: this.#ownTelemetry,
        instanceUid: instanceUidToString(this.#uid),
        localServerUrl: this.#local.url,
        description: this.#description,
        signal: this.#abort.signal,
      });
    }
    const attributes: Record<string, string> = {};
    for (const kv of [
      ...(this.#description?.identifyingAttributes ?? []),
      ...(this.#description?.nonIdentifyingAttributes ?? []),
    ]) {
      if (kv.value?.value.case === "stringValue") attributes[kv.key] = kv.value.value.value;
    }
    const composed = await composeCollectorConfig({
      remote,
      acceptsRemoteConfig: this.config.capabilities.acceptsRemoteConfig,
      configFiles: this.config.agent.configFiles,
      ownTelemetry: this.#ownTelemetry,
      resourceAttributes: attributes,
      extension: this.#extensionSettings(),
      allowNoPipelines: this.#allowNoPipelines,
      warn: (message) => this.#log.warn(message),
    });
    return { content: composed.yaml, run: composed.run };
  }

  /** Restarts the agent on an executable (package switch); rejects when it does not become healthy. */
  #activate(executable: string | undefined): Promise<void> {
    return this.#enqueue(async () => {
      void executable; // the installer has already selected it; #executable() reads it back
      const outcome = await this.#runner.startHealthy(this.config.agent.configApplyTimeoutMs);
      if (!outcome.ok) {
        const tail = this.#runner.logTail();
        throw new OpampError("agent_failed", `${outcome.error}${tail === "" ? "" : `\nAgent log tail:\n${tail}`}`);
      }
    });
  }

  #effectiveConfig(): AgentConfigMap {
    const reported = this.#agentEffective?.configMap;
    if (reported !== undefined && Object.keys(reported.configMap).length > 0) return reported;
    return create(AgentConfigMapSchema, {
      configMap: {
        "": create(AgentConfigFileSchema, {
          body: new TextEncoder().encode(this.#applier.running?.content ?? ""),
          contentType: "text/yaml",
        }),
      },
    });
  }

  #upstreamHost(): UpstreamHost {
    return {
      config: this.config,
      log: this.#log,
      applyRemote: (remote) => this.#enqueue(() => this.#applier.apply(remote)),
      effectiveConfig: () => this.#effectiveConfig(),
      ownTelemetry: async (offers) => {
        await this.#state.writeOwnTelemetry(offers);
        this.#ownTelemetry = offers;
        await this.#enqueue(() => this.#applier.recompose("own telemetry settings changed"));
      },
      restart: () => this.#enqueue(() => this.#applier.restart()),
      forward: (message) => this.#local.sendCustomMessage(message),
      verifySignature: this.#packages === undefined ? undefined : (check) => this.#packages!.verifySignature(check),
    };
  }

  #createClient(store: ReturnType<StateDirectory["clientStore"]>): OpAMPClient {
    const client = new OpAMPClient(
      upstreamClientOptions({
        config: this.config,
        instanceUid: this.#uid,
        store,
        packages: this.#packages,
        description: this.#description ?? {},
        hooks: upstreamHooks(this.#upstreamHost()),
        clock: this.#clock,
        log: this.#log,
      }),
    );
    client.on("connect", () => {
      this.#log.info("connected to the OpAMP server");
      this.emit("connect");
    });
    client.on("connectFailed", (error) => {
      this.#log.warn("cannot connect to the OpAMP server", { code: error.code, message: error.message });
      this.emit("connectFailed", error);
      if (error.code === "unauthenticated" && error.details.status === 401) {
        this.#maybeReenroll(client, store).catch((e: unknown) => this.#emitError(e, "storage_failed"));
      }
    });
    client.on("error", (error) => this.#emitError(error, "internal"));
    client.on("remoteConfigStatus", (status) => {
      this.emit("remoteConfigStatus", status);
      const name = (["applied", "applying", "failed"] as const)[status.status - 1];
      if (name !== undefined && name !== "applying") {
        void this.#state
          .writePersistentState({
            instanceUid: this.#uid,
            serverConfigHash: serverConfigHash(this.config),
            remoteConfig: { hash: status.lastRemoteConfigHash, status: name, errorMessage: status.errorMessage },
          })
          .catch((e: unknown) => this.#emitError(e, "storage_failed"));
      }
    });
    client.on("packageStatuses", (statuses) => this.emit("packageStatuses", statuses));
    client.on("connectionSettings", (settings) => {
      this.#log.info("new connection settings committed", { endpoint: settings.endpoint });
      this.#reenrolled = false;
      this.emit("connectionSettings", settings.endpoint);
    });
    client.on("instanceUid", (uid) => {
      this.#uid = uid.slice();
      this.#log.info("the server assigned a new instance UID", { uid: instanceUidToString(uid) });
      void this.#state
        .writePersistentState({ instanceUid: this.#uid, serverConfigHash: serverConfigHash(this.config) })
        .catch((e: unknown) => this.#emitError(e, "storage_failed"));
      void this.#enqueue(() => this.#applier.recompose("new instance UID")).catch((e: unknown) =>
        this.#emitError(e, "agent_failed"),
      );
    });
    return client;
  }

  /** A 401 to a key a connection-settings offer gave: forget it and enroll again, once. */
  async #maybeReenroll(client: OpAMPClient, store: ReturnType<StateDirectory["clientStore"]>): Promise<void> {
    if (!this.config.server.reenrollOnUnauthorized || this.#reenrolled || this.#client !== client) return;
    const saved = await store.load().catch(() => undefined);
    if (saved?.connectionSettings?.offerHash === undefined) return;
    this.#reenrolled = true;
    this.#log.warn("the server refused the stored agent key (401); enrolling again with the configured headers");
    await client.stop();
    if (this.#lifecycle !== "running") return;
    const { connectionSettings: _c, candidateConnectionSettings: _d, ...rest } = (await store.load()) ?? {};
    await store.save(rest);
    this.emit("reenroll");
    const next = this.#createClient(store);
    this.#client = next;
    await next.start();
    this.#primeClient(next);
  }

  /** Gives a started client what is known of the agent already. */
  #primeClient(client: OpAMPClient): void {
    if (this.#description !== undefined) client.setAgentDescription(this.#description);
    if (this.#components !== undefined && this.config.capabilities.reportsAvailableComponents) {
      client.setAvailableComponents(this.#components);
    }
    if (this.#lastHealth !== undefined) this.#setHealth(this.#lastHealth.health);
  }

  /**
   * Stops: reports unhealthy upstream, says goodbye to the server, stops the agent
   * (SIGTERM, then SIGKILL after `agent.stop_timeout`) and the local server. After it
   * resolves no event fires. Safe to call more than once.
   */
  stop(): Promise<void> {
    this.#stopPromise ??= this.#stop();
    return this.#stopPromise;
  }

  async #stop(): Promise<void> {
    const wasRunning = this.#lifecycle === "running";
    this.#lifecycle = "stopping";
    this.#abort.abort(new OpampError("aborted", "the supervisor is stopping"));
    if (wasRunning && this.config.capabilities.reportsHealth) {
      this.#client?.setHealth({ healthy: false, lastError: "Supervisor is shutdown" });
    }
    await this.#client?.stop();
    // Closing the runner first ends any wait on the agent's health (its exit settles it)
    // and refuses new starts, so the queue drains at once.
    await this.#runner.close();
    await this.#queue.catch(() => undefined);
    await this.#runner.close();
    await this.#local.stop();
    if (this.#health !== undefined) await new Promise<void>((resolve) => this.#health!.close(() => resolve()));
    if (this.#claimed) {
      await this.#state.remove(this.#state.supervisorPidPath).catch(() => undefined);
      CLAIMED.delete(this.#state.directory);
    }
    this.#lifecycle = "stopped";
    this.removeAllListeners();
  }
}
