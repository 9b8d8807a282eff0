import { create, equals, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AgentToServerSchema, ServerToAgentSchema } from "../../../src/gen/opamp/v1/opamp_pb.js";
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  decodeWsFrame,
  decodeWsMessage,
  encodeWsFrame,
  encodeWsMessage,
  OpampError,
  WS_HEADER,
} from "../../../src/wire/index.js";
import { agentToServer, decodesOrThrowsTyped, serverToAgent } from "./arbitraries.js";
import { bytes, fullAgentToServer } from "./fixtures.js";

function thrown(fn: () => unknown): OpampError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(OpampError);
    return error as OpampError;
  }
  throw new Error("expected an OpampError, nothing was thrown");
}

describe("encodeWsFrame / decodeWsFrame", () => {
  it("prefixes a single 0x00 header and strips it again", () => {
    expect(WS_HEADER).toBe(0n);
    const frame = encodeWsFrame(bytes(0x0a, 0x01, 0x07));
    expect(frame).toEqual(bytes(0x00, 0x0a, 0x01, 0x07));
    expect(decodeWsFrame(frame)).toEqual(bytes(0x0a, 0x01, 0x07));
  });

  it("returns a view of the input rather than a copy", () => {
    const frame = bytes(0, 1, 2);
    const payload = decodeWsFrame(frame);
    expect(payload.buffer).toBe(frame.buffer);
    expect(payload.byteOffset).toBe(1);
  });

  it("accepts an empty payload: a message with every field unset", () => {
    expect(decodeWsFrame(bytes(0))).toEqual(bytes());
    const decoded = decodeWsMessage(AgentToServerSchema, bytes(0));
    expect(equals(AgentToServerSchema, decoded, create(AgentToServerSchema))).toBe(true);
  });

  it("accepts a non-minimal varint encoding of 0", () => {
    expect(decodeWsFrame(bytes(0x80, 0x80, 0x00, 0x08, 0x01))).toEqual(bytes(0x08, 0x01));
  });

  it.each([
    ["an empty message", bytes(), /empty/],
    ["a truncated 1-byte varint", bytes(0x80), /truncated after 1 bytes/],
    ["a truncated 9-byte varint", bytes(0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80), /truncated after 9/],
    ["an 11-byte varint", bytes(...Array<number>(10).fill(0x80), 0x00), /overflows 64 bits/],
    ["a 10-byte varint above 2^64-1", bytes(...Array<number>(9).fill(0x80), 0x02), /overflows 64 bits/],
    ["header 1", bytes(0x01, 0x0a), /header value is 1,/],
    ["header 150 (2 bytes)", bytes(0x96, 0x01), /header value is 150,/],
    ["header 2^64-1", bytes(...Array<number>(9).fill(0xff), 0x01), /header value is 18446744073709551615,/],
    // A pre-v0.7 client sent no header; its first protobuf byte (0x0a, field 1) reads as header 10.
    ["a headerless legacy message", bytes(0x0a, 0x10, ...new Uint8Array(16)), /header value is 10,/],
  ])("rejects %s with malformed_frame", (_name, data, message) => {
    const error = thrown(() => decodeWsFrame(data));
    expect(error.code).toBe("malformed_frame");
    expect(error.message).toMatch(message);
  });

  it("checks the limit on the whole message, header included, before parsing", () => {
    expect(decodeWsFrame(new Uint8Array(10), 10)).toHaveLength(9);
    const error = thrown(() => decodeWsFrame(new Uint8Array(11), 10));
    expect(error.code).toBe("message_too_large");
    expect(error.details.limit).toBe(10);
    // Oversize wins over a bad header: nothing of an oversized message is parsed.
    expect(thrown(() => decodeWsFrame(new Uint8Array(11).fill(1), 10)).code).toBe("message_too_large");
  });

  it("defaults the limit to DEFAULT_MAX_MESSAGE_BYTES (64 MiB)", () => {
    expect(DEFAULT_MAX_MESSAGE_BYTES).toBe(64 * 1024 * 1024);
    const big = new Uint8Array(DEFAULT_MAX_MESSAGE_BYTES + 1);
    expect(thrown(() => decodeWsFrame(big)).code).toBe("message_too_large");
    expect(decodeWsFrame(big.subarray(0, DEFAULT_MAX_MESSAGE_BYTES))).toHaveLength(DEFAULT_MAX_MESSAGE_BYTES - 1);
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])("rejects a limit of %s as invalid_argument", (limit) => {
    expect(thrown(() => decodeWsFrame(bytes(0), limit)).code).toBe("invalid_argument");
  });
});

describe("encodeWsMessage / decodeWsMessage", () => {
  it("refuses to encode a message whose frame passes the limit", () => {
    const message = fullAgentToServer();
    const frameLength = toBinary(AgentToServerSchema, message).length + 1;
    expect(encodeWsMessage(AgentToServerSchema, message, { maxMessageBytes: frameLength })).toHaveLength(frameLength);
    const error = thrown(() => encodeWsMessage(AgentToServerSchema, message, { maxMessageBytes: frameLength - 1 }));
    expect(error.code).toBe("message_too_large");
    expect(error.details.limit).toBe(frameLength - 1);
  });

  it("turns a value the schema cannot hold into invalid_argument", () => {
    const message = fullAgentToServer();
    message.sequenceNum = -1n;
    expect(thrown(() => encodeWsMessage(AgentToServerSchema, message)).code).toBe("invalid_argument");
  });

  it("turns protobuf garbage after a valid header into malformed_message", () => {
    // field 1 (bytes) claims 16 bytes but only 2 follow
    const error = thrown(() => decodeWsMessage(AgentToServerSchema, bytes(0x00, 0x0a, 0x10, 1, 2)));
    expect(error.code).toBe("malformed_message");
    expect(error.message).toContain("opamp.proto.v1.AgentToServer");
    expect(error.cause).toBeInstanceOf(Error);
  });

  it("rejects an oversized message before parsing it", () => {
    const frame = encodeWsMessage(AgentToServerSchema, fullAgentToServer());
    const error = thrown(() => decodeWsMessage(AgentToServerSchema, frame, { maxMessageBytes: frame.length - 1 }));
    expect(error.code).toBe("message_too_large");
  });
});

describe("frame codec properties", () => {
  it("any AgentToServer survives encode → decode", () => {
    fc.assert(
      fc.property(agentToServer, (message) => {
        const decoded = decodeWsMessage(AgentToServerSchema, encodeWsMessage(AgentToServerSchema, message));
        expect(equals(AgentToServerSchema, decoded, message)).toBe(true);
      }),
    );
  });

  it("any ServerToAgent survives encode → decode", () => {
    fc.assert(
      fc.property(serverToAgent, (message) => {
        const decoded = decodeWsMessage(ServerToAgentSchema, encodeWsMessage(ServerToAgentSchema, message));
        expect(equals(ServerToAgentSchema, decoded, message)).toBe(true);
      }),
    );
  });

  it("any payload survives encodeWsFrame → decodeWsFrame", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (payload) => {
        expect(decodeWsFrame(encodeWsFrame(payload))).toEqual(payload);
      }),
    );
  });

  it("arbitrary bytes either decode or throw a typed frame/message error", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 512 }), async (data) => {
        await decodesOrThrowsTyped(
          () => decodeWsMessage(AgentToServerSchema, data),
          ["malformed_frame", "malformed_message"],
        );
        await decodesOrThrowsTyped(
          () => decodeWsMessage(ServerToAgentSchema, data),
          ["malformed_frame", "malformed_message"],
        );
      }),
      { numRuns: 500 },
    );
  });

  it("a valid frame with one byte changed either decodes or throws a typed error", async () => {
    await fc.assert(
      fc.asyncProperty(agentToServer, fc.nat(), fc.integer({ min: 1, max: 255 }), async (message, at, xor) => {
        const frame = encodeWsMessage(AgentToServerSchema, message);
        frame[at % frame.length]! ^= xor;
        await decodesOrThrowsTyped(
          () => decodeWsMessage(AgentToServerSchema, frame),
          ["malformed_frame", "malformed_message"],
        );
      }),
    );
  });

  it("the limit always holds: a frame longer than the limit never decodes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.integer({ min: 1, max: 64 }), (data, limit) => {
        if (data.length > limit) expect(thrown(() => decodeWsFrame(data, limit)).code).toBe("message_too_large");
        else expect(() => decodeWsFrame(data, limit)).not.toThrow(/too large/);
      }),
    );
  });
});
