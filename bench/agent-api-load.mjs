#!/usr/bin/env node
// agent-api under load (issue 14): N simulated agents (default 10,000) against one agent-api
// replica backed by PostgreSQL. A benchmark, not a test: it reports, it asserts nothing.
//
//   node bench/agent-api-load.mjs [--agents 10000] [--runs 3] [--database-url postgres://…]
//
// Without --database-url (or OPAMP_TEST_POSTGRES_URL) it starts a throwaway cluster with
// scripts/postgres-cluster.sh. Each run gets a fresh database and a fresh agent-api process
// (`node examples/agent-api/main.mjs`), and measures:
//   enroll  every agent connects with the fleet token (xse_), is given its key (xag_) in a
//           connection-settings offer, reconnects with it: time until all N are on their keys
//   push    a config assigned to all of them (REST → NOTIFY → push): time until every row of
//           agent_config_deliveries is `applied`
//   writes  database commits and rows written per second over both phases (pg_stat_database)
//   memory  agent-api's resident memory per connected agent (RSS with N agents − RSS idle) / N
// The simulated agents are light WebSocket clients speaking OpAMP with opamp-sdk's wire codecs
// (the opampsupervisor's capabilities, no ReportsConnectionSettingsStatus), in this process.

import { execFileSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import pg from "pg";
import WebSocket from "ws";
import {
  AgentCapability,
  AgentToServerSchema,
  agentDescription,
  create,
  decodeWsMessage,
  encodeWsMessage,
  newInstanceUid,
  RemoteConfigStatuses,
  ServerToAgentSchema,
} from "../dist/index.js";

const { values } = parseArgs({
  options: {
    agents: { type: "string", default: "10000" },
    runs: { type: "string", default: "3" },
    "database-url": { type: "string" },
    concurrency: { type: "string", default: "200" },
  },
});
const AGENTS = Number(values.agents);
const RUNS = Number(values.runs);
const CONCURRENCY = Number(values.concurrency);
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const ADMIN = "bench-admin-token-0123456789";
const CAPS =
  AgentCapability.ReportsStatus |
  AgentCapability.AcceptsRemoteConfig |
  AgentCapability.ReportsRemoteConfig |
  AgentCapability.AcceptsOpAMPConnectionSettings |
  AgentCapability.ReportsHealth;

let serverUrl = values["database-url"] ?? process.env.OPAMP_TEST_POSTGRES_URL;
if (!serverUrl) {
  serverUrl = execFileSync("bash", [`${ROOT}scripts/postgres-cluster.sh`, "start", "/tmp/opamp-bench-postgres"], {
    encoding: "utf8",
  }).trim();
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rssOf = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) * 1024;

async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** One simulated agent: enrolls, switches to its key, applies every config it is given. */
class SimAgent {
  constructor(url, token, index) {
    this.url = url;
    this.credential = token;
    this.uid = newInstanceUid();
    this.seq = 0n;
    this.onKey = false;
    this.applied = undefined;
    this.description = agentDescription({
      identifying: { "service.name": "otelcol", "service.instance.id": `sim-${index}` },
      nonIdentifying: { "host.name": `sim-${index}` },
    });
  }

  connect() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url, { headers: { Authorization: `Bearer ${this.credential}` } });
      this.ws = ws;
      ws.once("open", () => {
        this.seq = 0n;
        this.send({ agentDescription: this.description, health: { healthy: true, status: "StatusOK" } });
        resolve();
      });
      ws.once("error", reject);
      ws.on("message", (data) => this.receive(new Uint8Array(data)));
    });
  }

  send(fields) {
    const message = create(AgentToServerSchema, {
      instanceUid: this.uid,
      sequenceNum: this.seq++,
      capabilities: CAPS,
      ...fields,
    });
    this.ws.send(encodeWsMessage(AgentToServerSchema, message));
  }

  receive(bytes) {
    const message = decodeWsMessage(ServerToAgentSchema, bytes);
    const auth = message.connectionSettings?.opamp?.headers?.headers.find((h) => h.key === "Authorization");
    if (auth !== undefined) {
      // As the supervisor does: take the new headers and reconnect with them.
      this.credential = auth.value.replace(/^Bearer /, "");
      this.ws.removeAllListeners("close");
      this.ws.close();
      this.reconnect();
      return;
    }
    if (message.remoteConfig !== undefined) {
      const hash = message.remoteConfig.configHash;
      this.send({
        remoteConfigStatus: { lastRemoteConfigHash: hash, status: RemoteConfigStatuses.RemoteConfigStatuses_APPLYING },
      });
      this.send({
        remoteConfigStatus: { lastRemoteConfigHash: hash, status: RemoteConfigStatuses.RemoteConfigStatuses_APPLIED },
      });
      this.applied = hash;
    }
  }

  /** Reconnects with the key, retrying (as an agent would) when the connection fails. */
  reconnect(attempt = 0) {
    this.connect().then(
      () => {
        this.onKey = true;
      },
      (error) => {
        errors.set(error.message, (errors.get(error.message) ?? 0) + 1);
        setTimeout(() => this.reconnect(attempt + 1), Math.min(5_000, 100 * 2 ** attempt));
      },
    );
  }

  close() {
    this.ws?.terminate();
  }
}

/** Connection errors the simulated agents met, by message (reported when a phase times out). */
const errors = new Map();

async function api(base, method, path, body) {
  const res = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

async function stats(client) {
  const { rows } = await client.query(
    `SELECT xact_commit::float8 AS commits, (tup_inserted + tup_updated + tup_deleted)::float8 AS rows
       FROM pg_stat_database WHERE datname = current_database()`,
  );
  return rows[0];
}

async function until(what, check, timeoutMs = 1_800_000, progress = () => "") {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end)
      throw new Error(`timed out: ${what} (${await progress()}; errors: ${JSON.stringify([...errors])})`);
    await sleep(100);
  }
}

async function oneRun(run) {
  const name = `opamp_bench_${process.pid}_${run}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const port = await freePort();
  const child = spawn(process.execPath, [`${ROOT}examples/agent-api/main.mjs`], {
    env: {
      ...process.env,
      DATABASE_URL: url.toString(),
      PORT: String(port),
      HOST: "127.0.0.1",
      AGENT_API_ADMIN_TOKEN: ADMIN,
      AGENT_API_KEK: Buffer.alloc(32, 1).toString("base64"),
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  // A run that fails must not leave its agent-api behind.
  process.once("exit", () => child.kill("SIGKILL"));
  await new Promise((resolve) => {
    let out = "";
    child.stdout.on("data", (c) => {
      out += c;
      if (out.includes("dashboard:")) resolve();
    });
  });
  const base = `http://127.0.0.1:${port}`;
  const db = new pg.Client({ connectionString: url.toString() });
  await db.connect();
  const org = await api(base, "POST", "/orgs", { name: "bench" });
  const { token } = await api(base, "POST", `/orgs/${org.id}/enrollment-tokens`, { labels: { env: "prod" } });
  const template = await api(base, "POST", `/orgs/${org.id}/templates`, {
    name: "bench",
    body: 'receivers:\n  otlp: {}\nservice:\n  telemetry:\n    resource: { host: "${agent:name}" }\n',
  });
  await sleep(1000);
  const rssIdle = rssOf(child.pid);
  const before = await stats(db);

  // Enroll.
  const agents = Array.from({ length: AGENTS }, (_, i) => new SimAgent(`ws://127.0.0.1:${port}/v1/opamp`, token, i));
  const t0 = performance.now();
  for (let i = 0; i < agents.length; i += CONCURRENCY) {
    await Promise.all(agents.slice(i, i + CONCURRENCY).map((a) => a.connect()));
  }
  await until(
    "every agent on its key",
    () => agents.every((a) => a.onKey),
    1_800_000,
    () => `${agents.filter((a) => a.onKey).length} of ${AGENTS} on their keys`,
  );
  await until("every agent online", async () => {
    const { rows } = await db.query("SELECT count(*)::int AS n FROM agents WHERE status = 'online'");
    return rows[0].n === AGENTS;
  });
  const enrollMs = performance.now() - t0;
  await sleep(1000);
  const rssLoaded = rssOf(child.pid);

  // Push to all.
  const t1 = performance.now();
  await api(base, "POST", `/orgs/${org.id}/assignments`, { selector: "env=prod", revision_id: template.revision.id });
  await until("every delivery applied", async () => {
    const { rows } = await db.query("SELECT count(*)::int AS n FROM agent_config_deliveries WHERE status = 'applied'");
    return rows[0].n === AGENTS;
  });
  const pushMs = performance.now() - t1;
  const after = await stats(db);
  const seconds = (performance.now() - t0) / 1000;

  for (const a of agents) a.close();
  child.kill("SIGTERM");
  await new Promise((r) => child.once("exit", r));
  await db.end();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
  return {
    enrollMs,
    pushMs,
    commitsPerSecond: (after.commits - before.commits) / seconds,
    rowsPerSecond: (after.rows - before.rows) / seconds,
    bytesPerAgent: (rssLoaded - rssIdle) / AGENTS,
  };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const results = [];
for (let run = 1; run <= RUNS; run++) {
  const r = await oneRun(run);
  results.push(r);
  console.log(
    `run ${run}: enroll ${(r.enrollMs / 1000).toFixed(1)} s, push ${(r.pushMs / 1000).toFixed(1)} s, ` +
      `${r.commitsPerSecond.toFixed(0)} commits/s, ${r.rowsPerSecond.toFixed(0)} rows/s, ${(r.bytesPerAgent / 1024).toFixed(1)} KiB/agent`,
  );
}
const line = (label, key, fmt) => {
  const xs = results.map((r) => r[key]);
  console.log(
    `${label.padEnd(28)} median ${fmt(median(xs))}  (min ${fmt(Math.min(...xs))}, max ${fmt(Math.max(...xs))})`,
  );
};
console.log(`\n${AGENTS} agents, ${RUNS} runs, PostgreSQL ${serverUrl.replace(/\/\/[^@]*@/, "//")}`);
line("enroll (all on their keys)", "enrollMs", (v) => `${(v / 1000).toFixed(1)} s`);
line("push (all rows applied)", "pushMs", (v) => `${(v / 1000).toFixed(1)} s`);
line("database commits", "commitsPerSecond", (v) => `${v.toFixed(0)}/s`);
line("database rows written", "rowsPerSecond", (v) => `${v.toFixed(0)}/s`);
line("agent-api memory per agent", "bytesPerAgent", (v) => `${(v / 1024).toFixed(1)} KiB`);
process.exit(0);
