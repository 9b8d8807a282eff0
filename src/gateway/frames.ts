/**
 * The few bytes the gateway reads and writes itself. Server → agent frames are forwarded
 * as they came, so they are only scanned at the top level (a large config pushed to the
 * fleet is never decoded); the messages the gateway makes on its own (a goodbye for an
 * agent that vanished, a request for full state) are a handful of fixed fields.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type CustomMessage,
  CustomMessageSchema,
  ServerErrorResponseType,
  ServerToAgentSchema,
} from "../gen/opamp/v1/opamp_pb.js";
import { encodeField, putVarint, varintSize } from "../server/shared-state.js";
import { ServerToAgentFlag } from "../wire/capabilities.js";
import { OpampError } from "../wire/errors.js";
import { encodeWsFrame } from "../wire/frame.js";

/** ServerToAgent field numbers the gateway looks at. */
const S2A = { instanceUid: 1, agentIdentification: 8, customCapabilities: 10, customMessage: 11 } as const;

/** What the gateway needs to know of a ServerToAgent to route it. */
export interface ServerFrameInfo {
  /** `instance_uid` (a view into the frame; empty when absent). */
  readonly instanceUid: Uint8Array;
  /** The encoded CustomCapabilities sub-message, when present. */
  readonly customCapabilities: Uint8Array | undefined;
  /** The decoded custom message, when present. */
  readonly customMessage: CustomMessage | undefined;
  /** `agent_identification.new_instance_uid`, when present. */
  readonly newInstanceUid: Uint8Array | undefined;
}

const EMPTY = new Uint8Array(0);

function malformed(message: string, cause?: unknown): OpampError {
  return new OpampError(
    "malformed_message",
    `cannot parse opamp.proto.v1.ServerToAgent: ${message}`,
    cause === undefined ? undefined : { cause },
  );
}

/** Reads a varint of at most 53 bits; returns [value, next offset]. */
function readVarint(bytes: Uint8Array, offset: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 8; i++) {
    const byte = bytes[offset + i];
    if (byte === undefined) throw malformed("truncated varint");
    value += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) return [value, offset + i + 1];
    scale *= 128;
  }
  throw malformed("varint too long for a length or tag");
}

/** Skips a varint of any length (up to 10 bytes); returns the next offset. */
function skipVarint(bytes: Uint8Array, offset: number): number {
  for (let i = 0; i < 10; i++) {
    const byte = bytes[offset + i];
    if (byte === undefined) throw malformed("truncated varint");
    if ((byte & 0x80) === 0) return offset + i + 1;
  }
  throw malformed("varint longer than 10 bytes");
}

/**
 * Walks the top-level fields of a ServerToAgent (protobuf, no header byte) and returns
 * what routing needs. Nested messages other than the custom message and the agent
 * identification are not decoded.
 *
 * @throws OpampError `malformed_message` when the top level is not well-formed protobuf.
 */
export function scanServerToAgent(payload: Uint8Array): ServerFrameInfo {
  let instanceUid: Uint8Array = EMPTY;
  let customCapabilities: Uint8Array | undefined;
  let customMessage: CustomMessage | undefined;
  let newInstanceUid: Uint8Array | undefined;
  let offset = 0;
  while (offset < payload.length) {
    const [tag, afterTag] = readVarint(payload, offset);
    const field = Math.floor(tag / 8);
    const wireType = tag & 7;
    if (field === 0) throw malformed("field number 0");
    offset = afterTag;
    switch (wireType) {
      case 0:
        offset = skipVarint(payload, offset);
        break;
      case 1:
        offset += 8;
        break;
      case 5:
        offset += 4;
        break;
      case 2: {
        const [length, start] = readVarint(payload, offset);
        const end = start + length;
        if (end > payload.length) throw malformed("length-delimited field runs past the end");
        const value = payload.subarray(start, end);
        if (field === S2A.instanceUid) instanceUid = value;
        else if (field === S2A.customCapabilities) customCapabilities = value;
        else if (field === S2A.customMessage) customMessage = decodeSub(CustomMessageSchema, value);
        else if (field === S2A.agentIdentification) newInstanceUid = readNewInstanceUid(value);
        offset = end;
        break;
      }
      default:
        throw malformed(`wire type ${wireType} is not used by OpAMP`);
    }
    if (offset > payload.length) throw malformed("fixed-size field runs past the end");
  }
  return { instanceUid, customCapabilities, customMessage, newInstanceUid };
}

function decodeSub<T extends typeof CustomMessageSchema>(schema: T, bytes: Uint8Array) {
  try {
    return fromBinary(schema, bytes);
  } catch (e) {
    throw malformed("bad custom_message", e);
  }
}

/** AgentIdentification { bytes new_instance_uid = 1 }. */
function readNewInstanceUid(bytes: Uint8Array): Uint8Array | undefined {
  let offset = 0;
  let uid: Uint8Array | undefined;
  while (offset < bytes.length) {
    const [tag, afterTag] = readVarint(bytes, offset);
    offset = afterTag;
    const wireType = tag & 7;
    if (wireType === 2) {
      const [length, start] = readVarint(bytes, offset);
      if (start + length > bytes.length) throw malformed("bad agent_identification");
      if (tag >> 3 === 1) uid = bytes.subarray(start, start + length);
      offset = start + length;
    } else if (wireType === 0) {
      offset = skipVarint(bytes, offset);
    } else {
      throw malformed("bad agent_identification");
    }
  }
  return uid;
}

/** The encoded `custom_capabilities` field (10) of a ServerToAgent, for appending to a message. */
export function customCapabilitiesField(capabilitiesMessage: Uint8Array): Uint8Array {
  return encodeField(S2A.customCapabilities, capabilitiesMessage);
}

/**
 * A WebSocket frame with `extra` appended: appending an encoded field to a protobuf
 * message sets that field (the message had none), so the original bytes stay as they are.
 */
export function appendToFrame(frame: Uint8Array, extra: Uint8Array): Uint8Array {
  const out = new Uint8Array(frame.length + extra.length);
  out.set(frame, 0);
  out.set(extra, frame.length);
  return out;
}

/**
 * The frame of an `AgentToServer` carrying only `agent_disconnect`, sent upstream for an
 * agent whose connection to the gateway ended without one (an opamp-sdk extension of
 * Bindplane's behaviour, which sends nothing). `sequenceNum` continues the agent's own.
 */
export function agentDisconnectFrame(instanceUid: Uint8Array, sequenceNum: bigint): Uint8Array {
  // 0x00 header; 1: instance_uid; 2: sequence_num; 9: agent_disconnect {} (empty).
  const size = 1 + 2 + instanceUid.length + 1 + varintSize(sequenceNum) + 2;
  const out = new Uint8Array(size);
  let offset = 0;
  out[offset++] = 0;
  out[offset++] = (1 << 3) | 2;
  out[offset++] = instanceUid.length;
  out.set(instanceUid, offset);
  offset += instanceUid.length;
  out[offset++] = 2 << 3;
  offset = putVarint(out, offset, sequenceNum);
  out[offset++] = (9 << 3) | 2;
  out[offset] = 0;
  return out;
}

/** A ServerToAgent (protobuf, no header) asking the agent for its full state. */
export function fullStateRequest(instanceUid: Uint8Array): Uint8Array {
  return toBinary(
    ServerToAgentSchema,
    create(ServerToAgentSchema, { instanceUid, flags: ServerToAgentFlag.ReportFullState }),
  );
}

/** The WebSocket frame of {@link fullStateRequest}. */
export function fullStateRequestFrame(instanceUid: Uint8Array): Uint8Array {
  return encodeWsFrame(fullStateRequest(instanceUid));
}

/** A ServerToAgent (protobuf, no header) with a BadRequest error, as the server answers a malformed message. */
export function badRequest(instanceUid: Uint8Array, message: string): Uint8Array {
  return toBinary(
    ServerToAgentSchema,
    create(ServerToAgentSchema, {
      instanceUid,
      errorResponse: { type: ServerErrorResponseType.ServerErrorResponseType_BadRequest, errorMessage: message },
    }),
  );
}
