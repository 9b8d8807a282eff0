/**
 * Decoding an AgentToServer with its two largest trees — the agent description and the
 * health tree — left encoded until someone reads them.
 *
 * A full report's description (~25 attributes of AnyValues) and health tree (a map of
 * components) are ~90 % of its decode time and most of the objects it allocates, while the
 * server itself only keeps their bytes (src/server/merge-report.ts). Here both fields become
 * properties that decode on first read (then hold the value like any field), so a server
 * that stores a report without looking into it never builds those objects.
 *
 * Only for a message whose bytes are a strict encoding with valid UTF-8 wherever the
 * decoder checks it (isStrictEncoding): then decoding a tree later cannot fail and gives
 * exactly what decoding it at once would have, and the message's other fields, decoded at
 * once from the bytes around the trees, are those of a whole decode. Any other message is
 * decoded at once as a whole (and fails, or not, as it always did).
 */
import { create, type DescMessage, fromBinary, type MessageShape, mergeFromBinary } from "@bufbuild/protobuf";
import {
  AgentDescriptionSchema,
  type AgentToServer,
  AgentToServerSchema,
  ComponentHealthSchema,
} from "../gen/opamp/v1/opamp_pb.js";
import { parse } from "./frame.js";
import { isStrictEncoding } from "./strict-encoding.js";

/** The fields decoded on first read: number, property, schema. */
const LAZY_FIELDS: readonly (readonly [number, "agentDescription" | "health", DescMessage])[] = [
  [3, "agentDescription", AgentDescriptionSchema],
  [5, "health", ComponentHealthSchema],
];

/** Below this size a message has no tree worth deferring. */
const MIN_LAZY_BYTES = 256;

/** Payloads found strict here: merge-report.ts need not walk them again. */
const STRICT_PAYLOADS = new WeakSet<Uint8Array>();

/** True when `payload` was decoded here and found a strict encoding. */
export function knownStrict(payload: Uint8Array): boolean {
  return STRICT_PAYLOADS.has(payload);
}

/** Where one lazy field lies in the payload: the whole field, and its message bytes. */
interface Span {
  readonly start: number;
  readonly end: number;
  readonly payloadStart: number;
  readonly property: "agentDescription" | "health";
  readonly schema: DescMessage;
}

/**
 * Decodes `payload` as an AgentToServer, deferring the description and health tree when it
 * is safe (see the module comment). Throws OpampError `malformed_message` like `parse()`.
 */
export function decodeAgentToServer(payload: Uint8Array): AgentToServer {
  const spans = payload.length >= MIN_LAZY_BYTES ? lazySpans(payload) : undefined;
  if (spans === undefined || !isStrictEncoding(AgentToServerSchema, payload, true)) {
    return parse(AgentToServerSchema, payload);
  }
  STRICT_PAYLOADS.add(payload);
  const message = create(AgentToServerSchema);
  let at = 0;
  for (const span of spans) {
    if (span.start > at) mergeFromBinary(AgentToServerSchema, message, payload.subarray(at, span.start));
    at = span.end;
  }
  if (at < payload.length) mergeFromBinary(AgentToServerSchema, message, payload.subarray(at));
  for (const span of spans)
    deferField(message, span.property, span.schema, payload.subarray(span.payloadStart, span.end));
  return message;
}

/**
 * True when the message holds `property`, without decoding a deferred tree to find out
 * (reading the property itself would decode it).
 */
export function hasAgentPart(message: AgentToServer, property: "agentDescription" | "health"): boolean {
  const own = Object.getOwnPropertyDescriptor(message, property);
  if (own?.get !== undefined) return true;
  return message[property] !== undefined;
}

/** Makes `property` decode `bytes` on its first read, and then hold the value. */
function deferField(message: AgentToServer, property: string, schema: DescMessage, bytes: Uint8Array): void {
  const settle = (target: object, value: unknown) => {
    Object.defineProperty(target, property, { value, writable: true, enumerable: true, configurable: true });
  };
  Object.defineProperty(message, property, {
    enumerable: true,
    configurable: true,
    get(this: object): MessageShape<DescMessage> {
      const value = fromBinary(schema, bytes);
      settle(this, value);
      return value;
    },
    set(this: object, value: unknown) {
      settle(this, value);
    },
  });
}

/**
 * The top-level spans of the lazy fields, in order; undefined when there is none, when one
 * comes twice (the decoder would merge them), or when the top level does not split.
 */
function lazySpans(bytes: Uint8Array): Span[] | undefined {
  let spans: Span[] | undefined;
  let pos = 0;
  while (pos < bytes.length) {
    const start = pos;
    const tag = readVarint(bytes, pos);
    if (tag === undefined) return undefined;
    pos = tag.next;
    const wireType = tag.value % 8;
    const number = Math.floor(tag.value / 8);
    if (wireType === 0) {
      const value = readVarint(bytes, pos);
      if (value === undefined) return undefined;
      pos = value.next;
    } else if (wireType === 1) {
      pos += 8;
    } else if (wireType === 5) {
      pos += 4;
    } else if (wireType === 2) {
      const length = readVarint(bytes, pos);
      if (length === undefined) return undefined;
      const payloadStart = length.next;
      pos = payloadStart + length.value;
      const lazy = LAZY_FIELDS.find(([n]) => n === number);
      if (lazy !== undefined) {
        if (spans?.some((s) => s.property === lazy[1])) return undefined;
        spans ??= [];
        spans.push({ start, end: pos, payloadStart, property: lazy[1], schema: lazy[2] });
      }
    } else {
      return undefined;
    }
    if (pos > bytes.length) return undefined;
  }
  return spans;
}

function readVarint(bytes: Uint8Array, pos: number): { value: number; next: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10 && pos < bytes.length; i++) {
    const b = bytes[pos++]!;
    value += (b & 0x7f) * scale;
    if (b < 0x80) return { value, next: pos };
    scale *= 128;
  }
  return undefined;
}
