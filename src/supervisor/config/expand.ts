/**
 * `${VAR}` / `${env:VAR}` expansion in a parsed YAML tree, as the Collector's confmap
 * resolver does for the supervisor's own config file: every string scalar is expanded,
 * `${env:VAR:-fallback}` gives a default, `$$` is a literal `$`. An unset variable expands
 * to the empty string (as confmap does) and is reported as a warning, so a typo is seen.
 */
import { OpampError } from "../../wire/errors.js";

/** Where the values come from; `process.env` by default. */
export type Environment = Readonly<Record<string, string | undefined>>;

// `$$` first so that `$${VAR}` stays literal; then `${...}` with no nested braces.
const REFERENCE = /\$\$|\$\{([^{}]*)\}/g;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Expands one string. @throws OpampError `invalid_argument` naming `path` for a malformed or unsupported reference. */
export function expandString(text: string, env: Environment, path: string, warnings: string[]): string {
  return text.replace(REFERENCE, (match, body: string | undefined) => {
    if (match === "$$") return "$";
    let reference = body ?? "";
    const colon = reference.indexOf(":");
    if (colon !== -1 && NAME.test(reference.slice(0, colon)) && reference[colon + 1] !== "-") {
      const scheme = reference.slice(0, colon);
      if (scheme !== "env") {
        throw new OpampError(
          "invalid_argument",
          `${path}: \${${reference}} uses the "${scheme}" provider; only \${VAR} and \${env:VAR} are supported`,
        );
      }
      reference = reference.slice(colon + 1);
    }
    const dash = reference.indexOf(":-");
    const name = dash === -1 ? reference : reference.slice(0, dash);
    const fallback = dash === -1 ? undefined : reference.slice(dash + 2);
    if (!NAME.test(name)) {
      throw new OpampError("invalid_argument", `${path}: ${JSON.stringify(match)} is not a valid variable reference`);
    }
    const value = env[name];
    if (value !== undefined && value !== "") return value;
    if (fallback !== undefined) return fallback;
    if (value === undefined) warnings.push(`${path}: environment variable ${name} is not set; expanded to ""`);
    return "";
  });
}

/** Returns a copy of `tree` with every string scalar expanded (map keys are left as written). */
export function expandTree(tree: unknown, env: Environment, warnings: string[], path = ""): unknown {
  if (typeof tree === "string") return expandString(tree, env, path || "(root)", warnings);
  if (Array.isArray(tree)) return tree.map((item, i) => expandTree(item, env, warnings, `${path}[${i}]`));
  if (tree !== null && typeof tree === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(tree)) {
      out[key] = expandTree(value, env, warnings, path === "" ? key : `${path}.${key}`);
    }
    return out;
  }
  return tree;
}
