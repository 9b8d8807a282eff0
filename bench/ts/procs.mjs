// Child processes of the benchmark: the servers under test, the Go load
// generators, and /proc sampling of a process's RSS and CPU.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const BENCH_DIR = dirname(dirname(fileURLToPath(import.meta.url)));
export const REPO_DIR = dirname(BENCH_DIR);
export const GO_DIR = join(BENCH_DIR, "go");
export const GO_BIN = join(GO_DIR, "bin", "opamp-bench");
export const SDK_SERVER = join(BENCH_DIR, "ts", "sdk-server.mjs");
export const SDK_CLUSTER_SERVER = join(BENCH_DIR, "ts", "sdk-cluster-server.mjs");

/** With N > 0, opamp-sdk's server runs as a cluster of N workers (startCluster). */
let clusterWorkers = 0;
export function setClusterWorkers(n) {
  clusterWorkers = n;
}

/** Most agents one load process holds: its sockets must stay under the 20,000 open-file limit. */
export const MAX_AGENTS_PER_LOAD_PROCESS = 9000;
const CLK_TCK = 100;
const PAGE_KB = 4;

/**
 * With pinning on, the server under test runs on CPU 0 and the load generators on CPU 1
 * (taskset), so each side has exactly one core and neither steals the other's.
 */
let pinning = false;
export function setPinning(on) {
  pinning = on;
}
export function pinned(role, command, args) {
  if (!pinning) return [command, args];
  return ["taskset", ["-c", role === "server" ? "0" : "1", command, ...args]];
}

/** Every child we started, so we can end them (by pid) however we exit. */
const children = new Set();
function track(child) {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}
export function killAllChildren(signal = "SIGKILL") {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  }
}
process.once("exit", () => killAllChildren());

/** Builds bench/go into bench/go/bin/opamp-bench (go caches, so this is quick after the first time). */
export function buildGo() {
  const r = spawnSync("go", ["build", "-o", GO_BIN, "."], { cwd: GO_DIR, encoding: "utf8", stdio: "pipe" });
  if (r.error) throw new Error(`go build failed: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`go build failed:\n${r.stderr}`);
  return GO_BIN;
}

export function goVersion() {
  const r = spawnSync("go", ["version"], { encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : "unknown";
}

/**
 * A child that prints JSON lines. `events` collects them; `waitFor(pred, ms)`
 * resolves with the first event (past or future) matching pred.
 */
export class JsonChild {
  constructor(name, command, args, options = {}) {
    this.name = name;
    this.events = [];
    this.waiters = [];
    this.stderr = "";
    this.child = track(spawn(command, args, { stdio: ["pipe", "pipe", "pipe"], cwd: options.cwd ?? REPO_DIR }));
    this.pid = this.child.pid;
    this.exited = new Promise((resolve) => this.child.once("exit", (code, signal) => resolve({ code, signal })));
    createInterface({ input: this.child.stdout }).on("line", (line) => this.#onLine(line));
    this.child.stderr.on("data", (chunk) => {
      if (this.stderr.length < 64 * 1024) this.stderr += chunk.toString();
    });
    this.child.stdin.on("error", () => {});
  }

  #onLine(line) {
    let ev;
    try {
      ev = JSON.parse(line);
    } catch {
      return;
    }
    this.events.push(ev);
    if (this.events.length > 20_000) this.events.splice(0, 10_000);
    for (const w of [...this.waiters]) {
      if (w.pred(ev)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(ev);
      }
    }
  }

  last(evName) {
    for (let i = this.events.length - 1; i >= 0; i--) if (this.events[i].ev === evName) return this.events[i];
    return undefined;
  }

  waitFor(pred, timeoutMs, what = "event") {
    const found = this.events.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(
          new Error(
            `${this.name}: timed out after ${timeoutMs} ms waiting for ${what}; last progress: ${JSON.stringify(this.last("progress") ?? null)}; stderr: ${this.stderr.slice(-500)}`,
          ),
        );
      }, timeoutMs);
      w.resolve = (ev) => {
        clearTimeout(timer);
        resolve(ev);
      };
      this.waiters.push(w);
      this.exited.then(({ code, signal }) => {
        if (!this.waiters.includes(w)) return;
        this.waiters.splice(this.waiters.indexOf(w), 1);
        clearTimeout(timer);
        reject(
          new Error(`${this.name} exited (${code ?? signal}) while waiting for ${what}: ${this.stderr.slice(-800)}`),
        );
      });
    });
  }

  async stop(signal = "SIGTERM", graceMs = 5000) {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.exited;
    this.child.stdin.end();
    this.child.kill(signal);
    const t = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    const r = await this.exited;
    clearTimeout(t);
    return r;
  }
}

/**
 * Starts a server under test ("go" or "sdk", or the "bare" ws reference) and waits for its "listening" line.
 * Resolves to { proc, pid, urlWs, urlHttp, admin, listeningUnixMs } or
 * { unavailable: reason } when opamp-sdk's server cannot be loaded.
 */
export async function startServer(kind, { listen = "127.0.0.1:0", lifetimeS = 1800 } = {}) {
  const cluster = kind === "sdk" && clusterWorkers > 0;
  const script =
    kind === "bare" ? join(BENCH_DIR, "ts", "bare-ws-server.mjs") : cluster ? SDK_CLUSTER_SERVER : SDK_SERVER;
  const extra = cluster ? ["--workers", String(clusterWorkers)] : [];
  const [command, args] =
    kind === "go"
      ? pinned("server", GO_BIN, ["goserver", "--listen", listen, "--lifetime", `${lifetimeS}s`])
      : pinned("server", process.execPath, [script, "--listen", listen, "--lifetime", String(lifetimeS), ...extra]);
  const proc = new JsonChild(`${kind}-server`, command, args);
  const ev = await proc.waitFor((e) => e.ev === "listening" || e.ev === "unavailable", 30_000, "listening");
  if (ev.ev === "unavailable") {
    await proc.stop();
    return { unavailable: ev.reason };
  }
  return {
    proc,
    pid: proc.pid,
    // A cluster: the primary and its workers, sampled together.
    pids: ev.pids ?? [proc.pid],
    addr: ev.addr,
    urlWs: ev.url_ws,
    urlHttp: ev.url_http,
    admin: `http://${ev.admin}`,
    listeningUnixMs: ev.unix_ms,
    info: ev,
  };
}

export async function adminStats(server) {
  const res = await fetch(`${server.admin}/stats`);
  return res.json();
}

export async function adminPush(server) {
  const res = await fetch(`${server.admin}/push`, { method: "POST" });
  return res.json();
}

/**
 * Reads RSS, peak RSS (kB) and total CPU time (s) of pid from /proc; given several pids (a
 * cluster's processes), their sums (undefined when none can be read).
 */
export function procSample(pid) {
  if (Array.isArray(pid)) {
    const parts = pid.map(procSample1).filter((s) => s !== undefined);
    if (parts.length === 0) return undefined;
    return {
      t: performance.now(),
      cpuS: parts.reduce((a, p) => a + p.cpuS, 0),
      rssKb: parts.reduce((a, p) => a + p.rssKb, 0),
      hwmKb: parts.reduce((a, p) => a + (p.hwmKb ?? 0), 0),
      threads: parts.reduce((a, p) => a + (p.threads ?? 0), 0),
    };
  }
  return procSample1(pid);
}

function procSample1(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is state (field 3); utime is field 14, stime field 15.
    const cpuS = (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
    const rssKbStat = Number(fields[21]) * PAGE_KB;
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (key) => {
      const m = status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"));
      return m ? Number(m[1]) : undefined;
    };
    const threads = status.match(/^Threads:\s+(\d+)/m);
    return {
      t: performance.now(),
      cpuS,
      rssKb: kb("VmRSS") ?? rssKbStat,
      hwmKb: kb("VmHWM"),
      threads: threads ? Number(threads[1]) : undefined,
    };
  } catch {
    return undefined;
  }
}

/** Samples pid every intervalMs; keeps peak RSS and lets callers measure CPU over a window. */
export class ProcSampler {
  constructor(pid, intervalMs = 250) {
    this.pid = pid;
    this.samples = [];
    this.peakRssKb = 0;
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.sample();
  }
  sample() {
    const s = procSample(this.pid);
    if (s) {
      this.samples.push(s);
      if (this.samples.length > 100_000) this.samples.splice(0, 50_000);
      this.peakRssKb = Math.max(this.peakRssKb, s.rssKb, s.hwmKb ?? 0);
    }
    return s;
  }
  stop() {
    clearInterval(this.timer);
    return this.sample();
  }
}

/** Machine-wide busy CPU time (s, all cores) from /proc/stat, to spot other work on the machine. */
export function systemSample() {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0];
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  void idle;
  void iowait;
  return { t: performance.now(), cpuS: (user + nice + system + irq + softirq + steal) / CLK_TCK };
}

/**
 * CPU of everything else on the machine during a window (% of one core): machine busy
 * minus server minus load generators minus this runner. Large values mean the figures of
 * that window were disturbed by other work.
 */
export function otherCpuPercent(sys0, sys1, parts) {
  const total = cpuPercent(sys0, sys1);
  if (total === undefined) return undefined;
  const self = cpuPercent(sys0.self, sys1.self) ?? 0;
  return Math.max(0, total - self - parts.reduce((acc, v) => acc + (v ?? 0), 0));
}

/** systemSample plus this runner's own CPU. */
export function machineSample() {
  const s = systemSample();
  const u = process.cpuUsage();
  s.self = { t: s.t, cpuS: (u.user + u.system) / 1e6 };
  return s;
}

/**
 * Waits (at most maxWaitMs) until the machine is quiet: busy below maxBusyPct of one core
 * over a 1 s window. Returns the last busy figure seen. Other work on the machine (builds,
 * tests) would otherwise be measured as part of the servers' figures.
 */
export async function waitQuiet(maxWaitMs = 60_000, maxBusyPct = 20) {
  if (maxWaitMs <= 0) return undefined;
  const deadline = Date.now() + maxWaitMs;
  let busy;
  do {
    const a = systemSample();
    await sleep(1000);
    busy = cpuPercent(a, systemSample());
    if (busy !== undefined && busy < maxBusyPct) break;
  } while (Date.now() < deadline);
  return busy;
}

/** CPU use between two samples as a percentage of one core. */
export function cpuPercent(a, b) {
  if (!a || !b || b.t <= a.t) return undefined;
  return ((b.cpuS - a.cpuS) / ((b.t - a.t) / 1000)) * 100;
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function goBinaryPresent() {
  return existsSync(GO_BIN);
}
