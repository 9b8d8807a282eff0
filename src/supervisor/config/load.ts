/**
 * Reading a supervisor config file: YAML parse, `${VAR}` expansion, resolution.
 */
import { readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { parse } from "yaml";
import { OpampError } from "../../wire/errors.js";
import { type Environment, expandTree } from "./expand.js";
import { resolveSupervisorConfig, type SupervisorConfig } from "./supervisor-config.js";

/** A loaded config and what was worth a warning while reading it. */
export interface LoadedConfig {
  /** The resolved config, defaults filled in. */
  readonly config: SupervisorConfig;
  /** Unset variables expanded to "", settings read but ignored. */
  readonly warnings: readonly string[];
}

/** Options of {@link parseSupervisorConfig} and {@link loadSupervisorConfig}. */
export interface ParseConfigOptions {
  /** Values for `${VAR}`. Default `process.env`. */
  readonly env?: Environment;
  /** Relative paths resolve from here. Default the config file's directory (load) or the working directory (parse). */
  readonly baseDir?: string;
}

/**
 * Parses the text of a supervisor config (the Collector opampsupervisor's YAML schema).
 * @throws OpampError `invalid_argument`: YAML syntax errors with their line, unknown keys
 *   and wrong types with their dotted path.
 */
export function parseSupervisorConfig(text: string, options: ParseConfigOptions = {}): LoadedConfig {
  let tree: unknown;
  try {
    tree = parse(text, { uniqueKeys: true, prettyErrors: true });
  } catch (cause) {
    throw new OpampError("invalid_argument", `the supervisor config is not valid YAML: ${(cause as Error).message}`, {
      cause,
    });
  }
  const warnings: string[] = [];
  const expanded = expandTree(tree, options.env ?? process.env, warnings);
  const config = resolveSupervisorConfig(
    expanded,
    options.baseDir === undefined ? {} : { baseDir: options.baseDir },
    warnings,
  );
  return { config, warnings };
}

/**
 * Reads and parses a supervisor config file (`opamp-supervisor --config FILE`).
 * @throws OpampError `invalid_argument` when the file cannot be read or is not a valid config.
 */
export async function loadSupervisorConfig(path: string, options: ParseConfigOptions = {}): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (cause) {
    throw new OpampError("invalid_argument", `cannot read the supervisor config ${path}: ${(cause as Error).message}`, {
      cause,
    });
  }
  try {
    return parseSupervisorConfig(text, { ...options, baseDir: options.baseDir ?? dirname(path) });
  } catch (cause) {
    const error = OpampError.from(cause, "invalid_argument");
    throw new OpampError(error.code, `${path}: ${error.message}`, { cause: error });
  }
}
