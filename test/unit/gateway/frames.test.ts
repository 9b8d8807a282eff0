/** The bytes the gateway reads and writes itself: the top-level scan of server messages and the messages it makes. */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  agentDisconnectFrame,
  appendToFrame,
  customCapabilitiesField,
  fullStateRequestFrame,
  scanServerToAgent,
} from "../../../src/gateway/frames.js";
import { canonicalHeaderName } from "../../../src/gateway/headers.js";
import { AgentToServerSchema, ServerToAgentSchema } from "../../../src/gen/opamp/v1/opamp_pb.js";
import { decodeWsFrame, encodeWsFrame, newInstanceUid } from "../../../src/wire/index.js";

describe("gateway frames", () => {
  it("scans a server message's routing fields without decoding the rest", () => {
    const uid = newInstanceUid();
    const next = newInstanceUid();
    const bytes = toBinary(
      ServerToAgentSchema,
      create(ServerToAgentSchema, {
        instanceUid: uid,
        flags: 3n,
        capabilities: 0xffn,
        remoteConfig: {
          config: { configMap: { "a.yaml": { body: new Uint8Array(5000) } } },
          configHash: new Uint8Array(32),
        },
        agentIdentification: { newInstanceUid: next },
        customCapabilities: { capabilities: ["io.x"] },
        customMessage: { capability: "io.x", type: "t", data: new Uint8Array([1]) },
      }),
    );
    const info = scanServerToAgent(bytes);
    expect(info.instanceUid).toEqual(uid);
    expect(info.newInstanceUid).toEqual(next);
    expect(info.customMessage?.type).toBe("t");
    expect(info.customCapabilities).toBeDefined();
    expect(scanServerToAgent(new Uint8Array(0)).instanceUid).toHaveLength(0);
  });

  it.each([
    ["truncated length", [0x0a, 0x10, 1, 2]],
    ["group wire type", [0x0b]],
    ["field 0", [0x00]],
    ["runaway varint", [0x30, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]],
    ["truncated fixed64", [0x09, 1, 2]],
  ])("refuses a malformed top level: %s", (_name, bytes) => {
    expect(() => scanServerToAgent(new Uint8Array(bytes))).toThrow(
      expect.objectContaining({ code: "malformed_message" }),
    );
  });

  it("appending the custom_capabilities field sets it and keeps the original fields", () => {
    const uid = newInstanceUid();
    const frame = encodeWsFrame(
      toBinary(ServerToAgentSchema, create(ServerToAgentSchema, { instanceUid: uid, flags: 2n })),
    );
    const caps = toBinary(
      ServerToAgentSchema,
      create(ServerToAgentSchema, { customCapabilities: { capabilities: ["a", "b"] } }),
    );
    const field = customCapabilitiesField(scanServerToAgent(caps).customCapabilities!);
    const message = fromBinary(ServerToAgentSchema, decodeWsFrame(appendToFrame(frame, field)));
    expect(message.instanceUid).toEqual(uid);
    expect(message.flags).toBe(2n);
    expect(message.customCapabilities?.capabilities).toEqual(["a", "b"]);
  });

  it("a synthesised goodbye continues the sequence; a full-state request sets the flag", () => {
    const uid = newInstanceUid();
    const goodbye = fromBinary(AgentToServerSchema, decodeWsFrame(agentDisconnectFrame(uid, 300n)));
    expect(goodbye.instanceUid).toEqual(uid);
    expect(goodbye.sequenceNum).toBe(300n);
    expect(goodbye.agentDisconnect).toBeDefined();
    const ask = fromBinary(ServerToAgentSchema, decodeWsFrame(fullStateRequestFrame(uid)));
    expect(ask.flags).toBe(1n);
  });

  it("header names in Go's canonical form", () => {
    expect(canonicalHeaderName("sec-websocket-key")).toBe("Sec-Websocket-Key");
    expect(canonicalHeaderName("AUTHORIZATION")).toBe("Authorization");
    expect(canonicalHeaderName("x-b3-traceid")).toBe("X-B3-Traceid");
    expect(canonicalHeaderName("bad name")).toBe("bad name");
  });
});
