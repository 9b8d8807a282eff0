/**
 * HTTP bodies. A plain-HTTP OpAMP request or response body is the bare protobuf message,
 * with no varint header, optionally gzip-compressed in either direction.
 */
// spec: Plain HTTP Transport
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { OpampError } from "./errors.js";
import { parse, serialize } from "./frame.js";
import { messageTooLarge, resolveMaxBytes } from "./limits.js";

/** The Content-Type every plain-HTTP OpAMP request and response carries. */
// spec: Plain HTTP Transport — the request MUST carry this Content-Type.
export const PROTOBUF_CONTENT_TYPE = "application/x-protobuf";

/**
 * A gzip implementation for HTTP bodies, with {@link gunzip}'s contract: `gunzip` stops
 * at `maxBytes` of output (`message_too_large`), fails on corrupt input
 * (`compression_failed`) and bounds the compressed input too. The default,
 * {@link webGzip}, runs everywhere on the web `CompressionStream`; the server, which is
 * Node-only, uses one over `node:zlib` that is about ten times faster per call.
 */
export interface GzipCodec {
  /** Compresses; @throws OpampError `compression_failed`. */
  gzip(data: Uint8Array): Promise<Uint8Array>;
  /** Decompresses at most `maxBytes`; @throws OpampError as {@link gunzip}. */
  gunzip(data: Uint8Array | ReadableStream<Uint8Array>, maxBytes: number): Promise<Uint8Array>;
}

/**
 * Gzip-compresses bytes with the web `CompressionStream` (global in browsers and Node 20).
 *
 * @throws OpampError `compression_failed` if the platform's compressor fails.
 */
export async function gzip(data: Uint8Array): Promise<Uint8Array> {
  try {
    const output = through(singleChunkStream(data), new CompressionStream("gzip"));
    return await collect(output, Number.POSITIVE_INFINITY, "gzip output");
  } catch (error) {
    throw OpampError.from(error, "compression_failed");
  }
}

/**
 * Inflates a gzip body while counting the output, and stops as soon as the output passes
 * `maxBytes`: the remaining input is cancelled, so a gzip bomb is never fully inflated.
 * The input is fed to the decompressor in small slices (`maxBytes / 4096`, kept between
 * 256 B and 64 KiB): one deflate chunk can inflate about a thousandfold, and a platform
 * decompressor that inflates a whole chunk before yielding would otherwise overshoot the
 * limit by that much before we could count it.
 *
 * A stream input is read once and is cancelled on any failure.
 *
 * @param maxBytes - limit on the decompressed size; default `DEFAULT_MAX_MESSAGE_BYTES`.
 *   The compressed input is also bounded (by `maxBytes` plus deflate's worst-case overhead)
 *   so that an endless stream of empty deflate blocks cannot spin forever.
 * @throws OpampError `message_too_large` when the output (or input) passes the limit;
 *   `compression_failed` when the data is not gzip, is corrupt or is truncated;
 *   `transport_failed` (or the source's own OpampError) when a stream input errors.
 */
export async function gunzip(data: Uint8Array | ReadableStream<Uint8Array>, maxBytes?: number): Promise<Uint8Array> {
  const limit = resolveMaxBytes(maxBytes, "maxBytes");
  const inputLimit = limit + Math.ceil(limit / 1024) + 1024;
  const sliceBytes = Math.min(64 * 1024, Math.max(256, Math.floor(limit / 4096)));
  const source = new SlicedSource(data instanceof Uint8Array ? singleChunkStream(data) : data, sliceBytes, inputLimit);
  let output: ReadableStream<Uint8Array>;
  try {
    output = through(source.stream, new DecompressionStream("gzip"));
  } catch (error) {
    await source.cancel();
    throw OpampError.from(error, "compression_failed");
  }
  try {
    return await collect(output, limit, "decompressed body");
  } catch (error) {
    // Cancelling the output reaches the source only later through the pipe; release
    // the caller's stream now so a rejected body is not read any further.
    await source.cancel();
    // Errors of our own making (limits) and of the source outrank the decompressor's
    // complaint about the aborted stream that they cause.
    if (error instanceof OpampError && error.code === "message_too_large") throw error;
    if (source.failure !== undefined) throw source.failure;
    throw new OpampError("compression_failed", `gzip body cannot be decompressed: ${errorText(error)}`, {
      cause: error,
    });
  }
}

/** The {@link GzipCodec} on web streams ({@link gzip} and {@link gunzip}): browsers, and the default. */
export const webGzip: GzipCodec = Object.freeze<GzipCodec>({
  gzip,
  gunzip: (data, maxBytes) => gunzip(data, maxBytes),
});

/**
 * Serializes a message as an HTTP body, gzip-compressed when `options.gzip` is true
 * (default false). The caller sets `Content-Type: application/x-protobuf` and, when
 * compressed, `Content-Encoding: gzip`.
 *
 * @param options.maxMessageBytes - limit on the serialized size, checked before
 *   compression; default `DEFAULT_MAX_MESSAGE_BYTES`.
 * @param options.codec - the gzip implementation; default {@link webGzip}.
 * @throws OpampError `message_too_large` when the message exceeds the limit (it MUST NOT
 *   be sent); `invalid_argument` when it cannot be serialized; `compression_failed`.
 */
export async function encodeHttpBody<D extends DescMessage>(
  schema: D,
  message: MessageShape<D>,
  options?: { gzip?: boolean | undefined; maxMessageBytes?: number | undefined; codec?: GzipCodec | undefined },
): Promise<Uint8Array> {
  const limit = resolveMaxBytes(options?.maxMessageBytes);
  const bytes = serialize(schema, message);
  // spec: the size is measured before compression on send.
  if (bytes.length > limit) throw messageTooLarge("HTTP body", bytes.length, limit);
  return options?.gzip === true ? (options.codec ?? webGzip).gzip(bytes) : bytes;
}

/**
 * Reads, decompresses and parses an HTTP body. A stream body is read with the limit
 * applied while reading, never buffered whole first.
 *
 * @param options.codec - the gzip implementation; default {@link webGzip}.
 *
 * @param options.contentEncoding - the `Content-Encoding` header: `undefined`, `null`,
 *   `""` or `identity` mean raw; `gzip` or `x-gzip` (any case) mean gzip.
 * @param options.maxMessageBytes - limit on the decompressed size; default
 *   `DEFAULT_MAX_MESSAGE_BYTES`.
 * @throws OpampError `compression_failed` for any other encoding or a bad gzip body;
 *   `message_too_large` when the body passes the limit (servers answer 413);
 *   `malformed_message` when the bytes are not the expected message;
 *   `transport_failed` when the body stream errors.
 */
export async function decodeHttpBody<D extends DescMessage>(
  schema: D,
  body: Uint8Array | ReadableStream<Uint8Array>,
  options?: HttpBodyOptions,
): Promise<MessageShape<D>> {
  return parse(schema, await readHttpBody(body, options));
}

/** Options of {@link readHttpBody} and {@link decodeHttpBody}. */
export interface HttpBodyOptions {
  /**
   * The `Content-Encoding` header: `undefined`, `null`, `""` or `identity` mean raw; `gzip`
   * or `x-gzip` (any case) mean gzip; anything else is refused.
   */
  contentEncoding?: string | null | undefined;
  /** Limit on the decompressed size; default `DEFAULT_MAX_MESSAGE_BYTES`. */
  maxMessageBytes?: number | undefined;
  /** The gzip implementation; default {@link webGzip}. */
  codec?: GzipCodec | undefined;
}

/**
 * Reads and decompresses an HTTP body into the message bytes, like
 * {@link decodeHttpBody} without the parse (for a caller that decodes them itself).
 *
 * @throws OpampError like {@link decodeHttpBody}, except `malformed_message`.
 */
export async function readHttpBody(
  body: Uint8Array | ReadableStream<Uint8Array>,
  options?: HttpBodyOptions,
): Promise<Uint8Array> {
  const limit = resolveMaxBytes(options?.maxMessageBytes);
  const encoding = (options?.contentEncoding ?? "").trim().toLowerCase();
  let bytes: Uint8Array;
  if (encoding === "" || encoding === "identity") {
    if (body instanceof Uint8Array) {
      if (body.length > limit) throw messageTooLarge("HTTP body", body.length, limit);
      bytes = body;
    } else {
      bytes = await collect(body, limit, "HTTP body", "transport_failed");
    }
  } else if (encoding === "gzip" || encoding === "x-gzip") {
    bytes = await (options?.codec ?? webGzip).gunzip(body, limit);
  } else {
    if (!(body instanceof Uint8Array)) await body.cancel().catch(() => undefined);
    // spec: servers MUST honour Content-Encoding; we only know gzip.
    throw new OpampError("compression_failed", `unsupported Content-Encoding "${options?.contentEncoding}"`);
  }
  return bytes;
}

/**
 * The DOM typings declare the (de)compressors as taking any BufferSource and yielding
 * Uint8Array<ArrayBuffer>; we only ever feed Uint8Array, so narrow the pair to that.
 */
function through(
  stream: ReadableStream<Uint8Array>,
  transform: CompressionStream | DecompressionStream,
): ReadableStream<Uint8Array> {
  return stream.pipeThrough(transform as ReadableWritablePair<Uint8Array, Uint8Array>);
}

function singleChunkStream(data: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      if (data.length > 0) controller.enqueue(data);
      controller.close();
    },
  });
}

/**
 * Wraps the compressed input: re-slices it into small chunks, bounds its total size and
 * remembers a failure of the source itself, so that it is not mistaken for corrupt gzip.
 */
class SlicedSource {
  readonly stream: ReadableStream<Uint8Array>;
  failure: OpampError | undefined;
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>;

  constructor(source: ReadableStream<Uint8Array>, sliceBytes: number, inputLimit: number) {
    this.reader = source.getReader();
    let pending: Uint8Array | undefined;
    let total = 0;
    this.stream = new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          while (pending === undefined || pending.length === 0) {
            let result: ReadableStreamReadResult<Uint8Array>;
            try {
              result = await this.reader.read();
            } catch (error) {
              this.failure = OpampError.from(error, "transport_failed");
              controller.error(this.failure);
              return;
            }
            if (result.done) {
              controller.close();
              return;
            }
            total += result.value.length;
            if (total > inputLimit) {
              this.failure = messageTooLarge("compressed body", undefined, inputLimit);
              controller.error(this.failure);
              await this.cancel();
              return;
            }
            pending = result.value;
          }
          controller.enqueue(pending.subarray(0, sliceBytes));
          pending = pending.subarray(sliceBytes);
        },
        cancel: () => this.cancel(),
      },
      { highWaterMark: 0 },
    );
  }

  async cancel(): Promise<void> {
    await this.reader.cancel().catch(() => undefined);
  }
}

/**
 * Reads a stream to the end into one array, cancelling it and throwing
 * `message_too_large` as soon as the total passes `limit`. Other read errors become
 * `fallback` (kept as they are when already an OpampError).
 */
export async function collect(
  stream: ReadableStream<Uint8Array>,
  limit: number,
  what: string,
  fallback?: "transport_failed",
): Promise<Uint8Array> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > limit) {
        await reader.cancel().catch(() => undefined);
        throw messageTooLarge(what, undefined, limit);
      }
      chunks.push(value);
    }
  } catch (error) {
    if (fallback === undefined || error instanceof OpampError) throw error;
    throw OpampError.from(error, fallback);
  }
  if (chunks.length === 1 && chunks[0] !== undefined) return chunks[0];
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
