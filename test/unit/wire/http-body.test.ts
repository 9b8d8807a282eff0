import { equals, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AgentToServerSchema, ServerToAgentSchema } from "../../../src/gen/opamp/v1/opamp_pb.js";
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  decodeHttpBody,
  encodeHttpBody,
  gunzip,
  gzip,
  OpampError,
  PROTOBUF_CONTENT_TYPE,
} from "../../../src/wire/index.js";
import { agentToServer, decodesOrThrowsTyped, serverToAgent } from "./arbitraries.js";
import { bytes, fullAgentToServer, sameBytes } from "./fixtures.js";

const MiB = 1024 * 1024;

async function rejection(promise: Promise<unknown>): Promise<OpampError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(OpampError);
    return error as OpampError;
  }
  throw new Error("expected an OpampError, the promise resolved");
}

/** A readable stream over `chunks` that records how much was pulled and whether it was cancelled. */
function trackedStream(chunks: Uint8Array[]) {
  const state = { pulledBytes: 0, cancelled: false };
  let index = 0;
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        const chunk = chunks[index++];
        if (chunk === undefined) return controller.close();
        state.pulledBytes += chunk.length;
        controller.enqueue(chunk);
      },
      cancel() {
        state.cancelled = true;
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, state };
}

function chunked(data: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < data.length; i += size) out.push(data.subarray(i, i + size));
  return out;
}

/** gzip of `mib` MiB of zeros, compressed in 1 MiB steps so the test never holds the plain data. */
async function zeroBomb(mib: number): Promise<Uint8Array> {
  const zeros = new Uint8Array(MiB);
  let sent = 0;
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent++ < mib) controller.enqueue(zeros);
      else controller.close();
    },
  });
  const compressed = source.pipeThrough(new CompressionStream("gzip") as ReadableWritablePair<Uint8Array, Uint8Array>);
  return new Uint8Array(await new Response(compressed).arrayBuffer());
}

describe("gzip / gunzip", () => {
  it("round-trips bytes, including empty and large ones", async () => {
    for (const data of [bytes(), bytes(1, 2, 3), new Uint8Array(3 * MiB).fill(7)]) {
      const compressed = await gzip(data);
      expect(compressed.subarray(0, 2)).toEqual(bytes(0x1f, 0x8b)); // gzip magic
      // toEqual on megabytes is slow; compare the bytes directly.
      expect(sameBytes(await gunzip(compressed), data)).toBe(true);
    }
  });

  it("accepts a stream input delivered in odd-sized chunks", async () => {
    const data = new TextEncoder().encode("status report ".repeat(5000));
    const { stream } = trackedStream(chunked(await gzip(data), 7));
    expect(await gunzip(stream)).toEqual(data);
  });

  it("allows output of exactly the limit and refuses one byte more", async () => {
    const compressed = await gzip(new Uint8Array(1000));
    expect(await gunzip(compressed, 1000)).toHaveLength(1000);
    const error = await rejection(gunzip(compressed, 999));
    expect(error.code).toBe("message_too_large");
    expect(error.details.limit).toBe(999);
  });

  it("stops a gzip bomb (100 MiB of zeros, 1 MiB limit) with message_too_large", async () => {
    const bomb = await zeroBomb(100);
    expect(bomb.length).toBeLessThan(MiB); // it really is a bomb: ~100 KiB in, 100 MiB out
    const error = await rejection(gunzip(bomb, MiB));
    expect(error.code).toBe("message_too_large");
    expect(error.details.limit).toBe(MiB);
  });

  it("stops an endless streamed gzip bomb and cancels the stream", async () => {
    // Zeros compressed lazily, forever: only stopping at the limit can end this test.
    const zeros = new Uint8Array(MiB);
    const compressed = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.enqueue(zeros);
      },
    })
      .pipeThrough(new CompressionStream("gzip") as ReadableWritablePair<Uint8Array, Uint8Array>)
      .getReader();
    let cancelled = false;
    const stream = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const { value, done } = await compressed.read();
        if (done) controller.close();
        else controller.enqueue(value);
      },
      async cancel() {
        cancelled = true;
        await compressed.cancel();
      },
    });
    const error = await rejection(gunzip(stream, MiB));
    expect(error.code).toBe("message_too_large");
    expect(cancelled).toBe(true);
  });

  it.each([
    ["not gzip at all", async () => new TextEncoder().encode("plain text, no gzip header")],
    ["empty input", async () => bytes()],
    ["a truncated body", async () => (await gzip(new Uint8Array(5000).fill(3))).subarray(0, 20)],
    ["a body missing its trailer", async () => (await gzip(bytes(1, 2, 3))).slice(0, -4)],
    [
      "a corrupt deflate stream",
      async () => {
        const data = await gzip(new TextEncoder().encode("hello hello hello hello"));
        data[12] = data[12]! ^ 0xff;
        return data;
      },
    ],
    [
      "a wrong CRC",
      async () => {
        const data = await gzip(bytes(1, 2, 3));
        data[data.length - 8] = data[data.length - 8]! ^ 0x01;
        return data;
      },
    ],
  ])("rejects %s with compression_failed", async (_name, make) => {
    const error = await rejection(gunzip(await make()));
    expect(error.code).toBe("compression_failed");
  });

  it("reports a failing source stream as transport_failed, not as corrupt gzip", async () => {
    const good = await gzip(new Uint8Array(10_000).fill(1));
    let sent = false;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent) return controller.error(new Error("connection reset"));
        sent = true;
        controller.enqueue(good.subarray(0, 10));
      },
    });
    const error = await rejection(gunzip(stream));
    expect(error.code).toBe("transport_failed");
    expect(error.message).toContain("connection reset");
  });

  it("bounds the compressed input too (endless empty deflate blocks)", async () => {
    // gzip header, then stored empty non-final blocks (00 00 00 ff ff) forever: no output at all.
    const header = bytes(0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff);
    const emptyBlocks = new Uint8Array(5 * 2000);
    for (let i = 0; i < emptyBlocks.length; i += 5) emptyBlocks.set([0, 0, 0, 0xff, 0xff], i);
    let cancelled = false;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(header);
      },
      pull(controller) {
        controller.enqueue(emptyBlocks);
      },
      cancel() {
        cancelled = true;
      },
    });
    const error = await rejection(gunzip(stream, 4096));
    expect(error.code).toBe("message_too_large");
    expect(cancelled).toBe(true);
  });
});

describe("encodeHttpBody / decodeHttpBody", () => {
  it("names the protobuf content type", () => {
    expect(PROTOBUF_CONTENT_TYPE).toBe("application/x-protobuf");
  });

  it("encodes the bare protobuf with no header byte, gzip only when asked", async () => {
    const message = fullAgentToServer();
    const raw = await encodeHttpBody(AgentToServerSchema, message);
    expect(raw).toEqual(toBinary(AgentToServerSchema, message));
    const compressed = await encodeHttpBody(AgentToServerSchema, message, { gzip: true });
    expect(compressed.subarray(0, 2)).toEqual(bytes(0x1f, 0x8b));
    expect(await gunzip(compressed)).toEqual(raw);
  });

  it.each([undefined, null, "", "identity", " IDENTITY "])("treats Content-Encoding %j as raw", async (encoding) => {
    const body = await encodeHttpBody(AgentToServerSchema, fullAgentToServer());
    const decoded = await decodeHttpBody(AgentToServerSchema, body, { contentEncoding: encoding });
    expect(equals(AgentToServerSchema, decoded, fullAgentToServer())).toBe(true);
  });

  it.each(["gzip", "GZip", "x-gzip", " gzip "])("treats Content-Encoding %j as gzip", async (encoding) => {
    const body = await encodeHttpBody(AgentToServerSchema, fullAgentToServer(), { gzip: true });
    const decoded = await decodeHttpBody(AgentToServerSchema, body, { contentEncoding: encoding });
    expect(equals(AgentToServerSchema, decoded, fullAgentToServer())).toBe(true);
  });

  it.each(["br", "deflate", "zstd", "gzip, br"])("rejects Content-Encoding %j with compression_failed", async (enc) => {
    const { stream, state } = trackedStream([bytes(1, 2, 3)]);
    const error = await rejection(decodeHttpBody(AgentToServerSchema, stream, { contentEncoding: enc }));
    expect(error.code).toBe("compression_failed");
    expect(error.message).toContain(enc);
    expect(state.cancelled).toBe(true);
  });

  it("reads a raw stream body with the limit applied while reading", async () => {
    const body = await encodeHttpBody(AgentToServerSchema, fullAgentToServer());
    const ok = trackedStream(chunked(body, 10));
    const decoded = await decodeHttpBody(AgentToServerSchema, ok.stream);
    expect(equals(AgentToServerSchema, decoded, fullAgentToServer())).toBe(true);

    const big = trackedStream(Array.from({ length: 100 }, () => new Uint8Array(1024)));
    const error = await rejection(decodeHttpBody(AgentToServerSchema, big.stream, { maxMessageBytes: 4096 }));
    expect(error.code).toBe("message_too_large");
    expect(big.state.cancelled).toBe(true);
    expect(big.state.pulledBytes).toBeLessThanOrEqual(8 * 1024);
  });

  it("refuses oversized bodies both ways, measured before compression on send and after on receipt", async () => {
    const message = fullAgentToServer();
    const size = toBinary(AgentToServerSchema, message).length;
    const sendError = await rejection(
      encodeHttpBody(AgentToServerSchema, message, { gzip: true, maxMessageBytes: size - 1 }),
    );
    expect(sendError.code).toBe("message_too_large");

    const compressed = await encodeHttpBody(AgentToServerSchema, message, { gzip: true });
    expect(compressed.length).toBeLessThan(size - 1);
    const receiveError = await rejection(
      decodeHttpBody(AgentToServerSchema, compressed, { contentEncoding: "gzip", maxMessageBytes: size - 1 }),
    );
    expect(receiveError.code).toBe("message_too_large");
    const rawError = await rejection(
      decodeHttpBody(AgentToServerSchema, toBinary(AgentToServerSchema, message), { maxMessageBytes: size - 1 }),
    );
    expect(rawError.code).toBe("message_too_large");
  });

  it("uses DEFAULT_MAX_MESSAGE_BYTES when no limit is given", async () => {
    const error = await rejection(decodeHttpBody(AgentToServerSchema, new Uint8Array(DEFAULT_MAX_MESSAGE_BYTES + 1)));
    expect(error.code).toBe("message_too_large");
    expect(error.details.limit).toBe(DEFAULT_MAX_MESSAGE_BYTES);
  });

  it("turns bytes that are not the message into malformed_message", async () => {
    const error = await rejection(decodeHttpBody(ServerToAgentSchema, bytes(0x0a, 0x05, 1)));
    expect(error.code).toBe("malformed_message");
  });

  it("rejects a gzip bomb sent as an HTTP body", async () => {
    const error = await rejection(
      decodeHttpBody(AgentToServerSchema, await zeroBomb(100), { contentEncoding: "gzip", maxMessageBytes: MiB }),
    );
    expect(error.code).toBe("message_too_large");
  });
});

describe("body codec properties", () => {
  it("any message survives encode → decode, with and without gzip", async () => {
    await fc.assert(
      fc.asyncProperty(agentToServer, serverToAgent, fc.boolean(), async (a2s, s2a, compress) => {
        const contentEncoding = compress ? "gzip" : null;
        const a = await decodeHttpBody(
          AgentToServerSchema,
          await encodeHttpBody(AgentToServerSchema, a2s, { gzip: compress }),
          {
            contentEncoding,
          },
        );
        expect(equals(AgentToServerSchema, a, a2s)).toBe(true);
        const s = await decodeHttpBody(
          ServerToAgentSchema,
          await encodeHttpBody(ServerToAgentSchema, s2a, { gzip: compress }),
          {
            contentEncoding,
          },
        );
        expect(equals(ServerToAgentSchema, s, s2a)).toBe(true);
      }),
      { numRuns: 50 },
    );
  });

  it("arbitrary bytes, raw or claimed gzip, decode or throw a typed error", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 512 }), fc.boolean(), async (body, claimGzip) => {
        await decodesOrThrowsTyped(
          () => decodeHttpBody(AgentToServerSchema, body, { contentEncoding: claimGzip ? "gzip" : null }),
          ["malformed_message", "compression_failed"],
        );
      }),
      { numRuns: 300 },
    );
  });

  it("a gzip body with one byte changed or cut short decodes or throws a typed error", async () => {
    await fc.assert(
      fc.asyncProperty(agentToServer, fc.nat(), fc.integer({ min: 0, max: 255 }), async (message, at, xor) => {
        const body = await encodeHttpBody(AgentToServerSchema, message, { gzip: true });
        const damaged = xor === 0 ? body.subarray(0, at % body.length) : body.slice();
        if (xor !== 0) damaged[at % damaged.length]! ^= xor;
        await decodesOrThrowsTyped(
          () => decodeHttpBody(AgentToServerSchema, damaged, { contentEncoding: "gzip", maxMessageBytes: 64 * 1024 }),
          ["malformed_message", "compression_failed", "message_too_large"],
        );
      }),
      { numRuns: 200 },
    );
  });
});
