/** Option resolution: defaults, transport choice, validation errors, capability bits. */
import { describe, expect, it } from "vitest";
import { agentCapabilityBits } from "../../../src/client/capability-bits.js";
import { OpAMPClient } from "../../../src/client/opamp-client.js";
import { DEFAULT_HEARTBEAT_INTERVAL_MS, DEFAULT_RETRY, resolveClientOptions } from "../../../src/client/options.js";
import { AgentCapability } from "../../../src/wire/capabilities.js";
import { DEFAULT_MAX_MESSAGE_BYTES } from "../../../src/wire/limits.js";

describe("resolveClientOptions", () => {
  it("fills every default and picks the transport from the scheme", () => {
    const ws = resolveClientOptions({ transport: { url: "wss://example.com/v1/opamp" } });
    expect(ws.transportKind).toBe("ws");
    expect(ws.heartbeatIntervalMs).toBe(DEFAULT_HEARTBEAT_INTERVAL_MS);
    expect(ws.retry).toEqual(DEFAULT_RETRY);
    expect(ws.maxMessageBytes).toBe(DEFAULT_MAX_MESSAGE_BYTES);
    expect(Object.isFrozen(ws)).toBe(true);
    expect(resolveClientOptions({ transport: { url: "http://example.com/v1/opamp" } }).transportKind).toBe("http");
  });

  it.each([
    [{ transport: { url: "ftp://x" } }, "ws:, wss:, http: or https:"],
    [{ transport: { url: "not a url" } }, "not a valid URL"],
    [{ transport: { url: "ws://x", heartbeatIntervalMs: 0 } }, "heartbeatIntervalMs"],
    [{ transport: { url: "ws://x" }, retry: { initialDelayMs: 10, maxDelayMs: 5 } }, "maxDelayMs"],
    [{ transport: { url: "ws://x" }, limits: { maxMessageBytes: -1 } }, "maxMessageBytes"],
    [{ transport: { url: "ws://x" }, agent: { instanceUid: new Uint8Array(3) } }, "16 bytes"],
  ])("rejects %j", (options, message) => {
    expect(() => new OpAMPClient(options as never)).toThrow(message);
  });
});

describe("agentCapabilityBits", () => {
  it("declares one bit per hook or feature in use", () => {
    const none = agentCapabilityBits({
      hooks: {},
      packages: false,
      health: false,
      availableComponents: false,
      extra: 0n,
    });
    expect(none).toBe(AgentCapability.ReportsStatus | AgentCapability.ReportsHeartbeat);
    const all = agentCapabilityBits({
      hooks: {
        onRemoteConfig: async () => undefined,
        getEffectiveConfig: async () => {
          throw new Error("unused");
        },
        onOpampConnectionSettings: async () => true,
        onRestart: async () => undefined,
      },
      packages: true,
      health: true,
      availableComponents: true,
      extra: AgentCapability.ReportsOwnMetrics,
    });
    for (const bit of [
      AgentCapability.AcceptsRemoteConfig,
      AgentCapability.ReportsRemoteConfig,
      AgentCapability.ReportsEffectiveConfig,
      AgentCapability.AcceptsOpAMPConnectionSettings,
      AgentCapability.ReportsConnectionSettingsStatus,
      AgentCapability.AcceptsRestartCommand,
      AgentCapability.AcceptsPackages,
      AgentCapability.ReportsPackageStatuses,
      AgentCapability.ReportsHealth,
      AgentCapability.ReportsAvailableComponents,
      AgentCapability.ReportsOwnMetrics,
    ]) {
      expect(all & bit).toBe(bit);
    }
  });
});
