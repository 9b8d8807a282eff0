/**
 * The OpenTelemetry metrics API as the SDK uses it, structurally: `@opentelemetry/api` is
 * an optional peer dependency, imported lazily by {@link globalMeterProvider}, and nothing
 * breaks without it. Shared by the gateway's and the server's metrics.
 */

/** What the SDK needs of an OpenTelemetry `MeterProvider` (structurally the API's own). */
export interface MeterProviderLike {
  /** Returns the meter of an instrumentation scope; the SDK asks for `opamp-sdk/server` or `opamp-sdk/gateway`. */
  getMeter(name: string, version?: string): MeterLike;
}

/** Instrument options the SDK passes (a subset of the API's `MetricOptions`). */
export interface InstrumentOptionsLike {
  /** What the instrument measures. */
  readonly description?: string;
  /** UCUM unit, e.g. `By` or `ms`. */
  readonly unit?: string;
  /** Hints to the SDK's default aggregation. */
  readonly advice?: {
    /** Histogram bucket bounds. */
    readonly explicitBucketBoundaries?: number[];
  };
}

/** What the SDK needs of an OpenTelemetry `Meter`. */
export interface MeterLike {
  /** Creates a monotonic counter (messages, bytes, pushes). */
  createCounter(
    name: string,
    options?: InstrumentOptionsLike,
  ): {
    /** Adds a non-negative `value`. */
    add(value: number, attributes?: object): void;
  };
  /** Creates a counter that goes up and down (connected agents, open connections). */
  createUpDownCounter(
    name: string,
    options?: InstrumentOptionsLike,
  ): {
    /** Adds `value`, which may be negative. */
    add(value: number, attributes?: object): void;
  };
  /** Creates a histogram (latencies). */
  createHistogram(
    name: string,
    options?: InstrumentOptionsLike,
  ): {
    /** Records one measurement. */
    record(value: number, attributes?: object): void;
  };
}

/** The module name, in a variable so that bundlers and type checkers do not require it. */
const OTEL_API = "@opentelemetry/api";

/**
 * The global MeterProvider of `@opentelemetry/api`, or undefined when the package is not
 * installed (it is an optional peer dependency). Never throws.
 */
export async function globalMeterProvider(): Promise<MeterProviderLike | undefined> {
  try {
    const api = (await import(/* @vite-ignore */ OTEL_API)) as {
      metrics?: { getMeterProvider?: () => MeterProviderLike };
      default?: { metrics?: { getMeterProvider?: () => MeterProviderLike } };
    };
    const metrics = api.metrics ?? api.default?.metrics;
    return metrics?.getMeterProvider?.();
  } catch {
    return undefined;
  }
}
