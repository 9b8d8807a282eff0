// opamp-sdk's OpAMPServer (default in-memory store) with the same minimal bench duties as
// `opamp-bench goserver`: hold every agent's state, answer every message (the server
// does both), push a config on POST /push or SIGUSR1, count APPLIED. Same JSON events
// and admin API (GET /stats, POST /push) as the Go side.
// Usage: node bench/ts/sdk-server.mjs [--listen 127.0.0.1:0] [--lifetime SECONDS] [--config-bytes N]
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { configBody } from "./config-body.mjs";
import { serverStats } from "./server-stats.mjs";

const { values } = parseArgs({
  options: {
    listen: { type: "string", default: "127.0.0.1:0" },
    admin: { type: "string", default: "127.0.0.1:0" },
    lifetime: { type: "string", default: "1800" },
    "config-bytes": { type: "string", default: "8192" },
  },
});

function emit(ev, fields = {}) {
  process.stdout.write(`${JSON.stringify({ ...fields, ev, unix_ms: Date.now() })}\n`);
}

function hostPort(text) {
  const i = text.lastIndexOf(":");
  const host = text.slice(0, i);
  if (!/^127\.\d+\.\d+\.\d+$/.test(host)) throw new Error(`${text}: host must be in 127.0.0.0/8`);
  return { host, port: Number(text.slice(i + 1)) };
}

// OPAMP_BENCH_CPU_PROF=dir: profile the whole server run (node refuses --cpu-prof in
// NODE_OPTIONS); the .cpuprofile is written to dir at shutdown, for Chrome DevTools.
const profileDir = process.env.OPAMP_BENCH_CPU_PROF;
let profiler;
if (profileDir) {
  const { Session } = await import("node:inspector");
  profiler = new Session();
  profiler.connect();
  const post = (method, params) =>
    new Promise((resolve, reject) => profiler.post(method, params, (e, r) => (e ? reject(e) : resolve(r))));
  await post("Profiler.enable");
  await post("Profiler.setSamplingInterval", { interval: 500 });
  await post("Profiler.start");
  profiler.finish = async () => {
    const { profile } = await post("Profiler.stop");
    const { writeFileSync, mkdirSync } = await import("node:fs");
    mkdirSync(profileDir, { recursive: true });
    writeFileSync(`${profileDir}/sdk-server-${process.pid}.cpuprofile`, JSON.stringify(profile));
  };
}

let mod;
let root;
try {
  mod = await import("../../dist/server/index.js");
  root = await import("../../dist/index.js");
} catch (error) {
  emit("unavailable", { reason: `cannot load dist/server/index.js (run npm run build): ${error.message}` });
  process.exit(0);
}
if (typeof mod.OpAMPServer !== "function") {
  emit("unavailable", { reason: "dist/server/index.js does not export OpAMPServer" });
  process.exit(0);
}

const APPLIED = root.RemoteConfigStatuses.RemoteConfigStatuses_APPLIED;
const server = new mod.OpAMPServer({ allowAnonymous: true });
let messages = 0;
let applied = 0;
let pushes = 0;
let pushSeq = 0;
let desiredHash;
let appliedIds = new Set();
const errors = {};

server.on("message", (agent, message) => {
  messages++;
  const status = message.remoteConfigStatus;
  if (desiredHash && status && status.status === APPLIED && root.hashEquals(status.lastRemoteConfigHash, desiredHash)) {
    if (!appliedIds.has(agent.id)) {
      appliedIds.add(agent.id);
      applied++;
    }
  }
});
server.on("error", (error) => {
  errors[error.code] = (errors[error.code] ?? 0) + 1;
});

async function push() {
  const t0 = performance.now();
  const startUnix = Date.now();
  pushSeq++;
  pushes++;
  appliedIds = new Set();
  const body = configBody(100 + pushSeq, Number(values["config-bytes"]));
  const result = await server.setRemoteConfig(() => true, { "collector.yaml": { body, contentType: "text/yaml" } });
  desiredHash = result.hash;
  const ev = {
    pushed_ws: result.sent.filter((a) => a.transport === "websocket").length,
    queued_http: result.sent.filter((a) => a.transport === "http").length,
    skipped: result.skipped.length,
    send_ms: Math.round((performance.now() - t0) * 1000) / 1000,
    hash: Buffer.from(result.hash).toString("hex"),
    push_start_unix_ms: startUnix,
  };
  emit("pushed", ev);
  return ev;
}

function stats() {
  return serverStats(server, { messages, applied, pushes, errors });
}

const listen = hostPort(values.listen);
const address = await server.listen({ host: listen.host, port: listen.port });
const adminAddr = hostPort(values.admin);
const admin = createServer((req, res) => {
  const reply = (v) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(v));
  };
  if (req.method === "GET" && req.url === "/stats") return reply(stats());
  // A heap snapshot for finding where per-agent memory goes (Chrome DevTools, or
  // scripts that aggregate it by constructor); written to the directory given.
  if (req.method === "POST" && req.url.startsWith("/heap-snapshot?dir=")) {
    const dir = decodeURIComponent(req.url.slice("/heap-snapshot?dir=".length));
    return import("node:v8").then((v8) =>
      reply({ file: v8.writeHeapSnapshot(`${dir}/sdk-server-${process.pid}.heapsnapshot`) }),
    );
  }
  if (req.method === "POST" && req.url === "/push") {
    return push().then(reply, (error) => {
      res.statusCode = 500;
      reply({ error: String(error) });
    });
  }
  res.statusCode = 404;
  res.end();
});
await new Promise((resolve) => admin.listen(adminAddr.port, adminAddr.host, resolve));
const hostport = `${listen.host}:${address.port}`;
emit("listening", {
  pid: process.pid,
  server: "opamp-sdk",
  addr: hostport,
  admin: `${adminAddr.host}:${admin.address().port}`,
  url_ws: `ws://${hostport}${new URL(address.url).pathname}`,
  url_http: `http://${hostport}${new URL(address.url).pathname}`,
  node: process.version,
});

let stopping = false;
async function shutdown() {
  if (stopping) return;
  stopping = true;
  emit("stopping", stats());
  admin.close();
  await server.stop();
  if (profiler) await profiler.finish();
  process.exit(0);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
process.on("SIGUSR1", () => void push());
setTimeout(shutdown, Number(values.lifetime) * 1000);
