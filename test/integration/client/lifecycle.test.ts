/**
 * Lifecycle guarantees over both transports: stop() aborts hooks and silences events,
 * nothing is dropped silently, start() is once only.
 */
import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AgentRemoteConfigSchema,
  RemoteConfigStatuses,
  ServerToAgentSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import { FakeServer } from "./fake-server.js";
import { makeClient, nextEvent, settle, textConfig } from "./helpers.js";

describe.each(["ws", "http"] as const)("client lifecycle over %s", (kind) => {
  let server: FakeServer;
  beforeEach(async () => {
    server = await FakeServer.start();
  });
  afterEach(async () => {
    await server.close();
  });

  it("aborts a running hook at stop and fires nothing after stop resolves", async () => {
    let aborted = false;
    let entered!: () => void;
    const inHook = new Promise<void>((resolve) => {
      entered = resolve;
    });
    const { client } = makeClient(server, kind, {
      hooks: {
        onRemoteConfig: ({ signal }) =>
          new Promise((_, reject) => {
            entered();
            signal.addEventListener("abort", () => {
              aborted = true;
              reject(signal.reason);
            });
          }),
      },
    });
    server.script = ({ message }) =>
      create(ServerToAgentSchema, {
        instanceUid: message.instanceUid,
        remoteConfig: create(AgentRemoteConfigSchema, {
          config: textConfig("a", "b"),
          configHash: new Uint8Array([1]),
        }),
      });
    const late: string[] = [];
    await client.start();
    await inHook;
    await client.stop();
    for (const event of ["error", "remoteConfigStatus", "stateChange", "message", "disconnect"] as const) {
      client.on(event, () => late.push(event));
    }
    await settle();
    expect(aborted).toBe(true);
    expect(late).toEqual([]);
    expect(server.received.at(-1)?.message.agentDisconnect).toBeDefined();
    // The interrupted apply was not recorded as FAILED.
    expect(
      server.received.some(
        (r) => r.message.remoteConfigStatus?.status === RemoteConfigStatuses.RemoteConfigStatuses_FAILED,
      ),
    ).toBe(false);
  });

  it("reports APPLIED together with the new effective config in one message", async () => {
    let effective = textConfig("c.yaml", "local");
    const { client } = makeClient(server, kind, {
      hooks: {
        onRemoteConfig: async ({ config }) => {
          effective = config;
          return undefined;
        },
        getEffectiveConfig: async () => effective,
      },
    });
    server.queued.push(
      create(ServerToAgentSchema, {
        remoteConfig: create(AgentRemoteConfigSchema, {
          config: textConfig("c.yaml", "remote"),
          configHash: new Uint8Array([3]),
        }),
      }),
    );
    await client.start();
    const applied = await server.waitFor(
      (r) => r.message.remoteConfigStatus?.status === RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
    );
    const body = applied.message.effectiveConfig?.configMap?.configMap["c.yaml"]?.body;
    expect(new TextDecoder().decode(body)).toBe("remote");
    await client.stop();
  });

  it("rejects a custom message too large to send instead of dropping it silently", async () => {
    const { client } = makeClient(server, kind, {
      limits: { maxMessageBytes: 1024 },
      agent: { customCapabilities: ["io.x"] },
    });
    await client.start();
    await nextEvent(client, "message");
    await settle();
    const errors: string[] = [];
    client.on("error", (e) => errors.push(e.code));
    await expect(
      client.sendCustomMessage({ capability: "io.x", type: "big", data: new Uint8Array(4096) }),
    ).rejects.toMatchObject({ code: "message_too_large" });
    expect(errors).toContain("message_too_large");
    await client.stop();
  });

  it("refuses a custom message for a capability the agent did not announce", async () => {
    const { client } = makeClient(server, kind, { agent: { customCapabilities: ["io.x"] } });
    await client.start();
    await expect(
      client.sendCustomMessage({ capability: "io.y", type: "t", data: new Uint8Array() }),
    ).rejects.toMatchObject({
      code: "capability_missing",
    });
    await client.stop();
  });

  it("can be started once; setters need start()", async () => {
    const { client } = makeClient(server, kind);
    expect(() => client.setHealth({ healthy: true })).toThrow(/start\(\)/);
    await client.start();
    await expect(client.start()).rejects.toMatchObject({ code: "not_running" });
    await client.stop();
    await expect(client.start()).rejects.toMatchObject({ code: "not_running" });
  });

  it("rejects custom messages still waiting at stop with not_running", async () => {
    server.refusals.push({ status: 503, headers: { "Retry-After": "600" } });
    const { client } = makeClient(server, kind, { agent: { customCapabilities: ["io.x"] } });
    const failed = nextEvent(client, "connectFailed");
    await client.start();
    await failed;
    const pending = client.sendCustomMessage({ capability: "io.x", type: "t", data: new Uint8Array(1) });
    await client.stop();
    await expect(pending).rejects.toMatchObject({ code: "not_running" });
  });
});

describe("stop during start", () => {
  it("never connects when stop() is called before start() resolves", async () => {
    const server = await FakeServer.start();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const { client } = makeClient(server, "ws", {
      hooks: {
        getEffectiveConfig: async () => {
          await gate;
          return textConfig("a", "b");
        },
      },
    });
    const starting = client.start();
    const stopping = client.stop();
    release();
    await expect(starting).rejects.toMatchObject({ code: "aborted" });
    await stopping;
    await settle();
    expect(server.upgrades).toHaveLength(0);
    await server.close();
  });
});

describe("HTTP stop after a backoff", () => {
  it("still says goodbye when the retry in flight at stop() is answered", async () => {
    const server = await FakeServer.start();
    server.refusals.push({ status: 503, headers: { "Retry-After": "5" } });
    const { client, clock } = makeClient(server, "http");
    const failed = nextEvent(client, "connectFailed");
    await client.start();
    await failed;
    const retry = server.next();
    clock.advance(5_000); // the retry goes out…
    const stopping = client.stop(); // …and stop() is called while it is in flight
    await retry;
    await stopping;
    expect(server.received.at(-1)?.message.agentDisconnect).toBeDefined();
    await server.close();
  });
});
