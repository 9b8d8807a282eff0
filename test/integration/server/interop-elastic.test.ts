/**
 * Interop: @elastic/opamp-client-node (an HTTP-only OpAMP client we did not write) against
 * this server: connect, full state, remote config APPLIED, compressed heartbeats keep the
 * reconstructed state, full state requested after a server restart, disconnect seen.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createOpAMPClient, RemoteConfigStatuses } from "@elastic/opamp-client-node";
import { afterEach, expect, it } from "vitest";
import { RemoteConfigStatuses as Statuses } from "../../../src/gen/opamp/v1/opamp_pb.js";
import { OpAMPServer, type OpAMPServerOptions } from "../../../src/server/index.js";
import { AgentCapability } from "../../../src/wire/index.js";
import { waitFor } from "./test-agent.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const options: OpAMPServerOptions = {
  allowAnonymous: true,
  heartbeat: { intervalSeconds: 1, httpAgentTimeoutMs: 1500, sweepIntervalMs: 100 },
};

/** One listener whose requests go to whichever OpAMPServer is current, so it can be swapped. */
async function swappableListener(): Promise<{ url: string; use(server: OpAMPServer): void }> {
  let current: OpAMPServer | undefined;
  const listener: Server = createServer((req, res) => current?.requestHandler(req, res));
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        listener.close(() => resolve());
        listener.closeAllConnections();
      }),
  );
  const { port } = listener.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1/opamp`,
    use(server) {
      current = server;
    },
  };
}

it("drives the Elastic Node client through config, compression, a restart and disconnect", async () => {
  const listener = await swappableListener();
  const first = new OpAMPServer(options);
  await first.start();
  cleanups.push(() => first.stop());
  listener.use(first);

  const applied: string[] = [];
  const client = createOpAMPClient({
    endpoint: listener.url,
    heartbeatIntervalSeconds: 0.2,
    capabilities: AgentCapability.AcceptsRemoteConfig | AgentCapability.ReportsRemoteConfig,
    onMessage: ({ remoteConfig }) => {
      if (!remoteConfig) return;
      applied.push(new TextDecoder().decode(remoteConfig.config?.configMap["app.json"]?.body));
      client.setRemoteConfigStatus({
        status: RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
        lastRemoteConfigHash: remoteConfig.configHash,
      });
    },
  });
  client.setAgentDescription({ identifyingAttributes: { "service.name": "elastic-interop" } });
  let shutdown = false;
  cleanups.push(async () => {
    if (!shutdown) await client.shutdown();
  });

  const connected = waitFor(first, "agentConnected");
  client.start();
  const [agent] = await connected;
  expect(agent.agentDescription?.identifyingAttributes[0]?.value?.value.value).toBe("elastic-interop");

  // Remote config: offered on the next poll, APPLIED reported back.
  const appliedEvent = waitFor(
    first,
    "agentUpdated",
    (a) => a.remoteConfigStatus?.status === Statuses.RemoteConfigStatuses_APPLIED,
  );
  const { hash } = await first.setRemoteConfig(agent.id, { "app.json": '{"level":"debug"}' });
  const [updated] = await appliedEvent;
  expect([...(updated.remoteConfigStatus?.lastRemoteConfigHash ?? [])]).toEqual([...hash]);
  expect(applied).toEqual(['{"level":"debug"}']);

  // Heartbeats are compressed (no description) but the reconstructed state keeps it.
  const [, heartbeat] = await waitFor(first, "message", (_a, m) => m.agentDescription === undefined);
  expect(heartbeat.remoteConfigStatus).toBeUndefined();
  expect(first.getAgent(agent.id)?.agentDescription).toBeDefined();

  // Restart: a new server that has never seen the agent gets a compressed heartbeat, asks
  // for the full state, and the client sends it.
  const second = new OpAMPServer(options);
  await second.start();
  cleanups.push(() => second.stop());
  const full = waitFor(second, "message", (_a, m) => m.agentDescription !== undefined);
  listener.use(second);
  await first.stop();
  await full;
  expect(second.getAgent(agent.id)?.agentDescription).toBeDefined();

  // The client never says goodbye over HTTP; the server notices the silence.
  const gone = waitFor(second, "agentDisconnected");
  await client.shutdown();
  shutdown = true;
  const [left, reason] = await gone;
  expect(left.id).toBe(agent.id);
  expect(reason).toBe("heartbeat_timeout");
});
