/**
 * Status reporting over both transports: full state first, sequence numbers, status
 * compression, coalescing, ReportFullState, instance UIDs, heartbeats/polls, stop.
 */
import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MemoryClientStateStore } from "../../../src/client/state-store.js";
import {
  AgentIdentificationSchema,
  ComponentHealthSchema,
  ConnectionSettingsOffersSchema,
  OpAMPConnectionSettingsSchema,
  ServerToAgentSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import { agentDescription } from "../../../src/wire/agent-description.js";
import { AgentCapability, AgentToServerFlag, hasBit, ServerToAgentFlag } from "../../../src/wire/capabilities.js";
import { instanceUidToString, newInstanceUid } from "../../../src/wire/uid.js";
import { FakeServer } from "./fake-server.js";
import { eventWhere, makeClient, nextEvent, settle, textConfig } from "./helpers.js";

const description = agentDescription({ identifying: { "service.name": "test-agent" } });
const health = (status: string) => create(ComponentHealthSchema, { healthy: true, status });

describe.each(["ws", "http"] as const)("client status over %s", (kind) => {
  let server: FakeServer;
  beforeEach(async () => {
    server = await FakeServer.start();
  });
  afterEach(async () => {
    await server.close();
  });

  it("sends full state first, then only what changed, with sequence numbers +1", async () => {
    const { client } = makeClient(server, kind, {
      agent: { description, health: health("starting") },
      hooks: { getEffectiveConfig: async () => textConfig("a.yaml", "x: 1") },
    });
    await client.start();
    const first = (await server.waitFor()).message;
    expect(first.instanceUid).toHaveLength(16);
    expect(first.sequenceNum).toBe(0n);
    expect(first.agentDescription).toBeDefined();
    expect(first.health?.status).toBe("starting");
    expect(first.effectiveConfig?.configMap?.configMap["a.yaml"]).toBeDefined();
    const caps = first.capabilities;
    for (const bit of [
      AgentCapability.ReportsStatus,
      AgentCapability.ReportsHeartbeat,
      AgentCapability.ReportsHealth,
      AgentCapability.ReportsEffectiveConfig,
    ]) {
      expect(hasBit(caps, bit)).toBe(true);
    }
    expect(hasBit(caps, AgentCapability.AcceptsRemoteConfig)).toBe(false);

    const second = server.next();
    client.setHealth(health("running"));
    const msg = (await second).message;
    expect(msg.sequenceNum).toBe(1n);
    expect(msg.health?.status).toBe("running");
    expect(msg.agentDescription).toBeUndefined();
    expect(msg.effectiveConfig).toBeUndefined();
    expect(msg.capabilities).toBe(caps);
    await client.stop();
  });

  it("coalesces setter calls made together into one message and skips unchanged values", async () => {
    const { client } = makeClient(server, kind, { agent: { description, health: health("a") } });
    const connected = nextEvent(client, "connect");
    await client.start();
    await connected;
    await server.waitFor();
    const count = server.received.length;
    const next = server.next();
    client.setHealth(health("a")); // unchanged: nothing to send
    client.setHealth(health("b"));
    client.setAgentDescription(agentDescription({ identifying: { "service.name": "renamed" } }));
    const msg = (await next).message;
    expect(msg.health?.status).toBe("b");
    expect(msg.agentDescription).toBeDefined();
    await client.stop();
    const sent = server.received.slice(count).filter((r) => r.message.agentDisconnect === undefined);
    expect(sent).toHaveLength(1);
  });

  it("answers ReportFullState with every sub-message", async () => {
    const { client } = makeClient(server, kind, {
      agent: { description, health: health("ok") },
      hooks: { getEffectiveConfig: async () => textConfig("a.yaml", "x: 1") },
    });
    await client.start();
    await server.waitFor();
    const full = server.next((r) => r.message.agentDescription !== undefined);
    server.push(create(ServerToAgentSchema, { flags: ServerToAgentFlag.ReportFullState }));
    if (kind === "http") client.setHealth(health("poke")); // HTTP hears the server only on its next request
    const msg = (await full).message;
    expect(msg.health).toBeDefined();
    expect(msg.effectiveConfig).toBeDefined();
    await client.stop();
  });

  it("generates a UID once, persists it and reuses it from the store", async () => {
    const store = new MemoryClientStateStore();
    const first = makeClient(server, kind, { storage: { state: store } });
    await first.client.start();
    const uid = (await server.waitFor()).message.instanceUid;
    await first.client.stop();
    expect((await store.load())?.instanceUid).toEqual(uid);
    const second = makeClient(server, kind, { storage: { state: store } });
    const before = server.received.length;
    await second.client.start();
    expect((await server.waitFor(() => true, before)).message.instanceUid).toEqual(uid);
    await second.client.stop();
  });

  it("requests a UID, adopts and persists the server's new_instance_uid", async () => {
    const store = new MemoryClientStateStore();
    const assigned = newInstanceUid();
    server.script = ({ message }) =>
      create(ServerToAgentSchema, {
        instanceUid: message.instanceUid,
        ...(hasBit(message.flags, AgentToServerFlag.RequestInstanceUid)
          ? { agentIdentification: create(AgentIdentificationSchema, { newInstanceUid: assigned }) }
          : {}),
      });
    const { client } = makeClient(server, kind, { storage: { state: store }, agent: { requestInstanceUid: true } });
    const adopted = nextEvent(client, "instanceUid");
    await client.start();
    expect(hasBit((await server.waitFor()).message.flags, AgentToServerFlag.RequestInstanceUid)).toBe(true);
    expect((await adopted)[0]).toEqual(assigned);
    const next = server.next();
    client.setHealth(health("x"));
    const msg = await next;
    expect(msg.message.instanceUid).toEqual(assigned);
    expect(hasBit(msg.message.flags, AgentToServerFlag.RequestInstanceUid)).toBe(false);
    if (kind === "http") expect(msg.headers["opamp-instance-uid"]).toBe(instanceUidToString(assigned));
    expect(client.instanceUid).toEqual(assigned);
    await client.stop();
    expect((await store.load())?.instanceUid).toEqual(assigned);
  });

  it("sends a heartbeat (WS) or poll (HTTP) after the interval, and follows the server's interval", async () => {
    const { client, clock } = makeClient(server, kind, { transport: { heartbeatIntervalMs: 10_000 } });
    const answered = nextEvent(client, "message");
    await client.start();
    await answered;
    await settle();
    const beat = server.next();
    clock.advance(9_999);
    expect(server.received).toHaveLength(1);
    clock.advance(1);
    const msg = (await beat).message;
    expect(msg.sequenceNum).toBe(1n);
    expect(msg.health).toBeUndefined();
    // The server offers 3 s; the client follows it without reconnecting.
    server.push(
      create(ServerToAgentSchema, {
        connectionSettings: create(ConnectionSettingsOffersSchema, {
          hash: new Uint8Array([1]),
          opamp: create(OpAMPConnectionSettingsSchema, { heartbeatIntervalSeconds: 3n }),
        }),
      }),
    );
    const offerSeen = eventWhere(client, "message", (m) => m.connectionSettings !== undefined);
    if (kind === "http") {
      await nextEvent(client, "message"); // the answer to the beat
      await settle();
      clock.advance(10_000);
    }
    await offerSeen;
    await settle();
    const count = server.received.length;
    const quick = server.next();
    clock.advance(3_000);
    expect((await quick).message.sequenceNum).toBe(BigInt(count));
    await client.stop();
  });

  it("sends agent_disconnect on stop and fires nothing afterwards", async () => {
    const { client } = makeClient(server, kind, { agent: { description } });
    const events: string[] = [];
    await client.start();
    await nextEvent(client, "message");
    client.on("stateChange", (state) => events.push(state.t));
    await client.stop();
    const last = server.received.at(-1)?.message;
    expect(last?.agentDisconnect).toBeDefined();
    expect(events.at(-1)).toBe("stopped");
    const count = events.length;
    client.on("message", () => events.push("late"));
    expect(events).toHaveLength(count);
    await expect(client.stop()).resolves.toBeUndefined();
  });
});
