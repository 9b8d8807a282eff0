/**
 * The gateway's metrics: plain counters on the object, the same numbers recorded through a
 * MeterProvider given in the options, and through the global one of @opentelemetry/api
 * (an optional peer dependency, imported lazily).
 */
import { metrics as otelMetrics } from "@opentelemetry/api";
import { afterEach, describe, expect, it, vi } from "vitest";
import { LATENCY_BUCKETS_MS, type MeterLike, type MeterProviderLike } from "../../../src/gateway/index.js";
import { GatewayMetrics, globalMeterProvider } from "../../../src/gateway/metrics.js";
import { cleanup, startGateway, startServer } from "../../integration/gateway/helpers.js";
import { TestAgent } from "../../integration/server/test-agent.js";

afterEach(cleanup);

interface Recorded {
  readonly instrument: string;
  readonly kind: string;
  readonly value: number;
  readonly attributes: object | undefined;
}

function fakeProvider(): { provider: MeterProviderLike; recorded: Recorded[]; created: Record<string, unknown> } {
  const recorded: Recorded[] = [];
  const created: Record<string, unknown> = {};
  const meter: MeterLike = {
    createCounter: (name, options) => {
      created[name] = { kind: "counter", ...options };
      return { add: (value, attributes) => recorded.push({ instrument: name, kind: "counter", value, attributes }) };
    },
    createUpDownCounter: (name, options) => {
      created[name] = { kind: "updown", ...options };
      return { add: (value, attributes) => recorded.push({ instrument: name, kind: "updown", value, attributes }) };
    },
    createHistogram: (name, options) => {
      created[name] = { kind: "histogram", ...options };
      return {
        record: (value, attributes) => recorded.push({ instrument: name, kind: "histogram", value, attributes }),
      };
    },
  };
  return { provider: { getMeter: () => meter }, recorded, created };
}

const sum = (recorded: Recorded[], instrument: string, direction: string) =>
  recorded
    .filter((r) => r.instrument === instrument && (r.attributes as { direction?: string })?.direction === direction)
    .reduce((n, r) => n + r.value, 0);

describe("GatewayMetrics", () => {
  it("counts per direction and buckets latency with Bindplane's bounds", () => {
    const m = new GatewayMetrics();
    m.connection("downstream", 1);
    m.connection("downstream", 1);
    m.connection("downstream", -1);
    m.message("upstream", 100, 0.2);
    m.message("upstream", 50, 7);
    m.message("downstream", 10, 200_000);
    const s = m.snapshot();
    expect(s.connections).toEqual({ upstream: 0, downstream: 1 });
    expect(s.messages).toEqual({ upstream: 2, downstream: 1 });
    expect(s.bytes).toEqual({ upstream: 150, downstream: 10 });
    expect(s.latency.upstream.count).toBe(2);
    expect(s.latency.upstream.buckets[1]).toBe(1); // (0, 5]
    expect(s.latency.upstream.buckets[2]).toBe(1); // (5, 10]
    expect(s.latency.downstream.buckets[LATENCY_BUCKETS_MS.length]).toBe(1); // over the last bound
    expect(s.latency.downstream.maxMs).toBe(200_000);
  });

  it("carries open connections over to a meter taken later, and takes them back when dropped", () => {
    const m = new GatewayMetrics();
    m.connection("upstream", 1);
    const { provider, recorded, created } = fakeProvider();
    m.useMeter(provider.getMeter("x"));
    expect(created["opampgateway.messages.latency"]).toMatchObject({
      kind: "histogram",
      unit: "ms",
      advice: { explicitBucketBoundaries: [...LATENCY_BUCKETS_MS] },
    });
    expect(created["opampgateway.connections"]).toMatchObject({ kind: "updown", unit: "{connections}" });
    expect(sum(recorded, "opampgateway.connections", "upstream")).toBe(1);
    m.dropMeter();
    expect(sum(recorded, "opampgateway.connections", "upstream")).toBe(0);
  });
});

describe("without @opentelemetry/api", () => {
  it("globalMeterProvider resolves undefined when the optional peer cannot be imported", async () => {
    vi.doMock("@opentelemetry/api", () => {
      throw new Error("Cannot find package '@opentelemetry/api'");
    });
    vi.resetModules();
    try {
      const fresh = await import("../../../src/gateway/metrics.js");
      expect(await fresh.globalMeterProvider()).toBeUndefined();
    } finally {
      vi.doUnmock("@opentelemetry/api");
      vi.resetModules();
    }
  });
});

describe("the gateway's metrics end to end", () => {
  it("an agent through the gateway: counters on the object and the same numbers through metrics.meterProvider", async () => {
    const { provider, recorded } = fakeProvider();
    const { wsUrl } = await startServer();
    const { gateway, url } = await startGateway(wsUrl, {
      upstream: { url: "", connections: 2 },
      metrics: { meterProvider: provider },
    });
    const agent = await TestAgent.connect("websocket", url, { headers: { authorization: "Bearer token-a" } });
    await agent.send(agent.fullState());
    await agent.send(agent.message());
    const s = gateway.metrics;
    expect(s.connections).toEqual({ upstream: 2, downstream: 1 });
    expect(s.messages.upstream).toBe(2);
    expect(s.messages.downstream).toBe(2);
    expect(s.bytes.upstream).toBeGreaterThan(20);
    expect(s.latency.upstream.count).toBe(2);
    for (const direction of ["upstream", "downstream"]) {
      expect(sum(recorded, "opampgateway.messages", direction)).toBe(s.messages[direction as "upstream"]);
      expect(sum(recorded, "opampgateway.messages.bytes", direction)).toBe(s.bytes[direction as "upstream"]);
      expect(sum(recorded, "opampgateway.connections", direction)).toBe(s.connections[direction as "upstream"]);
    }
    agent.close();
  });

  it("records through @opentelemetry/api's global MeterProvider when no provider is given", async () => {
    const { provider, recorded } = fakeProvider();
    // The API's global registration takes any object with getMeter.
    otelMetrics.setGlobalMeterProvider(provider as unknown as Parameters<typeof otelMetrics.setGlobalMeterProvider>[0]);
    try {
      expect(await globalMeterProvider()).toBeDefined();
      const { wsUrl } = await startServer();
      const { url } = await startGateway(wsUrl, { upstream: { url: "", connections: 1 } });
      const agent = await TestAgent.connect("http", url, { headers: { authorization: "Bearer token-a" } });
      await agent.send(agent.fullState());
      expect(sum(recorded, "opampgateway.messages", "upstream")).toBe(1);
      expect(sum(recorded, "opampgateway.connections", "downstream")).toBe(1);
    } finally {
      otelMetrics.disable();
    }
  });

  it("metrics.enabled: false records nothing through OpenTelemetry; the counters still count", async () => {
    const { provider, recorded } = fakeProvider();
    const { wsUrl } = await startServer();
    const { gateway, url } = await startGateway(wsUrl, {
      upstream: { url: "", connections: 1 },
      metrics: { meterProvider: provider, enabled: false },
    });
    const agent = await TestAgent.connect("websocket", url, { headers: { authorization: "Bearer token-a" } });
    await agent.send(agent.fullState());
    expect(recorded).toEqual([]);
    expect(gateway.metrics.messages.upstream).toBe(1);
    agent.close();
  });
});
