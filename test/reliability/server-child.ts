/**
 * The server process of the soak and fault suites, bundled from the sources by the tests
 * and run with --expose-gc. It runs an OpAMPServer the way a management backend would:
 * bearer tokens compared in constant time, one principal per fleet process, a config per
 * group of agents given to each agent as it connects and pushed to the group when it
 * changes. Commands come as JSON lines on stdin, facts go out as JSON lines on stdout.
 * EOF on stdin (the test ended or died) stops the server and ends the process.
 */

import { createInterface } from "node:readline";
import { getHeapSpaceStatistics, writeHeapSnapshot } from "node:v8";
import { fromBinary } from "@bufbuild/protobuf";
import { AgentRemoteConfigSchema, RemoteConfigStatuses } from "../../src/gen/opamp/v1/opamp_pb.js";
import { type Agent, bearerToken, OpAMPServer, type PreparedRemoteConfig, safeEqual } from "../../src/server/index.js";
import type { ServerStore } from "../../src/server/store.js";
import { InMemoryServerStore } from "../../src/storage/memory-server-store.js";
import { type OpenedStore, selectedDriver } from "./durable-stores.js";
import { configBody, groupOf, instanceIdOf } from "./fleet-shape.js";

/** How the test configures the server process (argv[2], JSON). */
export interface ServerChildOptions {
  readonly port: number;
  readonly groups: number;
  readonly configBytes: number;
  /** Bearer token → principal. */
  readonly tokens: Readonly<Record<string, string>>;
  readonly wsPingIntervalMs: number;
  readonly httpAgentTimeoutMs: number;
  /** For the in-memory store; ignored with a durable store. */
  readonly maxDeliveriesPerAgent?: number;
  /** A durable store: the driver's name and the location it made. */
  readonly durable?: { readonly driver: string; readonly location: string };
  /** Agents in the fleet: "all_seen" is printed once that many have connected. */
  readonly fleetSize?: number;
  /** The config version every group is meant to run (after a restart: the fan-out's). */
  readonly intendedVersion?: number;
}

/** One agent the test expects, with what it must look like at the end. */
export interface ExpectedAgent {
  readonly uid: string;
  readonly index: number;
  readonly principal: string;
}

/** The commands the process takes on stdin. */
export type ServerChildCommand =
  | { readonly cmd: "push"; readonly version: number; readonly group?: number }
  | {
      readonly cmd: "fanout";
      readonly version: number;
      readonly order: readonly number[];
      readonly concurrency: number;
    }
  | { readonly cmd: "expect"; readonly uids: readonly string[] }
  | { readonly cmd: "sample" }
  | { readonly cmd: "snapshot"; readonly file: string }
  | { readonly cmd: "status"; readonly uids?: readonly string[] }
  | { readonly cmd: "verify"; readonly agents: readonly ExpectedAgent[] }
  | { readonly cmd: "stop" };

const options = JSON.parse(process.argv[2] ?? "{}") as ServerChildOptions;
const APPLIED = RemoteConfigStatuses.RemoteConfigStatuses_APPLIED;
const gc = (globalThis as { gc?: () => void }).gc;

function emit(ev: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ ev, t: Date.now(), ...fields })}\n`);
}

const hex = (bytes: Uint8Array | undefined) => (bytes === undefined ? "" : Buffer.from(bytes).toString("hex"));

const commands = createInterface({ input: process.stdin });
// What is active before the server exists (stdio pipes included: Node opens stdout and
// stderr on first use): after stop() nothing more may be.
void process.stdout;
void process.stderr;
const baseline = process.getActiveResourcesInfo();

let opened: OpenedStore | undefined;
let store: ServerStore;
if (options.durable !== undefined) {
  opened = await selectedDriver(options.durable.driver).open(options.durable.location);
  store = opened.store;
} else {
  store = new InMemoryServerStore(
    options.maxDeliveriesPerAgent === undefined ? {} : { maxDeliveriesPerAgent: options.maxDeliveriesPerAgent },
  );
}

const errors: Record<string, number> = {};
const errorSamples: string[] = [];
const server = new OpAMPServer<string>({
  store,
  hooks: {
    authenticate: ({ headers }) => {
      const token = bearerToken(headers) ?? "";
      for (const [known, principal] of Object.entries(options.tokens)) {
        if (safeEqual(token, known)) return { accept: true, principal };
      }
      return { accept: false, status: 401 };
    },
  },
  heartbeat: {
    wsPingIntervalMs: options.wsPingIntervalMs,
    httpAgentTimeoutMs: options.httpAgentTimeoutMs,
  },
});
server.on("error", (error) => {
  errors[error.code] = (errors[error.code] ?? 0) + 1;
  if (errorSamples.length < 20) errorSamples.push(`${error.code}: ${error.message}`);
});

// ── What each group should run ──────────────────────────────────────────────────────────
const intended = new Map<number, { readonly version: number; readonly config: PreparedRemoteConfig }>();
const prepared = new Map<string, PreparedRemoteConfig>();

/** The prepared config of a group at a version; only the group's newest is kept. */
async function configOf(group: number, version: number): Promise<PreparedRemoteConfig> {
  const key = `${group}/${version}`;
  let config = prepared.get(key);
  if (config === undefined) {
    const body = configBody(group, version, options.configBytes);
    config = await server.prepareRemoteConfig({ "collector.yaml": { body, contentType: "text/yaml" } });
    // The harness must not hold what the server let go: every older version is dropped.
    for (const [k] of prepared)
      if (k.startsWith(`${group}/`) && Number(k.slice(k.indexOf("/") + 1)) < version) prepared.delete(k);
    prepared.set(key, config);
  }
  return config;
}

if (options.intendedVersion !== undefined) {
  for (let group = 0; group < options.groups; group++) {
    intended.set(group, { version: options.intendedVersion, config: await configOf(group, options.intendedVersion) });
  }
}

const sameHash = (a: Uint8Array | undefined, b: Uint8Array) => a !== undefined && Buffer.compare(a, b) === 0;

// An agent that connects gets its group's config unless the store already holds it as the
// agent's desired config (it then rides in the reply by itself).
server.on("agentConnected", (agent) => {
  const want = intended.get(groupOf(agent.id, options.groups));
  if (want === undefined || sameHash(agent.desiredConfigHash, want.config.hash)) return;
  server.setRemoteConfig(agent.id, want.config).catch((e: unknown) => {
    errors["push_failed"] = (errors["push_failed"] ?? 0) + 1;
    if (errorSamples.length < 20) errorSamples.push(`push on connect: ${String(e)}`);
  });
});

// ── Convergence: every expected agent online and APPLIED with its group's config ────────
let expected = new Set<string>();
const notYet = new Set<string>();
let convergedSent = true;
const seen = new Set<string>();

function isGood(agent: Agent<string> | undefined): boolean {
  if (agent === undefined) return false;
  const want = intended.get(groupOf(agent.id, options.groups));
  if (want === undefined) return false;
  const status = agent.remoteConfigStatus;
  return (
    sameHash(agent.desiredConfigHash, want.config.hash) &&
    status?.status === APPLIED &&
    sameHash(status.lastRemoteConfigHash, want.config.hash)
  );
}

function update(uid: string): void {
  if (!expected.has(uid)) return;
  if (isGood(server.getAgent(uid))) notYet.delete(uid);
  else notYet.add(uid);
}

function maybeConverged(): void {
  if (!convergedSent && notYet.size === 0) {
    convergedSent = true;
    emit("converged", { agents: expected.size });
  }
}

function recheck(uid: string): void {
  update(uid);
  maybeConverged();
}

function recheckAll(): void {
  for (const uid of expected) update(uid);
  maybeConverged();
}

server.on("agentConnected", (agent) => {
  seen.add(agent.id);
  if (seen.size === options.fleetSize) emit("all_seen", { agents: seen.size });
  recheck(agent.id);
});
server.on("message", (agent) => recheck(agent.id));
server.on("agentDisconnected", (agent) => recheck(agent.id));

// ── Commands ────────────────────────────────────────────────────────────────────────────
async function push(version: number, group: number): Promise<void> {
  const config = await configOf(group, version);
  intended.set(group, { version, config });
  recheckAll();
  const started = performance.now();
  const result = await server.setRemoteConfig((a) => groupOf(a.id, options.groups) === group, config);
  emit("pushed", {
    group,
    version,
    hash: hex(config.hash),
    sent: result.sent.length,
    skipped: result.skipped.length,
    ms: Math.round(performance.now() - started),
  });
}

/** Pushes each group's config in `order`, `concurrency` groups at a time; "acked" once stored. */
async function fanout(version: number, order: readonly number[], concurrency: number): Promise<void> {
  const queue = [...order];
  const worker = async () => {
    for (let group = queue.shift(); group !== undefined; group = queue.shift()) {
      const config = await configOf(group, version);
      intended.set(group, { version, config });
      const result = await server.setRemoteConfig((a) => groupOf(a.id, options.groups) === group, config);
      // The promise resolved: every targeted agent's desired config and "offered" step are stored.
      emit("acked", { group, version, hash: hex(config.hash), uids: result.sent.map((a) => a.id) });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  recheckAll();
  emit("fanout_done", { version });
}

async function sample(): Promise<void> {
  if (gc !== undefined) {
    // Twice, with a turn of the event loop between: finalizers and weak references settle.
    gc();
    await new Promise((resolve) => setImmediate(resolve));
    gc();
  }
  const mem = process.memoryUsage();
  const spaces: Record<string, number> = {};
  for (const space of getHeapSpaceStatistics()) spaces[space.space_name] = space.space_used_size;
  let online = 0;
  let ws = 0;
  for (const agent of server.agents.values()) {
    online++;
    if (agent.transport === "websocket") ws++;
  }
  const cpu = process.cpuUsage();
  emit("sample", {
    gc: gc !== undefined,
    cpuMs: Math.round((cpu.user + cpu.system) / 1000),
    heapUsed: mem.heapUsed,
    spaces,
    heapTotal: mem.heapTotal,
    external: mem.external,
    arrayBuffers: mem.arrayBuffers,
    rss: mem.rss,
    online,
    ws,
    seen: seen.size,
    connections: server.connectionCount,
    notYet: notYet.size,
    errors,
  });
}

function status(uids?: readonly string[]): void {
  const missing = (uids ?? [...notYet].slice(0, 10)).map((uid) => {
    const agent = server.getAgent(uid);
    const want = intended.get(groupOf(uid, options.groups));
    return {
      uid,
      online: agent !== undefined,
      transport: agent?.transport,
      desired: hex(agent?.desiredConfigHash),
      reported: hex(agent?.remoteConfigStatus?.lastRemoteConfigHash),
      reportedStatus: agent?.remoteConfigStatus?.status,
      want: hex(want?.config.hash),
      wantVersion: want?.version,
    };
  });
  emit("status", { notYet: notYet.size, online: server.agents.size, missing, errors, errorSamples });
}

/**
 * Checks every expected agent as the server and its store see it: online with its own
 * description, bound to its fleet's principal, its group's config desired, stored and
 * APPLIED, and the delivery of that config ending "applied".
 */
async function verify(agents: readonly ExpectedAgent[]): Promise<void> {
  const failures: string[] = [];
  const fail = (text: string) => {
    if (failures.length < 50) failures.push(text);
  };
  // Deliveries of the agent's config with no "offered" step: an offer whose record a kill
  // lost (the config goes out before its write), or the agent already held it when pushed.
  let withoutOffer = 0;
  for (const { uid, index, principal } of agents) {
    const agent = server.getAgent(uid);
    const want = intended.get(groupOf(uid, options.groups));
    if (agent === undefined || want === undefined) {
      fail(`${uid}: ${agent === undefined ? "not online" : "no intended config"}`);
      continue;
    }
    const id = agent.agentDescription?.identifyingAttributes.find((kv) => kv.key === "service.instance.id");
    const idValue = id?.value?.value.case === "stringValue" ? id.value.value.value : undefined;
    if (idValue !== instanceIdOf(index))
      fail(`${uid}: description says ${idValue}, agent ${index} is ${instanceIdOf(index)}`);
    if (agent.boundPrincipal !== principal) fail(`${uid}: bound to ${agent.boundPrincipal}, not ${principal}`);
    if (!isGood(agent)) fail(`${uid}: not APPLIED with its group's config`);
    const desired = await store.getDesired(uid);
    const storedHash =
      desired?.remoteConfig === undefined
        ? undefined
        : fromBinary(AgentRemoteConfigSchema, desired.remoteConfig).configHash;
    if (!sameHash(storedHash, want.config.hash)) fail(`${uid}: the store's desired config is ${hex(storedHash)}`);
    const delivery = (await store.listDeliveries(uid)).find(
      (d) => d.kind === "remoteConfig" && sameHash(d.hash, want.config.hash),
    );
    const steps = delivery?.history.map((h) => h.status) ?? [];
    if (steps.at(-1) !== "applied") fail(`${uid}: delivery of its config is [${steps.join(", ")}]`);
    if (!steps.includes("offered")) withoutOffer++;
  }
  emit("verified", { checked: agents.length, failures, withoutOffer });
}

async function stop(): Promise<void> {
  const started = performance.now();
  await server.stop();
  const stopMs = Math.round(performance.now() - started);
  await opened?.close();
  commands.close();
  const atStop = process.getActiveResourcesInfo();
  // A handle stop() closed is listed until its close callback has run, a turn or two of the
  // event loop later (Node emits a server's "close" before libuv has closed its handle).
  // setImmediate lets those callbacks run without letting time pass for timers; what is
  // still there beyond the baseline outlived stop().
  let turns = 0;
  while (turns < 5 && leftover(baseline, process.getActiveResourcesInfo()).length > 0) {
    await new Promise((resolve) => setImmediate(resolve));
    turns++;
  }
  const resources = process.getActiveResourcesInfo();
  emit("stopped", {
    stopMs,
    baseline,
    atStop,
    resources,
    leftover: leftover(baseline, resources),
    turns,
    errors,
    errorSamples,
  });
  process.stdin.destroy();
}

/** What `after` lists beyond `before` (as multisets: two timers where there was one is one left). */
function leftover(before: readonly string[], after: readonly string[]): string[] {
  const counts = new Map<string, number>();
  for (const name of before) counts.set(name, (counts.get(name) ?? 0) + 1);
  const extra: string[] = [];
  for (const name of after) {
    const n = counts.get(name) ?? 0;
    if (n > 0) counts.set(name, n - 1);
    else extra.push(name);
  }
  return extra;
}

let stopping: Promise<void> | undefined;
const run = (command: ServerChildCommand): Promise<void> => {
  switch (command.cmd) {
    case "push":
      if (command.group !== undefined) return push(command.version, command.group);
      return Promise.all(Array.from({ length: options.groups }, (_, g) => push(command.version, g))).then(() => {});
    case "fanout":
      return fanout(command.version, command.order, command.concurrency);
    case "expect":
      expected = new Set(command.uids);
      notYet.clear();
      convergedSent = false;
      recheckAll();
      return Promise.resolve();
    case "sample":
      return sample();
    case "snapshot":
      emit("snapshot", { file: writeHeapSnapshot(command.file) });
      return Promise.resolve();
    case "status":
      status(command.uids);
      return Promise.resolve();
    case "verify":
      return verify(command.agents);
    case "stop":
      stopping ??= stop();
      return stopping;
  }
};

commands.on("line", (line) => {
  const command = JSON.parse(line) as ServerChildCommand;
  run(command).catch((e: unknown) => emit("failed", { cmd: command.cmd, error: String(e) }));
});
commands.on("close", () => {
  stopping ??= stop();
});

const address = await server.listen({ host: "127.0.0.1", port: options.port });
emit("listening", {
  pid: process.pid,
  port: address.port,
  urlWs: address.url.replace(/^http/, "ws"),
  urlHttp: address.url,
  recovered: opened?.recovered,
});
