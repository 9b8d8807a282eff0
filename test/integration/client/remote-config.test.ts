/**
 * Remote config over both transports: APPLYING → APPLIED | FAILED with the hash, a hash
 * already handled is not applied again (also across restarts), effective config follows.
 */
import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { RemoteConfigOffer } from "../../../src/client/hooks.js";
import { MemoryClientStateStore } from "../../../src/client/state-store.js";
import {
  type AgentConfigMap,
  AgentRemoteConfigSchema,
  RemoteConfigStatuses,
  ServerToAgentSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import { AgentCapability, hasBit } from "../../../src/wire/capabilities.js";
import { FakeServer } from "./fake-server.js";
import { eventWhere, makeClient, nextEvent, textConfig } from "./helpers.js";

const offer = (body: string, hash: number) =>
  create(AgentRemoteConfigSchema, {
    config: textConfig("collector.yaml", body),
    configHash: new Uint8Array([hash, hash]),
  });

describe.each(["ws", "http"] as const)("remote config over %s", (kind) => {
  let server: FakeServer;
  beforeEach(async () => {
    server = await FakeServer.start();
  });
  afterEach(async () => {
    await server.close();
  });

  it("applies a config once per hash and reports APPLYING, APPLIED and the new effective config", async () => {
    const applied: RemoteConfigOffer[] = [];
    let effective: AgentConfigMap = textConfig("collector.yaml", "local");
    const { client } = makeClient(server, kind, {
      hooks: {
        onRemoteConfig: async (o) => {
          applied.push(o);
          effective = o.config;
          return undefined;
        },
        getEffectiveConfig: async () => effective,
      },
    });
    const statuses: RemoteConfigStatuses[] = [];
    client.on("remoteConfigStatus", (s) => statuses.push(s.status));
    // Every answer carries the same config, as a server that does not track hashes would.
    server.script = ({ message }) =>
      create(ServerToAgentSchema, { instanceUid: message.instanceUid, remoteConfig: offer("remote", 7) });
    await client.start();
    const first = (await server.waitFor()).message;
    expect(hasBit(first.capabilities, AgentCapability.AcceptsRemoteConfig)).toBe(true);
    expect(hasBit(first.capabilities, AgentCapability.ReportsRemoteConfig)).toBe(true);
    const reported = await server.waitFor(
      (r) => r.message.remoteConfigStatus?.status === RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
    );
    expect(reported.message.remoteConfigStatus?.lastRemoteConfigHash).toEqual(new Uint8Array([7, 7]));
    await server.waitFor(
      (r) =>
        r.message.effectiveConfig?.configMap?.configMap["collector.yaml"] !== undefined &&
        new TextDecoder().decode(r.message.effectiveConfig.configMap.configMap["collector.yaml"]!.body) === "remote",
    );
    await client.idle();
    expect(applied).toHaveLength(1);
    expect(statuses).toEqual([
      RemoteConfigStatuses.RemoteConfigStatuses_APPLYING,
      RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
    ]);
    await client.stop();
  });

  it("reports FAILED with the hook's message and does not retry the same hash", async () => {
    let calls = 0;
    const { client } = makeClient(server, kind, {
      hooks: {
        onRemoteConfig: async () => {
          calls += 1;
          throw new Error("bad yaml at line 3");
        },
      },
    });
    const errors: string[] = [];
    client.on("error", (e) => errors.push(e.code));
    server.script = ({ message }) =>
      create(ServerToAgentSchema, { instanceUid: message.instanceUid, remoteConfig: offer("broken", 9) });
    await client.start();
    const failed = await server.waitFor(
      (r) => r.message.remoteConfigStatus?.status === RemoteConfigStatuses.RemoteConfigStatuses_FAILED,
    );
    expect(failed.message.remoteConfigStatus?.errorMessage).toContain("bad yaml");
    await client.idle();
    expect(calls).toBe(1);
    expect(errors).toContain("hook_failed");
    await client.stop();
  });

  it("applies a newer hash, and does not re-apply a persisted hash after a restart", async () => {
    const store = new MemoryClientStateStore();
    const seen: number[] = [];
    const hooks = {
      onRemoteConfig: async (o: RemoteConfigOffer) => {
        seen.push(o.hash[0]!);
        return { status: "applied" as const };
      },
    };
    let current = 1;
    server.script = ({ message }) =>
      create(ServerToAgentSchema, { instanceUid: message.instanceUid, remoteConfig: offer(`v${current}`, current) });
    const a = makeClient(server, kind, { hooks, storage: { state: store } });
    const appliedOne = eventWhere(
      a.client,
      "remoteConfigStatus",
      (s) => s.status === RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
    );
    await a.client.start();
    await appliedOne;
    current = 2;
    const appliedTwo = eventWhere(
      a.client,
      "remoteConfigStatus",
      (s) => s.status === RemoteConfigStatuses.RemoteConfigStatuses_APPLIED && s.lastRemoteConfigHash[0] === 2,
    );
    a.client.setCustomCapabilities(["io.example.poke"]); // makes the client send, so HTTP hears the server
    await appliedTwo;
    await a.client.stop();
    expect(seen).toEqual([1, 2]);

    const b = makeClient(server, kind, { hooks, storage: { state: store } });
    const before = server.received.length;
    const answered = nextEvent(b.client, "message");
    await b.client.start();
    await answered;
    const first = (await server.waitFor(() => true, before)).message;
    expect(first.remoteConfigStatus?.lastRemoteConfigHash).toEqual(new Uint8Array([2, 2]));
    expect(first.remoteConfigStatus?.status).toBe(RemoteConfigStatuses.RemoteConfigStatuses_APPLIED);
    await b.client.idle();
    await b.client.stop();
    expect(seen).toEqual([1, 2]);
  });
});
