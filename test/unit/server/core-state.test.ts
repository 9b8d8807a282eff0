/**
 * Review findings on the core's state keeping, driven with messages (no sockets): desired
 * items re-sent when the agent reports another hash, replies that fail keep what they
 * would have carried, concurrent first messages, the components cache, deliveries of
 * connection settings.
 */
import { create, fromBinary } from "@bufbuild/protobuf";
import { EventEmitter } from "eventemitter3";
import { describe, expect, it } from "vitest";
import {
  AgentToServerSchema,
  ConnectionSettingsStatuses,
  PackageStatusEnum,
  RemoteConfigStatuses,
  ServerErrorResponseType,
  ServerToAgentSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import type { AgentRecord } from "../../../src/server/agent-record.js";
import { type CoreConnection, ServerCore } from "../../../src/server/core.js";
import { InMemoryServerStore, type OpAMPServerOptions, type ServerEvents } from "../../../src/server/index.js";
import { resolveServerOptions } from "../../../src/server/options.js";
import { offerPackages, setRemoteConfig } from "../../../src/server/push.js";
import { ManualClock } from "../../../src/testing/client-manual-clock.js";
import {
  AgentCapability,
  AgentToServerFlag,
  agentDescription,
  instanceUidToString,
  newInstanceUid,
  ServerToAgentFlag,
} from "../../../src/wire/index.js";

const http: CoreConnection = {
  transport: "http",
  principal: undefined,
  remoteAddress: "1.2.3.4",
  channel: undefined,
  endpoint: "http://x/v1/opamp",
};

const CAPS =
  AgentCapability.ReportsStatus |
  AgentCapability.AcceptsRemoteConfig |
  AgentCapability.ReportsRemoteConfig |
  AgentCapability.AcceptsPackages |
  AgentCapability.ReportsPackageStatuses;

function setup(extra: Partial<OpAMPServerOptions> = {}) {
  const clock = new ManualClock(1_000_000);
  const events = new EventEmitter<ServerEvents>();
  const store = new InMemoryServerStore();
  const options = resolveServerOptions({ allowAnonymous: true, clock, ...extra } as OpAMPServerOptions);
  const core = new ServerCore(options, store, events);
  core.start();
  return { clock, events, core, store };
}

type Init = Parameters<typeof create<typeof AgentToServerSchema>>[1];

async function send(core: ServerCore, init: Init) {
  return fromBinary(ServerToAgentSchema, await core.handleMessage(http, create(AgentToServerSchema, init)));
}

/** An HTTP agent that numbers its messages. */
function agent(core: ServerCore, capabilities = CAPS) {
  const uid = newInstanceUid();
  let seq = 0n;
  return {
    uid,
    poll: (init: Init = {}) => send(core, { instanceUid: uid, sequenceNum: seq++, capabilities, ...init }),
    hello: () =>
      send(core, { instanceUid: uid, sequenceNum: seq++, capabilities, agentDescription: agentDescription({}) }),
  };
}

describe("ServerCore state (review)", () => {
  it("re-sends the desired config when the agent later reports another hash (spec MUST)", async () => {
    const { core } = setup();
    const a = agent(core);
    await a.hello();
    const { hash } = await setRemoteConfig(core, () => true, { "c.yaml": "v: 1" });
    expect((await a.poll()).remoteConfig?.configHash).toEqual(hash);
    // Not again while nothing new is reported.
    expect((await a.poll()).remoteConfig).toBeUndefined();
    // The agent says it is applying ours: no resend.
    const applying = { lastRemoteConfigHash: hash, status: RemoteConfigStatuses.RemoteConfigStatuses_APPLYING };
    expect((await a.poll({ remoteConfigStatus: applying })).remoteConfig).toBeUndefined();
    // It then reports another hash (fell back to a local config): ours goes out again.
    const other = {
      lastRemoteConfigHash: new Uint8Array([9, 9]),
      status: RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
    };
    expect((await a.poll({ remoteConfigStatus: other })).remoteConfig?.configHash).toEqual(hash);
    // …once.
    expect((await a.poll()).remoteConfig).toBeUndefined();
  });

  it("re-sends offered packages when the agent reports another all-packages hash", async () => {
    const { core } = setup();
    const a = agent(core);
    await a.hello();
    await offerPackages(core, () => true, { packages: { p: { version: "1" } } });
    const first = await a.poll();
    const hash = first.packagesAvailable?.allPackagesHash;
    expect(hash?.length).toBeGreaterThan(0);
    expect((await a.poll()).packagesAvailable).toBeUndefined();
    const other = await a.poll({ packageStatuses: { serverProvidedAllPackagesHash: new Uint8Array([1]) } });
    expect(other.packagesAvailable?.allPackagesHash).toEqual(hash);
  });

  it("keeps the desired config for the next poll when a CSR refusal turns the reply into an error", async () => {
    const { core } = setup({ hooks: { onCertificateRequest: async () => undefined } });
    const a = agent(core, CAPS | AgentCapability.AcceptsOpAMPConnectionSettings);
    await a.hello();
    const { hash } = await setRemoteConfig(core, () => true, { "c.yaml": "v: 2" });
    const refused = await a.poll({
      connectionSettingsRequest: { opamp: { certificateRequest: { csr: new Uint8Array([1, 2, 3]) } } },
    });
    expect(refused.errorResponse?.type).toBe(ServerErrorResponseType.ServerErrorResponseType_BadRequest);
    expect(refused.remoteConfig).toBeUndefined();
    // The config did not go out, so the next reply must carry it.
    expect((await a.poll()).remoteConfig?.configHash).toEqual(hash);
  });

  it("emits agentConnected once when two first messages of one agent race", async () => {
    const { core, events } = setup();
    let connected = 0;
    events.on("agentConnected", () => connected++);
    const uid = newInstanceUid();
    const msg = { instanceUid: uid, capabilities: 1n, agentDescription: agentDescription({}) };
    const [one, two] = await Promise.all([send(core, msg), send(core, msg)]);
    expect(one.instanceUid).toEqual(uid);
    expect(two.instanceUid).toEqual(uid);
    expect(connected).toBe(1);
    expect(core.agents.size).toBe(1);
  });

  it("bounds the available-components cache by bytes (distinct hashes cannot grow memory without end)", async () => {
    const maxComponentCacheBytes = 64 * 1024;
    const { core } = setup({ limits: { maxComponentCacheBytes } });
    const caps = AgentCapability.ReportsStatus | AgentCapability.ReportsAvailableComponents;
    // About 1 KiB encoded per set.
    const components = {
      receivers: {
        metadata: [
          { key: "code.namespace", value: { value: { case: "stringValue" as const, value: "x".repeat(1000) } } },
        ],
      },
    };
    const first = new Uint8Array([0, 0, 0]);
    await send(core, {
      instanceUid: newInstanceUid(),
      capabilities: caps,
      agentDescription: agentDescription({}),
      availableComponents: { hash: first, components },
    });
    // Many agents, each with its own components hash.
    for (let i = 1; i <= 200; i++) {
      await send(core, {
        instanceUid: newInstanceUid(),
        capabilities: caps,
        agentDescription: agentDescription({}),
        availableComponents: { hash: new Uint8Array([1, i >> 8, i & 255]), components },
      });
      expect(core.tables.components.cacheBytes).toBeLessThanOrEqual(maxComponentCacheBytes);
    }
    expect(core.tables.components.cacheSize).toBeGreaterThan(10);
    expect(core.tables.components.cacheSize).toBeLessThan(64);
    // The oldest set was dropped from the cache: an agent naming only its hash is asked.
    const late = await send(core, {
      instanceUid: newInstanceUid(),
      capabilities: caps,
      agentDescription: agentDescription({}),
      availableComponents: { hash: first },
    });
    expect(late.flags & ServerToAgentFlag.ReportAvailableComponents).toBe(ServerToAgentFlag.ReportAvailableComponents);
    // A recent one is still known.
    const recent = await send(core, {
      instanceUid: newInstanceUid(),
      capabilities: caps,
      agentDescription: agentDescription({}),
      availableComponents: { hash: new Uint8Array([1, 0, 200]) },
    });
    expect(recent.flags & ServerToAgentFlag.ReportAvailableComponents).toBe(0n);
  });

  it("never caches a component set larger than the whole cache", async () => {
    const { core } = setup({ limits: { maxComponentCacheBytes: 4096 } });
    const caps = AgentCapability.ReportsStatus | AgentCapability.ReportsAvailableComponents;
    const hash = new Uint8Array([9]);
    const big = {
      receivers: {
        metadata: [{ key: "k", value: { value: { case: "stringValue" as const, value: "y".repeat(8000) } } }],
      },
    };
    await send(core, {
      instanceUid: newInstanceUid(),
      capabilities: caps,
      agentDescription: agentDescription({}),
      availableComponents: { hash, components: big },
    });
    expect(core.tables.components.cacheSize).toBe(0);
    expect(core.tables.components.cacheBytes).toBe(0);
  });

  it("records connection-settings and package deliveries from the agent's status reports", async () => {
    const { core, store } = setup();
    const a = agent(core, AgentCapability.ReportsStatus | AgentCapability.ReportsConnectionSettingsStatus);
    await a.hello();
    const hash = new Uint8Array([4, 2]);
    await a.poll({
      connectionSettingsStatus: {
        lastConnectionSettingsHash: hash,
        status: ConnectionSettingsStatuses.ConnectionSettingsStatuses_APPLYING,
      },
    });
    await a.poll({
      connectionSettingsStatus: {
        lastConnectionSettingsHash: hash,
        status: ConnectionSettingsStatuses.ConnectionSettingsStatuses_FAILED,
        errorMessage: "bad cert",
      },
    });
    const packagesHash = new Uint8Array([7]);
    const installing = PackageStatusEnum.PackageStatusEnum_Installing;
    await a.poll({
      packageStatuses: {
        serverProvidedAllPackagesHash: packagesHash,
        packages: { p: { name: "p", status: installing } },
      },
    });
    await a.poll({
      packageStatuses: { serverProvidedAllPackagesHash: packagesHash, packages: { p: { name: "p" } } }, // Installed
    });
    await core.stop(); // waits for the store writes
    const deliveries = await store.listDeliveries(instanceUidToString(a.uid));
    const settings = deliveries.find((d) => d.kind === "connectionSettings");
    expect(settings?.hash).toEqual(hash);
    expect(settings?.history.map((h) => h.status)).toEqual(["applying", "failed"]);
    expect(settings?.history[1]?.errorMessage).toBe("bad cert");
    const packages = deliveries.find((d) => d.kind === "packages");
    expect(packages?.hash).toEqual(packagesHash);
    expect(packages?.history.map((h) => h.status)).toEqual(["applying", "applied"]);
  });

  it("does not hand out a connected agent's UID from the newInstanceUid hook", async () => {
    const existing = newInstanceUid();
    const { core, events } = setup({ hooks: { newInstanceUid: () => existing } });
    const errors: string[] = [];
    events.on("error", (e) => errors.push(e.code));
    await send(core, { instanceUid: existing, capabilities: 1n, agentDescription: agentDescription({}) });
    const asking = newInstanceUid();
    const reply = await send(core, {
      instanceUid: asking,
      capabilities: 1n,
      agentDescription: agentDescription({}),
      flags: AgentToServerFlag.RequestInstanceUid,
    });
    expect(reply.agentIdentification).toBeUndefined();
    expect(errors).toEqual(["invalid_argument"]);
    expect(core.agents.get(instanceUidToString(existing))?.instanceUid).toEqual(existing);
    expect(core.agents.get(instanceUidToString(asking))?.instanceUid).toEqual(asking);
  });

  it("drops an HTTP agent given a new UID that never polls again (found by the fuzzer, seed 511675461)", async () => {
    const { core, clock, events } = setup();
    const gone: string[] = [];
    events.on("agentDisconnected", (a, reason) => gone.push(`${a.id} ${reason}`));
    const reply = await send(core, {
      instanceUid: newInstanceUid(),
      capabilities: 1n,
      agentDescription: agentDescription({}),
      flags: AgentToServerFlag.RequestInstanceUid,
    });
    const assigned = instanceUidToString(reply.agentIdentification!.newInstanceUid);
    expect([...core.agents.keys()]).toEqual([assigned]);
    // It never comes back, under either UID: the sweep finds it silent and drops it.
    clock.advance(core.options.httpAgentTimeoutMs + core.options.sweepIntervalMs);
    expect(gone).toEqual([`${assigned} heartbeat_timeout`]);
    expect(core.agents.size).toBe(0);
  });

  it("does not bring an agent's old UID back into the store when it is reassigned mid-write", async () => {
    const clock = new ManualClock(1_000_000);
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    class SlowStore extends InMemoryServerStore {
      override async putAgent(agent: Parameters<InMemoryServerStore["putAgent"]>[0]): Promise<void> {
        await gate;
        return super.putAgent(agent);
      }
    }
    const store = new SlowStore();
    const core = new ServerCore(resolveServerOptions({ allowAnonymous: true, clock }), store, new EventEmitter());
    core.start();
    const uid = newInstanceUid();
    await send(core, { instanceUid: uid, capabilities: 1n, agentDescription: agentDescription({}) });
    core.flush(); // the write of the old UID is now in flight
    const record = core.agents.get(instanceUidToString(uid))!;
    const next = newInstanceUid();
    core.rekey(record, next);
    release();
    await core.stop();
    expect(await store.getAgent(instanceUidToString(uid))).toBeUndefined();
    expect(await store.getAgent(instanceUidToString(next))).toBeDefined();
  });

  it("keeps no reference to an agent's previous WebSocket under the newest-wins policy", async () => {
    const { core } = setup();
    const channel = () => ({ agents: new Set<AgentRecord>(), closed: false, send: () => true });
    const first = { ...http, transport: "websocket" as const, channel: channel() };
    const second = { ...http, transport: "websocket" as const, channel: channel() };
    const uid = newInstanceUid();
    const msg = (seq: bigint) =>
      create(AgentToServerSchema, {
        instanceUid: uid,
        sequenceNum: seq,
        capabilities: 1n,
        agentDescription: agentDescription({}),
      });
    await core.handleMessage(first, msg(0n));
    await core.handleMessage(second, msg(1n));
    const record = core.agents.get(instanceUidToString(uid))!;
    expect(record.channel).toBe(second.channel);
    expect(record.previousChannel).toBeUndefined();
  });
});
