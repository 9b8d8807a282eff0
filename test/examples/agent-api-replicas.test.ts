// agent-api as two replicas behind a load balancer, one database. On PostgreSQL the replicas
// are separate processes (`node examples/agent-api/main.mjs`): a config set through replica A
// reaches the agent connected to replica B within 1 s, a restart asked of A is carried out by
// B over the SDK's bus, and after `kill -9` of B the agent reconnects to A with its desired
// config intact. PGlite cannot be shared between processes, so there the replicas run in this
// process on one PGlite and B shuts down instead of being killed.

import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { OpAMPClient } from "../../src/client/index.js";
import { configMap } from "../../src/wire/index.js";
import { describeWithPostgres } from "../support/postgres.js";
import { type RoundRobin, startRoundRobin } from "../support/round-robin.js";
import {
  ADMIN_TOKEN,
  type AgentApi,
  KEK,
  loadApp,
  openDashboard,
  restClient,
  setUpOrg,
  type TestDatabase,
  testDatabase,
  until,
} from "./agent-api-harness.js";

const MAIN = fileURLToPath(new URL("../../examples/agent-api/main.mjs", import.meta.url));

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  const port = (s.address() as import("node:net").AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** One replica as its own process. */
async function spawnReplica(databaseUrl: string, id: string) {
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, [MAIN], {
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      HOST: "127.0.0.1",
      AGENT_API_ADMIN_TOKEN: ADMIN_TOKEN,
      AGENT_API_KEK: KEK.toString("base64"),
      AGENT_API_REPLICA_ID: id,
      AGENT_API_HEARTBEAT_SECONDS: "1",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (c: Buffer) => {
      output += c.toString();
      if (output.includes("dashboard:")) resolve();
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code) => reject(new Error(`replica ${id} exited (${code}):\n${output}`)));
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await ready;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    kill9: async () => {
      child.kill("SIGKILL");
      await exited;
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

/** An agent whose received configs, restarts and connections the test can watch. */
function watchedAgent(url: string, token: string) {
  const configs: { body: string; at: number }[] = [];
  const restarts: number[] = [];
  let effective = configMap({ "collector.yaml": "" });
  const client = new OpAMPClient({
    transport: { url: url.replace(/^http/, "ws"), headers: { Authorization: `Bearer ${token}` } },
    agent: {
      description: {
        identifyingAttributes: [{ key: "service.name", value: { value: { case: "stringValue", value: "otelcol" } } }],
        nonIdentifyingAttributes: [
          { key: "host.name", value: { value: { case: "stringValue", value: "replicated" } } },
        ],
      },
      capabilities: { reportsEffectiveConfig: true },
    },
    // Reconnect fast after the replica it was on is gone.
    retry: { initialDelayMs: 100, maxDelayMs: 1_000 },
    hooks: {
      onOpampConnectionSettings: async () => true,
      onRemoteConfig: async ({ config }) => {
        configs.push({ body: new TextDecoder().decode(config.configMap["collector.yaml"]?.body), at: Date.now() });
        effective = config;
        return { status: "applied" };
      },
      getEffectiveConfig: async () => effective,
      onRestart: async () => {
        restarts.push(Date.now());
      },
    },
  });
  return { client, configs, restarts };
}

interface Replica {
  readonly port: number;
  readonly url: string;
  /** Takes the replica away: kill -9 of its process, or (in this process) a shutdown. */
  readonly end: () => Promise<void>;
  readonly stop: () => Promise<void>;
}

async function scenario(
  database: TestDatabase,
  replicas: readonly [Replica, Replica],
  ending: "kill -9" | "shutdown",
): Promise<void> {
  const [a, b] = replicas;
  const lb: RoundRobin = await startRoundRobin([a.port, b.port]);
  try {
    const callA = restClient(a.url);
    const { token, template, assignment } = await setUpOrg(callA, {
      name: `replicas-${database.kind}`,
      labels: { env: "prod" },
      selector: "env=prod",
      body: "# revision 1 for ${agent:name}\n",
    });
    lb.pin(b.port);
    const agent = watchedAgent(`${lb.url}/v1/opamp`, token);
    try {
      await agent.client.start();
      await until("revision 1 on the agent", async () => (agent.configs.length > 0 ? true : undefined));
      const [row] = (await database.psql.query<{ id: string; replica_id: string }>("SELECT id, replica_id FROM agents"))
        .rows;
      expect(row?.replica_id).toBe("replica-b");
      // A's dashboard shows the agent held by B.
      const dashboard = await openDashboard(a.url);
      const page = dashboard?.page;
      if (page !== undefined) {
        await page.locator(`tr[data-agent-id="${row!.id}"]`).click();
        await page.locator("#detail", { hasText: "online on replica replica-b" }).waitFor();
      }

      // Set through A (REST on A → NOTIFY → B pushes to its agent): on the agent within 1 s.
      const rev2 = await callA<{ id: string }>("POST", `/templates/${template.id}/revisions`, {
        body: "# revision 2 for ${agent:name}\n",
      });
      const before = agent.configs.length;
      const sentAt = Date.now();
      await callA("PATCH", `/assignments/${assignment.id}`, { revision_id: rev2.id });
      const arrived = await until("revision 2 on the agent", async () => agent.configs[before], 10_000);
      expect(arrived.body).toBe("# revision 2 for replicated\n");
      expect(arrived.at - sentAt).toBeLessThan(1_000);
      await until("revision 2 applied in the table", async () => {
        const { rows } = await database.psql.query<{ status: string; config_revision: number }>(
          "SELECT status, config_revision FROM agent_config_deliveries ORDER BY id DESC LIMIT 1",
        );
        return rows[0]?.config_revision === 2 && rows[0].status === "applied" ? true : undefined;
      });

      // A restart asked of A is carried out by B, over the SDK's bus.
      const restarted = await callA<{ via: string }>("POST", `/agents/${row!.id}/restart`);
      expect(restarted.via).toBe("another replica");
      await until("the restart on the agent", async () => (agent.restarts.length > 0 ? true : undefined));

      // B goes away; the load balancer sends the agent's reconnection to A.
      lb.pin(undefined);
      const configsBefore = agent.configs.length;
      await b.end();
      await until(
        "the agent online on A",
        async () => {
          const { rows } = await database.psql.query<{ status: string; replica_id: string }>(
            "SELECT status, replica_id FROM agents",
          );
          return rows[0]?.status === "online" && rows[0].replica_id === "replica-a" ? true : undefined;
        },
        ending === "kill -9" ? 30_000 : 10_000,
      );
      // Desired config intact: A has it from the store, the agent runs it, nothing was resent.
      const { rows: desired } = await database.psql.query<{ remote_config: Uint8Array | null }>(
        "SELECT remote_config FROM opamp.desired WHERE instance_uid = $1",
        [row!.id],
      );
      expect(Buffer.from(desired[0]!.remote_config!).toString()).toContain("# revision 2 for replicated");
      expect(agent.configs.length).toBe(configsBefore);
      // The bus says A holds it (its claim is written right after the agent's first message).
      await until("A's claim on the bus", async () => {
        const { rows } = await database.psql.query<{ replica_id: string }>(
          "SELECT replica_id FROM opamp.bus_presence WHERE instance_uid = $1",
          [row!.id],
        );
        return rows[0]?.replica_id === "replica-a" ? true : undefined;
      });

      // The dashboard followed: the agent is back, on A.
      if (page !== undefined) await page.locator("#detail", { hasText: "online on replica replica-a" }).waitFor();
      await dashboard?.close();

      // And A pushes the next revision to it.
      const rev3 = await callA<{ id: string }>("POST", `/templates/${template.id}/revisions`, {
        body: "# revision 3 for ${agent:name}\n",
      });
      await callA("PATCH", `/assignments/${assignment.id}`, { revision_id: rev3.id });
      await until("revision 3 on the agent", async () =>
        agent.configs.at(-1)?.body === "# revision 3 for replicated\n" ? true : undefined,
      );
    } finally {
      await agent.client.stop();
    }
  } finally {
    await lb.close();
    await a.stop();
    await b.stop();
  }
}

describeWithPostgres("agent-api replicas as processes on PostgreSQL", (serverUrl) => {
  it("A sets, B's agent gets it within 1 s; kill -9 of B: the agent reconnects to A, config intact", {
    timeout: 120_000,
  }, async () => {
    const database = await testDatabase("PostgreSQL", serverUrl);
    try {
      const a = await spawnReplica(database.url!, "replica-a");
      const b = await spawnReplica(database.url!, "replica-b");
      try {
        await scenario(
          database,
          [
            { ...a, end: a.kill9 },
            { ...b, end: b.kill9 },
          ],
          "kill -9",
        );
      } catch (e) {
        throw new Error(`${(e as Error).message}\n--- replica a ---\n${a.output()}\n--- replica b ---\n${b.output()}`);
      }
    } finally {
      await database.close();
    }
  });
});

describe("agent-api replicas in one process on PGlite", () => {
  it("A sets, B's agent gets it within 1 s; B shuts down: the agent reconnects to A, config intact", {
    timeout: 120_000,
  }, async () => {
    const database = await testDatabase("PGlite");
    const startAgentApi = await loadApp();
    const start = (replicaId: string): Promise<AgentApi> =>
      startAgentApi({
        db: database.db,
        port: 0,
        host: "127.0.0.1",
        adminToken: ADMIN_TOKEN,
        kek: KEK,
        replicaId,
        heartbeatIntervalSeconds: 1,
        log: () => undefined,
      });
    const a = await start("replica-a");
    const b = await start("replica-b");
    const asReplica = (app: AgentApi): Replica => ({
      port: app.port,
      url: app.url,
      end: () => app.stop(),
      stop: () => app.stop(),
    });
    try {
      await scenario(database, [asReplica(a), asReplica(b)], "shutdown");
    } finally {
      await database.close();
    }
  });
});
