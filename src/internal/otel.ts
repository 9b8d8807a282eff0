/**
 * The OpenTelemetry metrics API as the SDK uses it, structurally: `@opentelemetry/api` is
 * an optional peer dependency, imported lazily by {@link globalMeterProvider}, and nothing
 * breaks without it. Shared by the gateway's and the server's metrics.
 */

/** What the SDK needs of an OpenTelemetry `MeterProvider` (structurally the API's own). */
export interface MeterProviderLike {
  getMeter(name: string, version?: string): MeterLike;
}

/** Instrument options the SDK passes (a subset of the API's `MetricOptions`). */
export interface InstrumentOptionsLike {
  readonly description?: string;
  readonly unit?: string;
  readonly advice?: { readonly explicitBucketBoundaries?: number[] };
}

/** What the SDK needs of an OpenTelemetry `Meter`. */
export interface MeterLike {
  createCounter(name: string, options?: InstrumentOptionsLike): { add(value: number, attributes?: object): void };
  createUpDownCounter(name: string, options?: InstrumentOptionsLike): { add(value: number, attributes?: object): void };
  createHistogram(name: string, options?: InstrumentOptionsLike): { record(value: number, attributes?: object): void };
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
