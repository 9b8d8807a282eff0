import { OpampError } from "./errors.js";

/**
 * Largest OpAMP message, in bytes, that the SDK accepts or sends by default: 64 MiB.
 *
 * Applies to a whole WebSocket message (varint header + protobuf) and to an HTTP body
 * measured after decompression on receipt and before compression on send. Exceeding it
 * gives an {@link OpampError} `message_too_large`; transports turn that into WebSocket close
 * 1009 or HTTP 413. Override it per client or server through `limits.maxMessageBytes`.
 */
// spec: WebSocket Message Format / Plain HTTP Transport, size limits (RECOMMENDED default 64 MiB)
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * Smallest HTTP body that is gzipped by default: 1 KiB, for the server's replies and the
 * client's requests (`transport.compression`). A typical OpAMP message is a few dozen
 * bytes, and gzip's header and trailer alone are 18: a 20-byte reply went out as 41–43
 * bytes, and cost a compression call besides.
 */
export const DEFAULT_GZIP_MIN_BYTES = 1024;

/**
 * Checks a byte limit given by a caller and returns it, or the default when it is
 * `undefined`. Internal to the SDK (not exported from the package root).
 *
 * @throws OpampError `invalid_argument` when the value is not a positive safe integer.
 */
export function resolveMaxBytes(value: number | undefined, name = "maxMessageBytes"): number {
  if (value === undefined) return DEFAULT_MAX_MESSAGE_BYTES;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new OpampError("invalid_argument", `${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

/** Builds the `message_too_large` error with the limit attached, so every layer words it alike. */
export function messageTooLarge(what: string, size: number | undefined, limit: number): OpampError {
  const sizeText = size === undefined ? "more than" : `${size} bytes, over`;
  return new OpampError("message_too_large", `${what} is ${sizeText} the limit of ${limit} bytes`, {
    details: { limit },
  });
}
