/**
 * Where the gateway does better than Bindplane's, one test per point, through the real
 * OpAMPServer and over both transports where the point applies: the server learns at once
 * that an agent left; agents stay connected when their upstream drops and are asked for
 * their full state; a slow agent is dropped alone; a flooding agent does not hold up its
 * neighbours; HTTP-polling agents are served; gateways chain; stop() is graceful.
 */
import { afterEach, describe, expect, it } from "vitest";
import { ManualClock } from "../../../src/testing/index.js";
import { instanceUidToString, ServerToAgentFlag } from "../../../src/wire/index.js";
import { isAgent, TestAgent, waitFor } from "../server/test-agent.js";
import { FakeUpstream } from "./fake-upstream.js";
import { cleanup, defer, nextEvent, startGateway, startServer, waitUpstreams } from "./helpers.js";
import { TcpRelay } from "./tcp-relay.js";

afterEach(cleanup);

const A = { headers: { authorization: "Bearer token-a" } };
const B = { headers: { authorization: "Bearer token-b" } };
const fullState = (m: { flags: bigint }) => (m.flags & ServerToAgentFlag.ReportFullState) !== 0n;

describe("the server learns at once that an agent left (synthesised agent_disconnect, an extension)", () => {
  it("websocket: the agent's socket closes without a goodbye", async () => {
    const { server, wsUrl } = await startServer();
    const { url } = await startGateway(wsUrl, { upstream: { url: "", connections: 1 } });
    const agent = await TestAgent.connect("websocket", url, A);
    await agent.send(agent.fullState());
    await agent.send(agent.message());
    const gone = waitFor(server, "agentDisconnected", isAgent(agent.uid));
    const seen = waitFor(server, "message", (a, m) => isAgent(agent.uid)(a) && m.agentDisconnect !== undefined);
    agent.close();
    const [[, reason], [, message]] = await Promise.all([gone, seen]);
    expect(reason).toBe("agent_disconnect");
    // It continues the agent's sequence: no gap, no full-state request.
    expect(message.sequenceNum).toBe(2n);
  });

  it("http: the agent stops polling for longer than heartbeat.httpAgentTimeoutMs", async () => {
    const { server, wsUrl } = await startServer();
    const clock = new ManualClock();
    const { gateway, url } = await startGateway(wsUrl, {
      upstream: { url: "", connections: 1 },
      clock,
      heartbeat: { httpAgentTimeoutMs: 90_000, sweepIntervalMs: 5_000, wsPingIntervalMs: 0 },
    });
    const agent = await TestAgent.connect("http", url, A);
    await agent.send(agent.fullState());
    const gone = waitFor(server, "agentDisconnected", isAgent(agent.uid));
    const left = nextEvent(gateway, "agentDisconnected");
    clock.advance(85_000);
    expect(server.getAgent(agent.uid)).toBeDefined();
    clock.advance(10_000);
    const [[, reason], [, why]] = await Promise.all([gone, left]);
    expect(reason).toBe("agent_disconnect");
    expect(why).toBe("timeout");
  });
});

for (const transport of ["websocket", "http"] as const) {
  it(`${transport}: an upstream drops: its agents move to a live one without being disconnected, and report full state`, async () => {
    const { server, url: serverUrl } = await startServer();
    const relay = await TcpRelay.start(Number(new URL(serverUrl).port));
    defer(() => relay.stop());
    const { gateway, url } = await startGateway(`ws://127.0.0.1:${relay.port}/v1/opamp`, {
      upstream: { url: "", connections: 2, retry: { initialDelayMs: 50, maxDelayMs: 200 } },
    });
    const agents = await Promise.all([1, 2, 3, 4].map(() => TestAgent.connect(transport, url, A)));
    for (const agent of agents) await agent.send(agent.fullState());
    expect(gateway.upstreams.map((u) => u.agents)).toEqual([2, 2]);
    const onZero = gateway.agents.filter((a) => a.upstream === "upstream-0");
    const moving = agents.filter((agent) =>
      onZero.some((a) => a.instanceUids.includes(server.getAgent(agent.uid)!.id)),
    );
    expect(moving).toHaveLength(2);
    const dropped = moving.map((agent) => waitFor(server, "agentDisconnected", isAgent(agent.uid)));
    const moved = [nextEvent(gateway, "agentMoved"), nextEvent(gateway, "agentMoved", (a) => a.id !== -1)];
    const back = waitUpstreams(gateway, 1);
    expect(relay.cut("upstream-0")).toBe(1);
    for (const [, reason] of await Promise.all(dropped)) expect(reason).toBe("connection_closed");
    await Promise.all(moved);
    await back;
    for (const agent of moving) {
      const again = waitFor(server, "agentConnected", isAgent(agent.uid));
      // The gateway asks on the server's behalf: the server saw the old connection go.
      const ask = transport === "websocket" ? await agent.next(fullState) : await agent.send(agent.message());
      expect(fullState(ask)).toBe(true);
      await agent.send(agent.fullState());
      const [view] = await again;
      expect(view.principal).toBe("alice");
      expect(view.agentDescription).toBeDefined();
      expect(agent.closed).toBeUndefined();
    }
    // Counts stay exact after the reconnect (Bindplane's leak inflates upstream-0's).
    expect(gateway.upstreams.map((u) => u.agents)).toEqual([0, 4]);
    const late = await TestAgent.connect(transport, url, A);
    await late.send(late.fullState());
    expect(gateway.upstreams.map((u) => u.agents)).toEqual([1, 4]);
    for (const agent of [...agents, late]) agent.close();
  });
}

it("a slow consumer is dropped alone, with limit_exceeded reported; its neighbour keeps getting its pushes", async () => {
  const { server, wsUrl } = await startServer({ limits: { maxMessageBytes: 4 * 1024 * 1024 } });
  const { gateway, url } = await startGateway(wsUrl, {
    upstream: { url: "", connections: 1 },
    limits: { maxBufferedBytesPerAgent: 256 * 1024 },
  });
  const slow = await TestAgent.connect("websocket", url, A);
  const neighbour = await TestAgent.connect("websocket", url, B);
  await slow.send(slow.fullState());
  await neighbour.send(neighbour.fullState());
  (slow as unknown as { ws: { _socket: { pause(): void } } }).ws._socket.pause();
  const reported = nextEvent(gateway, "error", (e) => e.code === "limit_exceeded");
  let gone = false;
  const dropped = nextEvent(gateway, "agentDisconnected", (_a, reason) => reason === "slow_consumer").then(() => {
    gone = true;
  });
  for (let i = 0; i < 64 && !gone; i++) {
    await server.setRemoteConfig(slow.uid, { "big.yaml": `# ${i}\n${"x".repeat(512 * 1024)}` }).catch(() => undefined);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  const [error] = await reported;
  expect(error.details.limit).toBe(256 * 1024);
  await dropped;
  const pushed = neighbour.next((m) => m.remoteConfig !== undefined);
  await server.setRemoteConfig(neighbour.uid, { "small.yaml": "ok: true\n" });
  expect((await pushed).instanceUid).toEqual(neighbour.uid);
  neighbour.close();
});

it("a flooding agent does not hold up its neighbour on the same upstream", async () => {
  const { wsUrl } = await startServer();
  const { url } = await startGateway(wsUrl, {
    upstream: { url: "", connections: 1 },
    limits: { maxQueuedBytesPerAgent: 4 * 1024, upstreamHighWaterBytes: 8 * 1024 },
  });
  const flood = await TestAgent.connect("websocket", url, A);
  const neighbour = await TestAgent.connect("websocket", url, B);
  await flood.send(flood.fullState());
  await neighbour.send(neighbour.fullState());
  const total = 3000;
  let last: Promise<unknown> = Promise.resolve();
  for (let i = 0; i < total; i++)
    last = flood.send(flood.message({ health: { healthy: true, status: "x".repeat(200) } }));
  const neighbourReply = await neighbour.send(neighbour.message());
  expect(neighbourReply.instanceUid).toEqual(neighbour.uid);
  // The neighbour was answered while the flood was still queued at the gateway.
  const floodReplies = flood.received.length;
  expect(floodReplies).toBeLessThan(total);
  await last;
  expect(flood.received.length).toBeGreaterThanOrEqual(total);
  expect(flood.closed).toBeUndefined();
  flood.close();
  neighbour.close();
});

it("http: pushes made between polls are held for the next one (latest of each kind, custom messages queued)", async () => {
  const { server, wsUrl } = await startServer({ customCapabilities: [] });
  const { url } = await startGateway(wsUrl, { upstream: { url: "", connections: 1 } });
  const agent = await TestAgent.connect("http", url, A);
  await agent.send(agent.fullState({ customCapabilities: { capabilities: ["io.example.ping"] } }));
  await server.setRemoteConfig(agent.uid, { "a.yaml": "a: 1\n" });
  const { hash } = await server.setRemoteConfig(agent.uid, { "b.yaml": "b: 2\n" });
  server.sendCustomMessage(agent.uid, { capability: "io.example.ping", type: "one" });
  server.sendCustomMessage(agent.uid, { capability: "io.example.ping", type: "two" });
  const first = await agent.send(agent.message());
  expect(first.remoteConfig?.configHash).toEqual(hash);
  expect(first.customMessage?.type).toBe("one");
  const second = await agent.send(agent.message());
  expect(second.customMessage?.type).toBe("two");
});

describe("chained gateways: gateway → gateway → server", () => {
  for (const transport of ["websocket", "http"] as const) {
    it(`${transport}: agents of the lower gateway round-trip with their own principals; leaving is seen`, async () => {
      const { server, wsUrl } = await startServer();
      const { url: upper } = await startGateway(wsUrl, { upstream: { url: "", connections: 2 } });
      const { url: lower } = await startGateway(upper.replace(/^http/, "ws"), {
        upstream: { url: "", connections: 2 },
      });
      const a = await TestAgent.connect(transport, lower, A);
      const b = await TestAgent.connect(transport, lower, B);
      expect((await a.send(a.fullState())).instanceUid).toEqual(a.uid);
      expect((await b.send(b.fullState())).instanceUid).toEqual(b.uid);
      expect(server.getAgent(a.uid)?.principal).toBe("alice");
      expect(server.getAgent(b.uid)?.principal).toBe("bob");
      const pushed = a.next((m) => m.remoteConfig !== undefined);
      await server.setRemoteConfig(a.uid, { "c.yaml": "c: 3\n" });
      if (transport === "http") await a.send(a.message());
      expect((await pushed).instanceUid).toEqual(a.uid);
      if (transport === "websocket") {
        const gone = waitFor(server, "agentDisconnected", isAgent(a.uid));
        a.close();
        expect((await gone)[1]).toBe("agent_disconnect");
      }
      b.close();
    });
  }
});

it("stop() is graceful: what agents sent reaches the server, agents get 1001, the server sees them leave", async () => {
  const { server, wsUrl } = await startServer();
  const { gateway, url } = await startGateway(wsUrl, { upstream: { url: "", connections: 2 } });
  const agents = await Promise.all([A, B, A].map((o) => TestAgent.connect("websocket", url, o)));
  for (const agent of agents) await agent.send(agent.fullState());
  const left = agents.map((agent) => waitFor(server, "agentDisconnected", isAgent(agent.uid)));
  const lastWord = waitFor(server, "message", (a, m) => isAgent(agents[0]!.uid)(a) && m.sequenceNum === 1n);
  agents[0]!.sendRaw(
    (await import("../../../src/wire/index.js")).encodeWsFrame(
      (await import("@bufbuild/protobuf")).toBinary(
        (await import("../../../src/gen/opamp/v1/opamp_pb.js")).AgentToServerSchema,
        agents[0]!.message(),
      ),
    ),
  );
  await lastWord;
  await gateway.stop();
  for (const agent of agents) expect((await agent.waitClosed()).code).toBe(1001);
  await Promise.all(left);
  expect(server.agents.size).toBe(0);
});

it("a stalled upstream connection holds up only its own agents; the pool's other connection carries on", async () => {
  const upstream = await FakeUpstream.start();
  defer(() => upstream.stop());
  const { gateway, url } = await startGateway(upstream.url, {
    upstream: { url: "", connections: 2 },
    limits: { maxQueuedBytesPerAgent: 16 * 1024, upstreamHighWaterBytes: 16 * 1024 },
  });
  const agents = await Promise.all([1, 2, 3, 4].map(() => TestAgent.connect("websocket", url, A)));
  for (const agent of agents) await agent.send(agent.fullState());
  const stalledId = "upstream-0";
  const record = upstream.connection(stalledId);
  (record.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
  const isOn = (agent: TestAgent, id: string) =>
    gateway.agents.some((g) => g.upstream === id && g.instanceUids.includes(instanceUidToString(agent.uid)));
  const slow = agents.filter((a) => isOn(a, stalledId));
  const fine = agents.filter((a) => isOn(a, "upstream-1"));
  expect(slow).toHaveLength(2);
  expect(fine).toHaveLength(2);
  // The stalled connection's agents keep sending; their messages pile up at the gateway.
  const pending = slow.map((agent) => {
    let last: Promise<unknown> = Promise.resolve();
    for (let i = 0; i < 400; i++)
      last = agent.send(agent.message({ health: { healthy: true, status: "y".repeat(500) } }));
    return last;
  });
  for (const agent of fine) expect((await agent.send(agent.message())).instanceUid).toEqual(agent.uid);
  // Answered while the stalled connection had answered none of the 800 waiting messages.
  for (const agent of slow) expect(agent.received).toHaveLength(1);
  expect(slow.every((agent) => agent.closed === undefined)).toBe(true);
  (record.ws as unknown as { _socket: { resume(): void } })._socket.resume();
  await Promise.all(pending);
  for (const agent of agents) agent.close();
});
