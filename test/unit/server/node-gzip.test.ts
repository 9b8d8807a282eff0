/**
 * The server's node:zlib gzip keeps the contract of the wire's web-streams one: the same
 * tests run on both, so either can stand in for the other.
 */
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { nodeGzip } from "../../../src/server/node-gzip.js";
import { type GzipCodec, webGzip } from "../../../src/wire/index.js";

const text = new TextEncoder().encode("receivers: { otlp: {} }\n".repeat(200));

function streamOf(...chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const c of chunks) controller.enqueue(c);
      controller.close();
    },
  });
}

describe.each([
  ["node:zlib", nodeGzip],
  ["web streams", webGzip],
] as [string, GzipCodec][])("GzipCodec over %s", (_name, codec) => {
  it("round-trips, and reads what the other codec and zlib wrote", async () => {
    const packed = await codec.gzip(text);
    expect(packed.length).toBeLessThan(text.length / 10);
    expect(await codec.gunzip(packed, 1 << 20)).toEqual(text);
    expect(await nodeGzip.gunzip(await webGzip.gzip(text), 1 << 20)).toEqual(text);
    expect(await webGzip.gunzip(await nodeGzip.gzip(text), 1 << 20)).toEqual(text);
    // A stream in several chunks, and two gzip members back to back.
    const half = Math.floor(packed.length / 2);
    expect(await codec.gunzip(streamOf(packed.subarray(0, half), packed.subarray(half)), 1 << 20)).toEqual(text);
    const twice = new Uint8Array([...gzipSync(text.subarray(0, 10)), ...gzipSync(text.subarray(10))]);
    expect(await codec.gunzip(twice, 1 << 20)).toEqual(text);
  });

  it("stops a gzip bomb at maxBytes with message_too_large", async () => {
    const bomb = gzipSync(new Uint8Array(16 * 1024 * 1024));
    await expect(codec.gunzip(bomb, 1024 * 1024)).rejects.toMatchObject({
      code: "message_too_large",
      details: { limit: 1024 * 1024 },
    });
    // Exactly at the limit is fine.
    expect((await codec.gunzip(gzipSync(new Uint8Array(4096)), 4096)).length).toBe(4096);
  });

  it("refuses corrupt and truncated input with compression_failed", async () => {
    const packed = await codec.gzip(text);
    await expect(codec.gunzip(new Uint8Array([1, 2, 3, 4, 5]), 1 << 20)).rejects.toMatchObject({
      code: "compression_failed",
    });
    await expect(codec.gunzip(packed.subarray(0, packed.length - 8), 1 << 20)).rejects.toMatchObject({
      code: "compression_failed",
    });
  });

  it("bounds the compressed input, and reports a failing stream as transport_failed", async () => {
    // Stored (level 0) deflate of random bytes is larger than its output: over the input bound.
    const noise = gzipSync(crypto.getRandomValues(new Uint8Array(60_000)), { level: 0 });
    await expect(codec.gunzip(streamOf(noise), 8 * 1024)).rejects.toMatchObject({ code: "message_too_large" });
    const failing = new ReadableStream<Uint8Array>({
      pull(controller) {
        controller.error(new Error("socket reset"));
      },
    });
    await expect(codec.gunzip(failing, 1 << 20)).rejects.toMatchObject({ code: "transport_failed" });
  });
});
