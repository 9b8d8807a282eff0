/**
 * Instance UIDs: the 16 raw bytes that name one agent instance on the wire.
 */
// spec: AgentToServer.instance_uid — MUST be 16 bytes, SHOULD be a UUID v7 (RFC 9562).
import { OpampError } from "./errors.js";

/** Length of an instance UID on the wire, in bytes. */
export const INSTANCE_UID_BYTES = 16;

/**
 * Generates a new UUIDv7 (RFC 9562 §5.7): a 48-bit big-endian Unix millisecond timestamp,
 * version 7, variant `10`, and 74 random bits from `crypto.getRandomValues`. UIDs made
 * later sort after earlier ones at millisecond granularity, which keeps database indexes
 * tidy. Safe to call at any time; never throws on a platform with Web Crypto.
 */
export function newInstanceUid(): Uint8Array {
  const uid = new Uint8Array(INSTANCE_UID_BYTES);
  globalThis.crypto.getRandomValues(uid);
  const ms = Date.now();
  // 48 bits do not fit JS bitwise ops (32-bit), so split into a high 16 and a low 32.
  const high = Math.floor(ms / 2 ** 32);
  const low = ms >>> 0;
  uid[0] = (high >>> 8) & 0xff;
  uid[1] = high & 0xff;
  uid[2] = (low >>> 24) & 0xff;
  uid[3] = (low >>> 16) & 0xff;
  uid[4] = (low >>> 8) & 0xff;
  uid[5] = low & 0xff;
  uid[6] = 0x70 | (uid[6]! & 0x0f); // version 7
  uid[8] = 0x80 | (uid[8]! & 0x3f); // variant 10
  return uid;
}

/**
 * True when `value` is a `Uint8Array` of exactly 16 bytes. Any 16 bytes qualify: the spec
 * only recommends v7, and peers may send other UUID versions.
 */
export function isInstanceUid(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array && value.length === INSTANCE_UID_BYTES;
}

/**
 * Asserts that `value` is a 16-byte instance UID.
 *
 * @throws OpampError `invalid_instance_uid` otherwise, saying what was found.
 */
export function assertInstanceUid(value: unknown): asserts value is Uint8Array {
  if (isInstanceUid(value)) return;
  const found = value instanceof Uint8Array ? `${value.length} bytes` : typeof value;
  throw new OpampError("invalid_instance_uid", `instance UID must be ${INSTANCE_UID_BYTES} bytes, got ${found}`);
}

/** Char codes of each byte's two lower-case hex digits, at 2·byte and 2·byte + 1. */
const HEX_CODES = new Uint16Array(512);
for (let b = 0; b < 256; b++) {
  const digits = b.toString(16).padStart(2, "0");
  HEX_CODES[2 * b] = digits.charCodeAt(0);
  HEX_CODES[2 * b + 1] = digits.charCodeAt(1);
}
/** Where byte i's first digit goes in the 36-character form. */
const HEX_POSITION = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
/** The 36 char codes of the string being formatted; the dashes never change. */
const uidChars: number[] = new Array<number>(36).fill(0x2d);

/**
 * Formats a UID as the canonical lower-case 8-4-4-4-12 string, as the
 * `OpAMP-Instance-UID` HTTP header and logs use it.
 *
 * @throws OpampError `invalid_instance_uid` when `uid` is not 16 bytes.
 */
export function instanceUidToString(uid: Uint8Array): string {
  assertInstanceUid(uid);
  // One flat string from the char codes: a string built by `+=` is a rope that every Map
  // lookup (the server keys agents by this string, per message) must flatten first.
  for (let i = 0; i < INSTANCE_UID_BYTES; i++) {
    const code = 2 * uid[i]!;
    const at = HEX_POSITION[i]!;
    uidChars[at] = HEX_CODES[code]!;
    uidChars[at + 1] = HEX_CODES[code + 1]!;
  }
  return String.fromCharCode.apply(null, uidChars);
}

const CANONICAL = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const BARE = /^[0-9a-f]{32}$/i;

/**
 * Parses a UID string: the canonical 8-4-4-4-12 form in any letter case, or 32 hex digits
 * without dashes. No surrounding whitespace, braces or `urn:uuid:` prefix.
 *
 * @throws OpampError `invalid_instance_uid` for anything else.
 */
export function instanceUidFromString(text: string): Uint8Array {
  if (typeof text !== "string" || !(CANONICAL.test(text) || BARE.test(text))) {
    throw new OpampError("invalid_instance_uid", `not a UUID string: ${JSON.stringify(String(text)).slice(0, 80)}`);
  }
  const hex = text.replaceAll("-", "");
  const uid = new Uint8Array(INSTANCE_UID_BYTES);
  for (let i = 0; i < INSTANCE_UID_BYTES; i++) uid[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return uid;
}

/** True when both arrays hold the same bytes. Never throws; lengths may differ. */
export function instanceUidEquals(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
