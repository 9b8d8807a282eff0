/**
 * `opamp-sdk/supervisor` (Node only): a drop-in for the OpenTelemetry Collector's
 * opampsupervisor built on this SDK's OpAMPClient and OpAMPServer, with hooks to supervise
 * other agents. The CLI is `opamp-supervisor --config supervisor.yaml`.
 *
 * @module
 */

export type { Environment } from "./config/expand.js";
export {
  type LoadedConfig,
  loadSupervisorConfig,
  type ParseConfigOptions,
  parseSupervisorConfig,
} from "./config/load.js";
export {
  type AgentConfig,
  type CapabilitiesConfig,
  DEFAULT_BOOTSTRAP_TIMEOUT_MS,
  DEFAULT_CONFIG_APPLY_TIMEOUT_MS,
  DEFAULT_CRASH_LOG_SNIPPET_KIB,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_LOG_MAX_FILES,
  DEFAULT_LOG_MAX_SIZE_MIB,
  DEFAULT_ORPHAN_DETECTION_INTERVAL_MS,
  DEFAULT_PACKAGE_KEEP_VERSIONS,
  DEFAULT_PACKAGE_MAX_BYTES,
  DEFAULT_RESTART_INITIAL_DELAY_MS,
  DEFAULT_RESTART_JITTER,
  DEFAULT_RESTART_MAX_DELAY_MS,
  DEFAULT_RESTART_MULTIPLIER,
  DEFAULT_RESTART_STABLE_AFTER_MS,
  DEFAULT_STOP_TIMEOUT_MS,
  DEFAULT_STORAGE_DIRECTORY,
  type LogsConfig,
  type PackageConfig,
  type ResolveConfigOptions,
  type RestartConfig,
  resolveSupervisorConfig,
  type ServerConfig,
  type ServerTlsConfig,
  SPECIAL_CONFIG_FILES,
  type SupervisorConfig,
} from "./config/supervisor-config.js";
export { createConsoleLogger } from "./logger.js";
export type {
  BootstrapInfo,
  CommandInput,
  ComposeConfigInput,
  ComposedAgentConfig,
  HealthCheckInput,
  SupervisorEvents,
  SupervisorHooks,
  SupervisorLogger,
  SupervisorOptions,
} from "./options.js";
export type { AgentCommand, AgentExit } from "./process/agent-process.js";
export { type PersistentState, StateDirectory } from "./state/state-dir.js";
export { Supervisor } from "./supervisor.js";
