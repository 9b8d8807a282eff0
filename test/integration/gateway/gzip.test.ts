/**
 * The gateway's HTTP replies follow the server's gzip rule: under DEFAULT_GZIP_MIN_BYTES
 * they go out plain even to an agent that accepts gzip, larger ones gzipped.
 */
import { afterEach, describe, expect, it } from "vitest";
import { TestAgent, waitFor } from "../server/test-agent.js";
import { cleanup, startGateway, startServer } from "./helpers.js";

afterEach(cleanup);

describe("gateway HTTP replies", () => {
  it("are gzipped from 1 KiB only", async () => {
    const { server, url } = await startServer();
    const { url: gatewayUrl } = await startGateway(url.replace(/^http/, "ws"));
    const agent = await TestAgent.connect("http", gatewayUrl, {
      headers: { authorization: "Bearer token-a" },
      acceptGzip: true,
    });
    const connected = waitFor(server, "agentConnected");
    await agent.send(agent.fullState());
    await connected;
    expect(agent.lastResponseHeaders?.get("content-encoding")).toBeNull();

    await server.setRemoteConfig(agent.uid, { "big.yaml": "x: 1\n".repeat(800) });
    const reply = await agent.send(agent.message());
    expect(agent.lastResponseHeaders?.get("content-encoding")).toBe("gzip");
    expect(reply.remoteConfig?.config?.configMap["big.yaml"]?.body.length).toBe(4000);
  });
});
