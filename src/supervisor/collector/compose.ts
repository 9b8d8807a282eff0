/**
 * Composes the Collector's effective config from its layers, in `agent.config_files`
 * order: own telemetry (`$OWN_TELEMETRY_CONFIG`), local files, the injected opamp
 * extension (`$OPAMP_EXTENSION_CONFIG`) and the remote config (`$REMOTE_CONFIG`). A
 * special entry left out of `config_files` is added where the Collector's supervisor adds
 * it: own telemetry first, the extension and the remote config last.
 */
import { readFile } from "node:fs/promises";
import { parse, stringify } from "yaml";
import type {
  AgentRemoteConfig,
  ConnectionSettingsOffers,
  TelemetryConnectionSettings,
} from "../../gen/opamp/v1/opamp_pb.js";
import { OpampError } from "../../wire/errors.js";
import { SPECIAL_CONFIG_FILES } from "../config/supervisor-config.js";
import { type ConfigTree, mergeLayer } from "./merge.js";

/** Everything a composition depends on. */
export interface ComposeInput {
  /** The remote config to run; undefined when none was ever received (or accepted). */
  readonly remote: AgentRemoteConfig | undefined;
  readonly acceptsRemoteConfig: boolean;
  readonly configFiles: readonly string[];
  readonly ownTelemetry: ConnectionSettingsOffers | undefined;
  /** Attributes of the agent description, written as the Collector's telemetry resource. */
  readonly resourceAttributes: Readonly<Record<string, string>>;
  readonly extension: {
    readonly instanceUid: string;
    readonly endpoint: string;
    readonly ppid: number;
    readonly ppidPollIntervalMs: number;
    readonly reportsAvailableComponents: boolean;
    readonly includeResourceAttributes: boolean;
  };
  /** The Collector has the `service.AllowNoPipelines` feature gate (no nop pipeline needed). */
  readonly allowNoPipelines: boolean;
  /** A local file that cannot be read or parsed is skipped (as the Collector's supervisor does) and reported here. */
  readonly warn: (message: string) => void;
}

/** A composed config. */
export interface ComposedConfig {
  /** The YAML written to effective.yaml. */
  readonly yaml: string;
  /**
   * False when the remote config is an empty map: the Collector is stopped and not
   * started (it would run nothing), and the config counts as applied.
   */
  readonly run: boolean;
}

const NOOP_PIPELINE: ConfigTree = {
  receivers: { nop: null },
  exporters: { nop: null },
  service: { pipelines: { traces: { receivers: ["nop"], exporters: ["nop"] } } },
};

function goDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** The injected extension: the Collector reports to the supervisor's local OpAMP server. */
export function opampExtensionLayer(input: ComposeInput["extension"]): ConfigTree {
  return {
    extensions: {
      opamp: {
        instance_uid: input.instanceUid,
        server: { ws: { endpoint: input.endpoint, tls: { insecure: true } } },
        ppid: input.ppid,
        ppid_poll_interval: goDuration(input.ppidPollIntervalMs),
        capabilities: { reports_available_components: input.reportsAvailableComponents },
        ...(input.includeResourceAttributes ? { agent_description: { include_resource_attributes: true } } : {}),
      },
    },
    service: { extensions: ["opamp"] },
  };
}

function otlpExporter(settings: TelemetryConnectionSettings): ConfigTree {
  const headers = Object.fromEntries((settings.headers?.headers ?? []).map((h) => [h.key, h.value]));
  return {
    otlp: {
      protocol: "http/protobuf",
      endpoint: settings.destinationEndpoint,
      ...(Object.keys(headers).length > 0 ? { headers } : {}),
    },
  };
}

/** `service.telemetry` exporters for the own-telemetry destinations the server offered. */
export function ownTelemetryLayer(offers: ConnectionSettingsOffers | undefined): ConfigTree {
  const telemetry: ConfigTree = {};
  const traces = offers?.ownTraces;
  if (traces !== undefined && traces.destinationEndpoint !== "") {
    telemetry["traces"] = { processors: [{ batch: { exporter: otlpExporter(traces) } }] };
  }
  const metrics = offers?.ownMetrics;
  if (metrics !== undefined && metrics.destinationEndpoint !== "") {
    telemetry["metrics"] = { readers: [{ periodic: { exporter: otlpExporter(metrics) } }] };
  }
  const logs = offers?.ownLogs;
  if (logs !== undefined && logs.destinationEndpoint !== "") {
    telemetry["logs"] = { processors: [{ batch: { exporter: otlpExporter(logs) } }] };
  }
  return Object.keys(telemetry).length === 0 ? {} : { service: { telemetry } };
}

function parseLayer(text: string, what: string): ConfigTree {
  let tree: unknown;
  try {
    tree = parse(text);
  } catch (cause) {
    throw new OpampError("invalid_argument", `${what} is not valid YAML: ${(cause as Error).message}`, { cause });
  }
  if (tree === null || tree === undefined) return {};
  if (typeof tree !== "object" || Array.isArray(tree)) {
    throw new OpampError("invalid_argument", `${what} must be a YAML mapping`);
  }
  return tree as ConfigTree;
}

/** The config_files list with the special entries the user left out added. */
export function withSpecialFiles(configFiles: readonly string[]): string[] {
  const files = [...configFiles];
  const [own, extension, remote] = SPECIAL_CONFIG_FILES;
  if (!files.includes(own)) files.unshift(own);
  if (!files.includes(extension)) files.push(extension);
  if (!files.includes(remote)) files.push(remote);
  return files;
}

/**
 * Composes the effective config.
 * @throws OpampError `invalid_argument` when a remote config file is not a YAML mapping
 *   (reported as FAILED with this message).
 */
export async function composeCollectorConfig(input: ComposeInput): Promise<ComposedConfig> {
  const merged: ConfigTree = {};
  const remoteFiles = input.acceptsRemoteConfig ? (input.remote?.config?.configMap ?? {}) : {};
  const remoteNames = Object.keys(remoteFiles);
  if (input.acceptsRemoteConfig && remoteNames.length === 0 && !input.allowNoPipelines) {
    mergeLayer(merged, structuredClone(NOOP_PIPELINE));
  }
  for (const entry of withSpecialFiles(input.configFiles)) {
    if (entry === "$OWN_TELEMETRY_CONFIG") {
      mergeLayer(merged, ownTelemetryLayer(input.ownTelemetry));
      if (Object.keys(input.resourceAttributes).length > 0) {
        mergeLayer(merged, { service: { telemetry: { resource: { ...input.resourceAttributes } } } });
      }
    } else if (entry === "$OPAMP_EXTENSION_CONFIG") {
      mergeLayer(merged, opampExtensionLayer(input.extension));
    } else if (entry === "$REMOTE_CONFIG") {
      // Named files in sorted order, the instance file ("") last, as the Collector's supervisor.
      const names = remoteNames.filter((name) => name !== "").sort();
      if (remoteNames.includes("")) names.push("");
      for (const name of names) {
        const body = new TextDecoder().decode(remoteFiles[name]!.body);
        mergeLayer(merged, parseLayer(body, `remote config file ${JSON.stringify(name)}`));
      }
    } else {
      let text: string;
      try {
        text = await readFile(entry, "utf8");
      } catch (cause) {
        input.warn(`local config file ${entry} skipped: ${(cause as Error).message}`);
        continue;
      }
      try {
        mergeLayer(merged, parseLayer(text, `local config file ${entry}`));
      } catch (cause) {
        input.warn(`local config file ${entry} skipped: ${(cause as Error).message}`);
      }
    }
  }
  const run = !(input.acceptsRemoteConfig && input.remote !== undefined && remoteNames.length === 0);
  return { yaml: stringify(merged, { lineWidth: 0 }), run };
}

/**
 * The bootstrap config: the extension alone (plus a nop pipeline without
 * AllowNoPipelines), and no metrics endpoint: a run that only reports its description has
 * no business binding the Collector's :8888, which the real run may hold a moment later.
 */
export function bootstrapConfig(extension: ComposeInput["extension"], allowNoPipelines: boolean): string {
  const merged: ConfigTree = {};
  if (!allowNoPipelines) mergeLayer(merged, structuredClone(NOOP_PIPELINE));
  mergeLayer(merged, { service: { telemetry: { metrics: { level: "none" } } } });
  mergeLayer(merged, opampExtensionLayer(extension));
  return stringify(merged, { lineWidth: 0 });
}
