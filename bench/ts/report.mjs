// Ratios (opamp-sdk ÷ opamp-go) and the printed table.

/** Figures compared per scenario: [key path, label, "lower" | "higher" is better, target ratio or undefined]. */
const FIGURES = {
  connect: [
    ["connect_ms", "time to full state held (ms)", "lower"],
    ["bytes_per_agent", "server RSS per agent (bytes)", "lower", 0.5],
    ["rss_settled_mb", "server RSS settled (MiB)", "lower"],
    ["cpu_connect_pct", "server CPU while connecting (% of a core)", "lower"],
  ],
  steady: [
    ["cpu_pct", "server CPU (% of a core)", "lower"],
    ["hb_rtt.p50_ms", "heartbeat round trip p50 (ms)", "lower"],
    ["hb_rtt.p99_ms", "heartbeat round trip p99 (ms)", "lower"],
    ["rss_mb", "server RSS (MiB)", "lower"],
  ],
  fanout: [
    ["fanout_ms", "push → all APPLIED (ms)", "lower", 1],
    ["cpu_pct", "server CPU during fan-out (% of a core)", "lower"],
    ["rss_peak_mb", "server peak RSS (MiB)", "lower"],
  ],
  http: [
    ["requests_per_s", "sustained requests/s", "higher", 0.7],
    ["requests_per_server_cpu_s", "requests per second of server CPU", "higher"],
    ["latency.p50_ms", "poll latency p50 (ms)", "lower"],
    ["latency.p99_ms", "poll latency p99 (ms)", "lower"],
    ["cpu_pct", "server CPU (% of a core)", "lower"],
  ],
  storm: [
    ["recovery_from_kill_ms", "kill → all back with full state (ms)", "lower"],
    ["recovery_from_listen_ms", "listening → all back with full state (ms)", "lower"],
    ["rss_peak_mb", "server peak RSS after restart (MiB)", "lower"],
  ],
};

function get(obj, path) {
  return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

/** sdk ÷ go for every figure of the run (codec: sdk speed ÷ go speed per case). */
export function ratios(run) {
  if (run.scenario === "codec") return undefined;
  const go = run.servers["opamp-go"];
  const sdk = run.servers["opamp-sdk"];
  const out = {};
  for (const [key, label, better, target] of FIGURES[run.scenario] ?? []) {
    const g = get(go, key);
    const s = get(sdk, key);
    out[key] = {
      label,
      better,
      target,
      ratio: typeof g === "number" && typeof s === "number" && g !== 0 ? Math.round((s / g) * 1000) / 1000 : null,
    };
  }
  return out;
}

const fmt = (v) => (v === undefined || v === null ? "—" : typeof v === "number" ? String(v) : String(v));

export function printTable(results) {
  const lines = [];
  const row = (cells) => lines.push(`| ${cells.map(fmt).join(" | ")} |`);
  row(["scenario", "figure", "opamp-go", "opamp-sdk", "sdk ÷ go", "better", "target"]);
  row(["---", "---", "---", "---", "---", "---", "---"]);
  for (const run of results.runs) {
    const title =
      `${run.scenario} ${run.transport ?? ""} ${run.agents ?? ""}${run.effective_config === false ? " (no eff. config)" : ""}`.trim();
    if (run.scenario === "codec") {
      for (const c of run.codec?.cases ?? []) {
        row([
          title,
          `${c.case} (${c.bytes} B) ops/s`,
          c.go_ops_per_s,
          c.sdk_ops_per_s,
          c.sdk_over_go_speed,
          "higher",
          c.case.endsWith("decode") ? 0.5 : undefined,
        ]);
      }
      continue;
    }
    const go = run.servers["opamp-go"];
    const sdk = run.servers["opamp-sdk"];
    for (const [key, r] of Object.entries(run.ratios ?? {})) {
      const cell = (s) => (s?.unavailable ? "n/a" : s?.error ? "error" : get(s, key));
      row([title, r.label, cell(go), cell(sdk), r.ratio, r.better, r.target]);
    }
  }
  console.log(lines.join("\n"));
}
