/**
 * The closed set of error codes that opamp-sdk raises. Every code is documented in
 * `docs/errors.md`; a new code is a new entry there.
 */
export const OPAMP_ERROR_CODES = [
  /** An option or argument is missing, of the wrong type or out of range. */
  "invalid_argument",
  /** A WebSocket frame's varint header is truncated, too long or not 0. */
  "malformed_frame",
  /** Bytes that should hold a protobuf message do not decode as one. */
  "malformed_message",
  /** A message (after decompression) or a frame is larger than the configured limit. */
  "message_too_large",
  /** A gzip body is corrupt or truncated, or its Content-Encoding is not supported. */
  "compression_failed",
  /** An instance UID is not 16 bytes, or a UID string is not a canonical UUID. */
  "invalid_instance_uid",
  /** The peer did not advertise the capability an operation needs. */
  "capability_missing",
  /** The agent or connection named is not known (not connected, already gone). */
  "unknown_agent",
  /** A network or transport failure: connection refused, reset, closed unexpectedly. */
  "transport_failed",
  /** An HTTP response carried a status the protocol does not treat as success. */
  "http_status",
  /** The peer rejected the credentials (HTTP 401) or the request (403). */
  "unauthenticated",
  /** The peer is overloaded and asked to retry later (503/429 or ServerErrorResponse Unavailable). */
  "unavailable",
  /** The server answered with a ServerErrorResponse of type BadRequest or Unknown. */
  "server_error",
  /** A resource limit other than message size was reached (connections, agents, queue). */
  "limit_exceeded",
  /** The operation needs a started object, or the object has been stopped. */
  "not_running",
  /** The operation was cancelled through an AbortSignal or by stop(). */
  "aborted",
  /** The operation did not finish within its time limit. */
  "timeout",
  /** A store failed to read or write. */
  "storage_failed",
  /** A hook supplied by the application threw or rejected. */
  "hook_failed",
  /** A downloaded package does not match its hash or its signature was refused. */
  "verification_failed",
  /** A supervised agent process could not be started, exited, or did not become healthy. */
  "agent_failed",
  /** A bug in opamp-sdk: an invariant did not hold. */
  "internal",
] as const;

/** One of {@link OPAMP_ERROR_CODES}. */
export type OpampErrorCode = (typeof OPAMP_ERROR_CODES)[number];

const CODE_SET: ReadonlySet<string> = new Set(OPAMP_ERROR_CODES);

/** True when `value` is one of the closed set of {@link OpampErrorCode}s. */
export function isOpampErrorCode(value: unknown): value is OpampErrorCode {
  return typeof value === "string" && CODE_SET.has(value);
}

/** Extra, code-specific facts carried by an {@link OpampError}. */
export interface OpampErrorDetails {
  /** HTTP status, for `http_status`, `unauthenticated`, `unavailable`, `message_too_large`. */
  readonly status?: number;
  /** How long the peer asked us to wait, in milliseconds (from Retry-After or RetryInfo). */
  readonly retryAfterMs?: number;
  /** The limit that was exceeded, for `message_too_large` and `limit_exceeded`. */
  readonly limit?: number;
  /** The agent concerned (canonical UID string), when the error is about one agent. */
  readonly instanceUid?: string;
}

/**
 * The brand every {@link OpampError} carries, registered globally with `Symbol.for` so
 * that it is the same symbol in the ESM and the CJS build (and in two copies of the package).
 */
const OPAMP_ERROR_BRAND = Symbol.for("opamp-sdk.OpampError");

/**
 * True when `value` is an {@link OpampError} from any copy of opamp-sdk: the ESM and CJS
 * builds define two different classes, so `instanceof OpampError` fails when an error
 * from one meets the class of the other (a CJS dependency, a second copy of the package).
 * This checks a `Symbol.for` brand instead. Never throws.
 */
export function isOpampError(value: unknown): value is OpampError {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[OPAMP_ERROR_BRAND] === true;
}

/**
 * The one error class of opamp-sdk. `code` is from a closed set ({@link OpampErrorCode}),
 * so callers branch on it rather than on messages. Protocol outcomes (a FAILED config, a
 * rejected handshake) are reported as data, not as this error. Test for it with
 * {@link isOpampError}, which also works across the ESM and CJS builds.
 */
export class OpampError extends Error {
  /** Always `"OpampError"`, also in minified builds (stack traces and logs show it). */
  override readonly name = "OpampError";
  /** What went wrong, from the closed set documented in docs/errors.md; branch on this. */
  readonly code: OpampErrorCode;
  /** Code-specific facts (HTTP status, Retry-After, the limit, the agent); `{}` when there are none. */
  readonly details: OpampErrorDetails;

  constructor(code: OpampErrorCode, message: string, options?: { cause?: unknown; details?: OpampErrorDetails }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options?.details ?? {};
  }

  /**
   * Wraps anything thrown into an OpampError. An OpampError is returned as it is; an
   * AbortError becomes `aborted`; anything else becomes `fallback` (default `internal`)
   * with the original kept as `cause`.
   */
  static from(reason: unknown, fallback: OpampErrorCode = "internal"): OpampError {
    return errorFrom(reason, fallback);
  }
}

// On the prototype, not each instance: subclasses inherit it and inspect() stays clean.
// Outside the class body, like errorFrom(): a class that names itself inside its body is
// renamed `_OpampError` by the bundler.
Object.defineProperty(OpampError.prototype, OPAMP_ERROR_BRAND, { value: true });

/** {@link OpampError.from}, outside the class body (see above). */
function errorFrom(reason: unknown, fallback: OpampErrorCode): OpampError {
  if (isOpampError(reason)) return reason;
  if (reason instanceof Error) {
    if (reason.name === "AbortError") return new OpampError("aborted", reason.message || "aborted", { cause: reason });
    if (reason.name === "TimeoutError")
      return new OpampError("timeout", reason.message || "timed out", { cause: reason });
    return new OpampError(fallback, reason.message, { cause: reason });
  }
  return new OpampError(fallback, typeof reason === "string" ? reason : String(reason), { cause: reason });
}
