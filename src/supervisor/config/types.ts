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
  /** `accepts_remote_config`: take remote configs from the server and apply them to the Collector. Default false. */
  readonly acceptsRemoteConfig: boolean;
  /** `accepts_restart_command`: restart the Collector on the server's Restart command. Default false. */
  readonly acceptsRestartCommand: boolean;
  /**
   * `accepts_opamp_connection_settings`: take new OpAMP connection settings (endpoint, headers, TLS) from the
   * server. Default false.
   */
  readonly acceptsOpampConnectionSettings: boolean;
  /** `reports_effective_config`: report the Collector's effective config. Default true. */
  readonly reportsEffectiveConfig: boolean;
  /**
   * `reports_own_metrics`: accept the server's own-metrics destination and point the Collector's telemetry at
   * it. Default true.
   */
  readonly reportsOwnMetrics: boolean;
  /** `reports_own_logs`: the same for the Collector's own logs. Default false. */
  readonly reportsOwnLogs: boolean;
  /** `reports_own_traces`: the same for the Collector's own traces. Default false. */
  readonly reportsOwnTraces: boolean;
  /** `reports_health`: report the Collector's health (process state and component health). Default true. */
  readonly reportsHealth: boolean;
  /**
   * `reports_remote_config`: report the status of the last remote config (applying, applied, failed). Default
   * false.
   */
  readonly reportsRemoteConfig: boolean;
  /**
   * `reports_available_components`: report the components the Collector was built with, learned in the
   * bootstrap run. Default false.
   */
  readonly reportsAvailableComponents: boolean;
  /**
   * `reports_heartbeat`: send heartbeats at the interval the server offers (or `server.heartbeat_interval`).
   * Default true.
   */
  readonly reportsHeartbeat: boolean;
  /** `accepts_packages`: download, verify and install the top-level package the server offers. Default false. */
  readonly acceptsPackages: boolean;
  /**
   * `reports_connection_settings_status`: report whether offered connection settings were applied; needs
   * `acceptsOpampConnectionSettings`. Default false.
   */
  readonly reportsConnectionSettingsStatus: boolean;
}

/** TLS towards the OpAMP server (`server.tls`), files already read. */
export interface ServerTlsConfig {
  /** Read for compatibility: `ws:`/`http:` endpoints use no TLS whatever it says. */
  readonly insecure: boolean;
  /** `insecure_skip_verify`: do not verify the server's certificate (tests only). Default false. */
  readonly insecureSkipVerify: boolean;
  /**
   * CA certificates (PEM) that the server's certificate must chain to, from `ca_file` or `ca_pem`; absent =
   * the system CAs.
   */
  readonly ca?: string;
  /** Client certificate (PEM) for mutual TLS, from `cert_file` or `cert_pem`; set together with `key`. */
  readonly cert?: string;
  /** Private key (PEM) of `cert`, from `key_file` or `key_pem`. */
  readonly key?: string;
  /**
   * `server_name_override`: the name the server's certificate is checked against (and sent as SNI) instead of
   * the endpoint's host.
   */
  readonly serverName?: string;
}

/** `server:`. */
export interface ServerConfig {
  /** OpAMP server URL: `ws:`/`wss:` for WebSocket, `http:`/`https:` for HTTP polling. Required. */
  readonly endpoint: string;
  /**
   * Headers sent on every connection (list values joined with `, `), such as the enrollment credentials.
   * Default none.
   */
  readonly headers: Readonly<Record<string, string>>;
  /** TLS settings for `wss:`/`https:` endpoints. */
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
  /** `initial_delay`: ceiling of the first crash-restart delay. Default {@link DEFAULT_RESTART_INITIAL_DELAY_MS}. */
  readonly initialDelayMs: number;
  /** `max_delay`: largest crash-restart delay. Default {@link DEFAULT_RESTART_MAX_DELAY_MS}. */
  readonly maxDelayMs: number;
  /** Growth of the delay per consecutive crash, 1–100. Default {@link DEFAULT_RESTART_MULTIPLIER}. */
  readonly multiplier: number;
  /** Share of each delay taken off at random, 0–1. Default {@link DEFAULT_RESTART_JITTER}. */
  readonly jitter: number;
  /** `stable_after`: a run at least this long resets the backoff. Default {@link DEFAULT_RESTART_STABLE_AFTER_MS}. */
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
  /**
   * Installed versions kept on disk (the current one included), 1–100. Default
   * {@link DEFAULT_PACKAGE_KEEP_VERSIONS}.
   */
  readonly keepVersions: number;
  /** Largest package download accepted; not configurable. {@link DEFAULT_PACKAGE_MAX_BYTES}. */
  readonly maxBytes: number;
}

/** `agent:`. */
export interface AgentConfig {
  /** Absolute path of the Collector executable; must exist. Required. */
  readonly executable: string;
  /** UUID used when no state exists yet; undefined = a new UUIDv7. */
  readonly instanceId: string | undefined;
  /**
   * How often the Collector's opamp extension checks the supervisor is still alive (its
   * `ppid_poll_interval`). Default {@link DEFAULT_ORPHAN_DETECTION_INTERVAL_MS}.
   */
  readonly orphanDetectionIntervalMs: number;
  /** `agent.description`: attributes layered over what the Collector itself reports. */
  readonly description: {
    /** Identifying attributes added to, or overriding, the Collector's. Default none. */
    readonly identifyingAttributes: Readonly<Record<string, string>>;
    /** Non-identifying attributes added to, or overriding, the Collector's. Default none. */
    readonly nonIdentifyingAttributes: Readonly<Record<string, string>>;
    /** Passed to the opamp extension: report the Collector's resource attributes too. Default false. */
    readonly includeResourceAttributes: boolean;
  };
  /**
   * How long a restarted Collector has to report healthy before the config counts as FAILED. Default
   * {@link DEFAULT_CONFIG_APPLY_TIMEOUT_MS}.
   */
  readonly configApplyTimeoutMs: number;
  /** How long the bootstrap run has to report its description. Default {@link DEFAULT_BOOTSTRAP_TIMEOUT_MS}. */
  readonly bootstrapTimeoutMs: number;
  /** Port of the local OpAMP server the Collector's extension connects to; 0 = any free port. */
  readonly opampServerPort: number;
  /** Send the Collector's output to the supervisor's log (logger `agent`) instead of `agent.log`. Default false. */
  readonly passthroughLogs: boolean;
  /**
   * `collector_crash_log_snippet_kib`: KiB of the Collector's output attached to crash and FAILED messages,
   * 0–1024. Default {@link DEFAULT_CRASH_LOG_SNIPPET_KIB}.
   */
  readonly crashLogSnippetKib: number;
  /** Go back to the last working config when a new one fails. Default true (the Collector's supervisor: false). */
  readonly automaticConfigRollback: boolean;
  /**
   * Reload a new config with SIGHUP instead of a restart, falling back to a restart when the Collector does
   * not come back healthy. Not on Windows. Default false.
   */
  readonly useHupConfigReload: boolean;
  /**
   * Run `<collector> validate` on a new config first; a refused config is FAILED and nothing restarts.
   * Default false.
   */
  readonly validateConfig: boolean;
  /** Local files and the special `$OWN_TELEMETRY_CONFIG`, `$OPAMP_EXTENSION_CONFIG`, `$REMOTE_CONFIG`, in merge order. */
  readonly configFiles: readonly string[];
  /** Extra command-line arguments for the Collector. Default none. */
  readonly args: readonly string[];
  /** Extra environment for the Collector, on top of the supervisor's. Default none. */
  readonly env: Readonly<Record<string, string>>;
  /** SIGTERM, then SIGKILL after this long. Default {@link DEFAULT_STOP_TIMEOUT_MS}. */
  readonly stopTimeoutMs: number;
  /** Crash-restart backoff. */
  readonly restart: RestartConfig;
  /**
   * Size at which `agent.log` (and the supervisor's own log files) rotate. Default
   * {@link DEFAULT_LOG_MAX_SIZE_MIB}.
   */
  readonly logMaxSizeMib: number;
  /** Rotated log files kept next to the live one, 0–1000. Default {@link DEFAULT_LOG_MAX_FILES}. */
  readonly logMaxFiles: number;
  /** Package install settings, used with `capabilities.acceptsPackages`. */
  readonly package: PackageConfig;
}

/** `telemetry.logs:` — the supervisor's own log. */
export interface LogsConfig {
  /** Lowest level written. Default `info`. */
  readonly level: "debug" | "info" | "warn" | "error";
  /** `json` (one object a line) or `console` (readable text). Default `console`. */
  readonly encoding: "json" | "console";
  /** `stdout`, `stderr` or file paths (rotated like agent.log). */
  readonly outputPaths: readonly string[];
  /** Where the supervisor's errors go: `stdout`, `stderr` or file paths. Default `stderr`. */
  readonly errorOutputPaths: readonly string[];
}

/** The whole resolved config. */
export interface SupervisorConfig {
  /** `server:`: the OpAMP server the supervisor connects to. */
  readonly server: ServerConfig;
  /** `capabilities:`: what the supervisor announces and does. */
  readonly capabilities: CapabilitiesConfig;
  /** `agent:`: the Collector it runs. */
  readonly agent: AgentConfig;
  /** `storage:`: where the supervisor keeps its state. */
  readonly storage: {
    /** Absolute path of the state directory (created 0700). Default {@link DEFAULT_STORAGE_DIRECTORY}. */
    readonly directory: string;
  };
  /** `telemetry:`: the supervisor's own telemetry. */
  readonly telemetry: {
    /** `telemetry.logs`: the supervisor's own log. */
    readonly logs: LogsConfig;
  };
  /** `healthcheck:`: the supervisor's HTTP health endpoint. */
  readonly healthcheck: {
    /**
     * `host:port` of a `GET /health` endpoint (200 while the Collector runs, 503 otherwise),
     * or undefined for no health endpoint.
     */
    readonly endpoint: string | undefined;
  };
}

/** The three special entries of `agent.config_files`. */
export const SPECIAL_CONFIG_FILES = ["$OWN_TELEMETRY_CONFIG", "$OPAMP_EXTENSION_CONFIG", "$REMOTE_CONFIG"] as const;
