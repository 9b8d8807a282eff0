// A fleet of simulated agents: several `opamp-bench load` processes (each
// under the open-file limit), each dialing from its own 127.0.0.x addresses.
import { GO_BIN, JsonChild, MAX_AGENTS_PER_LOAD_PROCESS, pinned, procSample } from "./procs.mjs";

const ADDRS_PER_PROCESS = 4;

/** Splits n agents into the fewest processes of at most `max` each, as evenly as possible. */
export function splitAgents(n, max = MAX_AGENTS_PER_LOAD_PROCESS) {
  const procs = Math.max(1, Math.ceil(n / max));
  const base = Math.floor(n / procs);
  return Array.from({ length: procs }, (_, i) => base + (i < n % procs ? 1 : 0));
}

/** Source addresses for process i: 127.0.0.(2 + 4i) … 127.0.0.(5 + 4i). */
export function sourceAddrs(i) {
  return Array.from({ length: ADDRS_PER_PROCESS }, (_, k) => `127.0.0.${2 + i * ADDRS_PER_PROCESS + k}`).join(",");
}

export class Fleet {
  /**
   * @param {object} o
   * @param {string} o.url server URL (ws:// or http://)
   * @param {number} o.agents total agents
   * @param {"ws"|"http"} o.transport
   * @param {number} o.heartbeatS heartbeat / poll interval in seconds
   * @param {number} [o.pollIntervalS] HTTP poll interval (0 = back-to-back); default heartbeatS
   * @param {number} o.durationS hard stop of every load process
   * @param {boolean} [o.effectiveConfig] report an 8 KiB effective config (default true)
   * @param {number} [o.dialConcurrency]
   */
  constructor(o) {
    this.agents = o.agents;
    this.procs = [];
    let index = 0;
    splitAgents(o.agents).forEach((n, i) => {
      const args = [
        "load",
        "--url",
        o.url,
        "--agents",
        String(n),
        "--index-base",
        String(index),
        "--transport",
        o.transport,
        "--source-addrs",
        sourceAddrs(i),
        "--heartbeat",
        `${o.heartbeatS}s`,
        "--duration",
        `${o.durationS}s`,
        "--dial-concurrency",
        String(o.dialConcurrency ?? 64),
        `--effective-config=${o.effectiveConfig ?? true}`,
        "--stop-on-stdin-eof",
        "--progress",
        "250ms",
      ];
      if (o.pollIntervalS !== undefined) args.push("--poll-interval", `${o.pollIntervalS}s`);
      index += n;
      const [command, argv] = pinned("load", GO_BIN, args);
      this.procs.push(new JsonChild(`load#${i}`, command, argv));
    });
  }

  async started() {
    const evs = await Promise.all(this.procs.map((p) => p.waitFor((e) => e.ev === "start", 30_000, "start")));
    this.startUnixMs = Math.min(...evs.map((e) => e.unix_ms));
    return this.startUnixMs;
  }

  /** Resolves with the unix ms at which the last process reported all its agents synced in `round`. */
  async allSynced(round, timeoutMs) {
    const evs = await Promise.all(
      this.procs.map((p) =>
        p.waitFor((e) => e.ev === "all_synced" && e.round >= round, timeoutMs, `all agents synced (round ${round})`),
      ),
    );
    return Math.max(...evs.map((e) => e.unix_ms));
  }

  async allApplied(timeoutMs) {
    const evs = await Promise.all(
      this.procs.map((p) => p.waitFor((e) => e.ev === "all_applied", timeoutMs, "all agents APPLIED")),
    );
    return Math.max(...evs.map((e) => e.unix_ms));
  }

  /** CPU time (s) of all load processes together, for load_cpu_pct (same shape as procSample). */
  sample() {
    let cpuS = 0;
    let rssKb = 0;
    for (const p of this.procs) {
      const s = procSample(p.pid);
      if (s) {
        cpuS += s.cpuS;
        rssKb += s.rssKb;
      }
    }
    return { t: performance.now(), cpuS, rssKb };
  }

  /** Sum of the latest progress counters over all processes. */
  progress() {
    const total = {};
    for (const p of this.procs) {
      const ev = p.last("progress") ?? {};
      for (const [k, v] of Object.entries(ev)) {
        if (typeof v === "number" && k !== "unix_ms" && k !== "t_ms" && k !== "pid") total[k] = (total[k] ?? 0) + v;
      }
    }
    return total;
  }

  /** Latest progress event of each process (for exact per-process rates). */
  snapshot() {
    return this.procs.map((p) => p.last("progress"));
  }

  /** Sum over processes of (Δ counter / Δ own clock) between two snapshots, per second. */
  static rate(before, after, key) {
    let rate = 0;
    before.forEach((b, i) => {
      const a = after[i];
      if (b && a && a.unix_ms > b.unix_ms) rate += ((a[key] - b[key]) / (a.unix_ms - b.unix_ms)) * 1000;
    });
    return rate;
  }

  /** Waits until the counter `key` summed over processes satisfies pred, polling every 100 ms. */
  async until(pred, timeoutMs, what) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const p = this.progress();
      if (pred(p)) return p;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`fleet: timed out after ${timeoutMs} ms waiting for ${what}`);
  }

  /** Stops every process and returns the merged summary. */
  async stop() {
    await Promise.all(this.procs.map((p) => p.stop("SIGTERM", 10_000)));
    const sums = this.procs.map((p) => p.last("summary")).filter(Boolean);
    return mergeSummaries(sums);
  }
}

/** Merges load summaries: counters add, histograms merge bucket-wise, percentiles are recomputed. */
export function mergeSummaries(sums) {
  const merged = { processes: sums.length };
  for (const s of sums) {
    for (const [k, v] of Object.entries(s)) {
      if (typeof v === "number" && !["unix_ms", "t_ms", "pid"].includes(k) && !k.endsWith("unix_ms")) {
        merged[k] = (merged[k] ?? 0) + v;
      }
    }
  }
  for (const key of ["sync_latency", "hb_rtt", "http_poll", "apply_latency"]) {
    merged[key] = mergeHistograms(sums.map((s) => s[key]).filter(Boolean));
  }
  merged.last_applied_unix_ms = Math.max(0, ...sums.map((s) => s.last_applied_unix_ms ?? 0));
  merged.last_sync_unix_ms = Math.max(0, ...sums.map((s) => s.last_sync_unix_ms ?? 0));
  const firsts = sums.map((s) => s.first_config_unix_ms).filter((v) => v > 0);
  merged.first_config_unix_ms = firsts.length ? Math.min(...firsts) : 0;
  return merged;
}

export function mergeHistograms(hists) {
  const counts = new Map();
  let max = 0;
  for (const h of hists) {
    max = Math.max(max, h.max_ms ?? 0);
    for (const [low, n] of h.buckets_us ?? []) counts.set(low, (counts.get(low) ?? 0) + n);
  }
  const buckets = [...counts.entries()].sort((a, b) => a[0] - b[0]);
  const total = buckets.reduce((acc, [, n]) => acc + n, 0);
  const pct = (p) => {
    if (total === 0) return 0;
    const rank = Math.min(total - 1, Math.floor(p * total));
    let seen = 0;
    for (const [low, n] of buckets) {
      seen += n;
      if (seen > rank) return low / 1000;
    }
    return max;
  };
  return { count: total, p50_ms: pct(0.5), p90_ms: pct(0.9), p99_ms: pct(0.99), max_ms: max };
}
