/** Option resolution: defaults, transport choice, validation errors, capability bits. */
import { describe, expect, it } from "vitest";
import { agentCapabilityBits } from "../../../src/client/capability-bits.js";
import { OpAMPClient } from "../../../src/client/opamp-client.js";
import {
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_DOWNLOAD_CONNECT_TIMEOUT_MS,
  DEFAULT_DOWNLOAD_IDLE_TIMEOUT_MS,
  DEFAULT_DOWNLOAD_TIMEOUT_MS,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_MAX_HEARTBEAT_INTERVAL_MS,
  DEFAULT_MAX_RETRY_AFTER_MS,
  DEFAULT_RETRY,
  resolveClientOptions,
} from "../../../src/client/options.js";
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

describe("resolveClientOptions: deadlines, server-given delays and headers", () => {
  const url = "ws://127.0.0.1:1/v1/opamp";

  it("defaults the deadlines and the bounds on server-given delays", () => {
    const resolved = resolveClientOptions({ transport: { url } });
    expect(resolved.connectTimeoutMs).toBe(DEFAULT_CONNECT_TIMEOUT_MS);
    expect(resolved.maxRetryAfterMs).toBe(DEFAULT_MAX_RETRY_AFTER_MS);
    expect(resolved.maxHeartbeatIntervalMs).toBe(DEFAULT_MAX_HEARTBEAT_INTERVAL_MS);
    expect(resolved.downloadConnectTimeoutMs).toBe(DEFAULT_DOWNLOAD_CONNECT_TIMEOUT_MS);
    expect(resolved.downloadIdleTimeoutMs).toBe(DEFAULT_DOWNLOAD_IDLE_TIMEOUT_MS);
    expect(resolved.downloadTimeoutMs).toBe(DEFAULT_DOWNLOAD_TIMEOUT_MS);
  });

  it.each([
    ["transport.connectTimeoutMs", { transport: { url, connectTimeoutMs: 0 } }],
    ["transport.heartbeatIntervalMs", { transport: { url, heartbeatIntervalMs: 2 ** 31 } }],
    ["transport.maxHeartbeatIntervalMs", { transport: { url, maxHeartbeatIntervalMs: 1e12 } }],
    ["retry.maxRetryAfterMs", { transport: { url }, retry: { maxRetryAfterMs: Number.POSITIVE_INFINITY } }],
    ["limits.downloadTimeoutMs", { transport: { url }, limits: { downloadTimeoutMs: -1 } }],
    ["limits.downloadIdleTimeoutMs", { transport: { url }, limits: { downloadIdleTimeoutMs: 3e9 } }],
  ])("refuses a bad %s (a timer cannot wait longer than 2^31-1 ms)", (name, options) => {
    expect(() => resolveClientOptions(options)).toThrow(
      expect.objectContaining({ code: "invalid_argument", message: expect.stringContaining(name) }),
    );
  });

  it.each([[{ "X-Token": "a\r\nInjected: 1" }], [{ "Bad Name": "x" }], [{ "X-Nul": "a\u0000b" }]])(
    "refuses headers that cannot be sent as they are: %j",
    (headers) => {
      expect(() => resolveClientOptions({ transport: { url, headers } })).toThrow(
        expect.objectContaining({ code: "invalid_argument" }),
      );
    },
  );
});
