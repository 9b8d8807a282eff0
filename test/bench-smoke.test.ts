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

  // The SDK server writes a pushed 8 KiB config's frame itself (the shared config by
  // reference); the Go load generator (gorilla/websocket, opamp-go's protobufs) must read
  // and apply it.
  it.each(["ws", "http"])(
    "connects every agent over %s and counts every APPLIED after a fan-out (opamp-sdk server)",
    async (transport) => {
      const results = await bench(`fanout-sdk-${transport}`, [
        "--scenario",
        "fanout",
        "--agents",
        String(AGENTS),
        "--transport",
        transport,
        "--servers",
        "sdk",
        "--heartbeat",
        "1",
      ]);
      const sdk = results.runs[0]?.servers["opamp-sdk"];
      expect(sdk?.["error"]).toBeUndefined();
      expect(sdk?.["unavailable"]).toBeUndefined();
      expect(sdk?.["server_full_state"]).toBe(AGENTS);
      expect(sdk?.["server_applied"]).toBe(AGENTS);
      expect((sdk?.["apply_ack"] as { count: number } | undefined)?.count).toBe(AGENTS);
      expect(sdk?.["load_errors"]).toBe(0);
    },
    90_000,
  );

  // Across cores: opamp-sdk as a cluster of two workers (startCluster), two alternating
  // runs, the figures of all its processes together and their medians in the table.
  it.each(["ws", "http"])(
    "fans out to every agent over %s of a two-worker opamp-sdk cluster, twice (--cluster 2 --repeat 2)",
    async (transport) => {
      const results = await bench(`fanout-cluster-${transport}`, [
        "--scenario",
        "fanout",
        "--agents",
        String(AGENTS),
        "--transport",
        transport,
        "--servers",
        "sdk",
        "--heartbeat",
        "1",
        "--cluster",
        "2",
        "--repeat",
        "2",
      ]);
      const sdk = results.runs[0]?.servers["opamp-sdk"] as Record<string, unknown> & {
        runs: Record<string, unknown>[];
      };
      expect(sdk["median_of"]).toBe(2);
      expect(sdk.runs.length).toBe(2);
      for (const run of sdk.runs) {
        expect(run["error"]).toBeUndefined();
        expect(run["server_full_state"]).toBe(AGENTS);
        expect(run["server_applied"]).toBe(AGENTS);
        expect(run["load_errors"]).toBe(0);
      }
      // Both workers held agents: the cluster, not one process, served the fleet.
      const stats = sdk.runs[0]!["push"] as { pushed_ws: number; queued_http: number };
      expect(stats.pushed_ws + stats.queued_http).toBe(AGENTS);
      expect(sdk["server_applied"]).toBe(AGENTS);
    },
    120_000,
  );

  it("brings every agent back after the whole cluster is killed and restarted (storm, --cluster 2)", async () => {
    const results = await bench("storm-cluster", [
      "--scenario",
      "storm",
      "--agents",
      String(AGENTS),
      "--servers",
      "sdk",
      "--cluster",
      "2",
    ]);
    const sdk = results.runs[0]?.servers["opamp-sdk"];
    expect(sdk?.["error"]).toBeUndefined();
    expect(sdk?.["server_full_state"]).toBe(AGENTS);
    expect(sdk?.["recovery_from_kill_ms"]).toBeGreaterThan(0);
  }, 120_000);

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

describe("bench results merge", () => {
  it("keeps every run with its source and reports repeated figures as median, min and max", async () => {
    const { merge, median } = (await import(join(import.meta.dirname, "..", "bench", "ts", "merge.mjs"))) as {
      merge: (inputs: { file: string; results: unknown }[]) => {
        runs: { source: string; pinned: boolean }[];
        repeated: {
          group: string;
          figure: string;
          servers: Record<string, { n: number; median: number; min: number; max: number }>;
        }[];
      };
      median: (values: number[]) => number;
    };
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    const fanout = (sdk: number, go: number) => ({
      scenario: "fanout",
      agents: 10,
      transport: "ws",
      servers: { "opamp-sdk": { fanout_ms: sdk }, "opamp-go": { fanout_ms: go } },
    });
    const results = (runs: unknown[], pinned: boolean) => ({ meta: { pinned, args: [] }, runs });
    const summary = merge([
      { file: "a.json", results: results([fanout(100, 50), fanout(300, 70)], true) },
      { file: "b.json", results: results([fanout(200, 60)], true) },
      { file: "c.json", results: results([fanout(999, 999)], false) },
    ]);
    expect(summary.runs.map((r) => [r.source, r.pinned])).toEqual([
      ["a.json", true],
      ["a.json", true],
      ["b.json", true],
      ["c.json", false],
    ]);
    // The unpinned run stands alone: it is neither merged into the pinned group nor repeated.
    expect(summary.repeated).toEqual([
      {
        group: "fanout ws 10 pinned",
        figure: "fanout_ms",
        servers: {
          "opamp-sdk": { n: 3, median: 200, min: 100, max: 300, values: [100, 300, 200] },
          "opamp-go": { n: 3, median: 60, min: 50, max: 70, values: [50, 70, 60] },
        },
      },
    ]);
  });
});
