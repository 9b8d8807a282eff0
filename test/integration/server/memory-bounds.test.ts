/**
 * Issue 16, defect 4, over both transports: what one agent makes the server hold is bounded
 * in bytes. A message over the server's default limit is refused before it is decoded; a
 * report that would take an agent's state over its budget is refused with BadRequest,
 * reported, and leaves the old state in place.
 */
import { afterEach, describe, expect, it } from "vitest";
import { ServerErrorResponseType } from "../../../src/gen/opamp/v1/opamp_pb.js";
import { DEFAULT_SERVER_MAX_MESSAGE_BYTES, InMemoryServerStore } from "../../../src/server/index.js";
import { agentDescription } from "../../../src/wire/index.js";
import { startServer, stopAll } from "./helpers.js";
import { type HttpStatusError, TestAgent, type Transport, waitFor } from "./test-agent.js";

afterEach(stopAll);

const transports: Transport[] = ["websocket", "http"];

const config = (size: number) => ({
  configMap: { configMap: { "c.yaml": { body: new Uint8Array(size).fill(0x61) } } },
});

describe.each(transports)("memory bounds (%s)", (transport) => {
  it("refuses a message over the default 1 MiB limit and keeps serving", async () => {
    expect(DEFAULT_SERVER_MAX_MESSAGE_BYTES).toBe(1024 * 1024);
    const { server, url } = await startServer();
    const agent = await TestAgent.connect(transport, url);
    await agent.send(agent.fullState({ effectiveConfig: config(DEFAULT_SERVER_MAX_MESSAGE_BYTES - 4096) }));
    const big = await TestAgent.connect(transport, url);
    const message = big.fullState({ effectiveConfig: config(DEFAULT_SERVER_MAX_MESSAGE_BYTES) });
    if (transport === "websocket") {
      void big.send(message);
      expect((await big.waitClosed()).code).toBe(1009);
    } else {
      const error = await big.send(message).catch((e: unknown) => e);
      expect((error as HttpStatusError).status).toBe(413);
    }
    expect((await agent.send(agent.message())).errorResponse).toBeUndefined();
    expect(server.agents.size).toBe(1);
    agent.close();
  });

  it("refuses a report that would take the agent's state over its budget, keeping the old state", async () => {
    const { server, url } = await startServer({ limits: { maxAgentStateBytes: 64 * 1024 } });
    const agent = await TestAgent.connect(transport, url);
    await agent.send(agent.fullState({ effectiveConfig: config(40 * 1024) }));
    const held = server.getAgent(agent.uid)!;
    const reported = waitFor(server, "error");
    const updated: string[][] = [];
    server.on("agentUpdated", (_a, changes) => updated.push([...changes]));
    // The health grows; with the config already held, the state would be about 80 KiB.
    const reply = await agent.send(agent.message({ health: { healthy: false, lastError: "e".repeat(40 * 1024) } }));
    expect(reply.errorResponse?.type).toBe(ServerErrorResponseType.ServerErrorResponseType_BadRequest);
    expect(reply.errorResponse?.errorMessage).toBe("agent state over the limit of 65536 bytes");
    const [error] = await reported;
    expect(error.code).toBe("limit_exceeded");
    expect(error.details.limit).toBe(64 * 1024);
    expect(held.health?.healthy).toBe(true);
    expect(held.effectiveConfig?.configMap?.configMap["c.yaml"]?.body.length).toBe(40 * 1024);
    expect(updated).toEqual([]);
    // A report that fits is taken; a smaller config makes room for the larger health.
    agent.seq = held.sequenceNum + 1n;
    const fits = await agent.send(agent.message({ effectiveConfig: config(1024) }));
    expect(fits.errorResponse).toBeUndefined();
    agent.seq = held.sequenceNum + 1n;
    const now = await agent.send(agent.message({ health: { healthy: false, lastError: "e".repeat(40 * 1024) } }));
    expect(now.errorResponse).toBeUndefined();
    expect(held.health?.healthy).toBe(false);
    agent.close();
  });

  it("forgets agents that left once the store's bytes bound is reached (invented UIDs, large descriptions)", async () => {
    const store = new InMemoryServerStore({ maxBytes: 2 * 1024 * 1024 });
    const { server, url } = await startServer({ store });
    const description = agentDescription({ identifying: { "service.name": "x".repeat(256 * 1024) } });
    for (let i = 0; i < 24; i++) {
      const agent = await TestAgent.connect(transport, url);
      await agent.send(agent.fullState({ agentDescription: description }));
      const gone = waitFor(server, "agentDisconnected");
      await agent.send(agent.message({ agentDisconnect: {} }));
      await gone;
      if (transport === "websocket") agent.close();
    }
    await server.stop(); // waits for the store writes
    expect(store.heldBytes).toBeLessThanOrEqual(2 * 1024 * 1024);
    expect(store.agentCount).toBeGreaterThan(0);
    expect(store.agentCount).toBeLessThan(24);
  });
});
