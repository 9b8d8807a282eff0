/**
 * Writing a server's binary WebSocket message straight to the socket as one frame
 * (RFC 6455 §5.2), header computed here. `ws` would frame each send itself (a header
 * buffer, a Buffer view over the payload, two writes under cork): at fleet scale that
 * per-message overhead is a large share of a fan-out or a reply burst. A message in pieces
 * (the agent's own bytes, then a config shared by the whole fleet) needs no copy and no
 * fragmentation: the pieces are simply the frame's payload, written one after the other.
 *
 * Only for sockets on which `ws` itself has nothing in flight: no extension negotiated
 * (permessage-deflate compresses and queues asynchronously) — see `rawSocketOf`.
 */
import type { Duplex, Writable } from "node:stream";
import type { WebSocket } from "ws";

/** FIN set, opcode 2 (binary). */
const FIN_BINARY = 0x82;

/** A first piece at most this long is copied behind the header: one buffer, one write. */
const COPY_FIRST_PIECE_BYTES = 1024;

/**
 * The socket under `ws` when raw frames may be written to it: the connection is open and
 * no extension is in use, so `ws` queues nothing of its own and frames stay in order.
 * Undefined otherwise (send through `ws`).
 */
export function rawSocketOf(ws: WebSocket): Duplex | undefined {
  if (ws.extensions !== "") return undefined;
  // `ws` keeps the upgraded socket as `_socket`; without one, use the public API.
  const socket = (ws as unknown as { _socket?: Duplex | null })._socket;
  return socket?.writable ? socket : undefined;
}

/** Length of the frame header for a server (unmasked) frame of `length` payload bytes. */
export function frameHeaderBytes(length: number): number {
  return length < 126 ? 2 : length < 0x10000 ? 4 : 10;
}

/** Writes the header of an unmasked final binary frame into `out` at 0; returns its length. */
export function writeFrameHeader(out: Uint8Array, length: number): number {
  out[0] = FIN_BINARY;
  if (length < 126) {
    out[1] = length;
    return 2;
  }
  if (length < 0x10000) {
    out[1] = 126;
    out[2] = length >>> 8;
    out[3] = length & 0xff;
    return 4;
  }
  out[1] = 127;
  // 64-bit length, high word first; messages here stay far below 2^53.
  const high = Math.floor(length / 0x1_0000_0000);
  const low = length >>> 0;
  out[2] = high >>> 24;
  out[3] = (high >>> 16) & 0xff;
  out[4] = (high >>> 8) & 0xff;
  out[5] = high & 0xff;
  out[6] = low >>> 24;
  out[7] = (low >>> 16) & 0xff;
  out[8] = (low >>> 8) & 0xff;
  out[9] = low & 0xff;
  return 10;
}

/**
 * Writes one binary message — `message`, or the concatenation of its pieces — as a single
 * final frame. A short first piece is copied behind the header (one small pooled buffer);
 * every other piece is written as it is, by reference. Several writes are corked into one
 * syscall.
 */
export function writeBinaryFrame(socket: Writable, message: Uint8Array | readonly Uint8Array[]): void {
  const single = message instanceof Uint8Array;
  const first = single ? message : message[0];
  const count = single ? 1 : message.length;
  let length = 0;
  if (single) length = message.length;
  else for (const piece of message) length += piece.length;
  const headerBytes = frameHeaderBytes(length);
  const copyFirst = first !== undefined && first.length <= COPY_FIRST_PIECE_BYTES;
  // From Node's shared pool: no ArrayBuffer of its own for a few dozen bytes.
  const head = Buffer.allocUnsafe(headerBytes + (copyFirst ? first.length : 0));
  writeFrameHeader(head, length);
  if (copyFirst) head.set(first, headerBytes);
  const rest = copyFirst ? 1 : 0;
  if (rest >= count) {
    socket.write(head);
    return;
  }
  socket.cork();
  socket.write(head);
  for (let i = rest; i < count; i++) socket.write(single ? message : message[i]!);
  socket.uncork();
}
