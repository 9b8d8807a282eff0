/**
 * gzip over `node:zlib` for the server's HTTP bodies: the web `CompressionStream` costs
 * about 200–230 µs per call, `node:zlib` 8–34 µs. Same contract as the wire's `gunzip`:
 * output bounded by `maxOutputLength` (zlib stops inflating there, so a gzip bomb is
 * never inflated whole), compressed input bounded too.
 */
import { promisify } from "node:util";
import { gunzip as zlibGunzip, gzip as zlibGzip } from "node:zlib";
import { OpampError } from "../wire/errors.js";
import { collect, type GzipCodec } from "../wire/http-body.js";
import { messageTooLarge } from "../wire/limits.js";

const deflate = promisify(zlibGzip);
const inflate = promisify(zlibGunzip);

/** A Buffer as a plain Uint8Array view (no copy), as the web codec gives. */
const plain = (buffer: Buffer): Uint8Array => new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);

/** The server's {@link GzipCodec}. */
export const nodeGzip: GzipCodec = Object.freeze({
  async gzip(data: Uint8Array): Promise<Uint8Array> {
    try {
      return plain(await deflate(data));
    } catch (error) {
      throw OpampError.from(error, "compression_failed");
    }
  },

  async gunzip(data: Uint8Array | ReadableStream<Uint8Array>, maxBytes: number): Promise<Uint8Array> {
    // As the web codec: deflate's worst case stays under this, an endless input does not.
    const inputLimit = maxBytes + Math.ceil(maxBytes / 1024) + 1024;
    const input =
      data instanceof Uint8Array ? data : await collect(data, inputLimit, "compressed body", "transport_failed");
    if (input.length > inputLimit) throw messageTooLarge("compressed body", input.length, inputLimit);
    try {
      return plain(await inflate(input, { maxOutputLength: maxBytes }));
    } catch (error) {
      if ((error as { code?: unknown }).code === "ERR_BUFFER_TOO_LARGE") {
        throw messageTooLarge("decompressed body", undefined, maxBytes);
      }
      throw new OpampError("compression_failed", `gzip body cannot be decompressed: ${(error as Error).message}`, {
        cause: error,
      });
    }
  },
});
