/**
 * Building ServerToAgent bytes from pre-encoded parts. A protobuf message may be written as
 * the concatenation of its fields, so a sub-message pushed to many agents (a remote config,
 * a package offer) is encoded once into a "part" and only the small per-agent fields
 * (instance_uid, flags, capabilities) are encoded per agent.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { type ServerToAgent, ServerToAgentSchema } from "../gen/opamp/v1/opamp_pb.js";
import { encodeField, putVarint, varintSize } from "./shared-state.js";

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

/** Wraps encoded sub-message bytes as field `kind` of ServerToAgent. */
export function makePart(kind: PartKind, messageBytes: Uint8Array): Part {
  return { kind, bytes: encodeField(PART_FIELD[kind], messageBytes) };
}

/**
 * The encoding of a reply's own fields. The usual reply holds only instance_uid, flags and
 * capabilities: those are written by hand (a reflective toBinary per agent costs more than
 * the rest of a fan-out send); anything else goes through toBinary.
 */
function encodeHead(base: ServerToAgent): Uint8Array {
  const simple =
    base.errorResponse === undefined &&
    base.remoteConfig === undefined &&
    base.connectionSettings === undefined &&
    base.packagesAvailable === undefined &&
    base.agentIdentification === undefined &&
    base.command === undefined &&
    base.customCapabilities === undefined &&
    base.customMessage === undefined &&
    base.instanceUid.length < 128 &&
    (base as { $unknown?: unknown[] }).$unknown === undefined;
  if (!simple) return toBinary(ServerToAgentSchema, base);
  const uid = base.instanceUid;
  let size = uid.length > 0 ? 2 + uid.length : 0;
  if (base.flags !== 0n) size += 1 + varintSize(base.flags);
  if (base.capabilities !== 0n) size += 1 + varintSize(base.capabilities);
  const out = new Uint8Array(size);
  let offset = 0;
  if (uid.length > 0) {
    out[0] = (1 << 3) | 2;
    out[1] = uid.length;
    out.set(uid, 2);
    offset = 2 + uid.length;
  }
  if (base.flags !== 0n) {
    out[offset++] = 6 << 3;
    offset = putVarint(out, offset, base.flags);
  }
  if (base.capabilities !== 0n) {
    out[offset++] = 7 << 3;
    offset = putVarint(out, offset, base.capabilities);
  }
  return out;
}

/**
 * Encodes `base` then appends each part. The parts' fields must not also be set in `base`
 * (a repeated sub-message field would be merged by the receiver, not replaced).
 *
 * @param headerByte - when true, a 0x00 WebSocket header byte is written first.
 */
export function encodeWithParts(base: ServerToAgent, parts: Iterable<Part>, headerByte: boolean): Uint8Array {
  const head = encodeHead(base);
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

/**
 * Parts at least this long travel by reference in {@link encodePieces}, not copied: over
 * WebSocket they are written after the agent's own bytes, in the same frame.
 */
export const SHARED_PIECE_BYTES = 4096;

/**
 * Like {@link encodeWithParts} with the WebSocket header byte, but as pieces whose
 * concatenation is a valid message: the header, `base` and the small parts copied into the
 * first piece, each large part (a config pushed to the whole fleet) appended as its own
 * piece, by reference. A push then costs each agent a few dozen bytes, not a copy of the
 * config. Fields may come in any order in protobuf; repeated ones are not involved.
 */
export function encodePieces(base: ServerToAgent, parts: readonly Part[]): Uint8Array[] {
  const small: Part[] = [];
  const large: Uint8Array[] = [];
  for (const part of parts) {
    if (part.bytes.length >= SHARED_PIECE_BYTES) large.push(part.bytes);
    else small.push(part);
  }
  return [encodeWithParts(base, small, true), ...large];
}

/** An empty ServerToAgent addressed to `instanceUid`. */
export function baseReply(instanceUid: Uint8Array): ServerToAgent {
  return create(ServerToAgentSchema, { instanceUid });
}
