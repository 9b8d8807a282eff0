/**
 * Soak (issue 16, standing suites): 2,000 agents connecting and disconnecting for 2 minutes
 * (CI) or 10 minutes (`npm run soak`) over both transports, with sessions ending gracefully,
 * abruptly (TCP resets, HTTP requests cut off in their body) and silently (the server must
 * notice), fleet processes killed with SIGKILL and started again, and config pushes in
 * flight throughout. Three phases: the whole fleet online and settled, the churn, the whole
 * fleet back and settled. It asserts:
 *
 * - memory stays flat: the server's heap after a forced GC, measured in its own process,
 *   has a plateau in each settled phase, the second within 10 % of the first, and never
 *   exceeds the first by more than 10 % during the churn (the rule is in plateau.ts);
 * - after the churn, every agent ends APPLIED with its group's latest config, as the
 *   server, its store and the agent itself each see it;
 * - `stop()` with the fleet still connected leaves the server's process no timer, socket or
 *   other handle it did not hold before the server existed, and the process exits by itself;
 * - no agent was refused (no 4xx/5xx, no error response) and no `internal` error occurred.
 *
 * Deterministic by seed: the seed is printed, OPAMP_SOAK_SEED=<seed> replays the schedule
 * (UIDs, transports, session lengths and endings, pushes, kills; the interleaving of
 * messages is the machine's). OPAMP_SOAK_SECONDS and OPAMP_SOAK_AGENTS override the length
 * and the fleet size. Needs the Go toolchain (the fleet is bench/go); without it the suite
 * is skipped locally and fails under CI.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { between, groupOf, prng, runSeed, uuidOf as uuid } from "./fleet-shape.js";
import { firstPlateau, judgeSoak, SOAK_PLATEAU } from "./plateau.js";
import {
  buildFleet,
  bundleServer,
  type ChildEvent,
  fleetTotals,
  hasGo,
  type JsonProcess,
  killAll,
  startFleet,
  startServer,
} from "./processes.js";
import type { ServerChildOptions } from "./server-child.js";

const LONG = process.env["OPAMP_RELIABILITY_LONG"] === "1";
const SECONDS = Number(process.env["OPAMP_SOAK_SECONDS"] || (LONG ? 600 : 120));
const AGENTS = Number(process.env["OPAMP_SOAK_AGENTS"] || 2000);
const PROCESSES = 4;
const GROUPS = 8;
const SAMPLE_MS = LONG ? 10_000 : 5_000;
/** Heap samples while the fleet is settled: every 3 s until a plateau, at most 20. */
const SETTLED_SAMPLE_MS = 3000;
const MAX_SETTLED_SAMPLES = 20;
/** Deliveries the store keeps per agent; the warm-up pushes this many configs to every group. */
const DELIVERIES = 4;
const inCI = Boolean(process.env["CI"]);

if (!hasGo && !inCI) console.warn("soak skipped: the `go` toolchain is not installed (under CI this fails)");

/** The fleet's churn (from "churn" on): sessions of 5–40 s (CI) or 10–90 s (long), 0.5–8 s away between them. */
const FLEET = [
  `--session-min=${LONG ? "10s" : "5s"}`,
  `--session-max=${LONG ? "90s" : "40s"}`,
  "--offline-min=500ms",
  "--offline-max=8s",
  "--http-share=0.5",
  "--full-share=0.3",
  "--two-step-share=0.5",
  "--graceful-share=0.4",
  "--abrupt-share=0.35",
  "--heartbeat=10s",
  "--poll-interval=3s",
  "--config-bytes=1024",
  "--dial-concurrency=32",
];

const heapOf = (sample: ChildEvent) => sample["heapUsed"] as number;

/** Resolves at `ms` after `t0` (the soak's schedule, not a wait for something to happen). */
function at(t0: number, ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, t0 + ms - Date.now())));
}

describe.skipIf(!hasGo && !inCI)(`soak: ${AGENTS} agents for ${SECONDS} s`, () => {
  let dir = "";
  let serverScript = "";
  let fleetBinary = "";
  beforeAll(async () => {
    expect(hasGo, "the soak's fleet (bench/go) needs `go` on PATH").toBe(true);
    dir = await mkdtemp(join(tmpdir(), "opamp-soak-"));
    serverScript = await bundleServer(dir);
    fleetBinary = buildFleet(dir);
  });
  afterAll(async () => {
    killAll();
    if (dir !== "") await rm(dir, { recursive: true, force: true });
  });

  it(
    "keeps memory flat, ends every desired config APPLIED, and leaves nothing after stop()",
    async () => {
      const seed = runSeed();
      console.info(`soak: seed ${seed} (replay with OPAMP_SOAK_SEED=${seed})`);
      const random = prng(seed);
      const tokens: Record<string, string> = {};
      for (let p = 0; p < PROCESSES; p++) tokens[`soak-${seed}-${p}-${Math.floor(random() * 1e9)}`] = `fleet-${p}`;
      const tokenOf = Object.keys(tokens);
      const options: ServerChildOptions = {
        port: 0,
        groups: GROUPS,
        configBytes: 1024,
        tokens,
        wsPingIntervalMs: 10_000,
        httpAgentTimeoutMs: 15_000,
        // The store keeps maxDeliveriesPerAgent deliveries per agent (default 100): memory
        // grows with every push until that bound, by design, and a 2-minute run never
        // reaches 100. A bound of 4, filled by the warm-up below, is reached from the start.
        maxDeliveriesPerAgent: DELIVERIES,
        fleetSize: AGENTS,
      };
      const { proc: server, listening } = await startServer(serverScript, options);
      const urlWs = listening["urlWs"] as string;
      const urlHttp = listening["urlHttp"] as string;

      // ── Commands to the server ──────────────────────────────────────────────────────
      const versions = new Array<number>(GROUPS).fill(0);
      const lastHash = new Map<number, string>();
      server.onEvent((e) => {
        if (e.ev === "pushed") lastHash.set(e["group"] as number, e["hash"] as string);
      });
      /** Pushes each group's next config (in flight: not waited for). */
      const pushGroups = (groups: readonly number[]) => {
        for (const g of groups) {
          versions[g] = versions[g]! + 1;
          server.send({ cmd: "push", version: versions[g]!, group: g });
        }
      };
      const allGroups = [...versions.keys()];
      const pushedAll = () => {
        const mark = server.events.length;
        const version = versions[GROUPS - 1];
        return server.waitFor(
          (e) => e.ev === "pushed" && e["version"] === version && e["group"] === GROUPS - 1,
          30_000,
          "push",
          mark,
        );
      };
      const uids: string[] = [];
      /** Resolves when every agent is online and APPLIED with its group's config. */
      const converged = async (what: string) => {
        const mark = server.events.length;
        server.send({ cmd: "expect", uids: uids.map((u) => uuid(u)) });
        try {
          await server.waitFor((e) => e.ev === "converged", 120_000, what, mark);
        } catch (error) {
          const statusMark = server.events.length;
          server.send({ cmd: "status" });
          const status = await server
            .waitFor((e) => e.ev === "status", 10_000, "status", statusMark)
            .catch(() => undefined);
          throw new Error(`${String(error)}\nseed ${seed}; server status: ${JSON.stringify(status)}`);
        }
      };
      const takeSample = async () => {
        const mark = server.events.length;
        server.send({ cmd: "sample" });
        return server.waitFor((e) => e.ev === "sample", 30_000, "a heap sample", mark);
      };
      /** With OPAMP_SOAK_HEAP_SNAPSHOTS=<dir>, a heap snapshot of the server (to compare). */
      const snapshot = async (name: string) => {
        const snapshots = process.env["OPAMP_SOAK_HEAP_SNAPSHOTS"];
        if (!snapshots) return;
        const mark = server.events.length;
        server.send({ cmd: "snapshot", file: join(snapshots, `soak-${seed}-${name}.heapsnapshot`) });
        await server.waitFor((e) => e.ev === "snapshot", 120_000, "heap snapshot", mark);
      };
      /** Samples every SETTLED_SAMPLE_MS until a plateau shows (or MAX_SETTLED_SAMPLES). */
      const settledSamples = async () => {
        const taken: ChildEvent[] = [];
        while (taken.length < MAX_SETTLED_SAMPLES) {
          if (taken.length > 0) await at(Date.now(), SETTLED_SAMPLE_MS);
          taken.push(await takeSample());
          if (firstPlateau(taken.map(heapOf), SOAK_PLATEAU) !== undefined) break;
        }
        return taken;
      };

      // Every group has a config before the first agent comes; each agent gets it on connect.
      pushGroups(allGroups);
      await pushedAll();

      // ── The fleet ──────────────────────────────────────────────────────────────────
      const perProcess = Math.ceil(AGENTS / PROCESSES);
      const generations = new Array<number>(PROCESSES).fill(0);
      const fleet: JsonProcess[] = [];
      const retired: JsonProcess[] = [];
      let churning = false;
      const startOne = async (p: number) => {
        const { proc, uids: mine } = await startFleet(fleetBinary, {
          urlWs,
          urlHttp,
          agents: Math.min(perProcess, AGENTS - p * perProcess),
          indexBase: p * perProcess,
          seed,
          generation: generations[p]!,
          token: tokenOf[p]!,
          process: p,
          // Fleet process 0 stands for agents behind a load balancer: its HTTP agents share
          // 4 keep-alive connections per source address, each carrying many agents' polls.
          flags: [...FLEET, ...(churning ? ["--churn"] : []), ...(p === 0 ? ["--http-pool=4"] : [])],
        });
        fleet[p] = proc;
        return mine;
      };
      for (let p = 0; p < PROCESSES; p++) uids.push(...(await startOne(p)));
      expect(new Set(uids).size).toBe(AGENTS);

      // ── Phase 1, settled: every agent online; the delivery history filled to its bound
      // (DELIVERIES configs to every group); the first plateau.
      await server.waitFor((e) => e.ev === "all_seen", 120_000, "every agent connected once");
      for (let round = 0; round < DELIVERIES; round++) {
        pushGroups(allGroups);
        await pushedAll();
      }
      await converged("every agent APPLIED before the churn");
      const before = await settledSamples();
      await snapshot("before");

      // ── Phase 2, churn: pushes every 6–12 s (a fifth of them to every group), a fleet
      // process killed every 25–45 s, a heap sample every SAMPLE_MS; all drawn from the seed.
      churning = true;
      for (const proc of fleet) proc.send("churn");
      const t0 = Date.now();
      const horizon = SECONDS * 1000;
      const plan: { at: number; what: "push" | "kill" | "sample"; arg: number }[] = [];
      for (let t = between(random, 6000, 12000); t < horizon; t += between(random, 6000, 12000)) {
        plan.push({ at: t, what: "push", arg: random() < 0.2 ? -1 : between(random, 0, GROUPS - 1) });
      }
      for (let t = between(random, 20000, 35000); t < horizon - 10000; t += between(random, 25000, 45000)) {
        plan.push({ at: t, what: "kill", arg: between(random, 0, PROCESSES - 1) });
      }
      for (let t = SAMPLE_MS; t < horizon; t += SAMPLE_MS) plan.push({ at: t, what: "sample", arg: 0 });
      plan.sort((a, b) => a.at - b.at);
      const during: ChildEvent[] = [];
      let pushes = 0;
      let kills = 0;
      for (const step of plan) {
        await at(t0, step.at);
        if (step.what === "sample") during.push(await takeSample());
        else if (step.what === "push") {
          pushes++;
          pushGroups(step.arg < 0 ? allGroups : [step.arg]);
        } else {
          // SIGKILL a whole fleet process (its agents vanish at once, sockets reset by the
          // kernel), then start it again: the same agents come back as new processes.
          kills++;
          const victim = fleet[step.arg]!;
          victim.killGroup("SIGKILL");
          await victim.exited;
          retired.push(victim);
          generations[step.arg]! += 1;
          await startOne(step.arg);
        }
      }

      // ── Phase 3, settled again: the churn stops, every agent comes back and stays, with
      // one more config for every group in flight; the end plateau.
      churning = false;
      const settleStart = Date.now();
      for (const proc of fleet) proc.send("settle");
      pushGroups(allGroups);
      await converged("every agent APPLIED with its group's latest config");
      const settledMs = Date.now() - settleStart;
      const after = await settledSamples();
      await snapshot("after");

      // Each agent's own view agrees: it applied its group's latest config.
      const reports = await Promise.all(
        fleet.map((proc) => {
          const mark = proc.events.length;
          proc.send("report");
          return proc.waitFor((e) => e.ev === "report", 30_000, "report", mark);
        }),
      );
      const wrong: string[] = [];
      for (const report of reports) {
        for (const agent of report["agents"] as { uid: string; applied: string }[]) {
          if (agent.applied !== lastHash.get(groupOf(agent.uid, GROUPS))) wrong.push(agent.uid);
        }
      }
      if (wrong.length > 0) {
        const mark = server.events.length;
        server.send({ cmd: "status", uids: wrong.slice(0, 5).map(uuid) });
        const status = await server.waitFor((e) => e.ev === "status", 10_000, "status", mark);
        expect.fail(
          `${wrong.length} agents applied another config than their group's latest (seed ${seed}): ${JSON.stringify(status["missing"])}`,
        );
      }
      const totals = fleetTotals([...retired, ...fleet]);

      // The server and its store agree too: every agent online with its own description,
      // bound to its fleet's principal, its config desired, stored and APPLIED, the delivery
      // of that config from "offered" to "applied".
      const mark = server.events.length;
      server.send({
        cmd: "verify",
        agents: uids.map((uid, index) => ({
          uid: uuid(uid),
          index,
          principal: tokens[tokenOf[Math.floor(index / perProcess)]!]!,
        })),
      });
      const verified = await server.waitFor((e) => e.ev === "verified", 60_000, "verify", mark);
      expect(verified["failures"], `seed ${seed}`).toEqual([]);
      // No server was killed here: every delivery of an agent's config went through "offered".
      expect(verified["withoutOffer"], `seed ${seed}`).toBe(0);

      // stop() with the fleet still connected: nothing left behind, the process ends by itself.
      const stopMark = server.events.length;
      server.send({ cmd: "stop" });
      const stopped = await server.waitFor((e) => e.ev === "stopped", 60_000, "stopped", stopMark);
      const exitedByItself = await server.exitsWithin(15_000);
      for (const proc of fleet) await proc.end();

      const verdict = judgeSoak(before.map(heapOf), during.map(heapOf), after.map(heapOf), SOAK_PLATEAU);
      const errors = stopped["errors"] as Record<string, number>;
      const mib = (bytes: number | undefined) =>
        bytes === undefined ? undefined : Math.round((bytes / 2 ** 20) * 10) / 10;
      const ratio = (r: number | undefined) => (r === undefined ? undefined : Math.round(r * 1000) / 1000);
      const figures = {
        seed,
        seconds: SECONDS,
        agents: AGENTS,
        pushes,
        processKills: kills,
        settledMs,
        fleet: totals,
        serverErrors: errors,
        heapMiB: {
          before: before.map((s) => mib(heapOf(s))),
          churn: during.map((s) => mib(heapOf(s))),
          after: after.map((s) => mib(heapOf(s))),
        },
        firstPlateauMiB: mib(verdict.first?.value),
        endPlateauMiB: mib(verdict.end?.value),
        endRatio: ratio(verdict.endRatio),
        churnPeak: ratio(verdict.churnPeak),
        churnLow: ratio(verdict.churnLow),
        onlineDuringChurn: during.map((s) => s["online"]),
        spacesMiB: Object.fromEntries(
          Object.keys((before[0]?.["spaces"] as Record<string, number> | undefined) ?? {}).map((space) => [
            space,
            [before.at(-1), after.at(-1)].map((s) => mib(((s?.["spaces"] ?? {}) as Record<string, number>)[space])),
          ]),
        ),
        arrayBuffersMiB: [...before, ...during, ...after].map((s) => mib(s["arrayBuffers"] as number)),
        rssMiB: [...before, ...during, ...after].map((s) => mib(s["rss"] as number)),
        heapTotalMiB: [...before, ...during, ...after].map((s) => mib(s["heapTotal"] as number)),
        serverCpuS: Math.round(((after.at(-1)?.["cpuMs"] as number | undefined) ?? 0) / 100) / 10,
        stopMs: stopped["stopMs"],
        leftover: stopped["leftover"],
        exitedByItself,
      };
      console.info(`soak figures: ${JSON.stringify(figures)}`);
      await writeFile(
        join(process.cwd(), ".tmp", `soak-${LONG ? "long" : "ci"}.json`),
        JSON.stringify(figures, null, 2),
      ).catch(() => undefined);

      // The churn really happened: sessions ended every way, processes died, configs moved.
      expect(totals.sessions).toBeGreaterThan(AGENTS * 2);
      expect(totals.end_graceful).toBeGreaterThan(0);
      expect(totals.end_abrupt).toBeGreaterThan(0);
      expect(totals.end_silent).toBeGreaterThan(0);
      expect(totals.applying).toBeGreaterThan(0);
      expect(kills).toBeGreaterThan(0);
      expect(pushes).toBeGreaterThan(5);
      // No agent was refused or answered with an error.
      expect({
        status4xx: totals.status_4xx,
        status5xx: totals.status_5xx,
        errorResponses: totals.error_responses,
        malformed: totals.malformed,
      }).toEqual({ status4xx: 0, status5xx: 0, errorResponses: 0, malformed: 0 });
      expect(errors["internal"] ?? 0, JSON.stringify(stopped["errorSamples"])).toBe(0);
      expect(errors["push_failed"] ?? 0).toBe(0);
      // Memory stayed flat.
      const heapText = `heap ${JSON.stringify(figures.heapMiB)} MiB, seed ${seed}`;
      expect(verdict.first, `no first plateau: ${heapText}`).toBeDefined();
      expect(verdict.end, `no end plateau: ${heapText}`).toBeDefined();
      expect(verdict.flat, heapText).toBe(true);
      // Nothing left after stop().
      expect(stopped["leftover"]).toEqual([]);
      expect(exitedByItself).toBe(true);
    },
    (SECONDS + 600) * 1000,
  );
});
