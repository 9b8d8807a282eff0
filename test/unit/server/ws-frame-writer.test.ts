import { Writable } from "node:stream";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { frameHeaderBytes, writeBinaryFrame, writeFrameHeader } from "../../../src/server/ws-frame-writer.js";

/** A writable that keeps every chunk it is given, as given, and counts the writes. */
class Capture extends Writable {
  readonly chunks: Buffer[] = [];
  /** Calls of _write/_writev: what would be syscalls on a socket. */
  flushes = 0;
  override _write(chunk: Buffer, _: BufferEncoding, done: () => void): void {
    this.flushes++;
    this.chunks.push(chunk);
    done();
  }
  override _writev(chunks: { chunk: Buffer }[], done: () => void): void {
    this.flushes++;
    for (const { chunk } of chunks) this.chunks.push(chunk);
    done();
  }
  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** Parses one unmasked frame: FIN, opcode, payload length and where the payload starts. */
function parseHeader(frame: Uint8Array): { fin: boolean; opcode: number; length: number; offset: number } {
  const fin = (frame[0]! & 0x80) !== 0;
  const opcode = frame[0]! & 0x0f;
  expect(frame[1]! & 0x80).toBe(0); // a server never masks
  const short = frame[1]! & 0x7f;
  if (short < 126) return { fin, opcode, length: short, offset: 2 };
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  if (short === 126) return { fin, opcode, length: view.getUint16(2), offset: 4 };
  return { fin, opcode, length: Number(view.getBigUint64(2)), offset: 10 };
}

describe("WebSocket frame writer", () => {
  it("uses the shortest length form RFC 6455 allows", () => {
    expect([0, 125, 126, 65_535, 65_536, 2 ** 32 + 5].map(frameHeaderBytes)).toEqual([2, 2, 4, 4, 10, 10]);
    const head = new Uint8Array(10);
    expect(writeFrameHeader(head, 2 ** 32 + 5)).toBe(10);
    expect(parseHeader(head)).toEqual({ fin: true, opcode: 2, length: 2 ** 32 + 5, offset: 10 });
  });

  it("writes any pieces as one final binary frame whose payload is their concatenation", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 70_000 }), { minLength: 1, maxLength: 4 }), (pieces) => {
        const out = new Capture();
        writeBinaryFrame(out, pieces);
        const bytes = out.bytes;
        const header = parseHeader(bytes);
        const payload = Buffer.concat(pieces);
        expect(header).toMatchObject({ fin: true, opcode: 2, length: payload.length });
        expect(header.offset).toBe(frameHeaderBytes(payload.length));
        expect(bytes.subarray(header.offset)).toEqual(payload);
        // However many pieces, the frame leaves in one write.
        expect(out.flushes).toBe(1);
        expect(out.writableCorked).toBe(0);
      }),
      { numRuns: 60 },
    );
  });

  it("copies a short first piece behind the header and writes large pieces by reference", () => {
    const own = new Uint8Array([0, 10, 16, 1, 2, 3]);
    const shared = new Uint8Array(8192).fill(7);
    const out = new Capture();
    writeBinaryFrame(out, [own, shared]);
    expect(out.chunks.length).toBe(2);
    expect(out.chunks[0]!.length).toBe(4 + own.length);
    // The very memory of the shared piece, not a copy of it.
    expect(out.chunks[1]!.buffer).toBe(shared.buffer);
    expect(out.chunks[1]!.byteOffset).toBe(shared.byteOffset);

    // A large single message is not copied either: the header goes out in front of it.
    const big = new Uint8Array(4096).fill(1);
    const alone = new Capture();
    writeBinaryFrame(alone, big);
    expect(alone.chunks.map((c) => c.length)).toEqual([4, 4096]);
    expect(alone.chunks[1]!.buffer).toBe(big.buffer);

    // A small single message is one buffer.
    const small = new Capture();
    writeBinaryFrame(small, own);
    expect(small.chunks.length).toBe(1);
    expect(small.bytes).toEqual(Buffer.from([0x82, own.length, ...own]));
  });
});
