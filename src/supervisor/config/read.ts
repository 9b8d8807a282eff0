/**
 * Small typed readers over a parsed YAML tree. Each names the dotted path of the value it
 * reads in its error, so `agent.config_apply_timeout: five` fails with exactly that path.
 * Scalars are read weakly, as the Collector's mapstructure decoding does: `"8080"` is a
 * port, `8080` is a string where a string is expected.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { OpampError } from "../../wire/errors.js";

/** Builds the error every reader throws. */
export function configError(path: string, message: string): OpampError {
  return new OpampError("invalid_argument", `${path}: ${message}`);
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a map";
  return `${typeof value} ${JSON.stringify(value)}`;
}

/**
 * A map with only the `known` keys (absent or null → empty). Keys in `unsupported` are
 * recognised settings of the Collector's supervisor that this one does not implement:
 * they fail with that reason rather than as unknown.
 */
export function readMap(
  value: unknown,
  path: string,
  known: readonly string[],
  unsupported: Readonly<Record<string, string>> = {},
): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value))
    throw configError(path, `must be a map, got ${describe(value)}`);
  for (const key of Object.keys(value)) {
    const full = path === "" ? key : `${path}.${key}`;
    const why = unsupported[key];
    if (why !== undefined) throw configError(full, `is not supported by opamp-sdk's supervisor: ${why}`);
    if (!known.includes(key)) {
      throw configError(
        full,
        `is not a known setting (${path === "" ? "top level" : path} takes: ${known.join(", ")})`,
      );
    }
  }
  return value as Record<string, unknown>;
}

/** A string; numbers and booleans are taken as their text. */
export function readString(value: unknown, path: string, fallback: string): string {
  if (value === undefined || value === null) return fallback;
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  throw configError(path, `must be a string, got ${describe(value)}`);
}

/** A boolean; the strings "true" and "false" are accepted (they come out of `${VAR}`). */
export function readBool(value: unknown, path: string, fallback: boolean): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value === "boolean") return value;
  if (value === "true") return true;
  if (value === "false") return false;
  throw configError(path, `must be true or false, got ${describe(value)}`);
}

/** An integer in [min, max]; a string of digits is accepted. */
export function readInt(value: unknown, path: string, fallback: number, min: number, max: number): number {
  if (value === undefined || value === null) return fallback;
  const n = typeof value === "string" && /^-?\d+$/.test(value.trim()) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n))
    throw configError(path, `must be an integer, got ${describe(value)}`);
  if (n < min || n > max) throw configError(path, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

const UNITS_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Parses a Go duration (`5s`, `250ms`, `1m30s`, `1.5h`) into milliseconds; undefined if malformed. */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (trimmed === "0") return 0;
  const part = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let index = 0;
  while (index < trimmed.length) {
    part.lastIndex = index;
    const match = part.exec(trimmed);
    if (match === null) return undefined;
    total += Number(match[1]) * UNITS_MS[match[2]!]!;
    index = part.lastIndex;
  }
  return index === 0 ? undefined : total;
}

/** A positive (or, with `allowZero`, non-negative) Go duration string, in milliseconds. */
export function readDuration(value: unknown, path: string, fallbackMs: number, allowZero = false): number {
  if (value === undefined || value === null) return fallbackMs;
  const ms = typeof value === "string" ? parseDuration(value) : undefined;
  if (ms === undefined)
    throw configError(path, `must be a duration such as 5s, 250ms or 1m30s, got ${describe(value)}`);
  if (ms < 0 || (!allowZero && ms === 0)) throw configError(path, `must be ${allowZero ? "zero or more" : "positive"}`);
  return ms;
}

/** A list of strings. */
export function readStringList(value: unknown, path: string): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw configError(path, `must be a list, got ${describe(value)}`);
  return value.map((item, i) => readString(item, `${path}[${i}]`, ""));
}

/** A map of strings (attribute overrides, environment variables). */
export function readStringMap(value: unknown, path: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value))
    throw configError(path, `must be a map, got ${describe(value)}`);
  const out: Record<string, string> = {};
  for (const [key, item] of Object.entries(value)) out[key] = readString(item, `${path}.${key}`, "");
  return out;
}

/**
 * HTTP headers: each value a string or a list of strings (Go's `http.Header`); a list is
 * sent joined with ", ", as one header line.
 */
export function readHeaders(value: unknown, path: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value))
    throw configError(path, `must be a map, got ${describe(value)}`);
  const out: Record<string, string> = {};
  for (const [key, item] of Object.entries(value)) {
    const values = Array.isArray(item)
      ? readStringList(item, `${path}.${key}`)
      : [readString(item, `${path}.${key}`, "")];
    if (/[\r\n]/.test(values.join(""))) throw configError(`${path}.${key}`, "must not contain line breaks");
    out[key] = values.join(", ");
  }
  return out;
}

/** Reads a file a setting names (relative to `baseDir`). */
export function readFileSetting(path: string, file: string, baseDir: string): string {
  try {
    return readFileSync(resolve(baseDir, file), "utf8");
  } catch (cause) {
    throw configError(path, `cannot read ${file}: ${(cause as Error).message}`);
  }
}
