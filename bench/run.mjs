// opamp-sdk benchmark runner (issue 6): scenarios 1–6, each against opamp-go's
// server and opamp-sdk's OpAMPServer in turn, with one Go load generator.
//
//   node bench/run.mjs                                   all scenarios at their default sizes
//   node bench/run.mjs --scenario fanout --agents 10000 --transport ws
//   node bench/run.mjs --scenario connect --agents 20 --servers go --out /tmp/r.json
//   node bench/run.mjs --cluster 2 --scenario fanout --agents 19000 --repeat 5
//       across cores: opamp-sdk as a cluster of 2 workers (startCluster) against opamp-go,
//       neither pinned, 5 alternating runs each, medians compared
//
// Scenarios: 1|connect  2|steady  3|fanout  4|http  5|storm  6|codec  all
// Results: bench/results/<timestamp>.json (summary) and bench/results/raw/<timestamp>.json.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { median } from "./ts/merge.mjs";
import { BENCH_DIR, buildGo, goVersion, killAllChildren, setClusterWorkers, setPinning } from "./ts/procs.mjs";
import { printTable, ratios } from "./ts/report.mjs";
import {
  scenarioCodec,
  scenarioConnect,
  scenarioFanout,
  scenarioHttp,
  scenarioSteady,
  scenarioStorm,
  setQuietWait,
} from "./ts/scenarios.mjs";

const USAGE = `usage: node bench/run.mjs [--scenario all|1..6|connect|steady|fanout|http|storm|codec]
  [--agents N] [--transport ws|http] [--servers go,sdk[,bare]] [--heartbeat S] [--window S]
  [--settle S] [--iterations N] [--poll-interval S] [--out FILE] [--raw-dir DIR] [--quick] [--pin]
  [--retries N] [--cluster N] [--repeat N]
  --pin       server on CPU 0, load generators on CPU 1 (taskset)
  --retries   re-measure a server up to N times while other work on the machine used more
              than 25 % of a core during its measurement; the cleanest attempt is kept (default 2)
  --cluster   opamp-sdk's server as a cluster of N worker processes on one port (startCluster,
              bench/ts/sdk-cluster-server.mjs); figures are of all its processes together.
              Not with --pin: both servers use every core.
  --repeat    measure each server N times, alternating (go, sdk, go, sdk, …); every run is kept
              and the table compares the medians (default 1)`;

const NAMES = { 1: "connect", 2: "steady", 3: "fanout", 4: "http", 5: "storm", 6: "codec" };

const { values } = parseArgs({
  options: {
    scenario: { type: "string", default: "all" },
    agents: { type: "string" },
    transport: { type: "string" },
    servers: { type: "string", default: "go,sdk" },
    heartbeat: { type: "string" },
    window: { type: "string" },
    settle: { type: "string" },
    iterations: { type: "string" },
    "poll-interval": { type: "string" },
    out: { type: "string" },
    "raw-dir": { type: "string" },
    quick: { type: "boolean", default: false },
    pin: { type: "boolean", default: false },
    retries: { type: "string" },
    cluster: { type: "string" },
    repeat: { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}

const scenario = NAMES[values.scenario] ?? values.scenario;
const servers = values.servers.split(",").map((s) => s.trim());
const quick = values.quick;
setPinning(values.pin);
const clusterWorkers = values.cluster === undefined ? 0 : Number(values.cluster);
const repeat = values.repeat === undefined ? 1 : Number(values.repeat);
if (!Number.isInteger(clusterWorkers) || clusterWorkers < 0 || !Number.isInteger(repeat) || repeat < 1) {
  console.error(USAGE);
  process.exit(2);
}
if (clusterWorkers > 0 && values.pin) {
  console.error("--cluster runs unpinned: both servers use every core (drop --pin)");
  process.exit(2);
}
setClusterWorkers(clusterWorkers);
setQuietWait(quick ? 0 : 60_000);
const num = (v, d) => (v === undefined ? d : Number(v));
if (![...Object.values(NAMES), "all"].includes(scenario) || servers.some((s) => !["go", "sdk", "bare"].includes(s))) {
  console.error(USAGE);
  process.exit(2);
}
if (values.transport && values.transport !== "ws" && values.transport !== "http") {
  console.error(USAGE);
  process.exit(2);
}

/** The runs `all` makes; an explicit --scenario runs one entry with the CLI's values. */
function plan() {
  const agents = values.agents ? Number(values.agents) : undefined;
  const transport = values.transport;
  const one = (name, defaults) => ({
    name,
    agents: agents ?? defaults.agents,
    transport: transport ?? defaults.transport,
  });
  if (scenario !== "all") {
    const defaults = {
      connect: { agents: 1000, transport: "ws" },
      steady: { agents: 10000, transport: "ws" },
      fanout: { agents: 10000, transport: "ws" },
      http: { agents: 1000, transport: "http" },
      storm: { agents: 10000, transport: "ws" },
      codec: {},
    }[scenario];
    const entry = one(scenario, defaults);
    return scenario === "connect" ? [entry, { ...entry, effectiveConfig: false }] : [entry];
  }
  return [
    { name: "connect", agents: 1000, transport: "ws" },
    { name: "connect", agents: 1000, transport: "ws", effectiveConfig: false },
    { name: "connect", agents: 10000, transport: "ws" },
    { name: "connect", agents: 10000, transport: "ws", effectiveConfig: false },
    { name: "connect", agents: 1000, transport: "http" },
    { name: "steady", agents: 10000, transport: "ws" },
    { name: "fanout", agents: 10000, transport: "ws" },
    { name: "http", agents: 1000, transport: "http" },
    { name: "storm", agents: 10000, transport: "ws" },
    { name: "codec" },
  ];
}

async function runOne(entry, kind) {
  const o = {
    agents: entry.agents,
    transport: entry.transport,
    effectiveConfig: entry.effectiveConfig ?? true,
    heartbeatS: num(values.heartbeat, 30),
    windowS: num(values.window, quick ? 3 : entry.name === "steady" ? 60 : 20),
    settleMs: num(values.settle, quick ? 1 : entry.agents >= 5000 ? 10 : 5) * 1000,
    pollIntervalS: values["poll-interval"] === undefined ? undefined : Number(values["poll-interval"]),
  };
  switch (entry.name) {
    case "connect":
      return scenarioConnect(kind, o);
    case "steady":
      return scenarioSteady(kind, o);
    case "fanout":
      return scenarioFanout(kind, o);
    case "http":
      return scenarioHttp(kind, o);
    case "storm":
      return scenarioStorm(kind, o);
    default:
      throw new Error(`unknown scenario ${entry.name}`);
  }
}

function pkgVersion(name) {
  try {
    return JSON.parse(readFileSync(join(BENCH_DIR, "..", "node_modules", name, "package.json"), "utf8")).version;
  } catch {
    return undefined;
  }
}

const OTHER_CPU_LIMIT_PCT = 25;
const otherCpu = (r) => r.other_cpu_pct ?? r.other_cpu_connect_pct ?? 0;

/** Runs one measurement, again (up to --retries) while other work disturbed it; keeps the cleanest. */
async function measure(entry, kind) {
  const retries = num(values.retries, quick ? 0 : 2);
  let best;
  for (let attempt = 0; attempt <= retries; attempt++) {
    const r = await runOne(entry, kind);
    if (r.unavailable) return r;
    r.attempt = attempt + 1;
    if (best === undefined || otherCpu(r) < otherCpu(best)) best = r;
    if (otherCpu(r) <= OTHER_CPU_LIMIT_PCT) break;
    console.error(`  other work used ${otherCpu(r)} % of a core during the measurement; measuring again`);
  }
  best.attempts = best.attempt;
  return best;
}

/**
 * The median of every numeric figure over repeated runs (each figure on its own: the median
 * connect time and the median RSS may come from different runs), with every run kept.
 */
function medianRun(list) {
  const ok = list.filter((r) => !r.error && !r.unavailable);
  const merge = (objects) => {
    const out = {};
    for (const key of new Set(objects.flatMap((o) => (o && typeof o === "object" ? Object.keys(o) : [])))) {
      const values = objects.map((o) => o?.[key]);
      const first = values.find((v) => v !== undefined);
      if (typeof first === "number") out[key] = median(values.filter((v) => typeof v === "number"));
      else if (first && typeof first === "object" && !Array.isArray(first)) out[key] = merge(values);
    }
    return out;
  };
  const figures = merge(ok);
  return { ...figures, median_of: ok.length, failed_runs: list.length - ok.length, runs: list };
}

async function main() {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const outFile = values.out ?? join(BENCH_DIR, "results", `${stamp}.json`);
  const rawDir = values["raw-dir"] ?? join(BENCH_DIR, "results", "raw", stamp);
  mkdirSync(rawDir, { recursive: true });
  mkdirSync(dirname(outFile), { recursive: true });
  console.error(`building bench/go …`);
  buildGo();
  const results = {
    meta: {
      started: new Date().toISOString(),
      machine: { cpus: cpus().length, cpu_model: cpus()[0]?.model, mem_gib: Math.round(totalmem() / 2 ** 30) },
      node: process.version,
      go: goVersion(),
      opamp_go: "v0.23.0",
      bufbuild_protobuf: pkgVersion("@bufbuild/protobuf"),
      ws: pkgVersion("ws"),
      // Native unmasking of agents' frames in `ws` (an optional dependency of opamp-sdk).
      bufferutil: process.env.WS_NO_BUFFER_UTIL
        ? "off (WS_NO_BUFFER_UTIL)"
        : (pkgVersion("bufferutil") ?? "not installed"),
      args: process.argv.slice(2),
      pinned: values.pin,
      cluster_workers: clusterWorkers || undefined,
      repeat,
    },
    runs: [],
  };
  const save = () => writeFileSync(outFile, `${JSON.stringify(results, null, 2)}\n`);
  for (const entry of plan()) {
    const run = { scenario: entry.name, agents: entry.agents, transport: entry.transport, servers: {} };
    if (entry.effectiveConfig === false) run.effective_config = false;
    results.runs.push(run);
    if (entry.name === "codec") {
      console.error(`codec …`);
      run.codec = await scenarioCodec({
        repeat: quick ? 1 : 3,
        rawDir,
        iterations: num(values.iterations, quick ? 200 : 20000),
        minTimeMs: quick ? 50 : 1000,
      });
      save();
      continue;
    }
    const labelOf = (kind) => ({ go: "opamp-go", sdk: "opamp-sdk", bare: "bare-ws" })[kind];
    const repeats = Object.fromEntries(servers.map((kind) => [labelOf(kind), []]));
    // Alternating: go, sdk, go, sdk, … so that a slow spell of the machine hits both.
    for (let r = 0; r < repeat; r++) {
      for (const kind of servers) {
        const label = labelOf(kind);
        console.error(
          `${entry.name} ${entry.transport} ${entry.agents} agents${entry.effectiveConfig === false ? " (no effective config)" : ""} → ${label}${clusterWorkers > 0 && kind === "sdk" ? ` (cluster of ${clusterWorkers})` : ""}${repeat > 1 ? ` [${r + 1}/${repeat}]` : ""} …`,
        );
        let result;
        try {
          const m = await measure(entry, kind);
          result = m.unavailable ? { unavailable: `opamp-sdk server not available: ${m.unavailable}` } : m;
        } catch (error) {
          result = { error: String(error?.message ?? error) };
          console.error(`  failed: ${error?.message ?? error}`);
          killAllChildren();
        }
        repeats[label].push(result);
        run.servers[label] = repeat > 1 ? medianRun(repeats[label]) : result;
        save();
      }
    }
    run.ratios = ratios(run);
    save();
  }
  results.meta.finished = new Date().toISOString();
  save();
  printTable(results);
  console.error(`results: ${outFile}`);
}

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => {
    killAllChildren();
    process.exit(130);
  });
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    killAllChildren();
    process.exit(1);
  },
);
