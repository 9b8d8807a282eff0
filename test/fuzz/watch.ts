/**
 * What the fuzzers watch while they run: process-level failures, the heap after forced
 * collections, tallies for the summary they print.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** A forced full collection, without --expose-gc on the command line. */
export const collectGarbage: () => void = (() => {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed !== undefined) return exposed;
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
})();

/** Heap in use (JS heap and typed-array memory) after full collections. */
export async function settledHeap(): Promise<number> {
  for (let i = 0; i < 4; i++) {
    collectGarbage();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
}

/** Counts of named things. */
export class Tally {
  readonly counts = new Map<string, number>();

  add(name: string, n = 1): void {
    this.counts.set(name, (this.counts.get(name) ?? 0) + n);
  }

  get(name: string): number {
    return this.counts.get(name) ?? 0;
  }

  toJSON(): Record<string, number> {
    return Object.fromEntries([...this.counts].sort(([a], [b]) => a.localeCompare(b)));
  }
}

/**
 * Uncaught exceptions and unhandled rejections (failures), and process warnings (counted
 * by name, for the summary), while the watch is on.
 */
export class ProcessWatch {
  readonly failures: string[] = [];
  readonly warnings = new Tally();
  readonly #onError = (error: unknown) => this.failures.push(`uncaught: ${describe(error)}`);
  readonly #onRejection = (reason: unknown) => this.failures.push(`unhandled rejection: ${describe(reason)}`);
  readonly #onWarning = (warning: Error) => this.warnings.add(warning.name);

  start(): void {
    process.on("uncaughtException", this.#onError);
    process.on("unhandledRejection", this.#onRejection);
    process.on("warning", this.#onWarning);
  }

  stop(): void {
    process.off("uncaughtException", this.#onError);
    process.off("unhandledRejection", this.#onRejection);
    process.off("warning", this.#onWarning);
  }
}

function describe(value: unknown): string {
  return value instanceof Error ? `${value.name}: ${value.message}\n${value.stack}` : String(value);
}

/** Round trips of a well-behaved agent, measured while the fuzzer runs. */
export class RoundTrips {
  readonly #ms: number[] = [];

  add(ms: number): void {
    this.#ms.push(ms);
  }

  get count(): number {
    return this.#ms.length;
  }

  get max(): number {
    return this.#ms.reduce((a, b) => Math.max(a, b), 0);
  }

  percentile(p: number): number {
    const sorted = [...this.#ms].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0;
  }
}

/** Writes a run's summary to .tmp/<name>.json (the figures of docs/reliability.md come from there). */
export function writeSummary(name: string, summary: object): void {
  mkdirSync(".tmp", { recursive: true });
  writeFileSync(`.tmp/${name}.json`, `${JSON.stringify(summary, null, 2)}\n`);
}

/**
 * A run of input indexes `from` … `from + count - 1`, taken one at a time by concurrent
 * workers. With a `label` and at least 100 000 inputs (the long mode), progress is printed
 * every tenth of the way.
 */
export class Inputs {
  #next = 0;
  readonly #started = performance.now();

  constructor(
    readonly from: number,
    readonly count: number,
    readonly label?: string,
  ) {}

  /** True once every input was taken. */
  get done(): boolean {
    return this.#next >= this.count;
  }

  /** The next input's index, or undefined when all were taken. */
  take(): number | undefined {
    if (this.#next >= this.count) return undefined;
    const n = this.#next++;
    if (this.label !== undefined && this.count >= 100_000 && n > 0 && n % Math.floor(this.count / 10) === 0) {
      const seconds = (performance.now() - this.#started) / 1000;
      console.log(`${this.label}: ${n} of ${this.count} inputs, ${Math.round(n / seconds)} inputs/s`);
    }
    return this.from + n;
  }
}
