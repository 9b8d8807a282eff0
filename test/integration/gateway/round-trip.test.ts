/**
 * Agents through the gateway into OpAMPServer, over both transports: delegated auth with
 * each agent's own credentials, replies and pushes routed by instance UID, the principal
 * and address of each agent as the server sees them, and goodbyes.
 */
import { afterEach, describe, expect, it } from "vitest";
import { HttpStatusError, isAgent, TestAgent, waitFor } from "../server/test-agent.js";
import { cleanup, startGateway, startServer } from "./helpers.js";

afterEach(cleanup);

for (const transport of ["websocket", "http"] as const) {
  describe(`through the gateway (${transport})`, () => {
    it("two agents round-trip with their own principals; pushes reach the right one", async () => {
      const { server, url } = await startServer();
      const { url: gatewayUrl } = await startGateway(url.replace(/^http/, "ws"));
      const a = await TestAgent.connect(transport, gatewayUrl, { headers: { authorization: "Bearer token-a" } });
      const b = await TestAgent.connect(transport, gatewayUrl, { headers: { authorization: "Bearer token-b" } });
      const connectedA = waitFor(server, "agentConnected", isAgent(a.uid));
      const replyA = await a.send(a.fullState());
      expect(replyA.instanceUid).toEqual(a.uid);
      const [agentA] = await connectedA;
      expect(agentA.principal).toBe("alice");
      expect(agentA.boundPrincipal).toBe("alice");
      expect(agentA.remoteAddress).toBe("127.0.0.1");
      const replyB = await b.send(b.fullState());
      expect(replyB.instanceUid).toEqual(b.uid);
      expect(server.getAgent(b.uid)?.principal).toBe("bob");

      const pushed = a.next((m) => m.remoteConfig !== undefined);
      await server.setRemoteConfig(a.uid, { "config.yaml": "receivers: {}\n" });
      if (transport === "http") await a.send(a.message());
      const config = await pushed;
      expect(config.instanceUid).toEqual(a.uid);
      expect(b.received.some((m) => m.remoteConfig !== undefined)).toBe(false);

      const gone = waitFor(server, "agentDisconnected", isAgent(a.uid));
      await a.send(a.message({ agentDisconnect: {} }));
      const [, reason] = await gone;
      expect(reason).toBe("agent_disconnect");
      a.close();
      b.close();
    });

    it("follows new_instance_uid: a push to the new UID reaches the agent before and after it switches", async () => {
      const { server, url } = await startServer();
      const { url: gatewayUrl } = await startGateway(url.replace(/^http/, "ws"), {
        upstream: { url: "", connections: 2 },
      });
      const agent = await TestAgent.connect(transport, gatewayUrl, { headers: { authorization: "Bearer token-a" } });
      await agent.send(agent.fullState());
      const identified = agent.next((m) => m.agentIdentification !== undefined);
      const next = server.assignInstanceUid(agent.uid);
      if (transport === "http") await agent.send(agent.message());
      expect((await identified).agentIdentification?.newInstanceUid).toEqual(next);
      // Still under the old UID: a push addressed to the new one is routed to it anyway.
      const pushed = agent.next((m) => m.remoteConfig !== undefined);
      await server.setRemoteConfig(next, { "n.yaml": "n: 1\n" });
      if (transport === "http") await agent.send(agent.message());
      // Over HTTP the push rides in the answer to a poll made under the old UID.
      expect((await pushed).instanceUid).toEqual(transport === "websocket" ? next : agent.uid);
      agent.uid = next;
      const reply = await agent.send(agent.message());
      expect(reply.instanceUid).toEqual(next);
      expect(server.getAgent(next)?.principal).toBe("alice");
      agent.close();
    });

    it("refuses an agent whose credentials the server refuses (401 with the server's headers)", async () => {
      const { url } = await startServer();
      const { url: gatewayUrl } = await startGateway(url.replace(/^http/, "ws"), {
        upstream: { url: "", connections: 1 },
      });
      if (transport === "websocket") {
        const error = await TestAgent.connect(transport, gatewayUrl, {
          headers: { authorization: "Bearer nope" },
        }).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(HttpStatusError);
        expect((error as HttpStatusError).status).toBe(401);
      } else {
        const agent = await TestAgent.connect(transport, gatewayUrl, { headers: { authorization: "Bearer nope" } });
        const error = await agent.send(agent.fullState()).catch((e: unknown) => e);
        expect((error as HttpStatusError).status).toBe(401);
        expect((error as HttpStatusError).headers.get("www-authenticate")).toBe("Bearer");
      }
    });
  });
}
