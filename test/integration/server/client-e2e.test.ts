/**
 * End to end: this SDK's OpAMPClient against this SDK's OpAMPServer, over both transports:
 * connect with full state, remote config APPLIED, a status change arriving compressed and
 * merged, a custom message, full state on request, goodbye on stop().
 */
import { afterEach, describe, expect, it } from "vitest";
import { OpAMPClient } from "../../../src/client/index.js";
import { RemoteConfigStatuses } from "../../../src/gen/opamp/v1/opamp_pb.js";
import { configMap } from "../../../src/wire/index.js";
import { startServer, stopAll } from "./helpers.js";
import { waitFor } from "./test-agent.js";

const clients: OpAMPClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.stop()));
  await stopAll();
});

describe.each(["ws", "http"] as const)("OpAMPClient ↔ OpAMPServer over %s", (scheme) => {
  it("connects, applies a pushed config, merges compressed updates and says goodbye", async () => {
    // The server tells the client to poll every second (it reports heartbeats).
    const { server, url } = await startServer({
      customCapabilities: ["io.example.echo"],
      heartbeat: { intervalSeconds: 1 },
    });
    let effective = configMap({ "local.yaml": "a: 1" });
    const client = new OpAMPClient({
      transport: { url: url.replace(/^http/, scheme), heartbeatIntervalMs: 200 },
      agent: {
        description: {
          identifyingAttributes: [{ key: "service.name", value: { value: { case: "stringValue", value: "e2e" } } }],
        },
        health: { healthy: true, status: "starting" },
        capabilities: { reportsEffectiveConfig: true, reportsHealth: true },
        customCapabilities: ["io.example.echo"],
      },
      hooks: {
        onRemoteConfig: async (offer) => {
          effective = offer.config;
          return { status: "applied" };
        },
        getEffectiveConfig: async () => effective,
      },
    });
    clients.push(client);

    const connected = waitFor(server, "agentConnected");
    await client.start();
    const [agent] = await connected;
    expect(agent.transport).toBe(scheme === "ws" ? "websocket" : "http");
    expect(agent.agentDescription?.identifyingAttributes[0]?.value?.value.value).toBe("e2e");
    expect(agent.effectiveConfig?.configMap?.configMap["local.yaml"]).toBeDefined();

    // Remote config: offered, applied by the hook, APPLIED tracked, effective config updated.
    const applied = waitFor(
      server,
      "agentUpdated",
      (a) => a.remoteConfigStatus?.status === RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
    );
    const { hash } = await server.setRemoteConfig(agent.id, { "remote.yaml": "b: 2" });
    const [updated] = await applied;
    expect([...(updated.remoteConfigStatus?.lastRemoteConfigHash ?? [])]).toEqual([...hash]);
    const hasRemote = (a: typeof agent) => a.effectiveConfig?.configMap?.configMap["remote.yaml"] !== undefined;
    if (!hasRemote(updated)) await waitFor(server, "agentUpdated", hasRemote);

    // A health change travels compressed: only health changes, the rest is kept.
    const healthChanged = waitFor(server, "agentUpdated", (_a, changes) => changes.includes("health"));
    client.setHealth({ healthy: true, status: "running" });
    const [, changes] = await healthChanged;
    expect(changes).not.toContain("agentDescription");
    expect(server.getAgent(agent.id)?.health?.status).toBe("running");
    expect(server.getAgent(agent.id)?.agentDescription).toBeDefined();

    // Custom message from the server reaches the client.
    const received = new Promise<string>((resolve) => {
      client.on("message", (m) => {
        if (m.customMessage) resolve(m.customMessage.type);
      });
    });
    server.sendCustomMessage(agent.id, { capability: "io.example.echo", type: "hello" });
    expect(await received).toBe("hello");

    // A full-state request is answered with the description again.
    const full = waitFor(server, "message", (_a, m) => m.agentDescription !== undefined);
    server.requestFullState(agent.id);
    const [, fullMessage] = await full;
    expect(fullMessage.effectiveConfig).toBeDefined();

    // stop() sends agent_disconnect.
    const gone = waitFor(server, "agentDisconnected");
    await client.stop();
    const [, reason] = await gone;
    expect(reason).toBe("agent_disconnect");
  });
});
