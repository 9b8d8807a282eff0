/**
 * Byte-array helpers shared inside the SDK (not exported from the package root).
 */

/**
 * True when both are undefined, or both hold the same bytes. "Never set" (undefined)
 * differs from an empty array: an empty sub-message encodes to zero bytes and must still
 * count as changed the first time it is set.
 */
export function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The arrays one after the other, in one new plain Uint8Array. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  let total = 0;
  for (const part of parts) total += part.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
