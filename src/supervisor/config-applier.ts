/**
 * The config state machine: which config the agent runs, applying a new one (APPLIED once
 * the agent is healthy on it, else FAILED), rolling back to the last working one without
 * a loop, and recomposing when something else in the config changes (instance UID, own
 * telemetry). Called by the supervisor one operation at a time.
 */
import type { RemoteConfigResult } from "../client/hooks.js";
import type { AgentRemoteConfig, ComponentHealth } from "../gen/opamp/v1/opamp_pb.js";
import type { Clock } from "../internal/clock.js";
import { sameBytes } from "../wire/bytes.js";
import { OpampError } from "../wire/errors.js";
import type { AgentRunner, StartOutcome } from "./agent-runner.js";
import type { SupervisorConfig } from "./config/supervisor-config.js";
import type { LocalAgentServer } from "./local-server.js";
import type { ComposedAgentConfig, SupervisorLogger } from "./options.js";
import { writeFileAtomic } from "./state/atomic-file.js";
import type { StateDirectory } from "./state/state-dir.js";

/** What the applier needs from the supervisor. */
export interface ConfigApplierDeps {
  readonly config: SupervisorConfig;
  readonly runner: AgentRunner;
  readonly local: LocalAgentServer;
  readonly state: StateDirectory;
  readonly clock: Clock;
  readonly log: SupervisorLogger;
  /** The agent config for a remote config (the `composeConfig` hook or the Collector's merge). */
  compose(remote: AgentRemoteConfig | undefined): Promise<ComposedAgentConfig>;
  /** Checks a composed config before it is applied (`validate_config`); resolves the reason it is refused, if it is. */
  validate(composed: ComposedAgentConfig): Promise<string | undefined>;
  /** Reports health upstream. */
  setHealth(health: { healthy: boolean; lastError?: string }): void;
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

/** Owns effective.yaml, the last working config, and how a new one is applied. */
export class ConfigApplier {
  /** What effective.yaml holds and whether the agent is meant to run it. */
  #running: ComposedAgentConfig | undefined;
  #lastWorking: AgentRemoteConfig | undefined;
  /** The agent ran healthy without any remote config (before the first one was applied). */
  #baselineHealthy = false;

  constructor(private readonly deps: ConfigApplierDeps) {}

  /** The config the agent runs (its content is reported upstream until the agent reports its own). */
  get running(): ComposedAgentConfig | undefined {
    return this.#running;
  }

  /** The last remote config that reached APPLIED. */
  get lastWorking(): AgentRemoteConfig | undefined {
    return this.#lastWorking;
  }

  /** Restores the last working config from the state directory. */
  async load(): Promise<AgentRemoteConfig | undefined> {
    this.#lastWorking = await this.deps.state.readRemoteConfig("last_working");
    return this.#lastWorking;
  }

  /** The health error for a failed start: the reason and the agent's log tail. */
  #failure(error: string): string {
    const tail = this.deps.runner.logTail();
    return `${error}${tail === "" ? "" : `\nAgent log tail:\n${tail}`}`;
  }

  /** Reports a failed start and lets the runner retry it with backoff. */
  startFailed(outcome: Extract<StartOutcome, { ok: false }>): void {
    this.deps.setHealth({ healthy: false, lastError: this.#failure(outcome.error) });
    this.deps.runner.scheduleRestart(outcome.exit?.ranForMs ?? 0);
  }

  async #write(remote: AgentRemoteConfig | undefined): Promise<ComposedAgentConfig> {
    const composed = await this.deps.compose(remote);
    await writeFileAtomic(this.deps.state.effectiveConfigPath, composed.content);
    this.#running = composed;
    return composed;
  }

  /**
   * Starts the agent on the last working config, or on none: a config that failed, or
   * whose apply a crash cut short, is never what the agent comes back on.
   */
  async startup(): Promise<void> {
    const composed = await this.#write(this.#lastWorking);
    if (!composed.run) return;
    const outcome = await this.deps.runner.startHealthy(this.deps.config.agent.configApplyTimeoutMs);
    if (!outcome.ok) this.startFailed(outcome);
    else if (this.#lastWorking === undefined) this.#baselineHealthy = true;
  }

  /** Restarts the agent on the config it runs (restart command). */
  async restart(): Promise<void> {
    if (this.#running?.run === false) return;
    const outcome = await this.deps.runner.startHealthy(this.deps.config.agent.configApplyTimeoutMs);
    if (!outcome.ok) this.startFailed(outcome);
  }

  /** Writes the config again (new UID, own telemetry) and restarts the agent if it changed. */
  async recompose(reason: string): Promise<void> {
    const before = this.#running;
    const composed = await this.deps.compose(this.#lastWorking);
    if (before !== undefined && before.content === composed.content && before.run === composed.run) return;
    this.deps.log.info(`restarting the agent: ${reason}`);
    await writeFileAtomic(this.deps.state.effectiveConfigPath, composed.content);
    this.#running = composed;
    if (!composed.run) {
      await this.deps.runner.stopAgent();
      return;
    }
    await this.restart();
  }

  /** Applies a remote config: APPLIED once the agent is healthy on it, else FAILED and roll back. */
  async apply(remote: AgentRemoteConfig): Promise<RemoteConfigResult> {
    const { config, runner, state } = this.deps;
    await state.writeRemoteConfig("last_recv", remote);
    let composed: ComposedAgentConfig;
    try {
      composed = await this.deps.compose(remote);
    } catch (cause) {
      return { status: "failed", errorMessage: `cannot compose the agent config: ${OpampError.from(cause).message}` };
    }
    if (config.agent.validateConfig && composed.run) {
      const invalid = await this.deps.validate(composed);
      if (invalid !== undefined) return { status: "failed", errorMessage: `the config failed validation: ${invalid}` };
    }
    const running = this.#running;
    if (
      running !== undefined &&
      running.content === composed.content &&
      running.run === composed.run &&
      (!composed.run || runner.pid !== undefined)
    ) {
      await this.#saveWorking(remote);
      return { status: "applied" };
    }
    await writeFileAtomic(state.effectiveConfigPath, composed.content);
    this.#running = composed;
    if (!composed.run) {
      // An empty config map: nothing to run (as the Collector's supervisor: stopped, APPLIED, healthy).
      await runner.stopAgent();
      this.deps.setHealth({ healthy: true });
      await this.#saveWorking(remote);
      return { status: "applied" };
    }
    const outcome = await this.#restartOrReload();
    if (outcome.ok) {
      await this.#saveWorking(remote);
      return { status: "applied" };
    }
    let message = this.#failure(outcome.error);
    this.deps.setHealth({ healthy: false, lastError: message });
    const working = this.#lastWorking;
    // Without a remote config that ever worked, the last working config is the one the
    // agent ran healthy on before any: the local config_files alone.
    const canRollBack =
      working !== undefined ? !sameBytes(working.configHash, remote.configHash) : this.#baselineHealthy;
    if (!config.agent.automaticConfigRollback || !canRollBack) {
      runner.scheduleRestart(outcome.exit?.ranForMs ?? 0);
      return { status: "failed", errorMessage: message };
    }
    const what =
      working === undefined ? "the local config (no remote config ever worked)" : `hash ${hex(working.configHash)}`;
    const restored = await this.#write(working);
    const again = restored.run
      ? await runner.startHealthy(config.agent.configApplyTimeoutMs)
      : ({ ok: true, pid: 0 } as const);
    if (again.ok) {
      message += `\nRolled back to the last working config (${what}).`;
      if (!restored.run) this.deps.setHealth({ healthy: true });
    } else {
      // Never roll back twice: the restored config keeps restarting with backoff.
      message += `\nThe last working config (${what}) failed too: ${again.error}`;
      this.startFailed(again);
    }
    return { status: "failed", errorMessage: message };
  }

  /** SIGHUP when `use_hup_config_reload` and the agent runs (a restart if it does not come back healthy), else a restart. */
  async #restartOrReload(): Promise<StartOutcome> {
    const { config, runner, local, clock } = this.deps;
    const timeout = config.agent.configApplyTimeoutMs;
    if (config.agent.useHupConfigReload && runner.pid !== undefined) {
      const pid = runner.pid;
      const reloaded = await new Promise<boolean>((resolve) => {
        // The reloaded Collector's extension reconnects, then reports healthy.
        let reconnected = false;
        const timer = clock.setTimeout(() => finish(false), timeout);
        const onConnected = () => {
          reconnected = true;
        };
        const onHealth = (health: ComponentHealth) => {
          if (reconnected && health.healthy) finish(true);
        };
        const finish = (ok: boolean) => {
          clock.clearTimeout(timer);
          local.off("connected", onConnected).off("health", onHealth);
          resolve(ok);
        };
        local.on("connected", onConnected).on("health", onHealth);
        if (!runner.signal("SIGHUP")) finish(false);
      });
      if (reloaded && runner.pid === pid) return { ok: true, pid };
      this.deps.log.warn("SIGHUP reload did not bring the agent back healthy; restarting it");
    }
    return runner.startHealthy(timeout);
  }

  async #saveWorking(remote: AgentRemoteConfig): Promise<void> {
    this.#lastWorking = remote;
    await this.deps.state.writeRemoteConfig("last_working", remote);
  }
}
