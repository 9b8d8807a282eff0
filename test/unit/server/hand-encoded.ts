/**
 * Protobuf written by hand for the server's tests, so they do not lean on the encoder under
 * test: varints, length-delimited fields, and a ComponentHealth whose map entries come in a
 * chosen order (the same tree encoded differently).
 */
import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { ComponentHealthSchema } from "../../../src/gen/opamp/v1/opamp_pb.js";

export type HealthInit = MessageInitShape<typeof ComponentHealthSchema>;

/** `value` as a protobuf varint. */
export function varint(value: number): number[] {
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** One length-delimited field: tag, length, bytes. */
export function field(no: number, bytes: Uint8Array): Uint8Array {
  return Uint8Array.from([...varint((no << 3) | 2), ...varint(bytes.length), ...bytes]);
}

export function concat(...parts: readonly Uint8Array[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((p) => [...p]));
}

/**
 * A ComponentHealth encoded with its component_health_map entries in `order`: the scalar
 * fields, then one encoded map entry per name (each the field-6 bytes of a map with that
 * single entry).
 */
export function healthBytes(order: readonly string[], components: Record<string, HealthInit>): Uint8Array {
  const head = toBinary(ComponentHealthSchema, create(ComponentHealthSchema, { healthy: true, status: "running" }));
  const entries = order.map((name) =>
    toBinary(
      ComponentHealthSchema,
      create(ComponentHealthSchema, { componentHealthMap: { [name]: components[name]! } }),
    ),
  );
  return concat(head, ...entries);
}

/** An unknown field (20) that any OpAMP message skips: `a2 01 01 78`. */
export const UNKNOWN_FIELD = field(20, Uint8Array.of(0x78));

/**
 * Field `no` declaring a 2-byte payload — a nested field's tag (`innerTag`) and length —
 * followed by `trailing`, which that nested field's length covers. protobuf-es decodes
 * `trailing` as the nested field's content (it lets a nested message run past its parent's
 * declared end), while a splitter that trusts declared lengths sees `trailing` as the next
 * top-level field. The field alone (without `trailing`) does not parse.
 */
export function overrunField(no: number, innerTag: number, trailing: Uint8Array = UNKNOWN_FIELD): Uint8Array {
  if (trailing.length >= 0x80) throw new Error("trailing must be shorter than 128 bytes");
  return concat(Uint8Array.from([...varint((no << 3) | 2), 2, innerTag, trailing.length]), trailing);
}
