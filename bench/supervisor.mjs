#!/usr/bin/env node
// opamp-sdk's supervisor side by side with the Collector's opampsupervisor (v0.149.0),
// both running the same Collector against the same OpAMPServer, in alternating runs:
//
//   - memory (RSS) and CPU of the supervisor process while idle, after the Collector runs;
//   - time from a config push to APPLIED as the server sees it;
//   - crash restarts: the Collector is killed (SIGKILL) three times in a row, each time
//     once it is healthy again, and the time to its next start is measured;
//   - what a config the Collector refuses does: status reported, and how many times the
//     Collector is started in the window after it (a wrapper script logs every start).
//
//   npm run build && node bench/supervisor.mjs [--runs 5] [--idle 5] [--window 15] [--out FILE]
//
// Needs the Collector stack (node scripts/collector-stack.mjs). Prints a markdown table with
// the median and the spread (min–max) of each figure; --out writes the raw runs as JSON.
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

const root = resolve(import.meta.dirname, "..");
const { OpAMPServer } = await import(join(root, "dist/server/index.js"));
const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "5" },
    idle: { type: "string", default: "5" },
    window: { type: "string", default: "15" },
    out: { type: "string" },
  },
});
const RUNS = Number(values.runs);
const IDLE_S = Number(values.idle);
const WINDOW_S = Number(values.window);
const stackDir = process.env.OPAMP_COLLECTOR_STACK_DIR ?? join(root, ".cache/collector-stack/v0.149.0");
const COLLECTOR = join(stackDir, "otelcol-opamp");
const GO_SUPERVISOR = join(stackDir, "opampsupervisor");
const CLK_TCK = 100;
const PAGE = 4096;

const GOOD = (name) =>
  `receivers:\n  otlp/${name}:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:0\nexporters:\n  debug: {}\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp/${name}]\n      exporters: [debug]\n`;
const BAD = GOOD("bad").replace("debug: {}", "debug:\n    no_such_setting: 1");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const hex = (b) => Buffer.from(b ?? []).toString("hex");

function procStat(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { cpuTicks: Number(f[11]) + Number(f[12]), rssBytes: Number(f[21]) * PAGE };
}

function waitAgent(server, predicate, timeoutMs = 60_000) {
  for (const a of server.agents.values()) if (predicate(a)) return Promise.resolve(a);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("timeout waiting for the agent")), timeoutMs);
    const on = (a) => {
      if (!predicate(a)) return;
      clearTimeout(t);
      server.off("agentUpdated", on);
      server.off("agentConnected", on);
      resolve(a);
    };
    server.on("agentUpdated", on);
    server.on("agentConnected", on);
  });
}

async function run(kind) {
  const dir = mkdtempSync(join(tmpdir(), `sup-bench-${kind}-`));
  const starts = join(dir, "starts.log");
  const wrapper = join(dir, "otelcol");
  // Logs "<ns> <pid>" for every start; exec keeps the pid, so it is the Collector's.
  writeFileSync(wrapper, `#!/bin/sh\necho "$(date +%s%N) $$" >> ${starts}\nexec ${COLLECTOR} "$@"\n`);
  chmodSync(wrapper, 0o755);
  const local = join(dir, "local.yaml");
  writeFileSync(local, "service:\n  telemetry:\n    metrics:\n      level: none\n");
  const server = new OpAMPServer({ allowAnonymous: true, heartbeat: { intervalSeconds: 30 } });
  const { url } = await server.listen({ port: 0, host: "127.0.0.1" });
  const config = join(dir, "supervisor.yaml");
  // The seed's capabilities; defaults for everything else (config_apply_timeout 5 s in both).
  writeFileSync(
    config,
    `server:\n  endpoint: ${url.replace(/^http/, "ws")}\ncapabilities:\n  reports_effective_config: true\n  reports_health: true\n  accepts_remote_config: true\n  reports_remote_config: true\nagent:\n  executable: ${wrapper}\n  config_files: [${local}]\nstorage:\n  directory: ${dir}/state\n`,
  );
  const child =
    kind === "sdk"
      ? spawn(process.execPath, [join(root, "dist/cli/supervisor.js"), "--config", config], { stdio: "ignore" })
      : spawn(GO_SUPERVISOR, ["--config", config], { stdio: "ignore" });
  const result = { kind };
  try {
    const t0 = performance.now();
    const agent = await waitAgent(server, (a) => a.health?.healthy === true);
    result.startToHealthyMs = performance.now() - t0;
    await sleep(1000);
    const a = procStat(child.pid);
    await sleep(IDLE_S * 1000);
    const b = procStat(child.pid);
    result.idleRssMiB = b.rssBytes / 1024 / 1024;
    result.idleCpuPercent = ((b.cpuTicks - a.cpuTicks) / CLK_TCK / IDLE_S) * 100;
    const pushed = performance.now();
    const { hash } = await server.setRemoteConfig(agent.id, { "config.yaml": GOOD(`run${Date.now()}`) });
    await waitAgent(
      server,
      (x) => x.remoteConfigStatus?.status === 1 && hex(x.remoteConfigStatus.lastRemoteConfigHash) === hex(hash),
    );
    result.pushToAppliedMs = performance.now() - pushed;
    await waitAgent(server, (x) => x.health?.healthy === true);
    const lines = () => readFileSync(starts, "utf8").trim().split("\n");
    result.crashRestartMs = [];
    for (let crash = 0; crash < 3; crash++) {
      const [, pid] = lines().at(-1).split(" ");
      const count = lines().length;
      const killedAt = process.hrtime.bigint();
      process.kill(Number(pid), "SIGKILL");
      while (lines().length === count) await sleep(20);
      const [ns] = lines().at(-1).split(" ");
      // date +%s%N is wall time; hrtime is monotonic: compare both against wall time.
      result.crashRestartMs.push(
        Number(BigInt(ns) - (BigInt(Date.now()) * 1_000_000n - (process.hrtime.bigint() - killedAt))) / 1e6,
      );
      await sleep(300);
      await waitAgent(server, (x) => x.health?.healthy === true);
    }
    const before = lines().length;
    const bad = await server.setRemoteConfig(agent.id, { "config.yaml": BAD });
    const badAt = performance.now();
    const failed = await waitAgent(
      server,
      (x) => x.remoteConfigStatus?.status === 3 && hex(x.remoteConfigStatus.lastRemoteConfigHash) === hex(bad.hash),
      WINDOW_S * 1000,
    ).catch(() => undefined);
    result.pushToFailedMs = failed === undefined ? null : performance.now() - badAt;
    await sleep(Math.max(0, WINDOW_S * 1000 - (performance.now() - badAt)));
    const final = server.getAgent(agent.id);
    result.startsInWindow = lines().length - before;
    result.healthyAfterWindow = final?.health?.healthy === true;
    result.effectiveAfterWindow = /otlp\/run/.test(
      Object.values(final?.effectiveConfig?.configMap?.configMap ?? {})
        .map((f) => new TextDecoder().decode(f.body))
        .join(""),
    )
      ? "last good config"
      : "other";
  } finally {
    const stopping = performance.now();
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    }
    result.stopMs = performance.now() - stopping;
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return result;
}

const runs = [];
for (let i = 0; i < RUNS; i++) {
  for (const kind of i % 2 === 0 ? ["sdk", "go"] : ["go", "sdk"]) {
    const r = await run(kind);
    console.error(JSON.stringify(r));
    runs.push(r);
  }
}

function stats(kind, key) {
  const xs = runs
    .filter((r) => r.kind === kind && typeof r[key] === "number")
    .map((r) => r[key])
    .sort((a, b) => a - b);
  if (xs.length === 0) return "—";
  const mid = xs.length % 2 ? xs[(xs.length - 1) / 2] : (xs[xs.length / 2 - 1] + xs[xs.length / 2]) / 2;
  const f = (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(2));
  return `${f(mid)} (${f(xs[0])}–${f(xs.at(-1))})`;
}
const rows = [
  ["start to healthy (ms)", "startToHealthyMs"],
  ["idle RSS of the supervisor (MiB)", "idleRssMiB"],
  ["idle CPU of the supervisor (% of one core)", "idleCpuPercent"],
  ["config push to APPLIED (ms)", "pushToAppliedMs"],
  ["bad config push to FAILED (ms)", "pushToFailedMs"],
  [`Collector starts in the ${WINDOW_S} s after a bad config`, "startsInWindow"],
  ["SIGTERM to the supervisor until it exited (ms)", "stopMs"],
];
for (const r of runs) {
  for (const [i, ms] of (r.crashRestartMs ?? []).entries()) r[`crash${i + 1}RestartMs`] = ms;
}
rows.splice(
  5,
  0,
  ...[1, 2, 3].map((i) => [`Collector killed (crash ${i} in a row) to restarted (ms)`, `crash${i}RestartMs`]),
);
console.log(`| figure (median of ${RUNS}, min–max) | opamp-sdk supervisor | Collector opampsupervisor v0.149.0 |`);
console.log("| --- | --- | --- |");
for (const [label, key] of rows) console.log(`| ${label} | ${stats("sdk", key)} | ${stats("go", key)} |`);
for (const kind of ["sdk", "go"]) {
  const healthy = runs.filter((r) => r.kind === kind && r.healthyAfterWindow).length;
  const back = runs.filter((r) => r.kind === kind && r.effectiveAfterWindow === "last good config").length;
  console.log(
    `${kind}: Collector healthy at the end of the window in ${healthy}/${RUNS} runs (reported effective config = the last good one in ${back}/${RUNS})`,
  );
}
if (values.out !== undefined)
  writeFileSync(values.out, JSON.stringify({ date: new Date().toISOString(), runs }, null, 2));
