/**
 * Conversions between OTLP-style AnyValue / KeyValue messages and plain JS values, so that
 * attributes (agent description, health, component metadata) can be written as objects.
 */
// spec: anyvalue.proto (a copy of OTLP common.proto)
import { create } from "@bufbuild/protobuf";
import {
  type AnyValue,
  AnyValueSchema,
  ArrayValueSchema,
  type KeyValue,
  KeyValueListSchema,
  KeyValueSchema,
} from "../gen/opamp/v1/anyvalue_pb.js";
import { OpampError } from "./errors.js";

/**
 * A plain JS value that maps onto an AnyValue:
 * string → string_value, boolean → bool_value, integer number or bigint → int_value,
 * other number → double_value, Uint8Array → bytes_value, null → an empty AnyValue,
 * array → array_value, plain object → kvlist_value.
 */
export type AttributeValue =
  | string
  | boolean
  | number
  | bigint
  | Uint8Array
  | null
  | readonly AttributeValue[]
  | { readonly [key: string]: AttributeValue };

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * Converts a plain value into an AnyValue. A number that is an integer within int64 range
 * becomes `int_value` (except `-0`, kept as a double so its sign survives); any other
 * number (fractions, NaN, ±Infinity, huge values) becomes `double_value`. An integral
 * number beyond 2^53 is sent as an int and so reads back as a `bigint` from
 * {@link fromAnyValue}. Object keys whose value is `undefined` are skipped, as JSON does.
 * `Uint8Array` values are referenced, not copied.
 *
 * @throws OpampError `invalid_argument` for a bigint outside int64, for `undefined`,
 *   functions, symbols, non-plain objects (Date, Map, …) and cyclic structures.
 */
export function toAnyValue(value: AttributeValue): AnyValue {
  return convert(value, new Set());
}

function convert(value: unknown, seen: Set<object>): AnyValue {
  switch (typeof value) {
    case "string":
      return create(AnyValueSchema, { value: { case: "stringValue", value } });
    case "boolean":
      return create(AnyValueSchema, { value: { case: "boolValue", value } });
    case "number":
      if (Number.isInteger(value) && !Object.is(value, -0) && Math.abs(value) < 2 ** 63) {
        return create(AnyValueSchema, { value: { case: "intValue", value: BigInt(value) } });
      }
      return create(AnyValueSchema, { value: { case: "doubleValue", value } });
    case "bigint":
      if (value < INT64_MIN || value > INT64_MAX) {
        throw new OpampError("invalid_argument", `bigint ${value} does not fit an int64 AnyValue`);
      }
      return create(AnyValueSchema, { value: { case: "intValue", value } });
    case "object":
      break;
    default:
      throw new OpampError("invalid_argument", `a ${typeof value} cannot be an attribute value`);
  }
  if (value === null) return create(AnyValueSchema);
  if (value instanceof Uint8Array) return create(AnyValueSchema, { value: { case: "bytesValue", value } });
  if (seen.has(value)) throw new OpampError("invalid_argument", "attribute value is cyclic");
  seen.add(value);
  try {
    if (Array.isArray(value)) {
      const values = value.map((item: unknown) => convert(item, seen));
      return create(AnyValueSchema, { value: { case: "arrayValue", value: create(ArrayValueSchema, { values }) } });
    }
    const proto: unknown = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      throw new OpampError("invalid_argument", "only plain objects, arrays and Uint8Array can be attribute values");
    }
    const values = keyValues(value as Record<string, unknown>, seen);
    return create(AnyValueSchema, { value: { case: "kvlistValue", value: create(KeyValueListSchema, { values }) } });
  } finally {
    // A value may appear twice side by side (a DAG); only a path back to itself is a cycle.
    seen.delete(value);
  }
}

function keyValues(record: Readonly<Record<string, unknown>>, seen: Set<object>): KeyValue[] {
  const out: KeyValue[] = [];
  for (const [key, item] of Object.entries(record)) {
    if (item === undefined) continue;
    out.push(create(KeyValueSchema, { key, value: convert(item, seen) }));
  }
  return out;
}

/**
 * Converts an AnyValue back into a plain value. `int_value` becomes a `number` when it is
 * a safe integer and a `bigint` otherwise, so no precision is lost; an absent or empty
 * AnyValue becomes `null`. A kvlist with repeated keys keeps the last one. Never throws.
 */
export function fromAnyValue(value: AnyValue | undefined): AttributeValue {
  const v = value?.value;
  switch (v?.case) {
    case undefined:
      return null;
    case "stringValue":
    case "boolValue":
    case "doubleValue":
    case "bytesValue":
      return v.value;
    case "intValue":
      return v.value >= BigInt(Number.MIN_SAFE_INTEGER) && v.value <= BigInt(Number.MAX_SAFE_INTEGER)
        ? Number(v.value)
        : v.value;
    case "arrayValue":
      return v.value.values.map((item) => fromAnyValue(item));
    case "kvlistValue":
      return fromKeyValues(v.value.values);
  }
}

/**
 * Converts a record of plain values into KeyValues, in the record's key order.
 * Keys whose value is `undefined` are skipped.
 *
 * @throws OpampError `invalid_argument` as {@link toAnyValue} does.
 */
export function toKeyValues(attributes: Readonly<Record<string, AttributeValue>>): KeyValue[] {
  return keyValues(attributes, new Set());
}

/**
 * Converts KeyValues into a record of plain values. A repeated key keeps its last value;
 * a KeyValue without a value maps to `null`. Keys such as `__proto__` become ordinary
 * own properties (the record is built with `Object.fromEntries`). Never throws.
 */
export function fromKeyValues(values: readonly KeyValue[]): Record<string, AttributeValue> {
  return Object.fromEntries(values.map((kv) => [kv.key, fromAnyValue(kv.value)]));
}
