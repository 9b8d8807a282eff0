/**
 * Faults with a durable store (issue 16, standing suites): kill -9 of the server process in
 * the middle of a config fan-out, a restart on the same store, and the fleet's reconnect
 * storm. 2,000 agents in CI, 10,000 with `npm run faults` (OPAMP_FAULTS_AGENTS overrides),
 * half over WebSocket and half over HTTP polling, on the store OPAMP_FAULTS_STORE names
 * (default the file-backed test store; see durable-stores.ts to add one).
 *
 * The fan-out is what an application does to roll a new config out: one group (batch) of
 * agents at a time, two groups in flight, each `setRemoteConfig` "acked" once its promise
 * resolved. The test kills the server (SIGKILL to its process group) right after a seeded
 * number of acks, so the kill lands while later groups are being written and while agents
 * report the configs they were sent.
 *
 * What "nothing lost" means, precisely:
 *
 * 1. Desired config: every agent of every acked group has that group's new config as its
 *    desired config in the store found after the kill, and the delivery of it starts with
 *    "offered" (the server writes both before the push's promise resolves).
 * 2. Delivery record: nothing the store held at the kill is lost or changed by the
 *    restart: each delivery's history found after the kill is a prefix of its history at
 *    the end. A stored agent state never claims more than its delivery record: when the
 *    state found after the kill says APPLIED with a hash, that delivery holds "applied".
 * 3. The windows: the server answers an agent's status report before it writes the
 *    delivery step the report makes, so a kill can lose a step the agent was answered for
 *    (an "applying" step, or the "applied" one). The agent reports its status again after
 *    the restart (the server asks for its full state), and that report writes the step
 *    again. So the promise is about the end: after the reconnect storm, for every agent,
 *    the delivery of its desired config ends "applied", and that is what the agent itself
 *    reports. Not restored: a lost "applying" step, the time of an "applied" step written
 *    again, and, for a group never acked, its "offered" step: the kill may land after the
 *    group's desired configs were written and before their "offered" steps were (the
 *    restarted server then offers the stored desired config by itself), or after a config
 *    went out to a WebSocket agent and before anything of it was written (the server
 *    sends before it writes; the application's re-push then records what the agent
 *    reports). The figures count those deliveries.
 * 4. Reconnect storm: after the restart every agent is back online with its own state (its
 *    description, bound to its principal as before the kill) and, once the application
 *    completed the fan-out for the groups that were never acked, APPLIED with its group's
 *    new config.
 *
 * Deterministic by seed (printed; OPAMP_SOAK_SEED=<seed> replays the kill point, the group
 * order and the fleet).
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentRemoteConfigSchema, AgentToServerSchema, RemoteConfigStatuses } from "../../src/gen/opamp/v1/opamp_pb.js";
import type { ServerStore } from "../../src/server/store.js";
import { configMap, configMapHash } from "../../src/wire/index.js";
import { selectedDriver } from "./durable-stores.js";
import { between, configBody, groupOf, prng, runSeed, uuidOf } from "./fleet-shape.js";
import {
  buildFleet,
  bundleServer,
  fleetTotals,
  hasGo,
  type JsonProcess,
  killAll,
  startFleet,
  startServer,
} from "./processes.js";
import type { ServerChildOptions } from "./server-child.js";

const LONG = process.env["OPAMP_RELIABILITY_LONG"] === "1";
const AGENTS = Number(process.env["OPAMP_FAULTS_AGENTS"] || (LONG ? 10_000 : 2_000));
const PROCESSES = 2;
/** About 100 agents per group: the fan-out acks that many at a time. */
const GROUPS = Math.max(12, Math.round(AGENTS / 100));
const CONFIG_BYTES = 1024;
const inCI = Boolean(process.env["CI"]);
const driver = selectedDriver();

if (!hasGo && !inCI) console.warn("faults skipped: the `go` toolchain is not installed (under CI this fails)");

const FLEET = [
  "--http-share=0.5",
  "--full-share=0.3",
  "--two-step-share=0.5",
  "--heartbeat=30s",
  `--poll-interval=${LONG ? "5s" : "3s"}`,
  "--config-bytes=512",
  "--dial-concurrency=64",
];

/** What one agent looks like in a store, read back from outside the server. */
interface StoredView {
  readonly desired: string | undefined;
  readonly bound: string | undefined;
  /** Hash of the remote config the stored state reports APPLIED, if any. */
  readonly stateApplied: string | undefined;
  /** remoteConfig deliveries by hash: their steps. */
  readonly deliveries: ReadonlyMap<string, readonly string[]>;
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

async function readStore(store: ServerStore, uids: readonly string[]): Promise<Map<string, StoredView>> {
  const views = new Map<string, StoredView>();
  for (const uid of uids) {
    const [agent, desired, deliveries] = await Promise.all([
      store.getAgent(uid),
      store.getDesired(uid),
      store.listDeliveries(uid),
    ]);
    const status = agent === undefined ? undefined : fromBinary(AgentToServerSchema, agent.state).remoteConfigStatus;
    views.set(uid, {
      desired:
        desired?.remoteConfig === undefined
          ? undefined
          : hex(fromBinary(AgentRemoteConfigSchema, desired.remoteConfig).configHash),
      bound: agent?.boundPrincipal,
      stateApplied:
        status?.status === RemoteConfigStatuses.RemoteConfigStatuses_APPLIED
          ? hex(status.lastRemoteConfigHash)
          : undefined,
      deliveries: new Map(
        deliveries.filter((d) => d.kind === "remoteConfig").map((d) => [hex(d.hash), d.history.map((h) => h.status)]),
      ),
    });
  }
  return views;
}

async function configHash(group: number, version: number): Promise<string> {
  const body = configBody(group, version, CONFIG_BYTES);
  return hex(await configMapHash(configMap({ "collector.yaml": { body, contentType: "text/yaml" } })));
}

describe.skipIf(!hasGo && !inCI)(`faults: kill -9 during a fan-out to ${AGENTS} agents (${driver.name})`, () => {
  let dir = "";
  let serverScript = "";
  let fleetBinary = "";
  let location = "";
  beforeAll(async () => {
    expect(hasGo, "the fault suite's fleet (bench/go) needs `go` on PATH").toBe(true);
    dir = await mkdtemp(join(tmpdir(), "opamp-faults-"));
    serverScript = await bundleServer(dir);
    fleetBinary = buildFleet(dir);
    location = await driver.create(dir);
  });
  afterAll(async () => {
    killAll();
    if (location !== "") await driver.dispose(location);
    if (dir !== "") await rm(dir, { recursive: true, force: true });
  });

  it(
    "loses no desired config and no delivery record, and every agent comes back with its state",
    async () => {
      const seed = runSeed();
      console.info(`faults: seed ${seed} (replay with OPAMP_SOAK_SEED=${seed})`);
      const random = prng(seed);
      const tokens: Record<string, string> = {};
      for (let p = 0; p < PROCESSES; p++) tokens[`faults-${seed}-${p}-${Math.floor(random() * 1e9)}`] = `fleet-${p}`;
      const tokenOf = Object.keys(tokens);
      const base: ServerChildOptions = {
        port: 0,
        groups: GROUPS,
        configBytes: CONFIG_BYTES,
        tokens,
        wsPingIntervalMs: 30_000,
        httpAgentTimeoutMs: 60_000,
        durable: { driver: process.env["OPAMP_FAULTS_STORE"] || "file", location },
      };
      const hashes = new Map<string, string>();
      for (let g = 0; g < GROUPS; g++) {
        for (const v of [1, 2]) hashes.set(`${g}/${v}`, await configHash(g, v));
      }
      const want = (uid: string, version: number) => hashes.get(`${groupOf(uid, GROUPS)}/${version}`)!;

      // ── Server A, the fleet, config 1 everywhere ──────────────────────────────────
      const a = await startServer(serverScript, base, "server A");
      const port = a.listening["port"] as number;
      const urlWs = a.listening["urlWs"] as string;
      const urlHttp = a.listening["urlHttp"] as string;
      const perProcess = Math.ceil(AGENTS / PROCESSES);
      const fleet: JsonProcess[] = [];
      const hexUids: string[] = [];
      for (let p = 0; p < PROCESSES; p++) {
        const { proc, uids } = await startFleet(fleetBinary, {
          urlWs,
          urlHttp,
          agents: Math.min(perProcess, AGENTS - p * perProcess),
          indexBase: p * perProcess,
          seed,
          generation: 0,
          token: tokenOf[p]!,
          process: p,
          flags: FLEET,
        });
        fleet.push(proc);
        hexUids.push(...uids);
      }
      const uids = hexUids.map(uuidOf);
      const principalOf = (index: number) => tokens[tokenOf[Math.floor(index / perProcess)]!]!;
      const converged = async (server: JsonProcess, what: string, timeoutMs: number) => {
        const mark = server.events.length;
        server.send({ cmd: "expect", uids });
        try {
          return await server.waitFor((e) => e.ev === "converged", timeoutMs, what, mark);
        } catch (error) {
          const statusMark = server.events.length;
          server.send({ cmd: "status" });
          const status = await server
            .waitFor((e) => e.ev === "status", 10_000, "status", statusMark)
            .catch(() => undefined);
          throw new Error(`${String(error)}\nseed ${seed}; server status: ${JSON.stringify(status)}`);
        }
      };
      a.proc.send({ cmd: "push", version: 1 });
      await converged(a.proc, "every agent APPLIED with config 1", LONG ? 600_000 : 180_000);

      // ── The fan-out of config 2, group by group, and kill -9 after the K-th ack ────────
      const order = [...Array(GROUPS).keys()];
      for (let i = order.length - 1; i > 0; i--) {
        const j = between(random, 0, i);
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      // At least 8 groups are left when the kill comes (a group takes tens of ms), so it
      // always lands during the fan-out.
      const killAfter = between(random, 1, GROUPS - 8);
      // A seeded 0–20 ms after that ack, so the kill lands anywhere in what follows: other
      // groups' writes, agents' reports and the delivery steps they make.
      const killDelayMs = between(random, 0, 20);
      let acks = 0;
      a.proc.onEvent((e) => {
        if (e.ev === "acked" && ++acks === killAfter) {
          setTimeout(() => a.proc.killGroup("SIGKILL"), killDelayMs);
        }
      });
      const fanoutStarted = Date.now();
      a.proc.send({ cmd: "fanout", version: 2, order, concurrency: 2 });
      const ending = await a.proc.exited;
      expect(ending.signal, `server A ended by ${ending.signal ?? ending.code}, not by the kill`).toBe("SIGKILL");
      const killedAfterMs = Date.now() - fanoutStarted;
      // Every ack the server printed before it died (a few may follow the K-th in the pipe).
      const acked = a.proc.events.filter((e) => e.ev === "acked");
      expect(acked.length).toBeGreaterThanOrEqual(killAfter);
      expect(a.proc.events.some((e) => e.ev === "fanout_done")).toBe(false);

      // ── What the store holds after the kill ────────────────────────────────────────
      const opened = await driver.inspect(location);
      const afterKill = await readStore(opened.store, uids);
      const recovered = opened.recovered;
      await opened.close();
      const problems: string[] = [];
      const problem = (text: string) => {
        if (problems.length < 30) problems.push(text);
      };
      let ackedAgents = 0;
      for (const ack of acked) {
        const group = ack["group"] as number;
        const ackedUids = ack["uids"] as string[];
        // Every agent of the group was online: the push reached them all.
        expect(ackedUids.length).toBe(uids.filter((u) => groupOf(u, GROUPS) === group).length);
        expect(ack["hash"]).toBe(hashes.get(`${group}/2`));
        for (const uid of ackedUids) {
          ackedAgents++;
          const view = afterKill.get(uid);
          if (view?.desired !== ack["hash"]) problem(`acked ${uid}: desired after the kill is ${view?.desired}`);
          if (view?.deliveries.get(ack["hash"] as string)?.[0] !== "offered") {
            problem(`acked ${uid}: no "offered" step after the kill`);
          }
        }
      }
      let secondInFile = 0;
      let appliedBeforeKill = 0;
      for (const [index, uid] of uids.entries()) {
        const view = afterKill.get(uid)!;
        if (view.desired === want(uid, 2)) secondInFile++;
        else if (view.desired !== want(uid, 1)) problem(`${uid}: desired after the kill is ${view.desired}`);
        if (view.bound !== principalOf(index)) problem(`${uid}: bound to ${view.bound} after the kill`);
        if (view.stateApplied !== undefined && !view.deliveries.get(view.stateApplied)?.includes("applied")) {
          problem(`${uid}: its stored state says APPLIED ${view.stateApplied}, its delivery does not`);
        }
        if (view.deliveries.get(want(uid, 2))?.includes("applied")) appliedBeforeKill++;
      }
      expect(problems, `seed ${seed}`).toEqual([]);

      // ── Server B on the same store and port: the reconnect storm ───────────────────────
      const b = await startServer(serverScript, { ...base, port, intendedVersion: 2 }, "server B");
      const restarted = b.listening["t"] as number;
      const storm = await converged(b.proc, "every agent back and APPLIED with config 2", LONG ? 900_000 : 240_000);
      const stormMs = (storm["t"] as number) - restarted;

      const verifyMark = b.proc.events.length;
      b.proc.send({
        cmd: "verify",
        agents: uids.map((uid, index) => ({ uid, index, principal: principalOf(index) })),
      });
      const verified = await b.proc.waitFor((e) => e.ev === "verified", 120_000, "verify", verifyMark);
      expect(verified["failures"], `seed ${seed}`).toEqual([]);

      // Each agent's own view: it applied its group's config 2.
      const reports = await Promise.all(
        fleet.map((proc) => {
          const mark = proc.events.length;
          proc.send("report");
          return proc.waitFor((e) => e.ev === "report", 60_000, "report", mark);
        }),
      );
      const wrong = reports
        .flatMap((r) => r["agents"] as { uid: string; applied: string }[])
        .filter((agent) => agent.applied !== want(agent.uid, 2));
      expect(wrong.slice(0, 5), `seed ${seed}`).toEqual([]);
      const totals = fleetTotals(fleet);

      const stopMark = b.proc.events.length;
      b.proc.send({ cmd: "stop" });
      const stopped = await b.proc.waitFor((e) => e.ev === "stopped", 60_000, "stopped", stopMark);
      const exitedByItself = await b.proc.exitsWithin(15_000);
      for (const proc of fleet) await proc.end();

      // ── The store at the end: nothing found after the kill was lost or rewritten ──────
      const final = await driver.inspect(location);
      const atEnd = await readStore(final.store, uids);
      await final.close();
      let restored = 0;
      let withoutOffer = 0;
      for (const uid of uids) {
        const before = afterKill.get(uid)!;
        const after = atEnd.get(uid)!;
        for (const [hash, steps] of before.deliveries) {
          const later = after.deliveries.get(hash);
          if (later === undefined || steps.some((step, i) => later[i] !== step)) {
            problem(`${uid}: delivery ${hash.slice(0, 8)} was [${steps}] after the kill, [${later}] at the end`);
          }
        }
        const mine = after.deliveries.get(want(uid, 2)) ?? [];
        if (after.desired !== want(uid, 2)) problem(`${uid}: desired at the end is ${after.desired}`);
        if (mine.at(-1) !== "applied") problem(`${uid}: config 2 delivery is [${mine}]`);
        if (!mine.includes("offered")) withoutOffer++;
        if (!before.deliveries.get(want(uid, 2))?.includes("applied") && mine.includes("applied")) restored++;
      }
      expect(problems, `seed ${seed}`).toEqual([]);

      const errorsB = stopped["errors"] as Record<string, number>;
      const figures = {
        seed,
        store: driver.name,
        agents: AGENTS,
        groups: GROUPS,
        killAfterAcks: killAfter,
        killDelayMs,
        ackedGroups: acked.length,
        ackedAgents,
        killedAfterMs,
        recoveredAtKill: recovered,
        desiredConfig2InStoreAtKill: secondInFile,
        applied2InStoreAtKill: appliedBeforeKill,
        appliedStepsWrittenAfterRestart: restored,
        config2DeliveriesWithoutOffer: withoutOffer,
        restartToAllBackAndAppliedMs: stormMs,
        fleet: totals,
        serverBErrors: errorsB,
        stopMs: stopped["stopMs"],
        leftover: stopped["leftover"],
        exitedByItself,
      };
      console.info(`faults figures: ${JSON.stringify(figures)}`);
      await writeFile(
        join(process.cwd(), ".tmp", `faults-${LONG ? "long" : "ci"}.json`),
        JSON.stringify(figures, null, 2),
      ).catch(() => undefined);

      expect(errorsB["internal"] ?? 0, JSON.stringify(stopped["errorSamples"])).toBe(0);
      expect(errorsB["storage_failed"] ?? 0).toBe(0);
      expect(totals.status_5xx + totals.status_4xx + totals.error_responses + totals.malformed).toBe(0);
      expect(stopped["leftover"]).toEqual([]);
      expect(exitedByItself).toBe(true);
    },
    (LONG ? 3600 : 900) * 1000,
  );
});
