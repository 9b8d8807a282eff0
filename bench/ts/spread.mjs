#!/usr/bin/env node
// The headline figure of every repeated run in a result file, per server: median, the
// spread (min–max) and each run, plus the ratio of the medians. For the tables of
// docs/benchmarks.md that quote "median (min–max) of N alternating runs".
//
//   node bench/ts/spread.mjs bench/results/<file>.json [...]
import { readFileSync } from "node:fs";
import { median } from "./merge.mjs";

/** The figures worth a spread, by the key a scenario's result uses. */
const FIGURES = {
  connect_ms: "time to every agent's full state held (ms)",
  bytes_per_agent: "server RSS per agent (bytes)",
  fanout_ms: "push → every agent's APPLIED answered (ms)",
  recovery_from_kill_ms: "kill → every agent back with full state (ms)",
  recovery_from_listen_ms: "listening → every agent back with full state (ms)",
  restart_to_listen_ms: "kill → new server listening (ms)",
  push_call_ms: "push call returned after (ms)",
  other_cpu_pct: "other CPU on the machine (%)",
  other_cpu_connect_pct: "other CPU on the machine while connecting (%)",
  requests_per_s: "requests/s",
  requests_per_server_cpu_s: "requests per second of server CPU",
  cpu_connect_pct: "server CPU while connecting (% of one core)",
  cpu_pct: "server CPU during the measurement (% of one core)",
  cpu_recovery_pct: "server CPU during recovery (% of one core)",
};

const fmt = (v) => (Math.abs(v) >= 100 ? Math.round(v).toLocaleString("en-US") : String(Math.round(v * 10) / 10));

for (const file of process.argv.slice(2)) {
  const result = JSON.parse(readFileSync(file, "utf8"));
  for (const run of result.runs) {
    const noConfig = Object.values(run.servers).some(
      (server) => server.effective_config === false || server.runs?.some((r) => r.effective_config === false),
    );
    const title = `${run.scenario} ${run.transport} ${run.agents}${noConfig ? " (no effective config)" : ""}`;
    console.log(`\n${title} — ${file}`);
    console.log("| figure | opamp-go median (min–max) | opamp-sdk median (min–max) | sdk ÷ go (medians) | runs |");
    console.log("| --- | ---: | ---: | ---: | ---: |");
    for (const [key, label] of Object.entries(FIGURES)) {
      const cells = [];
      const medians = [];
      let n = 0;
      for (const name of ["opamp-go", "opamp-sdk"]) {
        const server = run.servers[name];
        const runs = (server?.runs ?? (server ? [server] : [])).map((r) => r[key]).filter((v) => typeof v === "number");
        if (runs.length === 0) {
          cells.push("—");
          medians.push(undefined);
          continue;
        }
        n = Math.max(n, runs.length);
        const m = median(runs);
        medians.push(m);
        cells.push(`${fmt(m)} (${fmt(Math.min(...runs))}–${fmt(Math.max(...runs))})`);
      }
      if (medians.every((m) => m === undefined)) continue;
      const ratio = medians[0] && medians[1] !== undefined ? (medians[1] / medians[0]).toFixed(2) : "—";
      console.log(`| ${label} | ${cells[0]} | ${cells[1]} | ${ratio} | ${n} |`);
    }
  }
}
