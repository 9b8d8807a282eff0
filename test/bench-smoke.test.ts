/**
 * Smoke run of the benchmark harness (bench/): a few agents over WebSocket and HTTP
 * against the opamp-go server, a config fan-out, and the codec comparison with few
 * iterations. It proves the harness works end to end; it asserts counts, never timings
 * (speed is measured by `npm run bench`, not by tests).
 *
 * Needs the Go toolchain (bench/go is built through the Go module proxy). Without `go`
 * the suite is skipped locally and fails under CI.
 */
import { execFile, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const RUNNER = join(import.meta.dirname, "..", "bench", "run.mjs");
const AGENTS = 20;
const hasGo = spawnSync("go", ["version"], { stdio: "ignore" }).status === 0;
const inCI = Boolean(process.env["CI"]);

if (!hasGo && !inCI) console.warn("bench smoke skipped: the `go` toolchain is not installed (under CI this fails)");

interface Results {
  runs: {
    scenario: string;
    servers: Record<string, Record<string, unknown>>;
    codec?: { cases: { case: string; go_ops_per_s: number; sdk_ops_per_s?: number }[]; sdk_unavailable?: string };
  }[];
}

describe.skipIf(!hasGo && !inCI)("bench harness smoke", () => {
  const dir = mkdtempSync(join(tmpdir(), "opamp-bench-smoke-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function bench(name: string, args: string[]): Promise<Results> {
    const out = join(dir, `${name}.json`);
    await run(process.execPath, [RUNNER, ...args, "--quick", "--out", out, "--raw-dir", join(dir, `${name}-raw`)], {
      timeout: 90_000,
    });
    return JSON.parse(readFileSync(out, "utf8")) as Results;
  }

  it("has the go toolchain", () => {
    expect(hasGo, "bench/go needs `go` on PATH").toBe(true);
  });

  it.each(["ws", "http"])(
    "connects every agent over %s and counts every APPLIED after a fan-out (opamp-go server)",
    async (transport) => {
      const results = await bench(`fanout-${transport}`, [
        "--scenario",
        "fanout",
        "--agents",
        String(AGENTS),
        "--transport",
        transport,
        "--servers",
        "go",
        "--heartbeat",
        "1",
      ]);
      const go = results.runs[0]?.servers["opamp-go"];
      expect(go?.["error"]).toBeUndefined();
      // Every agent's full state is held by the server, and every agent APPLIED the pushed config.
      expect(go?.["server_full_state"]).toBe(AGENTS);
      expect(go?.["server_applied"]).toBe(AGENTS);
      expect((go?.["apply_ack"] as { count: number } | undefined)?.count).toBe(AGENTS);
      expect(go?.["load_errors"]).toBe(0);
    },
    90_000,
  );

  it("times the codec cases on the Go side (and on opamp-sdk's when dist is built)", async () => {
    const results = await bench("codec", ["--scenario", "codec", "--iterations", "50"]);
    const codec = results.runs[0]?.codec;
    const names = codec?.cases.map((c) => c.case);
    expect(names).toEqual([
      "AgentToServer.encode",
      "AgentToServer.decode",
      "ServerToAgent.encode",
      "ServerToAgent.decode",
    ]);
    for (const c of codec?.cases ?? []) {
      expect(c.go_ops_per_s).toBeGreaterThan(0);
      if (codec?.sdk_unavailable === undefined) expect(c.sdk_ops_per_s).toBeGreaterThan(0);
    }
  }, 90_000);
});
