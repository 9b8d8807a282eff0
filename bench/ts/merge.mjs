// Merges several results files of `bench/run.mjs` into one summary (what docs/benchmarks.md
// cites): every run kept, each with the file it came from, and for a scenario run more than
// once (same scenario, agents, transport, effective-config switch) the median, minimum and
// maximum of its headline figure per server, so a repeated measurement is reported whole.
// Usage: node bench/ts/merge.mjs --out bench/results/<name>.json [--note TEXT] RESULTS.json [...]
import { readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, relative } from "node:path";
import { parseArgs } from "node:util";

/** The figure each scenario is judged by (see docs/benchmarks.md, "Against the targets"). */
export const HEADLINE = {
  connect: "bytes_per_agent",
  steady: "cpu_pct",
  fanout: "fanout_ms",
  http: "requests_per_s",
  storm: "recovery_from_kill_ms",
};

/** Median of numbers (mean of the middle two for an even count), to 0.1. */
export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const m = sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return Math.round(m * 10) / 10;
}

/** Runs measured under the same conditions share a key; their headline figures are pooled. */
export function groupKey(run) {
  const config = run.effective_config === false ? " no-config" : "";
  return `${run.scenario} ${run.transport} ${run.agents}${config}${run.pinned ? " pinned" : ""}${run.bufferutil_off ? " no-bufferutil" : ""}`;
}

/** The summary object for the given results (each `{ file, results }`). */
export function merge(inputs, note) {
  const sources = [];
  const runs = [];
  for (const { file, results } of inputs) {
    const { machine, node, go, opamp_go, bufbuild_protobuf, ws, bufferutil, pinned, started, finished, args } =
      results.meta;
    sources.push({
      file,
      args,
      started,
      finished,
      pinned,
      machine,
      node,
      go,
      opamp_go,
      bufbuild_protobuf,
      ws,
      bufferutil,
    });
    // Runs with `ws`'s native unmasking turned off are figures of their own, never pooled.
    const unmaskOff = typeof bufferutil === "string" && bufferutil.startsWith("off") ? { bufferutil_off: true } : {};
    for (const run of results.runs) runs.push({ ...run, ...unmaskOff, pinned: run.pinned ?? pinned, source: file });
  }
  const groups = new Map();
  for (const run of runs) {
    const figure = HEADLINE[run.scenario];
    if (figure === undefined) continue;
    const key = groupKey(run);
    const group = groups.get(key) ?? { key, figure, servers: {} };
    for (const [server, result] of Object.entries(run.servers)) {
      const value = result?.[figure];
      if (typeof value !== "number") continue;
      const values = group.servers[server] ?? [];
      values.push(value);
      group.servers[server] = values;
    }
    groups.set(key, group);
  }
  const repeated = [];
  for (const group of groups.values()) {
    const servers = {};
    for (const [server, values] of Object.entries(group.servers)) {
      if (values.length < 2) continue;
      servers[server] = {
        n: values.length,
        median: median(values),
        min: Math.min(...values),
        max: Math.max(...values),
        values,
      };
    }
    if (Object.keys(servers).length > 0) repeated.push({ group: group.key, figure: group.figure, servers });
  }
  return { meta: { merged: new Date().toISOString(), ...(note ? { note } : {}), sources }, runs, repeated };
}

if (process.argv[1] && basename(process.argv[1]) === "merge.mjs") {
  const { values, positionals } = parseArgs({
    options: { out: { type: "string" }, note: { type: "string" } },
    allowPositionals: true,
  });
  if (!values.out || positionals.length === 0) {
    console.error("usage: node bench/ts/merge.mjs --out SUMMARY.json RESULTS.json [...]");
    process.exit(2);
  }
  const inputs = positionals.map((path) => ({
    file: relative(dirname(values.out), path),
    results: JSON.parse(readFileSync(path, "utf8")),
  }));
  const summary = merge(inputs, values.note);
  writeFileSync(values.out, `${JSON.stringify(summary, null, 2)}\n`);
  for (const r of summary.repeated) {
    const cells = Object.entries(r.servers).map(([s, v]) => `${s} median ${v.median} (n = ${v.n}, ${v.min}–${v.max})`);
    console.log(`${r.group} ${r.figure}: ${cells.join("; ")}`);
  }
  console.log(`summary: ${values.out} (${summary.runs.length} runs from ${inputs.length} files)`);
}
