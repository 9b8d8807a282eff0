/**
 * Reading config files back: an AgentConfigMap holds bodies as bytes; these give the text.
 */
import type { AgentConfigMap } from "../gen/opamp/v1/opamp_pb.js";

const utf8 = new TextDecoder("utf-8");

/**
 * The text (UTF-8) of one file of a config map: of `name`, or, without a name, of the only
 * file (a single-file agent's config, whatever its key). Accepts what carries a config
 * map: an AgentConfigMap, an EffectiveConfig or an AgentRemoteConfig (`{ configMap }` /
 * `{ config }`), or undefined. Returns undefined when there is no such file (or, without
 * a name, not exactly one). Never throws; invalid UTF-8 becomes U+FFFD.
 *
 * @example
 * configFileText(agent.effectiveConfig, "collector.yaml") // "receivers: …"
 */
export function configFileText(
  config:
    | AgentConfigMap
    | { readonly configMap?: AgentConfigMap | undefined }
    | { readonly config?: AgentConfigMap | undefined }
    | undefined,
  name?: string,
): string | undefined {
  const files = filesOf(config);
  if (files === undefined) return undefined;
  if (name !== undefined) {
    const file = Object.hasOwn(files, name) ? files[name] : undefined;
    return file === undefined ? undefined : utf8.decode(file.body);
  }
  const all = Object.values(files);
  return all.length === 1 && all[0] !== undefined ? utf8.decode(all[0].body) : undefined;
}

function filesOf(config: unknown): AgentConfigMap["configMap"] | undefined {
  if (typeof config !== "object" || config === null) return undefined;
  const direct = (config as { configMap?: unknown }).configMap;
  if (typeof direct === "object" && direct !== null) {
    // An AgentConfigMap has configMap: files; an EffectiveConfig has configMap: AgentConfigMap.
    // A file may itself be named "configMap": a file has a byte body, a map does not.
    const nested = (direct as { configMap?: unknown }).configMap;
    if (typeof nested === "object" && nested !== null && !((nested as { body?: unknown }).body instanceof Uint8Array)) {
      return nested as AgentConfigMap["configMap"];
    }
    return direct as AgentConfigMap["configMap"];
  }
  const remote = (config as { config?: unknown }).config;
  if (typeof remote === "object" && remote !== null) return filesOf(remote);
  return undefined;
}
