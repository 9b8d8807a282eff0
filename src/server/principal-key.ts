/**
 * The identity an instance UID is bound to: the key of the principal that `authenticate`
 * attached to the connection that first spoke for the UID.
 */
import { OpampError } from "../wire/index.js";

/**
 * The default principal key: a string principal is its own key; an object's `id` property
 * (a string or a number) is its key; any other object is keyed by its JSON with sorted keys
 * (bigints as strings). `undefined` and `null` have no key: the UID is then not bound.
 *
 * @throws OpampError `invalid_argument` when the principal cannot be written as JSON (a cycle).
 */
export function defaultPrincipalKey(principal: unknown): string | undefined {
  if (principal === undefined || principal === null) return undefined;
  if (typeof principal === "string") return principal;
  if (typeof principal !== "object") return `${typeof principal}:${String(principal)}`;
  const id = (principal as { id?: unknown }).id;
  if (typeof id === "string" || typeof id === "number") return String(id);
  try {
    return JSON.stringify(principal, (_key, value: unknown) => {
      if (typeof value === "bigint") return value.toString();
      if (value === null || typeof value !== "object" || Array.isArray(value)) return value;
      const sorted: Record<string, unknown> = {};
      for (const k of Object.keys(value).sort()) sorted[k] = (value as Record<string, unknown>)[k];
      return sorted;
    });
  } catch (e) {
    throw new OpampError("invalid_argument", "the principal cannot be keyed: give hooks.principalKey", { cause: e });
  }
}
