/**
 * The processes of the soak and fault suites: the server (bundled from the sources, run
 * with --expose-gc) and the Go fleet (`opamp-bench soak`). Each runs in its own process
 * group, is tracked from spawn to exit, and is killed with its group by `killAll()` (the
 * suites call it in `afterAll`, and the test process at exit), so no run leaves processes
 * behind. Both children also end by themselves when their stdin closes.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import type { ServerChildCommand, ServerChildOptions } from "./server-child.js";

/** One JSON line a child printed. */
export type ChildEvent = { readonly ev: string } & Readonly<Record<string, unknown>>;

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const BENCH_GO = join(REPO, "bench", "go");

/** True when the Go toolchain is installed (the fleet is Go). */
export const hasGo = spawnSync("go", ["version"], { stdio: "ignore" }).status === 0;

const live = new Set<JsonProcess>();

/** Kills every tracked child's process group with SIGKILL. */
export function killAll(): void {
  for (const child of live) child.killGroup("SIGKILL");
}
process.once("exit", killAll);

/** A child process in its own process group that prints JSON lines on stdout. */
export class JsonProcess {
  readonly events: ChildEvent[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly pid: number;
  #stderr = "";
  readonly #child: ChildProcess;
  readonly #listeners = new Set<(event: ChildEvent) => void>();

  constructor(
    readonly name: string,
    command: string,
    args: readonly string[],
  ) {
    this.#child = spawn(command, args, { stdio: ["pipe", "pipe", "pipe"], detached: true, cwd: REPO });
    if (this.#child.pid === undefined) throw new Error(`${name}: could not be started`);
    this.pid = this.#child.pid;
    live.add(this);
    // "close", not "exit": every line the child wrote has been read by then.
    this.exited = new Promise((resolve) =>
      this.#child.once("close", (code, signal) => {
        live.delete(this);
        resolve({ code, signal });
      }),
    );
    this.#child.stdin?.on("error", () => {});
    this.#child.stderr?.on("data", (chunk: Buffer) => {
      if (this.#stderr.length < 64 * 1024) this.#stderr += chunk.toString();
    });
    createInterface({ input: this.#child.stdout! }).on("line", (line) => {
      let event: ChildEvent;
      try {
        event = JSON.parse(line) as ChildEvent;
      } catch {
        return;
      }
      this.events.push(event);
      for (const listener of [...this.#listeners]) listener(event);
    });
  }

  get alive(): boolean {
    return live.has(this);
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** Writes one line (an object as JSON) to the child's stdin. */
  send(line: string | ServerChildCommand): void {
    this.#child.stdin?.write(`${typeof line === "string" ? line : JSON.stringify(line)}\n`);
  }

  /** Calls `listener` for each later event; returns a function that stops it. */
  onEvent(listener: (event: ChildEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The newest event named `ev`. */
  last(ev: string): ChildEvent | undefined {
    for (let i = this.events.length - 1; i >= 0; i--) if (this.events[i]?.ev === ev) return this.events[i];
    return undefined;
  }

  /**
   * The first event from index `since` on (by default any, past ones included) that
   * matches; rejects after `timeoutMs`, or when the child exits first.
   */
  waitFor(match: (event: ChildEvent) => boolean, timeoutMs: number, what: string, since = 0): Promise<ChildEvent> {
    const found = this.events.slice(since).find(match);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const done = (settle: () => void) => {
        clearTimeout(timer);
        stop();
        settle();
      };
      const stop = this.onEvent((event) => {
        if (match(event)) done(() => resolve(event));
      });
      const timer = setTimeout(
        () => done(() => reject(new Error(`${this.name}: no ${what} within ${timeoutMs} ms; stderr: ${this.#tail()}`))),
        timeoutMs,
      );
      void this.exited.then(({ code, signal }) =>
        done(() =>
          reject(new Error(`${this.name} exited (${signal ?? code}) before ${what}; stderr: ${this.#tail()}`)),
        ),
      );
    });
  }

  #tail(): string {
    return this.#stderr.slice(-1500);
  }

  /** Sends `signal` to the child's whole process group. */
  killGroup(signal: NodeJS.Signals): void {
    try {
      process.kill(-this.pid, signal);
    } catch {
      // Already gone.
    }
  }

  /**
   * Ends the child: closes its stdin (it stops by itself), and kills its group when it has
   * not exited within `graceMs`. Resolves with how it ended.
   */
  async end(graceMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; killed: boolean }> {
    this.#child.stdin?.end();
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      this.killGroup("SIGKILL");
    }, graceMs);
    const how = await this.exited;
    clearTimeout(timer);
    return { ...how, killed };
  }

  /** Waits up to `timeoutMs` for the child to exit by itself; false if it did not (it is then killed). */
  async exitsWithin(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const exited = await Promise.race([
      this.exited.then(() => true),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (!exited) {
      this.killGroup("SIGKILL");
      await this.exited;
    }
    return exited;
  }
}

/** Bundles the server process from the sources (no build step: it runs the code under test). */
export async function bundleServer(outDir: string): Promise<string> {
  const outfile = join(outDir, "server-child.mjs");
  await build({
    entryPoints: [fileURLToPath(new URL("./server-child.ts", import.meta.url))],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile,
    logLevel: "silent",
    // ws loads these optional native helpers with require(): left to Node.
    external: ["bufferutil", "utf-8-validate"],
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
  return outfile;
}

/** Starts the server process and waits until it listens. */
export async function startServer(
  script: string,
  options: ServerChildOptions,
  name = "server",
): Promise<{ proc: JsonProcess; listening: ChildEvent }> {
  const proc = new JsonProcess(name, process.execPath, ["--expose-gc", script, JSON.stringify(options)]);
  const listening = await proc.waitFor((e) => e.ev === "listening", 60_000, "listening");
  return { proc, listening };
}

/** Builds `opamp-bench` (bench/go) into `outDir`; Go caches, so later builds are quick. */
export function buildFleet(outDir: string): string {
  const out = join(outDir, "opamp-bench");
  const built = spawnSync("go", ["build", "-o", out, "."], { cwd: BENCH_GO, encoding: "utf8" });
  if (built.status !== 0) throw new Error(`go build of bench/go failed: ${built.error?.message ?? built.stderr}`);
  return out;
}

/** Source addresses of fleet process `i`: 127.0.0.(2 + 4i) … 127.0.0.(5 + 4i). */
export function sourceAddrs(i: number): string {
  return Array.from({ length: 4 }, (_, k) => `127.0.0.${2 + i * 4 + k}`).join(",");
}

/** What one fleet process is told. */
export interface FleetOptions {
  readonly urlWs: string;
  readonly urlHttp: string;
  readonly agents: number;
  readonly indexBase: number;
  readonly seed: number;
  readonly generation: number;
  readonly token: string;
  readonly process: number;
  /** Extra `opamp-bench soak` flags (churn, intervals, shares). */
  readonly flags: readonly string[];
}

/** Starts one `opamp-bench soak` process and waits for its "start" line (it lists the UIDs). */
export async function startFleet(binary: string, o: FleetOptions): Promise<{ proc: JsonProcess; uids: string[] }> {
  const proc = new JsonProcess(`fleet#${o.process}.${o.generation}`, binary, [
    "soak",
    `--url-ws=${o.urlWs}`,
    `--url-http=${o.urlHttp}`,
    `--agents=${o.agents}`,
    `--index-base=${o.indexBase}`,
    `--seed=${o.seed}`,
    `--generation=${o.generation}`,
    `--token=${o.token}`,
    `--source-addrs=${sourceAddrs(o.process)}`,
    ...o.flags,
  ]);
  const start = await proc.waitFor((e) => e.ev === "start", 30_000, "start");
  return { proc, uids: start["uids"] as string[] };
}

/** Figures a fleet process counts (the Go side's progress line). */
export const FLEET_COUNTERS = [
  "sessions",
  "sent",
  "received",
  "end_graceful",
  "end_abrupt",
  "end_silent",
  "server_closed",
  "applying",
  "applied",
  "configs_received",
  "full_state_requests",
  "dial_failures",
  "transport_errors",
  "error_responses",
  "status_4xx",
  "status_5xx",
  "malformed",
] as const;

export type FleetTotals = Record<(typeof FLEET_COUNTERS)[number], number>;

/** Sums the newest progress (or summary) of each process given. */
export function fleetTotals(procs: readonly JsonProcess[]): FleetTotals {
  const totals = Object.fromEntries(FLEET_COUNTERS.map((k) => [k, 0])) as FleetTotals;
  for (const proc of procs) {
    const last = proc.last("summary") ?? proc.last("progress");
    if (last === undefined) continue;
    for (const key of FLEET_COUNTERS) totals[key] += Number(last[key] ?? 0);
  }
  return totals;
}
