// opamp-sdk's OpAMPServer as a cluster (startCluster: N workers on one port, the bus and
// the in-memory store held by the primary), with the same bench duties, JSON events and
// admin API (GET /stats, POST /push, on the primary) as sdk-server.mjs. A push is made by
// every worker on its own agents (the whole fleet, as one process's predicate push is).
// Usage: node bench/ts/sdk-cluster-server.mjs --workers N [--listen 127.0.0.1:0] [--lifetime S] [--config-bytes N]
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { configBody } from "./config-body.mjs";
import { serverStats } from "./server-stats.mjs";

const { values } = parseArgs({
  options: {
    workers: { type: "string", default: "2" },
    listen: { type: "string", default: "127.0.0.1:0" },
    admin: { type: "string", default: "127.0.0.1:0" },
    lifetime: { type: "string", default: "1800" },
    "config-bytes": { type: "string", default: "8192" },
  },
});

const emit = (ev, fields = {}) => process.stdout.write(`${JSON.stringify({ ...fields, ev, unix_ms: Date.now() })}\n`);
const BENCH = "opamp-bench";

function hostPort(text) {
  const i = text.lastIndexOf(":");
  return { host: text.slice(0, i), port: Number(text.slice(i + 1)) };
}

let mod;
let root;
let clusterMod;
try {
  mod = await import("../../dist/server/index.js");
  root = await import("../../dist/index.js");
  clusterMod = await import("../../dist/server/cluster/index.js");
} catch (error) {
  emit("unavailable", { reason: `cannot load dist/ (run npm run build): ${error.message}` });
  process.exit(0);
}

const listen = hostPort(values.listen);
const node = await clusterMod.startCluster({
  workers: Number(values.workers),
  async setup({ bus, store, replicaId }) {
    const APPLIED = root.RemoteConfigStatuses.RemoteConfigStatuses_APPLIED;
    const server = new mod.OpAMPServer({ allowAnonymous: true, bus, store, replicaId });
    let messages = 0;
    let applied = 0;
    let pushes = 0;
    let desiredHash;
    let appliedIds = new Set();
    const errors = {};
    server.on("message", (agent, message) => {
      messages++;
      const status = message.remoteConfigStatus;
      if (desiredHash && status?.status === APPLIED && root.hashEquals(status.lastRemoteConfigHash, desiredHash)) {
        if (!appliedIds.has(agent.id)) {
          appliedIds.add(agent.id);
          applied++;
        }
      }
    });
    server.on("error", (error) => {
      errors[error.code] = (errors[error.code] ?? 0) + 1;
    });
    const ops = {
      async push({ seq }) {
        const t0 = performance.now();
        pushes++;
        appliedIds = new Set();
        applied = 0;
        const body = configBody(100 + seq, Number(values["config-bytes"]));
        // The hash first: with a bus the push awaits the primary's store, and the agents'
        // APPLIED reports may arrive before it returns.
        const prepared = await server.prepareRemoteConfig({ "collector.yaml": { body, contentType: "text/yaml" } });
        desiredHash = prepared.hash;
        const result = await server.setRemoteConfig(() => true, prepared);
        return {
          pushed_ws: result.sent.filter((a) => a.transport === "websocket").length,
          queued_http: result.sent.filter((a) => a.transport === "http").length,
          skipped: result.skipped.length,
          send_ms: performance.now() - t0,
          hash: Buffer.from(result.hash).toString("hex"),
        };
      },
      async stats() {
        return serverStats(server, { messages, applied, pushes, errors });
      },
    };
    let port;
    ops.port = async () => port;
    process.on("message", (m) => {
      if (m?.tag !== BENCH) return;
      ops[m.op](m).then((result) => process.send({ tag: BENCH, id: m.id, result }));
    });
    port = (await server.listen({ host: listen.host, port: listen.port })).port;
    return server;
  },
});
if (node.role === "worker") {
  // The worker's part is done in setup.
} else {
  const cluster = (await import("node:cluster")).default;
  let nextId = 1;
  /** Asks every worker; resolves with their answers. */
  const askAll = (op, fields = {}) =>
    Promise.all(
      Object.values(cluster.workers ?? {}).map(
        (w) =>
          new Promise((resolve) => {
            const id = nextId++;
            const onMessage = (m) => {
              if (m?.tag !== BENCH || m.id !== id) return;
              w.off("message", onMessage);
              resolve(m.result);
            };
            w.on("message", onMessage);
            w.send({ tag: BENCH, op, id, ...fields });
          }),
      ),
    );
  const sum = (rows, key) => rows.reduce((acc, r) => acc + r[key], 0);
  async function stats() {
    const rows = await askAll("stats");
    const errors = {};
    for (const r of rows) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
    const out = { pid: process.pid, workers: rows.map((r) => r.pid), errors };
    for (const k of ["agents", "full_state", "ws_agents", "connections", "messages", "applied", "js_heap_used"]) {
      out[k] = sum(rows, k);
    }
    out.pushes = Math.max(...rows.map((r) => r.pushes));
    return out;
  }
  let seq = 0;
  async function push() {
    const startUnix = Date.now();
    const rows = await askAll("push", { seq: ++seq });
    const ev = {
      pushed_ws: sum(rows, "pushed_ws"),
      queued_http: sum(rows, "queued_http"),
      skipped: sum(rows, "skipped"),
      send_ms: Math.round(Math.max(...rows.map((r) => r.send_ms)) * 1000) / 1000,
      hash: rows[0]?.hash,
      push_start_unix_ms: startUnix,
    };
    emit("pushed", ev);
    return ev;
  }
  const adminAddr = hostPort(values.admin);
  const admin = createServer((req, res) => {
    const reply = (v) => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify(v));
    };
    if (req.method === "GET" && req.url === "/stats") return void stats().then(reply);
    if (req.method === "POST" && req.url === "/push") return void push().then(reply);
    res.statusCode = 404;
    res.end();
  });
  await new Promise((resolve) => admin.listen(adminAddr.port, adminAddr.host, resolve));
  const first = await stats();
  // Workers listening on port 0 share one port: read it from a worker-side address.
  const port = await new Promise((resolve) => {
    const w = Object.values(cluster.workers ?? {})[0];
    const id = nextId++;
    w.on("message", function onMessage(m) {
      if (m?.tag === BENCH && m.id === id) {
        w.off("message", onMessage);
        resolve(m.result);
      }
    });
    w.send({ tag: BENCH, op: "port", id });
  });
  const hostport = `${listen.host}:${port}`;
  emit("listening", {
    pid: process.pid,
    pids: [process.pid, ...first.workers],
    server: "opamp-sdk",
    cluster_workers: first.workers.length,
    addr: hostport,
    admin: `${adminAddr.host}:${admin.address().port}`,
    url_ws: `ws://${hostport}/v1/opamp`,
    url_http: `http://${hostport}/v1/opamp`,
    node: process.version,
  });
  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    emit("stopping", await stats());
    admin.close();
    await node.stop();
    process.exit(0);
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
  setTimeout(shutdown, Number(values.lifetime) * 1000).unref();
}
