import { create, type DescMessage, equals, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  AgentDisconnectSchema,
  AgentToServerSchema,
  ComponentHealthSchema,
  ServerToAgentCommandSchema,
  ServerToAgentSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import { decodeHttpBody, encodeHttpBody } from "../../../src/wire/http-body.js";
import { decodeWsMessage, encodeWsMessage } from "../../../src/wire/index.js";
import { allFields, bytes, fullAgentToServer, fullServerToAgent, setFields, U64_MAX } from "./fixtures.js";

const hex = (data: Uint8Array) => Array.from(data, (b) => b.toString(16).padStart(2, "0")).join(" ");

async function viaEveryCodec<D extends DescMessage>(schema: D, message: MessageShape<D>): Promise<MessageShape<D>[]> {
  return [
    fromBinary(schema, toBinary(schema, message)),
    decodeWsMessage(schema, encodeWsMessage(schema, message)),
    await decodeHttpBody(schema, await encodeHttpBody(schema, message)),
    await decodeHttpBody(schema, await encodeHttpBody(schema, message, { gzip: true }), { contentEncoding: "gzip" }),
  ];
}

describe.each([
  ["AgentToServer", AgentToServerSchema, fullAgentToServer],
  ["ServerToAgent", ServerToAgentSchema, fullServerToAgent],
] as const)("%s round trip", (_name, schema, build) => {
  it("the fixture sets every field of every reachable message", () => {
    const missing = [...allFields(schema)].filter((field) => !setFields(schema, build()).has(field));
    expect(missing).toEqual([]);
  });

  it("keeps every field through protobuf, WebSocket and HTTP (raw and gzip) codecs", async () => {
    const original = build();
    for (const decoded of await viaEveryCodec(schema as DescMessage, original)) {
      expect(equals(schema as DescMessage, decoded, original)).toBe(true);
      // equals() is the structural check; the fields below are the ones a number type would break.
      expect(decoded).toEqual(original);
      expect(setFields(schema, decoded)).toEqual(setFields(schema, original));
      expect(toBinary(schema as DescMessage, decoded)).toEqual(toBinary(schema as DescMessage, original));
    }
  });
});

describe("64-bit values", () => {
  it("uint64 and fixed64 above 2^53 survive unchanged as bigint", async () => {
    const [decoded] = await viaEveryCodec(AgentToServerSchema, fullAgentToServer());
    expect(decoded!.sequenceNum).toBe(U64_MAX);
    expect(decoded!.capabilities).toBe(U64_MAX - 1n);
    expect(decoded!.flags).toBe(U64_MAX);
    expect(decoded!.health!.startTimeUnixNano).toBe(U64_MAX);
    expect(decoded!.health!.statusTimeUnixNano).toBe(1_700_000_000_123_456_789n);
    expect(decoded!.health!.componentHealthMap["receiver"]!.startTimeUnixNano).toBe(2n ** 53n + 1n);

    const s2a = decodeWsMessage(ServerToAgentSchema, encodeWsMessage(ServerToAgentSchema, fullServerToAgent()));
    expect(s2a.connectionSettings!.opamp!.heartbeatIntervalSeconds).toBe(U64_MAX);
    expect(s2a.errorResponse!.Details).toEqual({ case: "retryInfo", value: expect.anything() });
    expect(s2a.errorResponse!.Details.value!.retryAfterNanoseconds).toBe(U64_MAX);
  });

  it("encodes start_time_unix_nano as fixed64 (tag 0x11 + 8 little-endian bytes)", () => {
    const health = create(ComponentHealthSchema, { startTimeUnixNano: 0x0102030405060708n });
    expect(hex(toBinary(ComponentHealthSchema, health))).toBe("11 08 07 06 05 04 03 02 01");
  });
});

describe("field presence", () => {
  it("an empty agent_disconnect encodes as 4a 00 and an absent one as nothing", () => {
    const present = create(AgentToServerSchema, { agentDisconnect: create(AgentDisconnectSchema) });
    expect(hex(toBinary(AgentToServerSchema, present))).toBe("4a 00");
    expect(hex(toBinary(AgentToServerSchema, create(AgentToServerSchema)))).toBe("");
    expect(hex(encodeWsMessage(AgentToServerSchema, present))).toBe("00 4a 00");
  });

  it("decoding 4a 00 gives a present, empty agent_disconnect; decoding nothing leaves it absent", () => {
    expect(decodeWsMessage(AgentToServerSchema, bytes(0, 0x4a, 0)).agentDisconnect).toBeDefined();
    expect(decodeWsMessage(AgentToServerSchema, bytes(0)).agentDisconnect).toBeUndefined();
  });

  it("a Restart command (enum value 0) is still sent: ServerToAgent field 9 present and empty", async () => {
    const message = create(ServerToAgentSchema, { command: create(ServerToAgentCommandSchema) });
    expect(hex(toBinary(ServerToAgentSchema, message))).toBe("4a 00");
    const decoded = await decodeHttpBody(ServerToAgentSchema, await encodeHttpBody(ServerToAgentSchema, message));
    expect(decoded.command).toBeDefined();
    expect(decoded.remoteConfig).toBeUndefined();
  });

  it("every optional sub-message keeps absent vs empty through the codecs", async () => {
    const subMessages = AgentToServerSchema.fields.filter((field) => field.fieldKind === "message");
    expect(subMessages.length).toBe(11);
    for (const field of subMessages) {
      const withEmpty = create(AgentToServerSchema, { [field.localName]: {} });
      for (const decoded of await viaEveryCodec(AgentToServerSchema, withEmpty)) {
        for (const other of subMessages) {
          const value = (decoded as unknown as Record<string, unknown>)[other.localName];
          if (other === field) expect(value, field.name).toBeDefined();
          else expect(value, `${other.name} with ${field.name} set`).toBeUndefined();
        }
      }
    }
  });

  it("unknown fields from a newer peer are kept and re-encoded", () => {
    // field 100, varint 1: tag (100 << 3) = 800 = 0xa0 0x06
    const withUnknown = bytes(0x10, 0x05, 0xa0, 0x06, 0x01);
    const decoded = fromBinary(AgentToServerSchema, withUnknown);
    expect(decoded.sequenceNum).toBe(5n);
    expect(toBinary(AgentToServerSchema, decoded)).toEqual(withUnknown);
  });
});
