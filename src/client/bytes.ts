/**
 * Byte comparison for the client. Unlike `hashEquals` from the wire helpers, "never set"
 * (undefined) differs from an empty array here: an empty sub-message encodes to zero
 * bytes and must still count as changed the first time it is set.
 */

/** True when both are undefined, or both hold the same bytes. */
export function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
