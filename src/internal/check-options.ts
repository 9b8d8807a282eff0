/**
 * Construction checks shared by the option resolvers: unknown keys, hooks that are not
 * functions, and error messages that say what was received ("1000" is a string).
 */
import { OpampError } from "../wire/errors.js";

/**
 * What a value is, for error messages: `"1000" (a string)`, `1000 (a number)`,
 * `an array`, `null`… so that `"1000"` is not mistaken for the number it looks like.
 */
export function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  if (Array.isArray(value)) return "an array";
  switch (typeof value) {
    case "string": {
      const text = value.length > 60 ? `${value.slice(0, 57)}...` : value;
      return `${JSON.stringify(text)} (a string)`;
    }
    case "number":
    case "boolean":
      return `${String(value)} (a ${typeof value})`;
    case "bigint":
      return `${String(value)}n (a bigint)`;
    case "function":
      return "a function";
    case "symbol":
      return "a symbol";
    default: {
      const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
      return typeof name === "string" && name !== "Object" ? `a ${name}` : "an object";
    }
  }
}

/**
 * Refuses keys of `value` that are not in `known` (a typo would otherwise be ignored in
 * silence, leaving a default in force).
 * @param where - the option group's name for the message, e.g. `"transport"`; "" for the top level
 * @throws OpampError `invalid_argument` naming the unknown key and the known ones.
 */
export function rejectUnknownKeys(value: object, known: readonly string[], where: string): void {
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue;
    const name = where === "" ? key : `${where}.${key}`;
    throw new OpampError(
      "invalid_argument",
      `unknown option ${name}; ${where === "" ? "the options" : where} take${where === "" ? "" : "s"} ${known.join(", ")}`,
    );
  }
}

/**
 * An option group: undefined stays undefined, an object is checked for unknown keys.
 * @throws OpampError `invalid_argument` when the group is not an object or has an unknown key.
 */
export function optionGroup<T extends object>(
  value: T | undefined,
  known: readonly string[],
  where: string,
): T | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new OpampError("invalid_argument", `${where} must be an object, got ${describeValue(value)}`);
  }
  rejectUnknownKeys(value, known, where);
  return value;
}

/**
 * Checks that every given hook is a function.
 * @throws OpampError `invalid_argument` naming the first that is not.
 */
export function requireFunctions(value: object, where: string): void {
  for (const [key, fn] of Object.entries(value)) {
    if (fn !== undefined && typeof fn !== "function") {
      throw new OpampError("invalid_argument", `${where}.${key} must be a function, got ${describeValue(fn)}`);
    }
  }
}
