/**
 * Interop through the gateway: opamp-go's client (WebSocket and HTTP) through the gateway
 * into OpAMPServer (delegated auth), and opamp-go's server — which knows nothing of
 * gateways — behind a gateway in pass-through mode, with opamp-go agents and an opamp-sdk
 * client. Skipped without Go (fails in CI), like every Go interop test.
 */
import { afterEach, beforeAll, expect, it } from "vitest";
import { OpAMPClient } from "../../src/client/index.js";
import { RemoteConfigStatuses } from "../../src/gen/opamp/v1/opamp_pb.js";
import { agentDescription, instanceUidToString, newInstanceUid } from "../../src/wire/index.js";
import { startGo } from "../conformance/peers.js";
import { cleanup, defer, startGateway, startServer } from "../integration/gateway/helpers.js";
import { waitFor } from "../integration/server/test-agent.js";
import { BUILD_TIMEOUT_MS, buildHarness, describeWithGo } from "./go-harness.js";

afterEach(cleanup);

const EVENT_MS = 20_000;

describeWithGo("opamp-go through the gateway", () => {
  beforeAll(() => buildHarness(), BUILD_TIMEOUT_MS);

  for (const transport of ["ws", "http"] as const) {
    it(`${transport}: opamp-go agents through the gateway into OpAMPServer: own principal, config applied, leaving seen`, async () => {
      const { server, wsUrl } = await startServer({ heartbeat: { intervalSeconds: 1 } });
      // opamp-go's HTTP client stops polling without a goodbye: the gateway tells the server
      // once the agent has been silent for httpAgentTimeoutMs.
      const { url } = await startGateway(wsUrl, {
        upstream: { url: "", connections: 2 },
        heartbeat: { httpAgentTimeoutMs: 3000, sweepIntervalMs: 250 },
      });
      const connected = waitFor(server, "agentConnected");
      const agent = await startGo([
        "agent",
        "-url",
        `${transport}://${new URL(url).host}/v1/opamp`,
        "-auth-token",
        "token-b",
        "-heartbeat",
        "1s",
        "-service-name",
        "go-behind-gateway",
      ]);
      defer(() => void agent.stop());
      const [seen] = await connected;
      expect(seen.principal).toBe("bob");
      expect(
        seen.agentDescription?.identifyingAttributes.find((a) => a.key === "service.name")?.value?.value.value,
      ).toBe("go-behind-gateway");
      const applied = waitFor(
        server,
        "agentUpdated",
        (a) => a.id === seen.id && a.remoteConfigStatus?.status === RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
      );
      await server.setRemoteConfig(seen.id, { "remote.yaml": "exporters: {}\n" });
      await applied;
      await agent.waitFor((e) => e.event === "config_applied", EVENT_MS);
      const gone = waitFor(server, "agentDisconnected", (a) => a.id === seen.id);
      await agent.stop();
      const [, reason] = await gone;
      // WS: opamp-go's goodbye or the gateway's synthesised one; HTTP: the gateway's.
      expect(reason).toBe("agent_disconnect");
    });
  }

  it("opamp-go's server behind a pass-through gateway: opamp-go agents (WS, HTTP) and an opamp-sdk client, each with its own credentials", async () => {
    const server = await startGo(["server", "-auth-token", "go-secret", "-config", "receivers: {}\n"]);
    defer(() => void server.stop());
    const listening = await server.waitFor((e) => e.event === "listening", EVENT_MS);
    const { url } = await startGateway(String(listening["wsUrl"]), {
      auth: { mode: "passthrough" },
      upstream: { url: "" },
    });
    const host = new URL(url).host;
    for (const transport of ["ws", "http"] as const) {
      const agent = await startGo([
        "agent",
        "-url",
        `${transport}://${host}/v1/opamp`,
        "-auth-token",
        "go-secret",
        "-heartbeat",
        "1s",
      ]);
      defer(() => void agent.stop());
      const started = await agent.waitFor((e) => e.event === "started", EVENT_MS);
      await agent.waitFor((e) => e.event === "config_applied", EVENT_MS);
      await server.waitFor((e) => e.event === "config_applied" && e["uid"] === started["uid"], EVENT_MS);
      const message = await server.waitFor((e) => e.event === "message" && e["uid"] === started["uid"], EVENT_MS);
      expect(message["auth"]).toBe("Bearer go-secret");
      expect(message["transport"]).toBe(transport);
    }
    // A wrong token is refused by opamp-go's server itself; the agent's upgrade gets its 401.
    const refused = await startGo(["agent", "-url", `ws://${host}/v1/opamp`, "-auth-token", "wrong"]);
    defer(() => void refused.stop());
    await refused.waitFor((e) => e.event === "connect_failed", EVENT_MS);
    await server.waitFor((e) => e.event === "rejected" && e["auth"] === "Bearer wrong", EVENT_MS);
    const { default: WebSocket } = await import("ws");
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`ws://${host}/v1/opamp`, { headers: { Authorization: "Bearer wrong" } });
      ws.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      ws.once("error", () => undefined);
    });
    expect(status).toBe(401);

    const uid = newInstanceUid();
    const client = new OpAMPClient({
      transport: { url: `ws://${host}/v1/opamp`, headers: { Authorization: "Bearer go-secret" } },
      agent: {
        instanceUid: uid,
        description: agentDescription({ identifying: { "service.name": "sdk-behind-gateway" } }),
      },
      hooks: { onRemoteConfig: async () => ({ status: "applied" }) },
    });
    defer(() => client.stop());
    await client.start();
    await server.waitFor((e) => e.event === "config_applied" && e["uid"] === instanceUidToString(uid), EVENT_MS);
  });
});
