/**
 * WebSocket close reasons. RFC 6455 §5.5 limits a control frame's payload to 125 bytes, two
 * of which hold the close code: a longer reason makes `ws.close()` throw a RangeError, and a
 * reason built from an error message (a decoder's text, a peer's string) can be any length.
 */

/** Largest close reason, in UTF-8 bytes (RFC 6455 §5.5: 125-byte payload minus the 2-byte code). */
export const MAX_CLOSE_REASON_BYTES = 123;

const ELLIPSIS = "…"; // 3 bytes in UTF-8

/** UTF-8 length of one code point; a lone surrogate is sent as U+FFFD (3 bytes), as Buffer does. */
function utf8Length(codePoint: number): number {
  if (codePoint < 0x80) return 1;
  if (codePoint < 0x800) return 2;
  if (codePoint < 0x10000) return 3;
  return 4;
}

/**
 * `text` as a close reason: unchanged when it fits in {@link MAX_CLOSE_REASON_BYTES} UTF-8
 * bytes, otherwise cut on a character boundary (never inside a UTF-8 sequence or a surrogate
 * pair) and ended with "…", so the result always fits. Never throws.
 */
export function closeReason(text: string): string {
  // Fast path: at most 3 bytes per UTF-16 unit, so short strings always fit.
  if (text.length * 3 <= MAX_CLOSE_REASON_BYTES) return text;
  let total = 0;
  for (const char of text) total += utf8Length(char.codePointAt(0)!);
  if (total <= MAX_CLOSE_REASON_BYTES) return text;
  const budget = MAX_CLOSE_REASON_BYTES - utf8Length(ELLIPSIS.codePointAt(0)!);
  let used = 0;
  let end = 0;
  for (const char of text) {
    const size = utf8Length(char.codePointAt(0)!);
    if (used + size > budget) break;
    used += size;
    end += char.length;
  }
  return text.slice(0, end) + ELLIPSIS;
}
