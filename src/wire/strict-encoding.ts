/**
 * A check, without decoding, that bytes are a *strict* encoding of a message: one that
 * protobuf-es reads field by field exactly as the bytes delimit them.
 *
 * protobuf-es is lenient in two ways that matter when a server keeps a received part's
 * bytes instead of encoding it again: a nested message's last field may run past the
 * length its parent declared (the reader loops while `pos < end`), and a field is read by
 * its schema type whatever wire type the bytes give it. Bytes in which that happens decode,
 * in context, to something other than what they decode to on their own.
 *
 * Strict here means, at every level the schema knows: every field of a known number has
 * the wire type its schema type is read with (or the packed form of a packable repeated
 * field), every length-delimited field and every packed run ends inside its parent, and
 * every nested message — message fields, repeated messages, map entries and their message
 * values — ends exactly where its length says. Unknown fields are skipped by their wire
 * type; groups are refused (never used by OpAMP). Then decoding the bytes on their own and
 * as a field of a larger message gives the same value, so the bytes may stand for it.
 *
 * A false answer only means "encode the decoded value again": the check may refuse a
 * valid encoding (a group, a map entry with an extra field) but never accepts one the
 * reader would see differently. It allocates nothing and is linear in the bytes.
 */
import { type DescField, type DescMessage, ScalarType } from "@bufbuild/protobuf";

/** Deepest nesting walked; deeper bytes are refused (protobuf-es's own default is 100). */
const MAX_DEPTH = 64;

const VARINT = 0;
const FIXED64 = 1;
const LEN = 2;
const FIXED32 = 5;

/** The wire type protobuf-es reads a scalar of `type` with. */
function scalarWireType(type: ScalarType): number {
  switch (type) {
    case ScalarType.STRING:
    case ScalarType.BYTES:
      return LEN;
    case ScalarType.DOUBLE:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return FIXED64;
    case ScalarType.FLOAT:
    case ScalarType.FIXED32:
    case ScalarType.SFIXED32:
      return FIXED32;
    default:
      return VARINT;
  }
}

/**
 * The cursor of one walk: `pos` only moves forward. One object per walk, passed down, so
 * the walk allocates nothing per field.
 */
interface Cursor {
  readonly bytes: Uint8Array;
  pos: number;
}

/**
 * Reads a varint of at most `maxBytes` (10) bytes ending before `end`; -1 when there is
 * none. The value is exact up to 2^53 and larger beyond (larger than any length here).
 */
function varint(c: Cursor, end: number, maxBytes = 10): number {
  const bytes = c.bytes;
  let value = 0;
  let scale = 1;
  for (let i = 0; i < maxBytes; i++) {
    if (c.pos >= end) return -1;
    const b = bytes[c.pos++]!;
    value += (b & 0x7f) * scale;
    if (b < 0x80) return value;
    scale *= 128;
  }
  return -1;
}

/** Skips a varint's bytes; false when it does not end before `end`. */
function skipVarint(c: Cursor, end: number): boolean {
  return varint(c, end) >= 0;
}

/** Skips a field's value of `wireType` (unknown fields); false when it is not strict. */
function skipValue(c: Cursor, end: number, wireType: number): boolean {
  switch (wireType) {
    case VARINT:
      return skipVarint(c, end);
    case FIXED64:
      c.pos += 8;
      return c.pos <= end;
    case FIXED32:
      c.pos += 4;
      return c.pos <= end;
    case LEN: {
      const length = varint(c, end);
      if (length < 0 || length > end - c.pos) return false;
      c.pos += length;
      return true;
    }
    default:
      return false; // groups (3, 4) and the unused wire types 6 and 7
  }
}

/** Reads a length prefix and returns where its bytes end; -1 when they run past `end`. */
function delimitedEnd(c: Cursor, end: number): number {
  const length = varint(c, end);
  if (length < 0 || length > end - c.pos) return -1;
  return c.pos + length;
}

/** A packed run of scalars of `type`, its length already read, ending exactly at `end`. */
function packedRun(c: Cursor, end: number, type: ScalarType): boolean {
  const wire = scalarWireType(type);
  const size = end - c.pos;
  if (wire === FIXED32 || wire === FIXED64) {
    if (size % (wire === FIXED32 ? 4 : 8) !== 0) return false;
    c.pos = end;
    return true;
  }
  while (c.pos < end) if (!skipVarint(c, end)) return false;
  return c.pos === end;
}

/**
 * Reads a tag as protobuf-es does: a uint32 varint of at most 5 bytes; -1 otherwise (the
 * decoder throws on a longer or larger one).
 */
function readTag(c: Cursor, end: number): number {
  const tag = varint(c, end, 5);
  return tag > 0xffffffff ? -1 : tag;
}

/** One map entry (key 1, value 2, nothing else), its length already read. */
function mapEntry(c: Cursor, end: number, field: DescField & { fieldKind: "map" }, depth: number): boolean {
  while (c.pos < end) {
    const tag = readTag(c, end);
    if (tag < 0) return false;
    const number = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (number === 1) {
      if (wireType !== scalarWireType(field.mapKey) || !skipValue(c, end, wireType)) return false;
    } else if (number === 2) {
      if (field.mapKind === "message") {
        if (wireType !== LEN) return false;
        const inner = delimitedEnd(c, end);
        if (inner < 0 || !message(c, inner, field.message, depth + 1)) return false;
      } else {
        const expected = field.mapKind === "enum" ? VARINT : scalarWireType(field.scalar);
        if (wireType !== expected || !skipValue(c, end, wireType)) return false;
      }
    } else {
      return false;
    }
  }
  return c.pos === end;
}

/** One known field's value of `wireType`, its tag already read. */
function knownField(c: Cursor, end: number, field: DescField, wireType: number, depth: number): boolean {
  switch (field.fieldKind) {
    case "scalar":
      return wireType === scalarWireType(field.scalar) && skipValue(c, end, wireType);
    case "enum":
      return wireType === VARINT && skipVarint(c, end);
    case "message": {
      if (field.delimitedEncoding || wireType !== LEN) return false;
      const inner = delimitedEnd(c, end);
      return inner >= 0 && message(c, inner, field.message, depth + 1);
    }
    case "list": {
      if (field.listKind === "message") {
        if (field.delimitedEncoding || wireType !== LEN) return false;
        const inner = delimitedEnd(c, end);
        return inner >= 0 && message(c, inner, field.message, depth + 1);
      }
      const type = field.listKind === "enum" ? ScalarType.INT32 : field.scalar;
      const element = scalarWireType(type);
      if (wireType === element) return skipValue(c, end, wireType);
      // protobuf-es reads a length-delimited run of any packable scalar as packed.
      if (wireType !== LEN || element === LEN) return false;
      const inner = delimitedEnd(c, end);
      return inner >= 0 && packedRun(c, inner, type);
    }
    case "map": {
      if (wireType !== LEN) return false;
      const inner = delimitedEnd(c, end);
      return inner >= 0 && mapEntry(c, inner, field, depth + 1);
    }
  }
}

/** The fields of one `schema` message from `c.pos`, ending exactly at `end`. */
function message(c: Cursor, end: number, schema: DescMessage, depth: number): boolean {
  if (depth > MAX_DEPTH) return false;
  const fields = fieldsByNumber(schema);
  while (c.pos < end) {
    const tag = readTag(c, end);
    if (tag < 0) return false;
    const number = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (number === 0) return false;
    const field = fields.get(number);
    const ok = field === undefined ? skipValue(c, end, wireType) : knownField(c, end, field, wireType, depth);
    if (!ok) return false;
  }
  return c.pos === end;
}

const BY_NUMBER = new WeakMap<DescMessage, ReadonlyMap<number, DescField>>();

/** The schema's fields by number (built once per schema). */
function fieldsByNumber(schema: DescMessage): ReadonlyMap<number, DescField> {
  let fields = BY_NUMBER.get(schema);
  if (fields === undefined) {
    fields = new Map(schema.fields.map((f) => [f.number, f]));
    BY_NUMBER.set(schema, fields);
  }
  return fields;
}

/**
 * True when `bytes` are a strict encoding of a `schema` message (see the module comment):
 * then `fromBinary(schema, bytes)` equals the value a decoder reads from the same bytes
 * embedded as a length-delimited field of a parent message.
 */
export function isStrictEncoding(schema: DescMessage, bytes: Uint8Array): boolean {
  const cursor: Cursor = { bytes, pos: 0 };
  return message(cursor, bytes.length, schema, 0);
}
