// Gateway benchmark (issue 12), a script, not a test. Against the built package (dist/).
//
//   npm run build
//   node bench/gateway.mjs --scenario latency --agents 10000 --upstreams 16
//   node bench/gateway.mjs --scenario fanout --agents 100000 --gateways 8 --upstreams 16 --loadgens 8
//
// latency: one OpAMPServer process; N agents connected directly and N through one gateway
//   process (≤ 16 upstream connections), side by side in the same run. Every agent sends a
//   heartbeat each --interval seconds; each round trip (send → the server's reply) is
//   timed by the load generators. Reports p50/p99/max for both paths and the difference
//   (what the gateway adds).
// fanout: N agents through G gateway processes into one OpAMPServer, spread over L
//   load-generator processes, each with its own 127.0.0.x source address (≤ 20,000 sockets
//   per process); then a config is pushed to all of them, timed until the last agent has
//   it. Before that, up to --direct-agents (default 15,000: the server process keeps under
//   20,000 files) connect directly (--no-direct skips it), to compare the server's memory
//   per agent (RSS and heap after a GC, divided by the agents).
//
// Every process is a child of this one and is ended with it. Results: one JSON object on
// stdout (--out FILE to also write it). Each role is this same file with --role.
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const SELF = fileURLToPath(import.meta.url);
const DIST = new URL("../dist/", import.meta.url);

const { values } = parseArgs({
  options: {
    role: { type: "string", default: "main" },
    scenario: { type: "string", default: "latency" },
    agents: { type: "string", default: "1000" },
    upstreams: { type: "string", default: "16" },
    gateways: { type: "string", default: "1" },
    loadgens: { type: "string", default: "2" },
    interval: { type: "string", default: "1" },
    duration: { type: "string", default: "20" },
    url: { type: "string" },
    "local-address": { type: "string" },
    "config-bytes": { type: "string", default: "4096" },
    direct: { type: "boolean", default: true },
    "direct-agents": { type: "string", default: "15000" },
    out: { type: "string" },
    help: { type: "boolean", default: false },
  },
  allowNegative: true,
});

if (values.help) {
  console.log(
    "usage: node bench/gateway.mjs [--scenario latency|fanout] [--agents N] [--upstreams U] [--gateways G]\n" +
      "  [--loadgens L] [--interval S] [--duration S] [--config-bytes B] [--no-direct] [--out FILE]",
  );
  process.exit(0);
}

const send = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

/** Runs a child role; resolves its JSON lines through `on`, and `cmd` writes a command to it. */
function child(role, args, on) {
  const proc = spawn(process.execPath, ["--expose-gc", SELF, "--role", role, ...args], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: proc.stdout });
  const waiters = [];
  lines.on("line", (line) => {
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      return;
    }
    on?.(msg);
    for (const w of [...waiters]) {
      if (w.match(msg)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(msg);
      }
    }
  });
  process.on("exit", () => proc.kill("SIGKILL"));
  return {
    proc,
    wait: (match) => new Promise((resolve) => waiters.push({ match, resolve })),
    cmd: (obj) => proc.stdin.write(`${JSON.stringify(obj)}\n`),
  };
}

function commands(handler) {
  createInterface({ input: process.stdin }).on("line", (line) => {
    void handler(JSON.parse(line));
  });
}

function memory() {
  globalThis.gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external };
}

// ── Roles ───────────────────────────────────────────────────────────────────────────────

async function serverRole() {
  const { OpAMPServer } = await import(new URL("server/index.js", DIST).href);
  const server = new OpAMPServer({
    hooks: { authenticate: () => ({ accept: true, principal: "bench" }) },
    heartbeat: { wsPingIntervalMs: 0, advertise: false },
    limits: { maxAgentsPerConnection: 20_000, maxConnections: 250_000 },
  });
  const { port } = await server.listen({ port: 0, host: "127.0.0.1" });
  send({ event: "listening", url: `ws://127.0.0.1:${port}/v1/opamp` });
  commands(async (c) => {
    if (c.cmd === "count") send({ event: "count", agents: server.agents.size });
    if (c.cmd === "memory") send({ event: "memory", agents: server.agents.size, ...memory() });
    if (c.cmd === "push") {
      const started = Date.now();
      await server.setRemoteConfig(() => true, { "bench.yaml": "x".repeat(Number(c.bytes)) });
      send({ event: "pushed", started, finished: Date.now() });
    }
  });
}

async function gatewayRole() {
  const { OpAMPGateway } = await import(new URL("gateway/index.js", DIST).href);
  const gateway = new OpAMPGateway({
    upstream: { url: values.url, connections: Number(values.upstreams) },
    auth: { mode: "delegate" },
    heartbeat: { wsPingIntervalMs: 0 },
    limits: { maxConnections: 250_000 },
    metrics: { enabled: false },
  });
  let open = 0;
  gateway.on("upstreamConnected", () => {
    if (++open === Number(values.upstreams)) send({ event: "upstreams" });
  });
  const { port } = await gateway.listen({ port: 0, host: "127.0.0.1" });
  send({ event: "listening", url: `ws://127.0.0.1:${port}/v1/opamp` });
  commands((c) => {
    if (c.cmd === "memory") send({ event: "memory", ...memory(), metrics: gateway.metrics });
  });
}

/** Raw WebSocket agents (no SDK client): the protocol cost only, timed per round trip. */
async function loadgenRole() {
  const { default: WebSocket } = await import("ws");
  const { create, toBinary, fromBinary } = await import("@bufbuild/protobuf");
  const wire = await import(new URL("index.js", DIST).href);
  const { AgentToServerSchema, ServerToAgentSchema } = wire;
  const n = Number(values.agents);
  const intervalMs = Number(values.interval) * 1000;
  const localAddress = values["local-address"];
  const samples = [];
  let recording = false;
  let configs = 0;
  let lastConfigAt = 0;
  const agents = [];
  const encode = (m) => wire.encodeWsFrame(toBinary(AgentToServerSchema, create(AgentToServerSchema, m)));
  let connected = 0;
  await new Promise((resolve) => {
    let i = 0;
    const open = () => {
      // A few hundred at a time: a burst of 20,000 upgrades would time out on 2 cores.
      for (let k = 0; k < 200 && i < n; k++, i++) {
        const uid = wire.newInstanceUid();
        const ws = new WebSocket(values.url, { ...(localAddress ? { localAddress } : {}), perMessageDeflate: false });
        const agent = { ws, uid, seq: 0n, sentAt: 0 };
        agents.push(agent);
        ws.on("open", () => {
          ws.send(
            encode({
              instanceUid: uid,
              sequenceNum: agent.seq++,
              capabilities: 0x3n,
              agentDescription: wire.agentDescription({ identifying: { "service.name": "bench" } }),
            }),
          );
        });
        ws.on("message", (data) => {
          const m = fromBinary(ServerToAgentSchema, wire.decodeWsFrame(new Uint8Array(data)));
          if (m.remoteConfig !== undefined) {
            configs++;
            lastConfigAt = Date.now();
            return;
          }
          if (agent.sentAt === -1) {
            agent.sentAt = 0;
            if (++connected === n) resolve();
            return;
          }
          if (agent.sentAt > 0 && recording) samples.push(performance.now() - agent.sentAt);
          agent.sentAt = 0;
        });
        agent.sentAt = -1;
        ws.on("error", () => undefined);
      }
      if (i < n) setTimeout(open, 20);
    };
    open();
  });
  send({ event: "connected", agents: n });
  let timer;
  commands((c) => {
    if (c.cmd === "start") {
      recording = true;
      // Each agent's heartbeat at its own offset in the interval.
      agents.forEach((agent, i) => {
        const beat = () => {
          if (!recording) return;
          agent.sentAt = performance.now();
          agent.ws.send(encode({ instanceUid: agent.uid, sequenceNum: agent.seq++ }));
        };
        setTimeout(
          () => {
            beat();
            agent.timer = setInterval(beat, intervalMs);
          },
          (i / n) * intervalMs,
        );
      });
    }
    if (c.cmd === "stop") {
      recording = false;
      for (const agent of agents) clearInterval(agent.timer);
      clearTimeout(timer);
      samples.sort((a, b) => a - b);
      send({ event: "samples", count: samples.length, samples: thin(samples) });
    }
    if (c.cmd === "configs") send({ event: "configs", configs, lastConfigAt });
  });
}

/** At most 20,000 evenly spaced order statistics (the percentiles survive, the message stays small). */
function thin(sorted) {
  if (sorted.length <= 20_000) return sorted;
  const step = sorted.length / 20_000;
  return Array.from({ length: 20_000 }, (_, i) => sorted[Math.floor(i * step)]);
}

function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function merge(lists) {
  return lists.flat().sort((a, b) => a - b);
}

const round = (x) => Math.round(x * 1000) / 1000;

// ── Scenarios ───────────────────────────────────────────────────────────────────────────

async function latency() {
  const agents = Number(values.agents);
  const loadgens = Math.max(1, Number(values.loadgens));
  const server = child("server", []);
  const { url } = await server.wait((m) => m.event === "listening");
  const gateway = child("gateway", ["--url", url, "--upstreams", values.upstreams]);
  const { url: gatewayUrl } = await gateway.wait((m) => m.event === "listening");
  await gateway.wait((m) => m.event === "upstreams");
  const per = Math.ceil(agents / loadgens);
  const start = async (target, index) => {
    const g = child("loadgen", [
      "--url",
      target,
      "--agents",
      String(per),
      "--interval",
      values.interval,
      "--local-address",
      `127.0.0.${index + 2}`,
    ]);
    await g.wait((m) => m.event === "connected");
    return g;
  };
  const direct = [];
  const through = [];
  for (let i = 0; i < loadgens; i++) {
    direct.push(await start(url, i));
    through.push(await start(gatewayUrl, loadgens + i));
  }
  const all = [...direct, ...through];
  for (const g of all) g.cmd({ cmd: "start" });
  await new Promise((r) => setTimeout(r, Number(values.duration) * 1000));
  const collect = async (gens) =>
    merge(
      await Promise.all(
        gens.map(async (g) => {
          const reply = g.wait((m) => m.event === "samples");
          g.cmd({ cmd: "stop" });
          return (await reply).samples;
        }),
      ),
    );
  const [d, t] = await Promise.all([collect(direct), collect(through)]);
  const stats = (s) => ({
    samples: s.length,
    p50: round(percentile(s, 50)),
    p99: round(percentile(s, 99)),
    max: round(s.at(-1) ?? Number.NaN),
  });
  const result = {
    scenario: "latency",
    agents: { direct: per * loadgens, gateway: per * loadgens },
    upstreams: Number(values.upstreams),
    intervalS: Number(values.interval),
    durationS: Number(values.duration),
    direct: stats(d),
    gateway: stats(t),
  };
  result.addedMs = {
    p50: round(result.gateway.p50 - result.direct.p50),
    p99: round(result.gateway.p99 - result.direct.p99),
  };
  return result;
}

async function fanout() {
  const agents = Number(values.agents);
  const gateways = Math.max(1, Number(values.gateways));
  const loadgens = Math.max(1, Number(values.loadgens));
  const per = Math.ceil(agents / loadgens);
  if (per > 20_000)
    throw new Error(`${per} agents per load generator: use more --loadgens (20,000 sockets per process at most)`);
  const server = child("server", []);
  const { url } = await server.wait((m) => m.event === "listening");
  const memoryOf = async (proc) => {
    const reply = proc.wait((m) => m.event === "memory");
    proc.cmd({ cmd: "memory" });
    return reply;
  };
  const base = await memoryOf(server);
  const runFleet = async (targets, offset, each) => {
    const gens = [];
    for (let i = 0; i < loadgens; i++) {
      const g = child("loadgen", [
        "--url",
        targets[i % targets.length],
        "--agents",
        String(each),
        "--local-address",
        `127.0.${1 + Math.floor((offset + i) / 250)}.${2 + ((offset + i) % 250)}`,
      ]);
      gens.push(g);
    }
    await Promise.all(gens.map((g) => g.wait((m) => m.event === "connected")));
    return gens;
  };
  const result = {
    scenario: "fanout",
    agents: per * loadgens,
    gateways,
    upstreamsPerGateway: Number(values.upstreams),
  };
  if (values.direct) {
    // The server holds one socket per direct agent: at most --direct-agents of them (a
    // process keeps to 20,000 files), enough for a per-agent figure.
    const direct = Math.min(per * loadgens, Number(values["direct-agents"]));
    const gens = await runFleet([url], 0, Math.ceil(direct / loadgens));
    const mem = await memoryOf(server);
    result.direct = perAgent(mem, base);
    for (const g of gens) g.proc.kill("SIGKILL");
    await new Promise((r) => setTimeout(r, 2000));
  }
  const gwUrls = [];
  const gws = [];
  for (let i = 0; i < gateways; i++) {
    const g = child("gateway", ["--url", url, "--upstreams", values.upstreams]);
    gwUrls.push((await g.wait((m) => m.event === "listening")).url);
    await g.wait((m) => m.event === "upstreams");
    gws.push(g);
  }
  const baseGw = await memoryOf(server);
  const gens = await runFleet(gwUrls, loadgens, per);
  const mem = await memoryOf(server);
  result.gateway = perAgent(mem, baseGw);
  const pushed = server.wait((m) => m.event === "pushed");
  server.cmd({ cmd: "push", bytes: values["config-bytes"] });
  const { started } = await pushed;
  let got = 0;
  let last = 0;
  for (let attempt = 0; attempt < 120 && got < result.agents; attempt++) {
    await new Promise((r) => setTimeout(r, 500));
    const counts = await Promise.all(
      gens.map(async (g) => {
        const reply = g.wait((m) => m.event === "configs");
        g.cmd({ cmd: "configs" });
        return reply;
      }),
    );
    got = counts.reduce((n, c) => n + c.configs, 0);
    last = Math.max(...counts.map((c) => c.lastConfigAt));
  }
  result.fanout = { delivered: got, ms: last - started, configBytes: Number(values["config-bytes"]) };
  result.gatewayProcesses = await Promise.all(
    gws.map((g) => memoryOf(g).then((m) => ({ rss: m.rss, heapUsed: m.heapUsed }))),
  );
  return result;
}

function perAgent(mem, base) {
  const agents = Math.max(1, mem.agents - base.agents);
  return {
    agents: mem.agents,
    rssPerAgentBytes: Math.round((mem.rss - base.rss) / agents),
    heapPerAgentBytes: Math.round((mem.heapUsed + mem.external - base.heapUsed - base.external) / agents),
  };
}

if (values.role === "server") await serverRole();
else if (values.role === "gateway") await gatewayRole();
else if (values.role === "loadgen") await loadgenRole();
else {
  const result = values.scenario === "fanout" ? await fanout() : await latency();
  const text = JSON.stringify(result, null, 2);
  console.log(text);
  if (values.out) writeFileSync(values.out, `${text}\n`);
  process.exit(0);
}
