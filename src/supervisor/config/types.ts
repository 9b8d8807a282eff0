/**
 * The resolved supervisor config ({@link SupervisorConfig}) and its defaults. Every default
 * is a `DEFAULT_*` constant, documented in docs/supervisor.md and docs/limits.md.
 */

/** Heartbeat (WebSocket) and poll (HTTP) interval until the server offers one: 30 s. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 30_000;
/** Where state lives when `storage.directory` is not set (as the Collector's supervisor). */
export const DEFAULT_STORAGE_DIRECTORY = "/var/lib/otelcol/supervisor";
/** How long an applied config has to become healthy before it counts as FAILED: 5 s. */
export const DEFAULT_CONFIG_APPLY_TIMEOUT_MS = 5_000;
/** How long the bootstrap run has to report its description: 3 s. */
export const DEFAULT_BOOTSTRAP_TIMEOUT_MS = 3_000;
/** How often the Collector's opamp extension checks that the supervisor still runs: 5 s. */
export const DEFAULT_ORPHAN_DETECTION_INTERVAL_MS = 5_000;
/** SIGTERM, then SIGKILL after this long: 10 s (as the Collector's supervisor). */
export const DEFAULT_STOP_TIMEOUT_MS = 10_000;
/** First crash-restart delay ceiling: 1 s. */
export const DEFAULT_RESTART_INITIAL_DELAY_MS = 1_000;
/** Largest crash-restart delay: 60 s. */
export const DEFAULT_RESTART_MAX_DELAY_MS = 60_000;
/** Growth of the restart delay per crash: 2. */
export const DEFAULT_RESTART_MULTIPLIER = 2;
/** Share of each restart delay taken off at random (0 = none, 1 = full jitter): 0.5. */
export const DEFAULT_RESTART_JITTER = 0.5;
/** A run at least this long resets the restart backoff: 60 s. */
export const DEFAULT_RESTART_STABLE_AFTER_MS = 60_000;
/** KiB of the agent's log attached to crash and FAILED messages: 4 (0 turns it off). */
export const DEFAULT_CRASH_LOG_SNIPPET_KIB = 4;
/** Size at which agent.log (and the supervisor's own log files) rotate: 10 MiB. */
export const DEFAULT_LOG_MAX_SIZE_MIB = 10;
/** Rotated log files kept next to the live one: 3. */
export const DEFAULT_LOG_MAX_FILES = 3;
/** Installed agent package versions kept on disk (the current one and rollbacks): 2. */
export const DEFAULT_PACKAGE_KEEP_VERSIONS = 2;
/** Largest agent package accepted: 512 MiB. */
export const DEFAULT_PACKAGE_MAX_BYTES = 512 * 1024 * 1024;

/** The capability flags, as in the Collector's supervisor (`capabilities:`). */
export interface CapabilitiesConfig {
  readonly acceptsRemoteConfig: boolean;
  readonly acceptsRestartCommand: boolean;
  readonly acceptsOpampConnectionSettings: boolean;
  readonly reportsEffectiveConfig: boolean;
  readonly reportsOwnMetrics: boolean;
  readonly reportsOwnLogs: boolean;
  readonly reportsOwnTraces: boolean;
  readonly reportsHealth: boolean;
  readonly reportsRemoteConfig: boolean;
  readonly reportsAvailableComponents: boolean;
  readonly reportsHeartbeat: boolean;
  readonly acceptsPackages: boolean;
  readonly reportsConnectionSettingsStatus: boolean;
}

/** TLS towards the OpAMP server (`server.tls`), files already read. */
export interface ServerTlsConfig {
  /** Read for compatibility: `ws:`/`http:` endpoints use no TLS whatever it says. */
  readonly insecure: boolean;
  readonly insecureSkipVerify: boolean;
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly serverName?: string;
}

/** `server:`. */
export interface ServerConfig {
  readonly endpoint: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly tls: ServerTlsConfig;
  /**
   * opamp-sdk: when the server answers 401 to the agent key a connection-settings offer
   * gave, forget the key and enroll again with `headers` (once). Default false.
   */
  readonly reenrollOnUnauthorized: boolean;
  /**
   * opamp-sdk: WebSocket heartbeat / HTTP poll interval until the server offers one
   * (`heartbeat_interval`, default {@link DEFAULT_HEARTBEAT_INTERVAL_MS}). Over HTTP a push
   * reaches the supervisor at its next poll.
   */
  readonly heartbeatIntervalMs: number;
}

/** Crash-restart backoff (opamp-sdk: `agent.restart`). */
export interface RestartConfig {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly multiplier: number;
  readonly jitter: number;
  readonly stableAfterMs: number;
}

/** Agent packages (`agent.package`; signature settings are opamp-sdk's). */
export interface PackageConfig {
  /** File name of the executable inside the package (`agent_binary`). Default the configured executable's name. */
  readonly agentBinary: string;
  /** `""` (the package is the executable itself) or `"tar.gz"` (an archive holding `agent_binary`). */
  readonly archive: "" | "tar.gz";
  /** ed25519 public key (PEM) packages must be signed with; undefined = signatures not checked. */
  readonly publicKey: string | undefined;
  /** Refuse unsigned packages. Default true when a public key is set. */
  readonly requireSignature: boolean;
  readonly keepVersions: number;
  readonly maxBytes: number;
}

/** `agent:`. */
export interface AgentConfig {
  readonly executable: string;
  /** UUID used when no state exists yet; undefined = a new UUIDv7. */
  readonly instanceId: string | undefined;
  readonly orphanDetectionIntervalMs: number;
  readonly description: {
    readonly identifyingAttributes: Readonly<Record<string, string>>;
    readonly nonIdentifyingAttributes: Readonly<Record<string, string>>;
    readonly includeResourceAttributes: boolean;
  };
  readonly configApplyTimeoutMs: number;
  readonly bootstrapTimeoutMs: number;
  /** Port of the local OpAMP server the Collector's extension connects to; 0 = any free port. */
  readonly opampServerPort: number;
  readonly passthroughLogs: boolean;
  readonly crashLogSnippetKib: number;
  readonly automaticConfigRollback: boolean;
  readonly useHupConfigReload: boolean;
  readonly validateConfig: boolean;
  /** Local files and the special `$OWN_TELEMETRY_CONFIG`, `$OPAMP_EXTENSION_CONFIG`, `$REMOTE_CONFIG`, in merge order. */
  readonly configFiles: readonly string[];
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly stopTimeoutMs: number;
  readonly restart: RestartConfig;
  readonly logMaxSizeMib: number;
  readonly logMaxFiles: number;
  readonly package: PackageConfig;
}

/** `telemetry.logs:` — the supervisor's own log. */
export interface LogsConfig {
  readonly level: "debug" | "info" | "warn" | "error";
  readonly encoding: "json" | "console";
  /** `stdout`, `stderr` or file paths (rotated like agent.log). */
  readonly outputPaths: readonly string[];
  readonly errorOutputPaths: readonly string[];
}

/** The whole resolved config. */
export interface SupervisorConfig {
  readonly server: ServerConfig;
  readonly capabilities: CapabilitiesConfig;
  readonly agent: AgentConfig;
  readonly storage: { readonly directory: string };
  readonly telemetry: { readonly logs: LogsConfig };
  /** `healthcheck.endpoint` (`host:port`), or undefined for no health endpoint. */
  readonly healthcheck: { readonly endpoint: string | undefined };
}

/** The three special entries of `agent.config_files`. */
export const SPECIAL_CONFIG_FILES = ["$OWN_TELEMETRY_CONFIG", "$OPAMP_EXTENSION_CONFIG", "$REMOTE_CONFIG"] as const;
