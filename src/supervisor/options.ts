/**
 * Options, hooks and events of the {@link Supervisor}. Hooks decide how the agent is
 * configured, started and health-checked (the defaults are the Collector's); events only
 * observe.
 */
import type {
  AgentDescription,
  AgentRemoteConfig,
  AvailableComponents,
  ConnectionSettingsOffers,
  PackageStatuses,
  RemoteConfigStatus,
} from "../gen/opamp/v1/opamp_pb.js";
import type { Clock } from "../internal/clock.js";
import type { OpampError } from "../wire/errors.js";
import type { SupervisorConfig } from "./config/supervisor-config.js";
import type { AgentCommand, AgentExit } from "./process/agent-process.js";

/** What the `composeConfig` hook gets. */
export interface ComposeConfigInput {
  /** The remote config to run (the last working one at start, a new one when offered); undefined when none. */
  readonly remote: AgentRemoteConfig | undefined;
  /** Own-telemetry destinations the server offered, if any. */
  readonly ownTelemetry: ConnectionSettingsOffers | undefined;
  /** The instance UID (canonical string) the agent must use towards the local OpAMP server. */
  readonly instanceUid: string;
  /** `ws://127.0.0.1:PORT/v1/opamp`: the supervisor's local OpAMP server. */
  readonly localServerUrl: string;
  /** The agent description as last known (after the config's overrides). */
  readonly description: AgentDescription | undefined;
  /** Fires when the supervisor stops. */
  readonly signal: AbortSignal;
}

/** What the `composeConfig` hook returns. */
export interface ComposedAgentConfig {
  /** Written atomically to `<storage>/effective.yaml`. */
  readonly content: string;
  /** False: stop the agent and do not start it (nothing to run); the config still counts as applied. */
  readonly run: boolean;
}

/** What the `command` hook gets. */
export interface CommandInput {
  /** The executable to run: the installed package's, else `agent.executable`. */
  readonly executable: string;
  /** `<storage>/effective.yaml`. */
  readonly configPath: string;
  /** Command-line flags the default adds (`--feature-gates service.AllowNoPipelines` when the Collector has it). */
  readonly featureGateArgs: readonly string[];
}

/** What the `checkHealth` hook gets. */
export interface HealthCheckInput {
  /** The agent process's id. */
  readonly pid: number;
  /** Clock time the process started. */
  readonly startedAt: number;
  /** Fires when the wait is over (healthy, timed out, or the process exited). */
  readonly signal: AbortSignal;
}

/** The agent's description and components, learnt before connecting upstream. */
export interface BootstrapInfo {
  /** The agent's description, as its OpAMP client reported it; undefined when it did not. */
  readonly description: AgentDescription | undefined;
  /** The components the agent can run; undefined when not reported. */
  readonly availableComponents: AvailableComponents | undefined;
}

/**
 * Hooks replace how the agent is configured, started and health-checked, so a vendor can
 * supervise an agent other than the Collector. Each is awaited; a hook that throws fails
 * the operation it serves (a config apply reports FAILED with its message).
 */
export interface SupervisorHooks {
  /**
   * Turns a remote config into the agent's config file. Default: the Collector's layered
   * merge (own telemetry, `agent.config_files`, the injected opamp extension, the remote
   * config).
   */
  readonly composeConfig?: (input: ComposeConfigInput) => Promise<ComposedAgentConfig>;
  /** How to launch the agent. Default: `<executable> --config <effective.yaml> [feature gates] <agent.args>` with `agent.env`. */
  readonly command?: (input: CommandInput) => Promise<AgentCommand>;
  /**
   * Resolves `{ healthy: true }` once a started agent is healthy. The supervisor bounds it
   * with `agent.config_apply_timeout` and an exit of the process. Default: the first
   * healthy report of the agent's OpAMP client (the Collector's opamp extension) on the
   * local OpAMP server after the start.
   */
  readonly checkHealth?: (input: HealthCheckInput) => Promise<{
    /** True once the agent is healthy; false: it is not (the apply fails with `lastError`). */
    readonly healthy: boolean;
    /** Why it is not healthy, for the FAILED status and the health report. */
    readonly lastError?: string;
  }>;
  /**
   * Learns the agent's description before the supervisor connects upstream. Default: the
   * Collector bootstrap (run it with only the opamp extension until it reports, within
   * `agent.bootstrap_timeout`).
   */
  readonly bootstrap?: (signal: AbortSignal) => Promise<BootstrapInfo>;
}

/** A structured logger (the CLI's is built from `telemetry.logs`). */
export interface SupervisorLogger {
  /** Detail for diagnosis (the agent's output during bootstrap). */
  debug(message: string, fields?: Readonly<Record<string, unknown>>): void;
  /** Lifecycle (agent started, restart scheduled, connected). */
  info(message: string, fields?: Readonly<Record<string, unknown>>): void;
  /** Trouble the supervisor works around (cannot connect, a SIGHUP reload that failed, an orphan swept). */
  warn(message: string, fields?: Readonly<Record<string, unknown>>): void;
  /** A failure, also emitted as the `error` event. */
  error(message: string, fields?: Readonly<Record<string, unknown>>): void;
}

/** Everything `new Supervisor()` takes. Only `config` is required. */
export interface SupervisorOptions {
  /** The resolved config (`loadSupervisorConfig` / `parseSupervisorConfig` / `resolveSupervisorConfig`). */
  readonly config: SupervisorConfig;
  /** Replace how the agent is configured, launched, health-checked and bootstrapped. Default: the Collector's ways. */
  readonly hooks?: SupervisorHooks;
  /** Default: nothing is logged (listen to the events). */
  readonly logger?: SupervisorLogger;
  /** Time source for restart backoff and apply timeouts. Default the system clock. */
  readonly clock?: Clock;
  /** Random source in [0, 1) for restart jitter. Default Math.random. */
  readonly random?: () => number;
}

/** Event name → listener arguments. Events observe; none fires after `stop()` resolves. */
export interface SupervisorEvents {
  /** An agent process started. */
  agentStarted: [pid: number];
  /** An agent process ended; `expected` when the supervisor stopped it. */
  agentExited: [
    exit: AgentExit & {
      /** The process id that ended. */
      readonly pid: number;
      /** True when the supervisor stopped it (restart, new config, stop); false for a crash. */
      readonly expected: boolean;
      /** The last `agent.collector_crash_log_snippet_kib` KiB of its output; "" when turned off. */
      readonly logTail: string;
    },
  ];
  /** A crashed agent will be restarted after `delayMs`. */
  restartScheduled: [delayMs: number, attempt: number];
  /** The remote config status reported upstream changed. */
  remoteConfigStatus: [status: RemoteConfigStatus];
  /** The package statuses reported upstream changed. */
  packageStatuses: [statuses: PackageStatuses];
  /** The upstream connection is up. */
  connect: [];
  /** An upstream connection attempt failed. */
  connectFailed: [error: OpampError];
  /** Offered connection settings (e.g. an agent key) were verified and persisted. */
  connectionSettings: [endpoint: string];
  /** The stored agent key was refused (401) and the supervisor enrolls again with the configured headers. */
  reenroll: [];
  /** Something failed that no caller waits on. */
  error: [error: OpampError];
}
