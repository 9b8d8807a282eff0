// Scenarios 1–6 of issue 6. Each function measures ONE server ("go" or "sdk")
// and returns plain figures; run.mjs runs both servers and computes ratios.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { Fleet } from "./fleet.mjs";
import {
  adminPush,
  adminStats,
  cpuPercent,
  GO_BIN,
  JsonChild,
  machineSample,
  otherCpuPercent,
  ProcSampler,
  procSample,
  SDK_SERVER,
  sleep,
  startServer,
  waitQuiet,
} from "./procs.mjs";

const MB = 1024 * 1024;
const round1 = (v) => (v === undefined || Number.isNaN(v) ? undefined : Math.round(v * 10) / 10);
const round3 = (v) => (v === undefined || Number.isNaN(v) ? undefined : Math.round(v * 1000) / 1000);

let quietWaitMs = 60_000;
/** How long each server run may wait for the machine to be quiet before starting (0 = do not wait). */
export function setQuietWait(ms) {
  quietWaitMs = ms;
}

/** Time allowed for n agents to connect and send their full state. */
const connectTimeoutMs = (n) => 60_000 + n * 10;

/** Starts `kind`, runs fn(server, sampler), always stops it. Reports unavailability instead of throwing. */
async function withServer(kind, fn) {
  const busy = await waitQuiet(quietWaitMs);
  const server = await startServer(kind);
  if (server.unavailable) return { unavailable: server.unavailable };
  const sampler = new ProcSampler(server.pids);
  try {
    return { machine_busy_before_pct: round1(busy), ...(await fn(server, sampler)) };
  } finally {
    sampler.stop();
    await server.proc.stop("SIGTERM", 5000);
  }
}

/** Connects a fleet to server and waits until every agent's full state is held (answered). */
async function connectFleet(server, o) {
  const fleet = new Fleet({
    url: o.transport === "http" ? server.urlHttp : server.urlWs,
    agents: o.agents,
    transport: o.transport,
    heartbeatS: o.heartbeatS ?? 30,
    pollIntervalS: o.pollIntervalS,
    durationS: o.durationS,
    effectiveConfig: o.effectiveConfig ?? true,
  });
  const startUnixMs = await fleet.started();
  const loadStart = fleet.sample();
  const syncedUnixMs = await fleet.allSynced(1, connectTimeoutMs(o.agents));
  return { fleet, startUnixMs, syncedUnixMs, connectMs: syncedUnixMs - startUnixMs, loadStart };
}

function latency(h) {
  return h ? { count: h.count, p50_ms: h.p50_ms, p90_ms: h.p90_ms, p99_ms: h.p99_ms, max_ms: h.max_ms } : undefined;
}

/** Scenario 1: connect N agents; time to full state held; RSS after settling; memory per agent. */
export async function scenarioConnect(kind, o) {
  const settleMs = o.settleMs ?? 10_000;
  return withServer(kind, async (server, sampler) => {
    await sleep(1000);
    const base = sampler.sample();
    const m0 = machineSample();
    const durationS = Math.ceil((connectTimeoutMs(o.agents) + settleMs) / 1000) + 60;
    const { fleet, connectMs, loadStart } = await connectFleet(server, { ...o, durationS });
    const atSynced = sampler.sample();
    const loadAtSynced = fleet.sample();
    const m1 = machineSample();
    await sleep(settleMs);
    const settled = sampler.sample();
    const stats = await adminStats(server);
    const load = await fleet.stop();
    return {
      agents: o.agents,
      transport: o.transport,
      effective_config: o.effectiveConfig ?? true,
      connect_ms: round1(connectMs),
      agents_per_s: round1((o.agents / connectMs) * 1000),
      server_full_state: stats.full_state,
      rss_base_mb: round1((base.rssKb * 1024) / MB),
      rss_settled_mb: round1((settled.rssKb * 1024) / MB),
      rss_peak_mb: round1((sampler.peakRssKb * 1024) / MB),
      bytes_per_agent: Math.round(((settled.rssKb - base.rssKb) * 1024) / o.agents),
      cpu_connect_pct: round1(cpuPercent(base, atSynced)),
      load_cpu_connect_pct: round1(cpuPercent(loadStart, loadAtSynced)),
      other_cpu_connect_pct: round1(
        otherCpuPercent(m0, m1, [cpuPercent(base, atSynced), cpuPercent(loadStart, loadAtSynced)]),
      ),
      server_stats: stats,
      sync_latency: latency(load.sync_latency),
      load_errors: load.errors,
      load_dial_failures: load.dial_failures,
    };
  });
}

/** Scenario 2: N agents heartbeating; server CPU over a window, heartbeat round trips. */
export async function scenarioSteady(kind, o) {
  const windowMs = (o.windowS ?? 60) * 1000;
  return withServer(kind, async (server, sampler) => {
    const durationS = Math.ceil((connectTimeoutMs(o.agents) + windowMs) / 1000) + 60;
    const { fleet, connectMs } = await connectFleet(server, { ...o, durationS });
    // Let every agent's first heartbeat phase begin before measuring.
    await sleep(Math.min(5000, (o.heartbeatS ?? 30) * 1000));
    const a = sampler.sample();
    const la = fleet.sample();
    const m0 = machineSample();
    const p0 = fleet.progress();
    const s0 = fleet.snapshot();
    await sleep(windowMs);
    const b = sampler.sample();
    const lb = fleet.sample();
    const m1 = machineSample();
    const p1 = fleet.progress();
    const s1 = fleet.snapshot();
    const stats = await adminStats(server);
    const load = await fleet.stop();
    const hb = p1.hb_sent - p0.hb_sent;
    return {
      agents: o.agents,
      transport: o.transport,
      heartbeat_s: o.heartbeatS,
      window_s: windowMs / 1000,
      connect_ms: round1(connectMs),
      cpu_pct: round1(cpuPercent(a, b)),
      load_cpu_pct: round1(cpuPercent(la, lb)),
      other_cpu_pct: round1(otherCpuPercent(m0, m1, [cpuPercent(a, b), cpuPercent(la, lb)])),
      heartbeats_in_window: hb,
      heartbeats_per_s: round1(Fleet.rate(s0, s1, "hb_sent")),
      heartbeats_skipped: p1.hb_skipped - p0.hb_skipped,
      rss_mb: round1((b.rssKb * 1024) / MB),
      hb_rtt: latency(load.hb_rtt),
      server_full_state: stats.full_state,
      load_errors: load.errors,
    };
  });
}

/** Scenario 3: push one 8 KiB config to every agent; time until all report APPLIED. */
export async function scenarioFanout(kind, o) {
  return withServer(kind, async (server, sampler) => {
    const durationS = Math.ceil(connectTimeoutMs(o.agents) / 1000) + 180;
    const { fleet, connectMs } = await connectFleet(server, { ...o, durationS });
    await sleep(2000);
    await adminStats(server); // warm the admin connection so t0 is not a TCP connect
    const a = sampler.sample();
    const la = fleet.sample();
    const m0 = machineSample();
    const t0 = Date.now();
    const push = await adminPush(server);
    const pushReturnedMs = Date.now() - t0;
    const appliedUnixMs = await fleet.allApplied(120_000);
    const b = sampler.sample();
    const lb = fleet.sample();
    const m1 = machineSample();
    await sleep(500);
    const stats = await adminStats(server);
    const load = await fleet.stop();
    return {
      agents: o.agents,
      transport: o.transport,
      connect_ms: round1(connectMs),
      fanout_ms: round1(appliedUnixMs - t0),
      push_call_ms: round1(pushReturnedMs),
      server_applied: stats.applied,
      server_full_state: stats.full_state,
      cpu_pct: round1(cpuPercent(a, b)),
      load_cpu_pct: round1(cpuPercent(la, lb)),
      other_cpu_pct: round1(otherCpuPercent(m0, m1, [cpuPercent(a, b), cpuPercent(la, lb)])),
      rss_peak_mb: round1((sampler.peakRssKb * 1024) / MB),
      apply_ack: latency(load.apply_latency),
      push,
      load_errors: load.errors,
      // Answers that asked for the full state (a sequence gap or an unknown agent, as the server saw it).
      full_state_requests: load.full_state_requests,
    };
  });
}

/** Scenario 4: N agents polling over HTTP; sustained requests/s and latency. */
export async function scenarioHttp(kind, o) {
  const windowMs = (o.windowS ?? 20) * 1000;
  return withServer(kind, async (server, sampler) => {
    const durationS = Math.ceil((connectTimeoutMs(o.agents) + windowMs) / 1000) + 60;
    const { fleet, connectMs } = await connectFleet(server, {
      ...o,
      transport: "http",
      pollIntervalS: o.pollIntervalS ?? 0,
      durationS,
    });
    await sleep(2000);
    const a = sampler.sample();
    const la = fleet.sample();
    const m0 = machineSample();
    const p0 = fleet.progress();
    const s0 = fleet.snapshot();
    await sleep(windowMs);
    const b = sampler.sample();
    const lb = fleet.sample();
    const m1 = machineSample();
    const p1 = fleet.progress();
    const s1 = fleet.snapshot();
    const load = await fleet.stop();
    const reqs = p1.http_requests - p0.http_requests;
    return {
      agents: o.agents,
      transport: "http",
      poll_interval_s: o.pollIntervalS ?? 0,
      window_s: windowMs / 1000,
      connect_ms: round1(connectMs),
      requests_per_s: Math.round(Fleet.rate(s0, s1, "http_requests")),
      requests_in_window: reqs,
      // Requests per second of server CPU: the server's efficiency even when the load
      // generator, not the server, limits the requests/s.
      requests_per_server_cpu_s: Math.round(Fleet.rate(s0, s1, "http_requests") / (cpuPercent(a, b) / 100)),
      latency: latency(load.http_poll),
      cpu_pct: round1(cpuPercent(a, b)),
      load_cpu_pct: round1(cpuPercent(la, lb)),
      other_cpu_pct: round1(otherCpuPercent(m0, m1, [cpuPercent(a, b), cpuPercent(la, lb)])),
      rss_mb: round1((b.rssKb * 1024) / MB),
      load_errors: load.errors,
    };
  });
}

/** Scenario 5: the server restarts (SIGKILL + start on the same port) under N agents. */
export async function scenarioStorm(kind, o) {
  const busy = await waitQuiet(quietWaitMs);
  let server = await startServer(kind);
  if (server.unavailable) return { unavailable: server.unavailable };
  let sampler = new ProcSampler(server.pids);
  let fleet;
  try {
    const durationS = Math.ceil((2 * connectTimeoutMs(o.agents)) / 1000) + 120;
    const c = await connectFleet(server, { ...o, durationS });
    fleet = c.fleet;
    await sleep(3000);
    const before = sampler.sample();
    const addr = server.addr;
    const l0 = fleet.sample();
    const m0 = machineSample();
    const tKill = Date.now();
    const tKillPerf = performance.now();
    server.proc.child.kill("SIGKILL");
    await server.proc.exited;
    sampler.stop();
    server = await startServer(kind, { listen: addr });
    if (server.unavailable) return { unavailable: server.unavailable };
    sampler = new ProcSampler(server.pids, 100);
    // The new process's CPU counter starts at zero: measure from the kill, startup included.
    const s0 = { t: tKillPerf, cpuS: 0 };
    const backUnixMs = await fleet.allSynced(2, connectTimeoutMs(o.agents) * 2);
    const s1 = sampler.sample();
    const l1 = fleet.sample();
    const m1 = machineSample();
    await sleep(2000);
    const after = sampler.sample();
    const stats = await adminStats(server);
    const peak = Math.max(sampler.peakRssKb, procSample(server.pids)?.hwmKb ?? 0);
    const p = fleet.progress();
    return {
      machine_busy_before_pct: round1(busy),
      agents: o.agents,
      transport: o.transport,
      connect_ms: round1(c.connectMs),
      recovery_from_kill_ms: round1(backUnixMs - tKill),
      recovery_from_listen_ms: round1(backUnixMs - server.listeningUnixMs),
      restart_to_listen_ms: round1(server.listeningUnixMs - tKill),
      rss_before_mb: round1((before.rssKb * 1024) / MB),
      rss_after_mb: round1((after.rssKb * 1024) / MB),
      rss_peak_mb: round1((peak * 1024) / MB),
      server_full_state: stats.full_state,
      cpu_recovery_pct: round1(cpuPercent(s0, s1)),
      other_cpu_pct: round1(otherCpuPercent(m0, m1, [cpuPercent(s0, s1), cpuPercent(l0, l1)])),
      reconnects: p.reconnects,
      dial_failures: p.dial_failures,
    };
  } finally {
    sampler.stop();
    if (fleet) await fleet.stop();
    if (server.proc) await server.proc.stop("SIGTERM", 5000);
  }
}

/** Runs a codec process and returns its "codec" rows (or the reason it could not run). */
async function codecRows(name, command, args) {
  const child = new JsonChild(name, command, args);
  const done = await child.waitFor((e) => e.ev === "codec_done" || e.ev === "unavailable", 300_000, name);
  await child.exited;
  return {
    rows: child.events.filter((e) => e.ev === "codec"),
    unavailable: done.ev === "unavailable" ? done.reason : undefined,
  };
}

/** Keeps, per case, the fastest of several runs (the least disturbed by other work on the machine). */
function fastest(runs) {
  const best = new Map();
  for (const row of runs.flat()) {
    const prev = best.get(row.case);
    if (!prev || row.ns_per_op < prev.ns_per_op) best.set(row.case, row);
  }
  return [...best.values()];
}

/**
 * Scenario 6: codec timings; Go first (it writes the message bytes), then opamp-sdk on the
 * same bytes; `repeat` alternating runs of each, the fastest per case kept.
 */
export async function scenarioCodec(o) {
  const dir = join(o.rawDir, "codec");
  mkdirSync(dir, { recursive: true });
  const iterations = String(o.iterations ?? 20000);
  const minTimeMs = String(o.minTimeMs ?? 1000);
  const goRuns = [];
  const tsRuns = [];
  let sdkUnavailable;
  for (let i = 0; i < (o.repeat ?? 3); i++) {
    const go = await codecRows("codec-go", GO_BIN, [
      "codec",
      "--iterations",
      iterations,
      "--min-time",
      `${minTimeMs}ms`,
      "--dump",
      dir,
    ]);
    goRuns.push(go.rows);
    const ts = await codecRows("codec-ts", process.execPath, [
      join(SDK_SERVER, "..", "codec.mjs"),
      "--input",
      dir,
      "--iterations",
      iterations,
      "--min-time-ms",
      minTimeMs,
    ]);
    tsRuns.push(ts.rows);
    sdkUnavailable = ts.unavailable;
  }
  const goRows = fastest(goRuns);
  const tsRows = fastest(tsRuns);
  const pick = (rows, name) => rows.find((r) => r.case === name);
  const cases = goRows.map((g) => {
    const t = pick(tsRows, g.case);
    return {
      case: g.case,
      bytes: g.bytes,
      go_ns_per_op: Math.round(g.ns_per_op),
      sdk_ns_per_op: t ? Math.round(t.ns_per_op) : undefined,
      go_ops_per_s: Math.round(g.ops_per_s),
      sdk_ops_per_s: t ? Math.round(t.ops_per_s) : undefined,
      sdk_over_go_speed: t ? round3(t.ops_per_s / g.ops_per_s) : undefined,
    };
  });
  const extra = tsRows.filter((r) => !pick(goRows, r.case));
  return {
    runs_per_side: o.repeat ?? 3,
    cases,
    sdk_extra: extra.map((r) => ({
      case: r.case,
      ns_per_op: Math.round(r.ns_per_op),
      ops_per_s: Math.round(r.ops_per_s),
    })),
    sdk_unavailable: sdkUnavailable,
    same_encoded_size: tsRows.length > 0 ? tsRows.every((r) => r.same_bytes !== false) : undefined,
  };
}
