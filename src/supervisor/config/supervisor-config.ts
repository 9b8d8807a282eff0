/**
 * The supervisor's config: the Collector opampsupervisor's schema (server, capabilities,
 * agent, storage, telemetry, healthcheck), read as written, plus a few opamp-sdk settings
 * (restart backoff, stop timeout, log rotation, packages, re-enrollment) under the same
 * sections. Resolved once into {@link SupervisorConfig}; every default is a `DEFAULT_*`.
 */
import { readFileSync, statSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { instanceUidFromString } from "../../wire/uid.js";
import { parseEd25519PublicKey } from "../packages/signature.js";
import {
  configError,
  readBool,
  readDuration,
  readHeaders,
  readInt,
  readMap,
  readString,
  readStringList,
  readStringMap,
} from "./read.js";

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

function readFileSetting(path: string, file: string, baseDir: string): string {
  try {
    return readFileSync(resolve(baseDir, file), "utf8");
  } catch (cause) {
    throw configError(path, `cannot read ${file}: ${(cause as Error).message}`);
  }
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

function resolvePackage(raw: unknown, executable: string, baseDir: string): PackageConfig {
  const m = readMap(
    raw,
    "agent.package",
    ["agent_binary", "archive", "public_key", "public_key_file", "require_signature", "keep_versions"],
    { verifier: "cosign verification is not available; use public_key (ed25519)" },
  );
  const archive = readString(m["archive"], "agent.package.archive", "");
  if (archive !== "" && archive !== "tar.gz") {
    throw configError("agent.package.archive", `must be "" or "tar.gz", got ${JSON.stringify(archive)}`);
  }
  const inline = readString(m["public_key"], "agent.package.public_key", "");
  const file = readString(m["public_key_file"], "agent.package.public_key_file", "");
  if (inline !== "" && file !== "")
    throw configError("agent.package.public_key", "set public_key or public_key_file, not both");
  const publicKey = file !== "" ? readFileSetting("agent.package.public_key_file", file, baseDir) : inline;
  // Checked here so that `--check` finds a bad key, not the first package offer.
  if (publicKey !== "") parseEd25519PublicKey(publicKey);
  const binary = readString(m["agent_binary"], "agent.package.agent_binary", "") || executable.split(/[\\/]/).pop()!;
  if (/[\\/]/.test(binary) || binary === "." || binary === "..") {
    throw configError("agent.package.agent_binary", "must be a file name, not a path");
  }
  return {
    agentBinary: binary,
    archive,
    publicKey: publicKey === "" ? undefined : publicKey,
    requireSignature: readBool(m["require_signature"], "agent.package.require_signature", publicKey !== ""),
    keepVersions: readInt(m["keep_versions"], "agent.package.keep_versions", DEFAULT_PACKAGE_KEEP_VERSIONS, 1, 100),
    maxBytes: DEFAULT_PACKAGE_MAX_BYTES,
  };
}

function resolveRestart(raw: unknown): RestartConfig {
  const m = readMap(raw, "agent.restart", ["initial_delay", "max_delay", "multiplier", "jitter", "stable_after"]);
  const initialDelayMs = readDuration(
    m["initial_delay"],
    "agent.restart.initial_delay",
    DEFAULT_RESTART_INITIAL_DELAY_MS,
  );
  const maxDelayMs = readDuration(m["max_delay"], "agent.restart.max_delay", DEFAULT_RESTART_MAX_DELAY_MS);
  if (maxDelayMs < initialDelayMs) throw configError("agent.restart.max_delay", "must be at least initial_delay");
  const number = (key: string, fallback: number, min: number, max: number): number => {
    const v = m[key];
    if (v === undefined || v === null) return fallback;
    const n = typeof v === "string" ? Number(v) : v;
    if (typeof n !== "number" || !Number.isFinite(n) || n < min || n > max) {
      throw configError(`agent.restart.${key}`, `must be a number between ${min} and ${max}, got ${JSON.stringify(v)}`);
    }
    return n;
  };
  return {
    initialDelayMs,
    maxDelayMs,
    multiplier: number("multiplier", DEFAULT_RESTART_MULTIPLIER, 1, 100),
    jitter: number("jitter", DEFAULT_RESTART_JITTER, 0, 1),
    stableAfterMs: readDuration(m["stable_after"], "agent.restart.stable_after", DEFAULT_RESTART_STABLE_AFTER_MS),
  };
}

function resolveAgent(raw: unknown, baseDir: string): AgentConfig {
  const m = readMap(
    raw,
    "agent",
    [
      "executable",
      "instance_id",
      "orphan_detection_interval",
      "description",
      "config_apply_timeout",
      "bootstrap_timeout",
      "opamp_server_port",
      "passthrough_logs",
      "collector_crash_log_snippet_kib",
      "automatic_config_rollback",
      "use_hup_config_reload",
      "validate_config",
      "config_files",
      "args",
      "env",
      "package",
      "stop_timeout",
      "restart",
      "log_max_size_mib",
      "log_max_files",
    ],
    {
      opamp_server_unix_socket: "the Collector's extension is reached over loopback TCP",
      opamp_server_unix_socket_mode: "the Collector's extension is reached over loopback TCP",
      startup_fallback_configs: "list the fallback as a local config_files entry instead",
    },
  );
  const executableRaw = readString(m["executable"], "agent.executable", "");
  if (executableRaw === "") throw configError("agent.executable", "must be set");
  const executable = resolve(baseDir, executableRaw);
  try {
    if (!statSync(executable).isFile()) throw configError("agent.executable", `${executable} is not a file`);
  } catch (cause) {
    if ((cause as { code?: unknown }).code !== undefined) {
      throw configError("agent.executable", `cannot stat ${executable}: ${(cause as Error).message}`);
    }
    throw cause;
  }
  const instanceId = readString(m["instance_id"], "agent.instance_id", "");
  if (instanceId !== "") {
    try {
      instanceUidFromString(instanceId);
    } catch {
      throw configError("agent.instance_id", `must be a UUID, got ${JSON.stringify(instanceId)}`);
    }
  }
  const d = readMap(m["description"], "agent.description", [
    "identifying_attributes",
    "non_identifying_attributes",
    "include_resource_attributes",
  ]);
  const configFiles = readStringList(m["config_files"], "agent.config_files").map((file, i) => {
    if (!file.startsWith("$")) return isAbsolute(file) ? file : resolve(baseDir, file);
    if (!(SPECIAL_CONFIG_FILES as readonly string[]).includes(file)) {
      throw configError(`agent.config_files[${i}]`, `${file} is not one of ${SPECIAL_CONFIG_FILES.join(", ")}`);
    }
    return file;
  });
  const useHup = readBool(m["use_hup_config_reload"], "agent.use_hup_config_reload", false);
  if (useHup && process.platform === "win32") {
    throw configError("agent.use_hup_config_reload", "is not supported on Windows");
  }
  return {
    executable,
    instanceId: instanceId === "" ? undefined : instanceId,
    orphanDetectionIntervalMs: readDuration(
      m["orphan_detection_interval"],
      "agent.orphan_detection_interval",
      DEFAULT_ORPHAN_DETECTION_INTERVAL_MS,
    ),
    description: {
      identifyingAttributes: readStringMap(d["identifying_attributes"], "agent.description.identifying_attributes"),
      nonIdentifyingAttributes: readStringMap(
        d["non_identifying_attributes"],
        "agent.description.non_identifying_attributes",
      ),
      includeResourceAttributes: readBool(
        d["include_resource_attributes"],
        "agent.description.include_resource_attributes",
        false,
      ),
    },
    configApplyTimeoutMs: readDuration(
      m["config_apply_timeout"],
      "agent.config_apply_timeout",
      DEFAULT_CONFIG_APPLY_TIMEOUT_MS,
    ),
    bootstrapTimeoutMs: readDuration(m["bootstrap_timeout"], "agent.bootstrap_timeout", DEFAULT_BOOTSTRAP_TIMEOUT_MS),
    opampServerPort: readInt(m["opamp_server_port"], "agent.opamp_server_port", 0, 0, 65535),
    passthroughLogs: readBool(m["passthrough_logs"], "agent.passthrough_logs", false),
    crashLogSnippetKib: readInt(
      m["collector_crash_log_snippet_kib"],
      "agent.collector_crash_log_snippet_kib",
      DEFAULT_CRASH_LOG_SNIPPET_KIB,
      0,
      1024,
    ),
    automaticConfigRollback: readBool(m["automatic_config_rollback"], "agent.automatic_config_rollback", true),
    useHupConfigReload: useHup,
    validateConfig: readBool(m["validate_config"], "agent.validate_config", false),
    configFiles,
    args: readStringList(m["args"], "agent.args"),
    env: readStringMap(m["env"], "agent.env"),
    stopTimeoutMs: readDuration(m["stop_timeout"], "agent.stop_timeout", DEFAULT_STOP_TIMEOUT_MS),
    restart: resolveRestart(m["restart"]),
    logMaxSizeMib: readInt(m["log_max_size_mib"], "agent.log_max_size_mib", DEFAULT_LOG_MAX_SIZE_MIB, 1, 1024 * 1024),
    logMaxFiles: readInt(m["log_max_files"], "agent.log_max_files", DEFAULT_LOG_MAX_FILES, 0, 1000),
    package: resolvePackage(m["package"], executable, baseDir),
  };
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
