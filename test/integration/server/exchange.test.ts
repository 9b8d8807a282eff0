/**
 * Core protocol behaviour over both transports on loopback: answers, capabilities, state
 * reconstruction from compressed reports, ReportFullState on gaps, remote config push and
 * status tracking, disconnect.
 */
import { afterEach, describe, expect, it } from "vitest";
import { RemoteConfigStatuses } from "../../../src/gen/opamp/v1/opamp_pb.js";
import {
  AgentCapability,
  hasBit,
  instanceUidToString,
  ServerCapability,
  ServerToAgentFlag,
} from "../../../src/wire/index.js";
import { startServer, stopAll } from "./helpers.js";
import { isAgent, TestAgent, type Transport, waitFor } from "./test-agent.js";

afterEach(stopAll);

const transports: Transport[] = ["websocket", "http"];

describe.each(transports)("server over %s", (transport) => {
  it("answers the first message with the agent's UID and the server capabilities", async () => {
    const { server, url } = await startServer();
    const agent = await TestAgent.connect(transport, url);
    const connected = waitFor(server, "agentConnected");
    const reply = await agent.send(agent.fullState());
    expect(reply.instanceUid).toEqual(agent.uid);
    expect(reply.errorResponse).toBeUndefined();
    expect(hasBit(reply.capabilities, ServerCapability.AcceptsStatus)).toBe(true);
    expect(hasBit(reply.capabilities, ServerCapability.OffersRemoteConfig)).toBe(true);
    expect(reply.flags & ServerToAgentFlag.ReportFullState).toBe(0n);
    const [seen] = await connected;
    expect(seen.id).toBe(instanceUidToString(agent.uid));
    expect(seen.transport).toBe(transport);
    expect(server.getAgent(agent.uid)?.agentDescription?.identifyingAttributes[0]?.key).toBe("service.name");
    agent.close();
  });

  it("reconstructs the full state from compressed reports and says which parts changed", async () => {
    const { server, url } = await startServer();
    const agent = await TestAgent.connect(transport, url);
    await agent.send(
      agent.fullState({ effectiveConfig: { configMap: { configMap: { a: { body: new Uint8Array([1]) } } } } }),
    );
    // Only health changes: everything else must be kept from before.
    const updated = waitFor(server, "agentUpdated");
    const reply = await agent.send(agent.message({ health: { healthy: false, lastError: "boom" } }));
    expect(reply.flags & ServerToAgentFlag.ReportFullState).toBe(0n);
    const [view, changes] = await updated;
    expect(changes).toEqual(["health"]);
    expect(view.health?.lastError).toBe("boom");
    expect(view.agentDescription).toBeDefined();
    expect([...(view.effectiveConfig?.configMap?.configMap["a"]?.body ?? [])]).toEqual([1]);
    // A heartbeat (nothing but uid, seq, capabilities) changes nothing and is still answered.
    const heartbeat = await agent.send(agent.message());
    expect(heartbeat.instanceUid).toEqual(agent.uid);
    expect(server.getAgent(agent.uid)?.sequenceNum).toBe(2n);
    agent.close();
  });

  it("asks for the full state on a sequence gap", async () => {
    const { url } = await startServer();
    const agent = await TestAgent.connect(transport, url);
    await agent.send(agent.fullState());
    agent.seq += 5n; // lose some messages
    const reply = await agent.send(agent.message());
    expect(hasBit(reply.flags, ServerToAgentFlag.ReportFullState)).toBe(true);
    // The full report that follows is in sequence and not asked again.
    const after = await agent.send(agent.fullState());
    expect(hasBit(after.flags, ServerToAgentFlag.ReportFullState)).toBe(false);
    agent.close();
  });

  it("asks an unknown agent sending a compressed report for its full state", async () => {
    const { server, url } = await startServer();
    const agent = await TestAgent.connect(transport, url);
    agent.seq = 42n;
    const connected = waitFor(server, "agentConnected");
    const reply = await agent.send(agent.message());
    expect(hasBit(reply.flags, ServerToAgentFlag.ReportFullState)).toBe(true);
    await connected;
    agent.close();
  });

  it("pushes a remote config (WS at once, HTTP on the next poll) and tracks APPLIED", async () => {
    const { server, url } = await startServer();
    const agent = await TestAgent.connect(transport, url);
    await agent.send(agent.fullState());
    const { hash, sent } = await server.setRemoteConfig(agent.uid, { "config.yaml": "receivers: {}" });
    expect(sent.map((a) => a.id)).toEqual([instanceUidToString(agent.uid)]);
    let offer = transport === "websocket" ? await agent.next((m) => m.remoteConfig !== undefined) : undefined;
    if (transport === "http") offer = await agent.send(agent.message());
    expect(offer?.remoteConfig?.configHash).toEqual(hash);
    expect(new TextDecoder().decode(offer?.remoteConfig?.config?.configMap["config.yaml"]?.body)).toBe("receivers: {}");

    const applied = waitFor(
      server,
      "agentUpdated",
      (_a, changes) =>
        changes.includes("remoteConfigStatus") &&
        _a.remoteConfigStatus?.status === RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
    );
    const ack = await agent.send(
      agent.message({
        remoteConfigStatus: { lastRemoteConfigHash: hash, status: RemoteConfigStatuses.RemoteConfigStatuses_APPLIED },
      }),
    );
    expect(ack.remoteConfig).toBeUndefined(); // hash matches: not sent again
    await applied;
    // Further polls do not repeat the config.
    expect((await agent.send(agent.message())).remoteConfig).toBeUndefined();
    const deliveries = await server.deliveries(agent.uid);
    expect(deliveries[0]?.history.map((h) => h.status)).toEqual(["offered", "applied"]);
    agent.close();
  });

  it("fails with capability_missing instead of pushing what the agent cannot take", async () => {
    const { server, url } = await startServer();
    const agent = await TestAgent.connect(transport, url, { capabilities: AgentCapability.ReportsStatus });
    await agent.send(agent.fullState());
    await expect(server.setRemoteConfig(agent.uid, { a: "b" })).rejects.toMatchObject({ code: "capability_missing" });
    expect(() => server.sendRestart(agent.uid)).toThrow(expect.objectContaining({ code: "capability_missing" }));
    // For a selection the agent is skipped, not an exception.
    const result = await server.setRemoteConfig(() => true, { a: "b" });
    expect(result.sent).toEqual([]);
    expect(result.skipped[0]?.error.code).toBe("capability_missing");
    agent.close();
  });

  it("reports the agent gone on AgentDisconnect", async () => {
    const { server, url } = await startServer();
    const agent = await TestAgent.connect(transport, url);
    await agent.send(agent.fullState());
    const gone = waitFor(server, "agentDisconnected", isAgent(agent.uid));
    await agent.send(agent.message({ agentDisconnect: {} }));
    const [, reason] = await gone;
    expect(reason).toBe("agent_disconnect");
    expect(server.agents.size).toBe(0);
    agent.close();
  });
});

describe("server over websocket only", () => {
  it("reports every agent of a closed connection gone", async () => {
    const { server, url } = await startServer();
    const agent = await TestAgent.connect("websocket", url);
    await agent.send(agent.fullState());
    const gone = waitFor(server, "agentDisconnected");
    agent.close();
    const [view, reason] = await gone;
    expect(view.id).toBe(instanceUidToString(agent.uid));
    expect(reason).toBe("connection_closed");
  });

  it("carries many agents on one connection, keyed by UID, and forgets them all on close", async () => {
    const { server, url } = await startServer();
    const socket = await TestAgent.connect("websocket", url);
    const first = socket.uid;
    await socket.send(socket.fullState());
    // The same socket now speaks for a second agent, as a gateway would.
    socket.uid = new Uint8Array(16).fill(7);
    socket.seq = 0n;
    await socket.send(socket.fullState());
    expect(server.agents.size).toBe(2);
    const gone: string[] = [];
    const both = new Promise<void>((resolve) => {
      server.on("agentDisconnected", (agent) => {
        gone.push(agent.id);
        if (gone.length === 2) resolve();
      });
    });
    socket.close();
    await both;
    expect(gone.sort()).toEqual([instanceUidToString(first), instanceUidToString(socket.uid)].sort());
  });

  it("drops HTTP agents that miss their heartbeat window", async () => {
    const { server, url } = await startServer({
      heartbeat: { httpAgentTimeoutMs: 300, sweepIntervalMs: 50 },
    });
    const agent = await TestAgent.connect("http", url);
    await agent.send(agent.fullState());
    const [, reason] = await waitFor(server, "agentDisconnected");
    expect(reason).toBe("heartbeat_timeout");
  });
});
