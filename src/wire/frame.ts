/**
 * WebSocket framing. Every OpAMP message travels as one binary WebSocket message made of
 * a varint header followed by the protobuf bytes, with no length prefix.
 */
// spec: WebSocket Transport, WebSocket Message Format
import { type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { OpampError } from "./errors.js";
import { messageTooLarge, resolveMaxBytes } from "./limits.js";

/**
 * The only header value this version of OpAMP defines. Encoded as a varint it is the one
 * byte `0x00`; other values are reserved and rejected on decode.
 */
export const WS_HEADER = 0n;

/** A uint64 varint is at most 10 bytes (7 payload bits per byte, 64 bits). */
const MAX_VARINT_BYTES = 10;

/**
 * Prepends the varint header `0x00` to protobuf bytes. Never throws. The result is a new
 * array; `payload` is copied, not kept.
 */
export function encodeWsFrame(payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(payload.length + 1);
  frame[0] = 0x00;
  frame.set(payload, 1);
  return frame;
}

/**
 * Checks the size and the varint header of one received WebSocket message and returns
 * the protobuf bytes after the header, as a view into `data` (no copy). An empty payload
 * is valid: it is a message with every field unset.
 *
 * @param maxMessageBytes - limit on the whole message, header included; default
 *   `DEFAULT_MAX_MESSAGE_BYTES`.
 * @throws OpampError `message_too_large` when `data` is longer than the limit (checked
 *   first, before any parsing); `malformed_frame` when the header is empty, truncated,
 *   longer than 10 bytes, above 2^64-1 or not 0; `invalid_argument` for a bad limit.
 */
export function decodeWsFrame(data: Uint8Array, maxMessageBytes?: number): Uint8Array {
  const limit = resolveMaxBytes(maxMessageBytes);
  // spec: the limit covers header plus data, measured after WS-extension decompression.
  if (data.length > limit) throw messageTooLarge("WebSocket message", data.length, limit);
  const headerLength = readHeader(data);
  return data.subarray(headerLength);
}

/**
 * Reads the varint header and returns its length in bytes.
 * Non-minimal encodings of 0 (`80 00`) are accepted, as protobuf varint readers accept
 * them; only the value matters.
 */
function readHeader(data: Uint8Array): number {
  let value = 0n;
  for (let i = 0; i < MAX_VARINT_BYTES; i++) {
    const byte = data[i];
    if (byte === undefined) {
      throw new OpampError(
        "malformed_frame",
        i === 0
          ? "WebSocket message is empty: no varint header"
          : `WebSocket varint header is truncated after ${i} bytes`,
      );
    }
    // The 10th byte may only carry the top bit of a uint64.
    if (i === MAX_VARINT_BYTES - 1 && byte > 0x01) {
      throw new OpampError("malformed_frame", "WebSocket varint header overflows 64 bits");
    }
    value |= BigInt(byte & 0x7f) << BigInt(7 * i);
    if ((byte & 0x80) === 0) {
      // spec: the header MUST be 0; decoders SHOULD treat any other value as malformed.
      if (value !== WS_HEADER) {
        throw new OpampError("malformed_frame", `WebSocket header value is ${value}, only 0 is defined`);
      }
      return i + 1;
    }
  }
  throw new OpampError("malformed_frame", `WebSocket varint header is longer than ${MAX_VARINT_BYTES} bytes`);
}

/**
 * Serializes a message and frames it for WebSocket.
 *
 * @param options.maxMessageBytes - limit on the framed size, checked before any
 *   WebSocket compression; default `DEFAULT_MAX_MESSAGE_BYTES`.
 * @throws OpampError `message_too_large` when the frame would exceed the limit (the spec
 *   says such a message MUST NOT be sent); `invalid_argument` when the message cannot be
 *   serialized (e.g. a negative uint64) or the limit is bad.
 */
export function encodeWsMessage<D extends DescMessage>(
  schema: D,
  message: MessageShape<D>,
  options?: { maxMessageBytes?: number | undefined },
): Uint8Array {
  const limit = resolveMaxBytes(options?.maxMessageBytes);
  const payload = serialize(schema, message);
  // spec: the sender checks the size before compression and drops an oversized message.
  if (payload.length + 1 > limit) throw messageTooLarge("WebSocket message", payload.length + 1, limit);
  return encodeWsFrame(payload);
}

/**
 * Unframes and parses one received WebSocket message.
 *
 * @param options.maxMessageBytes - default `DEFAULT_MAX_MESSAGE_BYTES`.
 * @throws OpampError `message_too_large`, `malformed_frame` (see {@link decodeWsFrame}) or
 *   `malformed_message` when the bytes after the header are not a valid protobuf message.
 */
export function decodeWsMessage<D extends DescMessage>(
  schema: D,
  data: Uint8Array,
  options?: { maxMessageBytes?: number | undefined },
): MessageShape<D> {
  return parse(schema, decodeWsFrame(data, options?.maxMessageBytes));
}

/**
 * `toBinary` with its failures (values the schema cannot hold) turned into
 * `invalid_argument`. Shared with the HTTP body codec.
 */
export function serialize<D extends DescMessage>(schema: D, message: MessageShape<D>): Uint8Array {
  try {
    return toBinary(schema, message);
  } catch (error) {
    throw new OpampError("invalid_argument", `cannot serialize ${schema.typeName}: ${errorText(error)}`, {
      cause: error,
    });
  }
}

/** `fromBinary` with its failures turned into `malformed_message`. Shared with the HTTP body codec. */
export function parse<D extends DescMessage>(schema: D, bytes: Uint8Array): MessageShape<D> {
  try {
    return fromBinary(schema, bytes);
  } catch (error) {
    throw new OpampError("malformed_message", `cannot parse ${schema.typeName}: ${errorText(error)}`, {
      cause: error,
    });
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
