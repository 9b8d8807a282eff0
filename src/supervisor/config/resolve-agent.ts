/**
 * Resolution of the `agent:` section (with opamp-sdk's `restart` and `package` settings).
 */
import { statSync } from "node:fs";
import { isAbsolute, resolve } from "node:path";
import { instanceUidFromString } from "../../wire/uid.js";
import { parseEd25519PublicKey } from "../packages/signature.js";
import {
  configError,
  readBool,
  readDuration,
  readFileSetting,
  readInt,
  readMap,
  readString,
  readStringList,
  readStringMap,
} from "./read.js";
import {
  type AgentConfig,
  DEFAULT_BOOTSTRAP_TIMEOUT_MS,
  DEFAULT_CONFIG_APPLY_TIMEOUT_MS,
  DEFAULT_CRASH_LOG_SNIPPET_KIB,
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
  type PackageConfig,
  type RestartConfig,
  SPECIAL_CONFIG_FILES,
} from "./types.js";

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

/** Resolves `agent:`. @throws OpampError `invalid_argument` naming the path. */
export function resolveAgent(raw: unknown, baseDir: string): AgentConfig {
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
