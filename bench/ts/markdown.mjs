// Renders one or more results files as the Markdown tables of docs/benchmarks.md.
// Usage: node bench/ts/markdown.mjs bench/results/<file>.json [more.json …]
import { readFileSync } from "node:fs";
import { groupKey } from "./merge.mjs";

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node bench/ts/markdown.mjs RESULTS.json [...]");
  process.exit(2);
}

const get = (obj, path) => path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
const fmt = (v) =>
  v === undefined || v === null ? "—" : typeof v === "number" ? v.toLocaleString("en-US") : String(v);

/** Per scenario: the rows of its table, [label, key path]. */
const ROWS = {
  connect: [
    ["time to every agent's full state held (ms)", "connect_ms"],
    ["agents/s", "agents_per_s"],
    ["server RSS before agents (MiB)", "rss_base_mb"],
    ["server RSS settled (MiB)", "rss_settled_mb"],
    ["server RSS per agent (bytes)", "bytes_per_agent"],
    ["server CPU while connecting (% of one core)", "cpu_connect_pct"],
    ["load generators' CPU while connecting (%)", "load_cpu_connect_pct"],
    ["other CPU on the machine (%)", "other_cpu_connect_pct"],
    ["agents with full state held (server count)", "server_full_state"],
  ],
  steady: [
    ["server CPU (% of one core)", "cpu_pct"],
    ["heartbeats/s", "heartbeats_per_s"],
    ["heartbeat round trip p50 (ms)", "hb_rtt.p50_ms"],
    ["heartbeat round trip p99 (ms)", "hb_rtt.p99_ms"],
    ["heartbeat round trip max (ms)", "hb_rtt.max_ms"],
    ["heartbeats skipped (previous unanswered)", "heartbeats_skipped"],
    ["server RSS (MiB)", "rss_mb"],
    ["other CPU on the machine (%)", "other_cpu_pct"],
  ],
  fanout: [
    ["push → every agent's APPLIED answered (ms)", "fanout_ms"],
    ["push call returned after (ms)", "push_call_ms"],
    ["APPLIED counted by the server", "server_applied"],
    ["answers asking for the full state during the run", "full_state_requests"],
    ["server CPU during fan-out (% of one core)", "cpu_pct"],
    ["server peak RSS (MiB)", "rss_peak_mb"],
    ["other CPU on the machine (%)", "other_cpu_pct"],
  ],
  http: [
    ["sustained requests/s", "requests_per_s"],
    ["requests per second of server CPU", "requests_per_server_cpu_s"],
    ["poll latency p50 (ms)", "latency.p50_ms"],
    ["poll latency p99 (ms)", "latency.p99_ms"],
    ["server CPU (% of one core)", "cpu_pct"],
    ["load generators' CPU (%)", "load_cpu_pct"],
    ["server RSS (MiB)", "rss_mb"],
    ["other CPU on the machine (%)", "other_cpu_pct"],
  ],
  storm: [
    ["kill → every agent back with full state (ms)", "recovery_from_kill_ms"],
    ["kill → new server listening (ms)", "restart_to_listen_ms"],
    ["listening → every agent back with full state (ms)", "recovery_from_listen_ms"],
    ["server RSS before kill (MiB)", "rss_before_mb"],
    ["new server peak RSS (MiB)", "rss_peak_mb"],
    ["agents with full state held after (server count)", "server_full_state"],
  ],
};

const out = [];
for (const file of files) {
  const results = JSON.parse(readFileSync(file, "utf8"));
  // A scenario measured several times (a merged summary, bench/ts/merge.mjs): its first run
  // gets the full table, the headline figure of all of them the "repeated runs" table.
  const shown = new Set();
  for (const run of results.runs) {
    const group = groupKey({ ...run, pinned: run.pinned ?? results.meta.pinned });
    const repeated = (results.repeated ?? []).find((r) => r.group === group);
    if (repeated !== undefined && shown.has(group)) continue;
    shown.add(group);
    if (run.scenario === "codec") {
      out.push(`#### codec\n`);
      out.push(
        "| case | bytes | opamp-go ns/op | opamp-sdk ns/op | opamp-go ops/s | opamp-sdk ops/s | sdk ÷ go (speed) |",
      );
      out.push("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
      for (const c of run.codec.cases) {
        out.push(
          `| ${c.case} | ${fmt(c.bytes)} | ${fmt(c.go_ns_per_op)} | ${fmt(c.sdk_ns_per_op)} | ${fmt(c.go_ops_per_s)} | ${fmt(c.sdk_ops_per_s)} | ${fmt(c.sdk_over_go_speed)} |`,
        );
      }
      for (const c of run.codec.sdk_extra ?? []) {
        out.push(`| ${c.case} (opamp-sdk only) | | | ${fmt(c.ns_per_op)} | | ${fmt(c.ops_per_s)} | |`);
      }
      out.push("");
      continue;
    }
    const hb = run.scenario === "steady" ? `, heartbeat ${Object.values(run.servers)[0]?.heartbeat_s ?? "?"} s` : "";
    const title = `${run.scenario}, ${run.transport}, ${fmt(run.agents)} agents${hb}${run.effective_config === false ? ", no effective config" : ""}${(run.pinned ?? results.meta.pinned) ? ", pinned (server CPU 0, load CPU 1)" : ""}${run.bufferutil_off ? ", bufferutil off" : ""}`;
    const bare = run.servers["bare-ws"];
    out.push(`#### ${title}${bare ? " — bare ws reference" : ""}\n`);
    if (repeated !== undefined)
      out.push("The first of several runs; every run's headline figure is under *Repeated runs*.\n");
    if (bare) {
      out.push(
        "Reference: a bare `ws` server that answers every message with an empty ServerToAgent and holds nothing.\n",
      );
      out.push("| figure | bare ws |");
      out.push("| --- | ---: |");
      for (const [label, key] of ROWS[run.scenario] ?? []) out.push(`| ${label} | ${fmt(get(bare, key))} |`);
      out.push("");
      continue;
    }
    out.push("| figure | opamp-go | opamp-sdk | sdk ÷ go |");
    out.push("| --- | ---: | ---: | ---: |");
    const go = run.servers["opamp-go"] ?? {};
    const sdk = run.servers["opamp-sdk"] ?? {};
    const cell = (s, key) => (s.unavailable ? "n/a" : s.error ? "error" : fmt(get(s, key)));
    for (const [label, key] of ROWS[run.scenario] ?? []) {
      const g = get(go, key);
      const s = get(sdk, key);
      // Context rows (who else used the CPU, counts) get no ratio.
      const informational =
        /other CPU|load generators|server count|before agents|heartbeats\/s|skipped|counted|asking for the full state/.test(
          label,
        );
      const ratio =
        !informational && typeof g === "number" && typeof s === "number" && g !== 0
          ? Math.round((s / g) * 100) / 100
          : undefined;
      out.push(`| ${label} | ${cell(go, key)} | ${cell(sdk, key)} | ${fmt(ratio)} |`);
    }
    for (const [name, s] of [
      ["opamp-go", go],
      ["opamp-sdk", sdk],
    ]) {
      if (s.error) out.push(`\n${name} failed: ${s.error}`);
      if (s.unavailable) out.push(`\n${name}: ${s.unavailable}`);
    }
    out.push("");
  }
}
for (const file of files) {
  const results = JSON.parse(readFileSync(file, "utf8"));
  if (!results.repeated?.length) continue;
  out.push("#### Repeated runs\n");
  out.push("| scenario | figure | opamp-go median (n, min–max) | opamp-sdk median (n, min–max) | sdk ÷ go (medians) |");
  out.push("| --- | --- | ---: | ---: | ---: |");
  for (const r of results.repeated) {
    const cell = (s) => (s ? `${fmt(s.median)} (${s.n}, ${fmt(s.min)}–${fmt(s.max)})` : "—");
    const go = r.servers["opamp-go"];
    const sdk = r.servers["opamp-sdk"];
    const ratio = go && sdk && go.median !== 0 ? fmt(Math.round((sdk.median / go.median) * 100) / 100) : "—";
    out.push(`| ${r.group} | ${r.figure} | ${cell(go)} | ${cell(sdk)} | ${ratio} |`);
  }
  out.push("");
}
console.log(out.join("\n"));
