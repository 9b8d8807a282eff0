/**
 * The listener-blind core driven directly with messages and a manual clock: no sockets.
 */
import { create, fromBinary } from "@bufbuild/protobuf";
import { EventEmitter } from "eventemitter3";
import { describe, expect, it } from "vitest";
import { AgentToServerSchema, ServerToAgentSchema } from "../../../src/gen/opamp/v1/opamp_pb.js";
import { type CoreConnection, ServerCore } from "../../../src/server/core.js";
import { InMemoryServerStore, type ServerEvents } from "../../../src/server/index.js";
import { resolveServerOptions } from "../../../src/server/options.js";
import { setRemoteConfig } from "../../../src/server/push.js";
import { ManualClock } from "../../../src/testing/client-manual-clock.js";
import { AgentCapability, agentDescription, newInstanceUid, ServerToAgentFlag } from "../../../src/wire/index.js";

const http: CoreConnection = {
  transport: "http",
  principal: "p",
  remoteAddress: "1.2.3.4",
  channel: undefined,
  endpoint: "http://x/v1/opamp",
};

function setup(heartbeatSeconds = 10) {
  const clock = new ManualClock(1_000_000);
  const events = new EventEmitter<ServerEvents>();
  const options = resolveServerOptions({
    allowAnonymous: true,
    clock,
    heartbeat: {
      intervalSeconds: heartbeatSeconds,
      httpAgentTimeoutMs: heartbeatSeconds * 2000,
      sweepIntervalMs: 1000,
    },
  });
  const core = new ServerCore(options, new InMemoryServerStore(), events);
  core.start();
  return { clock, events, core };
}

async function send(core: ServerCore, init: Parameters<typeof create<typeof AgentToServerSchema>>[1]) {
  const bytes = await core.handleMessage(http, create(AgentToServerSchema, init));
  return fromBinary(ServerToAgentSchema, bytes);
}

describe("ServerCore", () => {
  it("asks for the available components once per unknown hash and caches them across agents", async () => {
    const { core } = setup();
    const caps = AgentCapability.ReportsStatus | AgentCapability.ReportsAvailableComponents;
    const description = agentDescription({ identifying: { a: "b" } });
    const hash = new Uint8Array([7, 7]);
    const a = newInstanceUid();
    const first = await send(core, {
      instanceUid: a,
      capabilities: caps,
      agentDescription: description,
      availableComponents: { hash },
    });
    expect(first.flags & ServerToAgentFlag.ReportAvailableComponents).toBe(ServerToAgentFlag.ReportAvailableComponents);
    const full = await send(core, {
      instanceUid: a,
      sequenceNum: 1n,
      capabilities: caps,
      availableComponents: { hash, components: { receivers: { metadata: [] } } },
    });
    expect(full.flags).toBe(0n);
    // Another agent with the same hash is not asked: the server knows the components.
    const b = newInstanceUid();
    const other = await send(core, {
      instanceUid: b,
      capabilities: caps,
      agentDescription: description,
      availableComponents: { hash },
    });
    expect(other.flags & ServerToAgentFlag.ReportAvailableComponents).toBe(0n);
    expect(Object.keys(core.agents.get([...core.agents.keys()][1]!)?.availableComponents?.components ?? {})).toEqual([
      "receivers",
    ]);
  });

  it("disconnects HTTP agents after missed heartbeats with one sweep timer", async () => {
    const { core, clock, events } = setup(10);
    const gone: string[] = [];
    events.on("agentDisconnected", (agent, reason) => gone.push(`${agent.id}:${reason}`));
    const a = newInstanceUid();
    const b = newInstanceUid();
    await send(core, { instanceUid: a, capabilities: 1n, agentDescription: agentDescription({}) });
    clock.advance(15_000);
    await send(core, { instanceUid: b, capabilities: 1n, agentDescription: agentDescription({}) });
    clock.advance(6_000); // a silent 21 s > 20 s window, b only 6 s
    expect(gone.length).toBe(1);
    expect(core.agents.size).toBe(1);
    clock.advance(15_000);
    expect(gone.length).toBe(2);
    await core.stop();
  });

  it("answers every copy of a duplicated message", async () => {
    const { core } = setup();
    const uid = newInstanceUid();
    const msg = { instanceUid: uid, capabilities: 1n, agentDescription: agentDescription({}) };
    const one = await send(core, msg);
    const two = await send(core, msg);
    expect(one.instanceUid).toEqual(uid);
    expect(two.instanceUid).toEqual(uid);
  });

  it("shares one encoded config between every agent of a selection", async () => {
    const { core } = setup();
    const caps = AgentCapability.ReportsStatus | AgentCapability.AcceptsRemoteConfig;
    for (let i = 0; i < 3; i++) {
      await send(core, { instanceUid: newInstanceUid(), capabilities: caps, agentDescription: agentDescription({}) });
    }
    const result = await setRemoteConfig(core, () => true, { "a.yaml": "x" });
    expect(result.sent.length).toBe(3);
    const parts = [...core.agents.values()].map((r) => r.desired.remoteConfig?.part.bytes);
    expect(parts[0]).toBeDefined();
    expect(parts.every((p) => p === parts[0])).toBe(true);
    // The next poll of each HTTP agent carries it, once.
    const uid = [...core.agents.values()][0]!.instanceUid;
    const poll = await send(core, { instanceUid: uid, sequenceNum: 1n, capabilities: caps });
    expect(poll.remoteConfig?.configHash).toEqual(result.hash);
    expect((await send(core, { instanceUid: uid, sequenceNum: 2n, capabilities: caps })).remoteConfig).toBeUndefined();
  });

  it("emits no events after stop()", async () => {
    const { core, events } = setup();
    await core.stop();
    let fired = 0;
    events.on("agentConnected", () => fired++);
    events.on("message", () => fired++);
    await send(core, { instanceUid: newInstanceUid(), capabilities: 1n });
    expect(fired).toBe(0);
  });
});
