/**
 * The supervisor's config: the Collector opampsupervisor's schema (server, capabilities,
 * agent, storage, telemetry, healthcheck), read as written, plus a few opamp-sdk settings
 * (restart backoff, stop timeout, log rotation, packages, re-enrollment) under the same
 * sections. Resolved once into {@link SupervisorConfig}; every default is a `DEFAULT_*`.
 */
import { resolve } from "node:path";
import {
  configError,
  readBool,
  readDuration,
  readFileSetting,
  readHeaders,
  readMap,
  readString,
  readStringList,
} from "./read.js";
import { resolveAgent } from "./resolve-agent.js";
import {
  type CapabilitiesConfig,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_STORAGE_DIRECTORY,
  type LogsConfig,
  type ServerConfig,
  type SupervisorConfig,
} from "./types.js";

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
  type RestartConfig,
  type ServerConfig,
  type ServerTlsConfig,
  SPECIAL_CONFIG_FILES,
  type SupervisorConfig,
} from "./types.js";

const CAPABILITY_KEYS: ReadonlyArray<readonly [string, keyof CapabilitiesConfig, boolean]> = [
  ["accepts_remote_config", "acceptsRemoteConfig", false],
  ["accepts_restart_command", "acceptsRestartCommand", false],
  ["accepts_opamp_connection_settings", "acceptsOpampConnectionSettings", false],
  ["reports_effective_config", "reportsEffectiveConfig", true],
  ["reports_own_metrics", "reportsOwnMetrics", true],
  ["reports_own_logs", "reportsOwnLogs", false],
  ["reports_own_traces", "reportsOwnTraces", false],
  ["reports_health", "reportsHealth", true],
  ["reports_remote_config", "reportsRemoteConfig", false],
  ["reports_available_components", "reportsAvailableComponents", false],
  ["reports_heartbeat", "reportsHeartbeat", true],
  ["accepts_packages", "acceptsPackages", false],
  ["reports_connection_settings_status", "reportsConnectionSettingsStatus", false],
];

/** Options of {@link resolveSupervisorConfig}. */
export interface ResolveConfigOptions {
  /** Relative paths (storage, config files, key and TLS files) are resolved from here. Default `process.cwd()`. */
  readonly baseDir?: string;
}

function resolveServer(raw: unknown, baseDir: string): ServerConfig {
  const m = readMap(raw, "server", ["endpoint", "headers", "tls", "reenroll_on_unauthorized", "heartbeat_interval"], {
    auth: "authenticator extensions are not available; set the credentials in server.headers",
  });
  const endpoint = readString(m["endpoint"], "server.endpoint", "");
  if (endpoint === "") throw configError("server.endpoint", "must be set");
  let scheme: string;
  try {
    scheme = new URL(endpoint).protocol;
  } catch {
    throw configError("server.endpoint", `is not a valid URL: ${JSON.stringify(endpoint)}`);
  }
  if (!["ws:", "wss:", "http:", "https:"].includes(scheme)) {
    throw configError("server.endpoint", `must use ws, wss, http or https, got ${scheme.slice(0, -1)}`);
  }
  const t = readMap(m["tls"], "server.tls", [
    "insecure",
    "insecure_skip_verify",
    "ca_file",
    "ca_pem",
    "cert_file",
    "cert_pem",
    "key_file",
    "key_pem",
    "server_name_override",
    "include_system_ca_certs_pool",
    "min_version",
    "max_version",
  ]);
  const pem = (inline: string, file: string): string | undefined => {
    const text = readString(t[inline], `server.tls.${inline}`, "");
    const path = readString(t[file], `server.tls.${file}`, "");
    if (text !== "" && path !== "") throw configError(`server.tls.${inline}`, `set ${inline} or ${file}, not both`);
    if (path !== "") return readFileSetting(`server.tls.${file}`, path, baseDir);
    return text === "" ? undefined : text;
  };
  for (const key of ["min_version", "max_version"]) {
    const v = readString(t[key], `server.tls.${key}`, "");
    if (v !== "" && v !== "1.2" && v !== "1.3")
      throw configError(`server.tls.${key}`, `must be "1.2" or "1.3", got ${v}`);
  }
  const ca = pem("ca_pem", "ca_file");
  const cert = pem("cert_pem", "cert_file");
  const key = pem("key_pem", "key_file");
  if ((cert === undefined) !== (key === undefined)) {
    throw configError("server.tls", "a client certificate needs both cert_file/cert_pem and key_file/key_pem");
  }
  const serverName = readString(t["server_name_override"], "server.tls.server_name_override", "");
  readBool(t["include_system_ca_certs_pool"], "server.tls.include_system_ca_certs_pool", false);
  return {
    endpoint,
    headers: readHeaders(m["headers"], "server.headers"),
    tls: {
      insecure: readBool(t["insecure"], "server.tls.insecure", false),
      insecureSkipVerify: readBool(t["insecure_skip_verify"], "server.tls.insecure_skip_verify", false),
      ...(ca === undefined ? {} : { ca }),
      ...(cert === undefined ? {} : { cert }),
      ...(key === undefined ? {} : { key }),
      ...(serverName === "" ? {} : { serverName }),
    },
    reenrollOnUnauthorized: readBool(m["reenroll_on_unauthorized"], "server.reenroll_on_unauthorized", false),
    heartbeatIntervalMs: readDuration(
      m["heartbeat_interval"],
      "server.heartbeat_interval",
      DEFAULT_HEARTBEAT_INTERVAL_MS,
    ),
  };
}

function resolveCapabilities(raw: unknown): CapabilitiesConfig {
  const m = readMap(
    raw,
    "capabilities",
    CAPABILITY_KEYS.map(([key]) => key),
  );
  const out: Record<string, boolean> = {};
  for (const [key, name, fallback] of CAPABILITY_KEYS) out[name] = readBool(m[key], `capabilities.${key}`, fallback);
  const caps = out as unknown as CapabilitiesConfig;
  if (caps.reportsConnectionSettingsStatus && !caps.acceptsOpampConnectionSettings) {
    throw configError(
      "capabilities.reports_connection_settings_status",
      "needs capabilities.accepts_opamp_connection_settings",
    );
  }
  return caps;
}

function resolveTelemetry(raw: unknown, warnings: string[]): { logs: LogsConfig } {
  const m = readMap(raw, "telemetry", ["logs", "metrics", "traces", "resource"]);
  for (const key of ["metrics", "traces", "resource"]) {
    if (m[key] !== undefined && m[key] !== null) {
      warnings.push(
        `telemetry.${key}: the supervisor's own ${key} are not exported by opamp-sdk's supervisor; ignored`,
      );
    }
  }
  const l = readMap(m["logs"], "telemetry.logs", ["level", "encoding", "output_paths", "error_output_paths"], {
    processors: "the supervisor's logs go to output_paths only",
  });
  const level = readString(l["level"], "telemetry.logs.level", "info").toLowerCase();
  if (!["debug", "info", "warn", "error"].includes(level)) {
    throw configError("telemetry.logs.level", `must be debug, info, warn or error, got ${JSON.stringify(level)}`);
  }
  const encoding = readString(l["encoding"], "telemetry.logs.encoding", "console");
  if (encoding !== "json" && encoding !== "console") {
    throw configError("telemetry.logs.encoding", `must be json or console, got ${JSON.stringify(encoding)}`);
  }
  const outputPaths =
    l["output_paths"] === undefined ? ["stdout"] : readStringList(l["output_paths"], "telemetry.logs.output_paths");
  const errorOutputPaths =
    l["error_output_paths"] === undefined
      ? ["stderr"]
      : readStringList(l["error_output_paths"], "telemetry.logs.error_output_paths");
  return { logs: { level: level as LogsConfig["level"], encoding, outputPaths, errorOutputPaths } };
}

/**
 * Resolves a config tree (the YAML file, already parsed and expanded) into a
 * {@link SupervisorConfig}. Warnings (ignored settings) are pushed onto `warnings`.
 * @throws OpampError `invalid_argument` naming the path of the first unknown key, wrong
 *   type or bad value (`agent.config_apply_timeout: must be a duration …`).
 */
export function resolveSupervisorConfig(
  tree: unknown,
  options: ResolveConfigOptions = {},
  warnings: string[] = [],
): SupervisorConfig {
  const baseDir = options.baseDir ?? process.cwd();
  const m = readMap(tree, "", ["server", "capabilities", "agent", "storage", "telemetry", "healthcheck"], {
    extensions: "supervisor extensions (authenticators) are not available; set the credentials in server.headers",
  });
  const server = resolveServer(m["server"], baseDir);
  const capabilities = resolveCapabilities(m["capabilities"]);
  const agent = resolveAgent(m["agent"], baseDir);
  const s = readMap(m["storage"], "storage", ["directory"]);
  const h = readMap(m["healthcheck"], "healthcheck", ["endpoint"]);
  const endpoint = readString(h["endpoint"], "healthcheck.endpoint", "");
  if (endpoint !== "" && !/^[^:]*:\d{1,5}$/.test(endpoint)) {
    throw configError("healthcheck.endpoint", `must be host:port, got ${JSON.stringify(endpoint)}`);
  }
  return {
    server,
    capabilities,
    agent,
    storage: {
      directory: resolve(baseDir, readString(s["directory"], "storage.directory", DEFAULT_STORAGE_DIRECTORY)),
    },
    telemetry: resolveTelemetry(m["telemetry"], warnings),
    healthcheck: { endpoint: endpoint === "" ? undefined : endpoint },
  };
}
