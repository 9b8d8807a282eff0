/**
 * The two auth modes besides delegation, over both transports: the gateway's own
 * `authenticate` hook (the server sees only the gateway's connections), and pass-through,
 * where each agent's own credentials reach the server on a connection (or request) of its
 * own — for servers that know nothing of gateways.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { AuthRequest } from "../../../src/server/index.js";
import { ServerToAgentFlag } from "../../../src/wire/index.js";
import { type HttpStatusError, isAgent, TestAgent, waitFor } from "../server/test-agent.js";
import { cleanup, defer, nextEvent, startGateway, startServer, waitUpstreams } from "./helpers.js";
import { TcpRelay } from "./tcp-relay.js";

afterEach(cleanup);

for (const transport of ["websocket", "http"] as const) {
  describe(`auth modes (${transport})`, () => {
    it("local: the gateway's hook decides; the server binds every agent to the gateway's principal", async () => {
      const { server, wsUrl } = await startServer();
      const seen: AuthRequest[] = [];
      const { url } = await startGateway(wsUrl, {
        upstream: { url: "", connections: 1 },
        auth: {
          mode: "local",
          authenticate: (request) => {
            seen.push(request);
            return request.headers["x-site-key"] === "s3cret"
              ? { accept: true, principal: "site" }
              : { accept: false, status: 403, headers: { "X-Why": "site key" } };
          },
        },
      });
      const agent = await TestAgent.connect(transport, url, { headers: { "x-site-key": "s3cret" } });
      await agent.send(agent.fullState());
      expect(server.getAgent(agent.uid)?.principal).toBe("gateway");
      expect(seen[0]?.transport).toBe(transport);
      const refused =
        transport === "websocket"
          ? await TestAgent.connect(transport, url, { headers: { "x-site-key": "nope" } }).catch((e: unknown) => e)
          : await (async () => {
              const other = await TestAgent.connect(transport, url, { headers: { "x-site-key": "nope" } });
              return other.send(other.fullState()).catch((e: unknown) => e);
            })();
      expect((refused as HttpStatusError).status).toBe(403);
      agent.close();
    });

    it("none: every agent is let through", async () => {
      const { server, wsUrl } = await startServer();
      const { url } = await startGateway(wsUrl, { upstream: { url: "", connections: 1 }, auth: { mode: "none" } });
      const agent = await TestAgent.connect(transport, url);
      await agent.send(agent.fullState());
      expect(server.getAgent(agent.uid)?.principal).toBe("gateway");
      agent.close();
    });

    it("passthrough: the server authenticates each agent with its own headers, on its own connection", async () => {
      const { server, wsUrl } = await startServer({ gateways: { accept: false } });
      const { gateway, url } = await startGateway(wsUrl, { auth: { mode: "passthrough" }, upstream: { url: "" } });
      expect(gateway.upstreams).toEqual([]);
      const a = await TestAgent.connect(transport, url, { headers: { authorization: "Bearer token-a" } });
      const b = await TestAgent.connect(transport, url, { headers: { authorization: "Bearer token-b" } });
      await a.send(a.fullState());
      await b.send(b.fullState());
      expect(server.getAgent(a.uid)?.principal).toBe("alice");
      expect(server.getAgent(b.uid)?.principal).toBe("bob");
      expect(server.getAgent(a.uid)?.transport).toBe(transport);
      const refused =
        transport === "websocket"
          ? await TestAgent.connect(transport, url, { headers: { authorization: "Bearer x" } }).catch((e: unknown) => e)
          : await (async () => {
              const other = await TestAgent.connect(transport, url, { headers: { authorization: "Bearer x" } });
              return other.send(other.fullState()).catch((e: unknown) => e);
            })();
      expect((refused as HttpStatusError).status).toBe(401);
      const pushed = a.next((m) => m.remoteConfig !== undefined);
      await server.setRemoteConfig(a.uid, { "p.yaml": "p: 1\n" });
      if (transport === "http") await a.send(a.message());
      expect((await pushed).instanceUid).toEqual(a.uid);
      const gone = waitFor(server, "agentDisconnected", isAgent(b.uid));
      if (transport === "websocket") b.close();
      else await b.send(b.message({ agentDisconnect: {} }));
      await gone;
      a.close();
    });
  });
}

it("passthrough: an agent whose upstream drops stays connected, is reconnected with its own headers and asked for full state", async () => {
  const { server, url: serverUrl } = await startServer();
  const relay = await TcpRelay.start(Number(new URL(serverUrl).port));
  defer(() => relay.stop());
  const { gateway, url } = await startGateway(`ws://127.0.0.1:${relay.port}/v1/opamp`, {
    auth: { mode: "passthrough" },
    upstream: { url: "", retry: { initialDelayMs: 20, maxDelayMs: 100 } },
  });
  const agent = await TestAgent.connect("websocket", url, { headers: { authorization: "Bearer token-a" } });
  await agent.send(agent.fullState());
  const back = waitUpstreams(gateway, 1);
  const asked = agent.next((m) => (m.flags & ServerToAgentFlag.ReportFullState) !== 0n);
  const dropped = nextEvent(gateway, "upstreamDisconnected");
  await relay.stop();
  await dropped;
  // The gateway keeps retrying the same address: a new forwarder on that port brings it back.
  const restored = await TcpRelay.start(Number(new URL(serverUrl).port), relay.port);
  defer(() => restored.stop());
  await back;
  await asked;
  const again = waitFor(server, "agentConnected", isAgent(agent.uid));
  await agent.send(agent.fullState());
  expect((await again)[0].principal).toBe("alice");
  expect(agent.closed).toBeUndefined();
  agent.close();
});
