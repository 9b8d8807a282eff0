// The real OpenTelemetry Collector stack (the Collector's opampsupervisor and a Collector
// with the opampextension), built by scripts/collector-stack.mjs from the Go module proxy.
// Every test that runs it goes through describeWithCollector + collectorStack, so Go-less
// machines skip it the same way and CI fails the same way.

import { fileURLToPath } from "node:url";
import { describe, it } from "vitest";
import { goAvailable, inCI, REPO_ROOT, runCommand } from "./go-harness.js";

/** Where the stack's binaries are. */
export interface CollectorStack {
  /** Release of the Collector modules, e.g. "0.149.0". */
  readonly version: string;
  /** The Collector's `opampsupervisor`. */
  readonly supervisor: string;
  /** A Collector (otlpreceiver, batchprocessor, debugexporter, opampextension). */
  readonly collector: string;
}

const SCRIPT = fileURLToPath(new URL("../../scripts/collector-stack.mjs", import.meta.url));

/**
 * Collector arguments every test passes (the supervisor's `agent.args`, or the command line
 * of a Collector run alone): the Collector's own metrics endpoint is off, so that several
 * Collectors can run at once (by default each binds localhost:8888, and a second one fails
 * to start). The stack's Collector holds the confmap yaml provider for `--set`.
 */
export const COLLECTOR_TEST_ARGS: readonly string[] = ["--set=service::telemetry::metrics::level=none"];

/** A cold build downloads the Collector's modules and compiles two binaries: allow for it. */
export const STACK_BUILD_TIMEOUT_MS = 20 * 60_000;

let stack: Promise<CollectorStack> | undefined;

/**
 * The stack's binaries, built on first use (cached across runs in .cache/collector-stack;
 * `.ci/run` builds them before the tests). Once per process.
 */
export function collectorStack(): Promise<CollectorStack> {
  stack ??= (async () => {
    const r = await runCommand(process.execPath, [SCRIPT], { cwd: REPO_ROOT, timeoutMs: STACK_BUILD_TIMEOUT_MS });
    if (r.code !== 0) throw new Error(`scripts/collector-stack.mjs failed (exit ${r.code}):\n${r.stderr}`);
    return JSON.parse(r.stdout) as CollectorStack;
  })();
  return stack;
}

/**
 * `describe` for tests that run the Collector stack. Without Go the suite is skipped with a
 * warning, except in CI, where a failing test takes its place.
 */
export function describeWithCollector(name: string, body: () => void): void {
  const available = goAvailable();
  if (!available) {
    const why = `${name}: the Go toolchain is needed to build the Collector stack (scripts/collector-stack.mjs)`;
    if (inCI()) {
      describe(name, () => {
        it("has the Go toolchain", () => {
          throw new Error(`${why}; CI is set, so this fails instead of skipping. Install Go and re-run.`);
        });
      });
      return;
    }
    console.warn(`SKIPPED ${why}. Install Go to run it (in CI this fails instead).`);
  }
  describe.skipIf(!available)(name, body);
}
