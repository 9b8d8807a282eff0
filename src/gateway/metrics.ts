/**
 * The gateway's four metrics, named as Bindplane's (`opampgateway.*`) and each split by
 * `direction` (`upstream`: agent → server; `downstream`: server → agent): open
 * connections, messages, message bytes and a latency histogram. They are kept as plain
 * numbers on the gateway, and also recorded through the OpenTelemetry metrics API when it
 * is available: `@opentelemetry/api` is an optional peer dependency, imported lazily, and
 * nothing breaks without it.
 */

import type { MeterLike } from "../internal/otel.js";

export {
  globalMeterProvider,
  type InstrumentOptionsLike,
  type MeterLike,
  type MeterProviderLike,
} from "../internal/otel.js";

/** Which way a message or connection goes. */
export type Direction = "upstream" | "downstream";

/** Latency bucket bounds in ms, as Bindplane's `opampgateway.messages.latency`. */
export const LATENCY_BUCKETS_MS: readonly number[] = Object.freeze([
  0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000, 25000, 50000, 75000, 100000,
]);

/** A latency histogram kept on the object. */
export interface LatencySnapshot {
  /** Messages measured since the gateway started. */
  readonly count: number;
  /** Sum of their latencies, in ms (`sumMs / count` is the mean). */
  readonly sumMs: number;
  /** Largest latency seen, in ms. */
  readonly maxMs: number;
  /** Counts per bucket: `buckets[i]` counts values ≤ `LATENCY_BUCKETS_MS[i]` and above the previous bound; the last counts the rest. */
  readonly buckets: readonly number[];
}

/** Both directions of one metric. */
export interface ByDirection<T> {
  /** Towards the server (agent → server messages; upstream connections). */
  readonly upstream: T;
  /** Towards the agents (server → agent messages; agent connections). */
  readonly downstream: T;
}

/** The gateway's counters at one moment. */
export interface GatewayMetricsSnapshot {
  /** Open connections: upstream WebSockets; downstream agent WebSockets plus live HTTP agents. */
  readonly connections: ByDirection<number>;
  /** Messages forwarded (upstream: agent → server). */
  readonly messages: ByDirection<number>;
  /** Bytes forwarded (whole WebSocket messages, header included). */
  readonly bytes: ByDirection<number>;
  /** Time from receipt to the write onto the other side (queueing plus write, no network time). */
  readonly latency: ByDirection<LatencySnapshot>;
}

class Histogram {
  count = 0;
  sumMs = 0;
  maxMs = 0;
  readonly buckets = new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0);

  record(ms: number): void {
    this.count++;
    this.sumMs += ms;
    if (ms > this.maxMs) this.maxMs = ms;
    let i = 0;
    while (i < LATENCY_BUCKETS_MS.length && ms > LATENCY_BUCKETS_MS[i]!) i++;
    this.buckets[i]! += 1;
  }

  snapshot(): LatencySnapshot {
    return { count: this.count, sumMs: this.sumMs, maxMs: this.maxMs, buckets: [...this.buckets] };
  }
}

interface OtelInstruments {
  readonly connections: { add(value: number, attributes?: object): void };
  readonly messages: { add(value: number, attributes?: object): void };
  readonly bytes: { add(value: number, attributes?: object): void };
  readonly latency: { record(value: number, attributes?: object): void };
}

const ATTRIBUTES: ByDirection<Readonly<Record<string, string>>> = {
  upstream: Object.freeze({ direction: "upstream" }),
  downstream: Object.freeze({ direction: "downstream" }),
};

/** The metrics of one gateway. */
export class GatewayMetrics {
  readonly #connections = { upstream: 0, downstream: 0 };
  readonly #messages = { upstream: 0, downstream: 0 };
  readonly #bytes = { upstream: 0, downstream: 0 };
  readonly #latency = { upstream: new Histogram(), downstream: new Histogram() };
  #otel: OtelInstruments | undefined;

  /** Starts recording through `meter` too; the current connection counts are carried over. */
  useMeter(meter: MeterLike): void {
    const otel: OtelInstruments = {
      connections: meter.createUpDownCounter("opampgateway.connections", {
        description: "Open connections of the OpAMP gateway",
        unit: "{connections}",
      }),
      messages: meter.createCounter("opampgateway.messages", {
        description: "OpAMP messages relayed by the gateway",
        unit: "{messages}",
      }),
      bytes: meter.createCounter("opampgateway.messages.bytes", {
        description: "Bytes of the OpAMP messages relayed by the gateway",
        unit: "B",
      }),
      latency: meter.createHistogram("opampgateway.messages.latency", {
        description: "Time from receipt of a message to its write on the other side",
        unit: "ms",
        advice: { explicitBucketBoundaries: [...LATENCY_BUCKETS_MS] },
      }),
    };
    for (const direction of ["upstream", "downstream"] as const) {
      if (this.#connections[direction] !== 0) otel.connections.add(this.#connections[direction], ATTRIBUTES[direction]);
    }
    this.#otel = otel;
  }

  /** Stops recording through OpenTelemetry (the gateway stopped); open connections go back to 0 there. */
  dropMeter(): void {
    const otel = this.#otel;
    this.#otel = undefined;
    if (otel === undefined) return;
    for (const direction of ["upstream", "downstream"] as const) {
      if (this.#connections[direction] !== 0)
        otel.connections.add(-this.#connections[direction], ATTRIBUTES[direction]);
    }
  }

  /** A connection opened (+1) or closed (-1). */
  connection(direction: Direction, delta: 1 | -1): void {
    this.#connections[direction] += delta;
    this.#otel?.connections.add(delta, ATTRIBUTES[direction]);
  }

  /** One message of `bytes` forwarded, `latencyMs` after it was received. */
  message(direction: Direction, bytes: number, latencyMs: number): void {
    this.#messages[direction]++;
    this.#bytes[direction] += bytes;
    this.#latency[direction].record(latencyMs);
    const otel = this.#otel;
    if (otel !== undefined) {
      const attributes = ATTRIBUTES[direction];
      otel.messages.add(1, attributes);
      otel.bytes.add(bytes, attributes);
      otel.latency.record(latencyMs, attributes);
    }
  }

  snapshot(): GatewayMetricsSnapshot {
    return {
      connections: { ...this.#connections },
      messages: { ...this.#messages },
      bytes: { ...this.#bytes },
      latency: { upstream: this.#latency.upstream.snapshot(), downstream: this.#latency.downstream.snapshot() },
    };
  }
}
