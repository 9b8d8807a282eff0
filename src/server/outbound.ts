/**
 * Building ServerToAgent bytes from pre-encoded parts. A protobuf message may be written as
 * the concatenation of its fields, so a sub-message pushed to many agents (a remote config,
 * a package offer) is encoded once into a "part" and only the small per-agent fields
 * (instance_uid, flags, capabilities) are encoded per agent.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { type ServerToAgent, ServerToAgentSchema } from "../gen/opamp/v1/opamp_pb.js";

/** ServerToAgent sub-message fields that travel as pre-encoded parts, with their field numbers. */
export const PART_FIELD = {
  remoteConfig: 3,
  connectionSettings: 4,
  packagesAvailable: 5,
  agentIdentification: 8,
  command: 9,
  customMessage: 11,
} as const;

/** Name of a part-carried field. */
export type PartKind = keyof typeof PART_FIELD;

/** One encoded field of ServerToAgent (tag + length + message bytes). */
export interface Part {
  readonly kind: PartKind;
  readonly bytes: Uint8Array;
}

function varintLength(value: number): number {
  let n = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    n++;
  }
  return n;
}

function writeVarint(out: Uint8Array, offset: number, value: number): number {
  while (value >= 0x80) {
    out[offset++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  out[offset++] = value;
  return offset;
}

/** Wraps encoded sub-message bytes as field `kind` of ServerToAgent. */
export function makePart(kind: PartKind, messageBytes: Uint8Array): Part {
  const tag = (PART_FIELD[kind] << 3) | 2; // wire type 2: length-delimited
  const out = new Uint8Array(1 + varintLength(messageBytes.length) + messageBytes.length);
  out[0] = tag;
  const offset = writeVarint(out, 1, messageBytes.length);
  out.set(messageBytes, offset);
  return { kind, bytes: out };
}

/**
 * Encodes `base` then appends each part. The parts' fields must not also be set in `base`
 * (a repeated sub-message field would be merged by the receiver, not replaced).
 *
 * @param headerByte - when true, a 0x00 WebSocket header byte is written first.
 */
export function encodeWithParts(base: ServerToAgent, parts: Iterable<Part>, headerByte: boolean): Uint8Array {
  const head = toBinary(ServerToAgentSchema, base);
  let total = head.length + (headerByte ? 1 : 0);
  const list: Part[] = [];
  for (const part of parts) {
    list.push(part);
    total += part.bytes.length;
  }
  const out = new Uint8Array(total);
  let offset = 0;
  if (headerByte) out[offset++] = 0;
  out.set(head, offset);
  offset += head.length;
  for (const part of list) {
    out.set(part.bytes, offset);
    offset += part.bytes.length;
  }
  return out;
}

/** An empty ServerToAgent addressed to `instanceUid`. */
export function baseReply(instanceUid: Uint8Array): ServerToAgent {
  return create(ServerToAgentSchema, { instanceUid });
}
