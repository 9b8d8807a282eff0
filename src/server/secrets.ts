/**
 * Comparing secrets without telling an attacker, through response times, how much of a
 * guess was right. For `authenticate` hooks that check bearer tokens or API keys.
 */
import { createHash, timingSafeEqual } from "node:crypto";

const encoder = new TextEncoder();

function digest(value: string | Uint8Array): Buffer {
  return createHash("sha256")
    .update(typeof value === "string" ? encoder.encode(value) : value)
    .digest();
}

/**
 * True when `a` and `b` hold the same bytes (strings as UTF-8), compared in constant time.
 * Both are hashed with SHA-256 first and the digests compared with `timingSafeEqual`, so
 * neither the position of the first difference nor a difference in length shows in the
 * time taken; only hashing time grows with an input's length, which reveals nothing about
 * a stored secret beyond what its owner already chose. Node only (`node:crypto`).
 *
 * @example
 * authenticate: ({ headers }) =>
 *   safeEqual(bearerToken(headers) ?? "", process.env.OPAMP_TOKEN ?? "")
 *     ? { accept: true }
 *     : { accept: false, status: 401, headers: { "WWW-Authenticate": "Bearer" } },
 */
export function safeEqual(a: string | Uint8Array, b: string | Uint8Array): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/** RFC 6750 §2.1: `Bearer` (any case), one or more spaces, then a b64token. */
const BEARER = /^bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/**
 * The token of an `Authorization: Bearer <token>` header, or undefined when there is no
 * such header or it is not a well-formed bearer credential (another scheme, an empty or
 * malformed token, several values joined by a comma). Header names are matched without
 * regard to case, so both {@link AuthRequest} headers and a web `Headers` work.
 */
export function bearerToken(
  headers: Readonly<Record<string, string | string[] | undefined>> | Headers,
): string | undefined {
  let value: string | string[] | null | undefined;
  if (typeof (headers as Headers).get === "function") value = (headers as Headers).get("authorization");
  else {
    const record = headers as Readonly<Record<string, string | string[] | undefined>>;
    value = record.authorization;
    if (value === undefined) {
      const key = Object.keys(record).find((name) => name.toLowerCase() === "authorization");
      value = key === undefined ? undefined : record[key];
    }
  }
  if (typeof value !== "string") return undefined;
  return BEARER.exec(value)?.[1];
}
