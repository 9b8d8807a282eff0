import { expect, test } from "vitest";
import {
  AgentCapability,
  AgentToServerSchema,
  agentCapabilities,
  agentDescription,
  create,
  decodeWsMessage,
  encodeWsMessage,
  newInstanceUid,
} from "../../src/index.js";

test("readme", () => {
  const message = create(AgentToServerSchema, {
    instanceUid: newInstanceUid(),
    sequenceNum: 0n,
    capabilities: agentCapabilities({ reportsStatus: true, acceptsRemoteConfig: true, reportsRemoteConfig: true }),
    agentDescription: agentDescription({
      identifying: { "service.name": "io.opentelemetry.collector", "service.version": "0.120.0" },
      nonIdentifying: { "os.type": "linux", "host.name": "web-1" },
    }),
  });
  const frame = encodeWsMessage(AgentToServerSchema, message);
  const back = decodeWsMessage(AgentToServerSchema, frame, { maxMessageBytes: 1024 * 1024 });
  expect(back.capabilities & AgentCapability.AcceptsRemoteConfig).toBe(2n);
});
