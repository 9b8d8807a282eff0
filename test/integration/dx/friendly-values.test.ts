/**
 * Readable values out (issue 15), over both transports with a real client and server: the
 * server's agent view names the remote config status ("applied", "failed" with its
 * message), and configFileText reads the effective config the agent reported.
 */
import { afterEach, describe, expect, it } from "vitest";
import { OpAMPClient } from "../../../src/client/index.js";
import { configFileText } from "../../../src/wire/index.js";
import { startServer, stopAll } from "../server/helpers.js";
import { waitFor } from "../server/test-agent.js";

const clients: OpAMPClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.stop()));
  await stopAll();
});

describe.each(["ws", "http"] as const)("readable agent state over %s", (scheme) => {
  it("shows the remote config status in words and the effective config's text", async () => {
    // The server tells an HTTP agent how often to poll: every second, so pushes arrive.
    const { server, url } = await startServer({ heartbeat: { intervalSeconds: 1 } });
    let effective: Record<string, string> = { "local.yaml": "a: 1" };
    const client = new OpAMPClient({
      transport: { url: url.replace(/^http/, scheme), heartbeatIntervalMs: 60_000 },
      agent: {
        description: { identifying: { "service.name": "words" } },
        capabilities: { reportsEffectiveConfig: true },
      },
      hooks: {
        onRemoteConfig: (offer) => {
          const text = configFileText(offer.config, "remote.yaml") ?? "";
          if (text.includes("broken")) return { status: "failed", errorMessage: "cannot parse" };
          effective = { "remote.yaml": text };
          return { status: "applied" };
        },
        // A plain record: the client encodes it.
        getEffectiveConfig: () => effective,
      },
    });
    clients.push(client);
    const connected = waitFor(server, "agentConnected");
    await client.start();
    const [agent] = await connected;
    expect(agent.remoteConfigState).toBeUndefined();
    expect(configFileText(agent.effectiveConfig, "local.yaml")).toBe("a: 1");

    const applied = waitFor(server, "agentUpdated", (a) => a.remoteConfigState?.status === "applied");
    const { hash } = await server.setRemoteConfig(agent.id, { "remote.yaml": "b: 2" });
    const [after] = await applied;
    expect(after.remoteConfigState).toEqual({ status: "applied", hash, errorMessage: "" });
    if (configFileText(after.effectiveConfig) !== "b: 2")
      await waitFor(server, "agentUpdated", (a) => configFileText(a.effectiveConfig) === "b: 2");

    const failed = waitFor(server, "agentUpdated", (a) => a.remoteConfigState?.status === "failed");
    const second = await server.setRemoteConfig(agent.id, { "remote.yaml": "broken: [" });
    const [rejected] = await failed;
    expect(rejected.remoteConfigState).toEqual({ status: "failed", hash: second.hash, errorMessage: "cannot parse" });
    expect(server.getAgent(agent.id)?.remoteConfigState?.status).toBe("failed");
  });
});
