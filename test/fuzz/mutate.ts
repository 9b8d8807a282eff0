/**
 * Structure-aware mutations of protobuf messages. A message is read into a tree of fields
 * (length-delimited payloads that parse as messages become subtrees), changed there and
 * written back with consistent lengths — so the result still frames well and reaches the
 * decoder's deeper checks — or changed as raw bytes, so that the framing itself breaks.
 */
import type { Rng } from "./random.js";

/** One field of a message as read off the wire. */
export interface WireField {
  no: number;
  wireType: number;
  /** Varint / fixed bytes, or the payload of a length-delimited field that is not a message. */
  raw: Uint8Array;
  /** The payload read as a message, when it parses as one. */
  children?: WireField[];
}

function readVarint(bytes: Uint8Array, offset: number): [number, number] | undefined {
  let value = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    if (offset >= bytes.length) return undefined;
    const b = bytes[offset++]!;
    value += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return [value, offset];
  }
  return undefined;
}

/** The fields of `bytes`, or undefined when it does not parse as a message. */
export function parseWire(bytes: Uint8Array, depth = 0): WireField[] | undefined {
  const fields: WireField[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const tag = readVarint(bytes, offset);
    if (tag === undefined || tag[0] < 8) return undefined;
    offset = tag[1];
    const no = Math.floor(tag[0] / 8);
    const wireType = tag[0] & 7;
    let end: number;
    switch (wireType) {
      case 0: {
        const v = readVarint(bytes, offset);
        if (v === undefined) return undefined;
        end = v[1];
        break;
      }
      case 1:
        end = offset + 8;
        break;
      case 5:
        end = offset + 4;
        break;
      case 2: {
        const len = readVarint(bytes, offset);
        if (len === undefined) return undefined;
        offset = len[1];
        end = offset + len[0];
        break;
      }
      default:
        return undefined;
    }
    if (end > bytes.length) return undefined;
    const raw = bytes.subarray(offset, end);
    const field: WireField = { no, wireType, raw };
    if (wireType === 2 && raw.length > 0 && depth < 64) {
      const children = parseWire(raw, depth + 1);
      if (children !== undefined) field.children = children;
    }
    fields.push(field);
    offset = end;
  }
  return fields;
}

function varint(value: number): number[] {
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** Writes fields back, each length computed from its content. */
export function writeWire(fields: readonly WireField[]): Uint8Array {
  const chunks: Uint8Array[] = [];
  for (const f of fields) {
    chunks.push(Uint8Array.from(varint(f.no * 8 + f.wireType)));
    if (f.wireType === 2) {
      const payload = f.children !== undefined ? writeWire(f.children) : f.raw;
      chunks.push(Uint8Array.from(varint(payload.length)), payload);
    } else {
      chunks.push(f.raw);
    }
  }
  return Buffer.concat(chunks);
}

/** Every field of the tree, depth first, with its parent list. */
function allFields(fields: WireField[], out: { list: WireField[]; index: number }[] = []) {
  fields.forEach((f, index) => {
    out.push({ list: fields, index });
    if (f.children !== undefined) allFields(f.children, out);
  });
  return out;
}

const INVALID_UTF8 = [
  Uint8Array.of(0xff),
  Uint8Array.of(0xc3, 0x28),
  Uint8Array.of(0xe2, 0x82),
  Uint8Array.of(0xed, 0xa0, 0x80), // an encoded surrogate
  Uint8Array.of(0xf8, 0x88, 0x80, 0x80, 0x80),
  Uint8Array.of(0x80),
];

/**
 * A structure-aware change of `message`, written back with consistent lengths: a field's
 * content replaced, invalid UTF-8, a wrong wire type, a field duplicated or dropped, an
 * unknown field, fields swapped between messages.
 */
export function mutateTree(rng: Rng, message: Uint8Array): Uint8Array {
  const tree = parseWire(message);
  if (tree === undefined || tree.length === 0) return mutateRaw(rng, message);
  const rounds = rng.range(1, 3);
  for (let r = 0; r < rounds; r++) {
    // Found again each round: a round may have added or removed fields.
    const spots = allFields(tree);
    if (spots.length === 0) break;
    const spot = rng.pick(spots);
    const field = spot.list[spot.index]!;
    switch (rng.int(9)) {
      case 0: // content replaced by random bytes
        delete field.children;
        field.raw = field.wireType === 2 ? rng.bytes(rng.int(40)) : field.raw.map(() => rng.u32() & 0xff);
        if (field.wireType === 0 && field.raw.length > 0) field.raw[field.raw.length - 1]! &= 0x7f;
        break;
      case 1: {
        // invalid UTF-8 spliced into a string-like payload
        if (field.wireType !== 2) break;
        delete field.children;
        const at = rng.int(field.raw.length + 1);
        field.raw = Buffer.concat([field.raw.subarray(0, at), rng.pick(INVALID_UTF8), field.raw.subarray(at)]);
        break;
      }
      case 2: // another wire type, content kept
        field.wireType = rng.pick([0, 1, 2, 5].filter((t) => t !== field.wireType));
        if (field.wireType === 0) field.raw = Uint8Array.of(rng.u32() & 0x7f);
        if (field.wireType === 1) field.raw = rng.bytes(8);
        if (field.wireType === 5) field.raw = rng.bytes(4);
        break;
      case 3: // duplicated (a repeated message field merges, a scalar's last one wins)
        spot.list.splice(spot.index, 0, structuredClone(field));
        break;
      case 4: // dropped
        spot.list.splice(spot.index, 1);
        break;
      case 5: // an unknown field next to it
        spot.list.splice(spot.index, 0, unknownField(rng));
        break;
      case 6: // a huge field number or number 0-adjacent edge
        field.no = rng.pick([1, 2, 15, 16, 2047, 2048, 536870911]);
        break;
      case 7: {
        // another field's content moved here
        const other = rng.pick(spots);
        const from = other.list[other.index];
        if (from !== undefined && from !== field) spot.list[spot.index] = structuredClone(from);
        break;
      }
      default: {
        // a varint at its edges
        if (field.wireType !== 0) break;
        field.raw = Uint8Array.from(
          rng.pick([[0x00], [0x7f], [0xff, 0xff, 0xff, 0xff, 0x0f], [...Array(9).fill(0xff), 0x01]]),
        );
        break;
      }
    }
  }
  return writeWire(tree);
}

function unknownField(rng: Rng): WireField {
  const wireType = rng.pick([0, 1, 2, 5]);
  const no = rng.pick([16, 17, 99, 1000, 19000, 536870911]);
  const raw =
    wireType === 0
      ? Uint8Array.of(rng.u32() & 0x7f)
      : wireType === 1
        ? rng.bytes(8)
        : wireType === 5
          ? rng.bytes(4)
          : rng.bytes(rng.int(32));
  return { no, wireType, raw };
}

/**
 * A change of the raw bytes that usually breaks the framing: bit flips, truncation, a
 * length made larger or smaller than its content (the smaller one lets a nested field run
 * past its parent), bytes inserted or removed, two messages spliced.
 */
export function mutateRaw(rng: Rng, message: Uint8Array, other?: Uint8Array): Uint8Array {
  const bytes = Uint8Array.from(message);
  switch (rng.int(7)) {
    case 0: {
      const flips = rng.range(1, 8);
      for (let i = 0; i < flips && bytes.length > 0; i++) bytes[rng.int(bytes.length)]! ^= 1 << rng.int(8);
      return bytes;
    }
    case 1:
      return bytes.subarray(0, rng.int(bytes.length));
    case 2:
    case 3: {
      // A length varint (a byte that follows a tag of wire type 2) moved up or down.
      const candidates: number[] = [];
      for (let i = 0; i + 1 < bytes.length; i++) if ((bytes[i]! & 7) === 2 && bytes[i]! >= 8) candidates.push(i + 1);
      if (candidates.length === 0) return bytes;
      const at = rng.pick(candidates);
      const old = bytes[at]! & 0x7f;
      bytes[at] =
        rng.int(4) === 3 ? 0x7f : (old + (rng.chance(0.5) ? -rng.range(1, 4) : rng.range(1, 16)) + 128) & 0x7f;
      if (rng.chance(0.2))
        return Buffer.concat([
          bytes.subarray(0, at),
          Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x07),
          bytes.subarray(at + 1),
        ]);
      return bytes;
    }
    case 4: {
      const at = rng.int(bytes.length + 1);
      return Buffer.concat([bytes.subarray(0, at), rng.bytes(rng.range(1, 8)), bytes.subarray(at)]);
    }
    case 5: {
      const at = rng.int(bytes.length + 1);
      return Buffer.concat([bytes.subarray(0, at), bytes.subarray(Math.min(bytes.length, at + rng.range(1, 8)))]);
    }
    default: {
      const second = other ?? bytes;
      return Buffer.concat([bytes.subarray(0, rng.int(bytes.length + 1)), second.subarray(rng.int(second.length + 1))]);
    }
  }
}
