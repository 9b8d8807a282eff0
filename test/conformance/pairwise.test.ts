// Pairwise interop: every client we can run against opamp-sdk's server, and opamp-sdk's
// client against opamp-go's server. Each pair goes through the same stages: connect, full
// state, config applied, a compressed report, a disconnect. Results go to
// .tmp/interop/pairwise/ for docs/interop.md.

import { mkdir, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { createOpAMPClient, RemoteConfigStatuses as ElasticRemoteConfigStatuses } from "@elastic/opamp-client-node";
import { afterAll, describe, expect, it } from "vitest";
import { OpAMPClient } from "../../src/client/index.js";
import { RemoteConfigStatuses } from "../../src/gen/opamp/v1/opamp_pb.js";
import { type Agent, type DisconnectReason, OpAMPServer } from "../../src/server/index.js";
import { AgentCapability, agentDescription, hashEquals, instanceUidToString } from "../../src/wire/index.js";
import { describeWithGo, goAvailable } from "../interop/go-harness.js";
import { type GoProcess, INTEROP_RESULTS_DIR, startGo } from "./peers.js";

const STAGES = ["connect", "full-state", "config-applied", "compressed-report", "disconnect"] as const;
type Stage = (typeof STAGES)[number];
const STAGE_TIMEOUT_MS = 15_000;

interface StageResult {
  readonly stage: Stage;
  readonly status: "pass" | "fail";
  readonly evidence: string;
}

/** A deviation of the peer (theirs) that shows in one stage. */
interface PairDeviation {
  readonly stage: Stage;
  readonly evidence: RegExp;
  readonly note: string;
}

interface Side {
  readonly implementation: string;
  readonly version: string;
}

const OPAMP_SDK: Side = { implementation: "opamp-sdk", version: "workspace" };
const OPAMP_GO: Side = { implementation: "opamp-go", version: "v0.23.0" };
const ELASTIC: Side = {
  implementation: "@elastic/opamp-client-node",
  version: (createRequire(import.meta.url)("@elastic/opamp-client-node/package.json") as { version: string }).version,
};

/** Runs the stages in order; a stage that throws fails with the message, later stages still run. */
async function runStages(steps: Record<Stage, () => Promise<string>>): Promise<StageResult[]> {
  const results: StageResult[] = [];
  for (const stage of STAGES) {
    try {
      results.push({ stage, status: "pass", evidence: await steps[stage]() });
    } catch (error) {
      results.push({ stage, status: "fail", evidence: error instanceof Error ? error.message : String(error) });
    }
  }
  return results;
}

async function record(
  client: Side,
  server: Side,
  transport: "ws" | "http",
  stages: StageResult[],
  deviations: readonly PairDeviation[],
): Promise<void> {
  const dir = join(INTEROP_RESULTS_DIR, "pairwise");
  await mkdir(dir, { recursive: true });
  const safe = (s: string) => s.replaceAll(/[^a-zA-Z0-9_-]+/g, "_");
  await writeFile(
    join(dir, `${safe(client.implementation)}.${safe(server.implementation)}.${transport}.json`),
    `${JSON.stringify(
      { client, server, transport, stages, deviations: deviations.map((d) => ({ stage: d.stage, note: d.note })) },
      null,
      2,
    )}\n`,
  );
  const unexpected = stages.filter((s) => s.status === "fail" && !deviations.some((d) => d.stage === s.stage));
  expect(unexpected.map((s) => `${s.stage}: ${s.evidence}`)).toEqual([]);
  for (const d of deviations) {
    const s = stages.find((x) => x.stage === d.stage);
    expect({ stage: d.stage, status: s?.status, evidence: s?.evidence }).toMatchObject({
      status: "fail",
      evidence: expect.stringMatching(d.evidence),
    });
  }
}

/** Resolves when `probe` returns a value (checked now and on every event named), else rejects. */
function waitFor<T>(
  emitter: { on(event: string, fn: () => void): unknown; off(event: string, fn: () => void): unknown },
  events: readonly string[],
  probe: () => T | undefined,
  what: string,
  timeoutMs = STAGE_TIMEOUT_MS,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      const value = probe();
      if (value !== undefined) done(() => resolve(value));
    };
    const timer = setTimeout(() => done(() => reject(new Error(`no ${what} within ${timeoutMs} ms`))), timeoutMs);
    const done = (settle: () => void): void => {
      clearTimeout(timer);
      for (const e of events) emitter.off(e, check);
      settle();
    };
    for (const e of events) emitter.on(e, check);
    check();
  });
}

/** An OpAMPServer that records what it sees of every agent. */
async function startSdkServer() {
  const server = new OpAMPServer({
    allowAnonymous: true,
    heartbeat: { intervalSeconds: 1, missedHeartbeats: 2, sweepIntervalMs: 500, httpAgentTimeoutMs: 2_000 },
  });
  server.on("error", () => undefined);
  const compressed = new Set<string>();
  const gone = new Map<string, DisconnectReason>();
  server.on("message", (agent, message) => {
    if (message.agentDescription === undefined && message.sequenceNum > 0n) compressed.add(agent.id);
  });
  server.on("agentDisconnected", (agent, reason) => gone.set(agent.id, reason));
  const address = await server.listen({ port: 0, host: "127.0.0.1" });
  const emitter = server as unknown as Parameters<typeof waitFor>[0];
  const anyAgent = (): Agent | undefined => server.select(() => true)[0];

  /** The five stages seen from opamp-sdk's server, for a client that `stop` shuts down. */
  const steps = (stop: () => Promise<void>, serviceName: string): Record<Stage, () => Promise<string>> => {
    let agent: Agent | undefined;
    return {
      connect: async () => {
        agent = await waitFor(emitter, ["agentConnected", "message"], anyAgent, "agent connection");
        return `agent ${agent.id} over ${agent.transport}`;
      },
      "full-state": async () => {
        const id = agent!.id;
        const a = await waitFor(
          emitter,
          ["agentUpdated"],
          () => {
            const current = server.getAgent(id);
            return current?.agentDescription !== undefined ? current : undefined;
          },
          "agent description",
        );
        const name = a.agentDescription?.identifyingAttributes.find((kv) => kv.key === "service.name");
        if (name?.value?.value.value !== serviceName)
          throw new Error(`service.name is ${String(name?.value?.value.value)}`);
        return `description with service.name=${serviceName}`;
      },
      "config-applied": async () => {
        const id = agent!.id;
        const { hash } = await server.setRemoteConfig(id, { "config.yaml": "receivers: {otlp: {}}\n" });
        await waitFor(
          emitter,
          ["agentUpdated"],
          () => {
            const s = server.getAgent(id)?.remoteConfigStatus;
            return s?.status === RemoteConfigStatuses.RemoteConfigStatuses_APPLIED &&
              hashEquals(s.lastRemoteConfigHash, hash)
              ? s
              : undefined;
          },
          "APPLIED status with the config's hash",
        );
        return "remote config reported APPLIED with its hash";
      },
      "compressed-report": async () => {
        const id = agent!.id;
        await waitFor(
          emitter,
          ["message"],
          () => (compressed.has(id) ? true : undefined),
          "report without the description",
        );
        if (server.getAgent(id)?.agentDescription === undefined) throw new Error("the server lost the description");
        return "a report without the description; the server kept the full state";
      },
      disconnect: async () => {
        const id = agent!.id;
        await stop();
        // A client that sends no agent_disconnect is only noticed by missed heartbeats.
        const reason = await waitFor(
          emitter,
          ["agentDisconnected"],
          () => gone.get(id),
          "agent_disconnect",
          6_000,
        ).catch(() => undefined);
        if (reason !== "agent_disconnect")
          throw new Error(
            `no agent_disconnect (${reason === undefined ? "no disconnect within 6000 ms" : `left by ${reason}`})`,
          );
        return "agent_disconnect";
      },
    };
  };
  return { server, url: address.url, steps };
}

const ELASTIC_DEVIATIONS: readonly PairDeviation[] = [
  {
    stage: "disconnect",
    evidence: /no agent_disconnect/,
    note: "shutdown() sends no agent_disconnect; the server notices by missed heartbeats",
  },
];
const OPAMP_GO_HTTP_DEVIATIONS: readonly PairDeviation[] = [
  {
    stage: "disconnect",
    evidence: /no agent_disconnect/,
    note: "the HTTP client's Stop() sends no agent_disconnect (opamp-go #179); the server notices by missed heartbeats",
  },
];

describe("pairwise: clients against opamp-sdk's server", () => {
  it("@elastic/opamp-client-node over http", { timeout: 90_000 }, async () => {
    const { server, url, steps } = await startSdkServer();
    let client: ReturnType<typeof createOpAMPClient> | undefined;
    try {
      client = createOpAMPClient({
        endpoint: url,
        capabilities: AgentCapability.AcceptsRemoteConfig | AgentCapability.ReportsRemoteConfig,
        heartbeatIntervalSeconds: 1,
        onMessage: ({ remoteConfig }) => {
          if (remoteConfig === undefined) return;
          client?.setRemoteConfigStatus({
            status: ElasticRemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
            lastRemoteConfigHash: remoteConfig.configHash,
          });
        },
      });
      client.setAgentDescription({ identifyingAttributes: { "service.name": "elastic-pairwise" } });
      client.start();
      const running = client;
      const stages = await runStages(steps(async () => running.shutdown(), "elastic-pairwise"));
      client = undefined;
      await record(ELASTIC, OPAMP_SDK, "http", stages, ELASTIC_DEVIATIONS);
    } finally {
      await client?.shutdown();
      await server.stop();
    }
  });

  for (const transport of ["ws", "http"] as const) {
    it(`opamp-sdk's client over ${transport}`, { timeout: 60_000 }, async () => {
      const { server, url, steps } = await startSdkServer();
      const client = new OpAMPClient({
        transport: { url: transport === "ws" ? url.replace(/^http/, "ws") : url, heartbeatIntervalMs: 1000 },
        agent: { description: agentDescription({ identifying: { "service.name": "sdk-pairwise" } }) },
        hooks: { onRemoteConfig: async () => ({ status: "applied" }) },
      });
      try {
        await client.start();
        const stages = await runStages(steps(() => client.stop(), "sdk-pairwise"));
        await record(OPAMP_SDK, OPAMP_SDK, transport, stages, []);
      } finally {
        await client.stop();
        await server.stop();
      }
    });
  }

  if (goAvailable()) {
    const agents: GoProcess[] = [];
    afterAll(async () => {
      await Promise.all(agents.map((a) => a.stop()));
    });
    for (const transport of ["ws", "http"] as const) {
      it(`opamp-go's client over ${transport}`, { timeout: 90_000 }, async () => {
        const { server, url, steps } = await startSdkServer();
        try {
          const agent = await startGo([
            "agent",
            "-url",
            transport === "ws" ? url.replace(/^http/, "ws") : url,
            "-service-name",
            "opamp-go-pairwise",
            "-heartbeat",
            "1s",
          ]);
          agents.push(agent);
          const stages = await runStages(
            steps(async () => {
              await agent.stop();
            }, "opamp-go-pairwise"),
          );
          await record(OPAMP_GO, OPAMP_SDK, transport, stages, transport === "http" ? OPAMP_GO_HTTP_DEVIATIONS : []);
        } finally {
          await server.stop();
        }
      });
    }
  }
});

describeWithGo("pairwise: opamp-sdk's client against opamp-go's server", () => {
  let goServer: GoProcess | undefined;
  let httpUrl = "";

  afterAll(async () => {
    await goServer?.stop();
  });

  for (const transport of ["ws", "http"] as const) {
    it(`over ${transport}`, { timeout: 60_000 }, async () => {
      if (goServer === undefined) {
        goServer = await startGo(["server", "-config", "receivers: {otlp: {}}"]);
        httpUrl = String((await goServer.waitFor((e) => e.event === "listening", 30_000))["httpUrl"]);
      }
      const go = goServer;
      const client = new OpAMPClient({
        transport: { url: transport === "ws" ? httpUrl.replace(/^http/, "ws") : httpUrl, heartbeatIntervalMs: 1000 },
        agent: { description: agentDescription({ identifying: { "service.name": "sdk-pairwise" } }) },
        hooks: { onRemoteConfig: async () => ({ status: "applied" }) },
      });
      let uid = "";
      const ofAgent = (name: string, extra: (e: Record<string, unknown>) => boolean = () => true) =>
        go.waitFor((e) => e.event === name && e["uid"] === uid && extra(e), STAGE_TIMEOUT_MS);
      try {
        const stages = await runStages({
          connect: async () => {
            await client.start();
            await waitFor(
              client as unknown as Parameters<typeof waitFor>[0],
              ["connect"],
              () => (client.state.t === "connected" ? true : undefined),
              "connection",
            );
            uid = instanceUidToString(client.instanceUid!);
            await ofAgent("message", (e) => e["transport"] === transport);
            return `connected as ${uid}`;
          },
          "full-state": async () => {
            await ofAgent("message", (e) => e["description"] === true);
            return "opamp-go's server received the description";
          },
          "config-applied": async () => {
            const e = await ofAgent("config_applied");
            return `APPLIED with hash ${String(e["hash"]).slice(0, 12)}…`;
          },
          "compressed-report": async () => {
            await ofAgent("message", (e) => e["description"] === false);
            return "a report without the description";
          },
          disconnect: async () => {
            await client.stop();
            await ofAgent("disconnect");
            return "agent_disconnect received";
          },
        });
        await record(OPAMP_SDK, OPAMP_GO, transport, stages, []);
      } finally {
        await client.stop();
      }
    });
  }
});
