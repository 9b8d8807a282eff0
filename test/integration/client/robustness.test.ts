/**
 * Robustness over both transports: hooks and listeners that throw, backoff under a server
 * that keeps refusing, half-duplex during a deliberate reconnect, stop() during start(),
 * and a repeated package offer that failed.
 */
import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MemoryPackageStore } from "../../../src/client/package-store.js";
import type { ClientState, ClientStateStore } from "../../../src/client/state-store.js";
import {
  AgentRemoteConfigSchema,
  ConnectionSettingsOffersSchema,
  CustomMessageSchema,
  DownloadableFileSchema,
  HeaderSchema,
  HeadersSchema,
  OpAMPConnectionSettingsSchema,
  PackageAvailableSchema,
  PackageStatusEnum,
  PackagesAvailableSchema,
  PackageType,
  RemoteConfigStatuses,
  ServerErrorResponseSchema,
  ServerErrorResponseType,
  ServerToAgentCommandSchema,
  ServerToAgentSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import type { ConnectionState } from "../../../src/transport/connection-state.js";
import { agentDescription } from "../../../src/wire/agent-description.js";
import { FakeServer } from "./fake-server.js";
import { eventWhere, makeClient, nextEvent, settle } from "./helpers.js";

const nextBackoff = (client: ReturnType<typeof makeClient>["client"]) =>
  eventWhere(client, "stateChange", (s) => s.t === "backoff");

function backoffWait(state: ConnectionState, now: number): number {
  if (state.t !== "backoff") throw new Error(`expected backoff, got ${state.t}`);
  return state.until - now;
}

describe.each(["ws", "http"] as const)("client robustness over %s", (kind) => {
  let server: FakeServer;
  beforeEach(async () => {
    server = await FakeServer.start();
  });
  afterEach(async () => {
    await server.close();
  });

  it("turns hooks that throw synchronously into hook_failed errors and keeps going", async () => {
    server.script = ({ message }) =>
      create(ServerToAgentSchema, {
        instanceUid: message.instanceUid,
        ...(message.sequenceNum === 0n ? { command: create(ServerToAgentCommandSchema, {}) } : {}),
        ...(message.sequenceNum === 1n
          ? { customMessage: create(CustomMessageSchema, { capability: "io.x", type: "t" }) }
          : {}),
      });
    const { client, clock } = makeClient(server, kind, {
      transport: { heartbeatIntervalMs: 10_000 },
      agent: { customCapabilities: ["io.x"] },
      hooks: {
        // Typed as returning a promise, but throws before it can return one.
        onRestart: () => {
          throw new Error("restart blew up");
        },
        onCustomMessage: () => {
          throw new Error("custom blew up");
        },
      },
    });
    const errors: string[] = [];
    client.on("error", (e) => errors.push(`${e.code}: ${e.message}`));
    const second = eventWhere(client, "error", () => errors.length === 2);
    const answered = nextEvent(client, "message");
    await client.start();
    await answered;
    await settle();
    const next = server.next();
    clock.advance(10_000);
    await next;
    await second;
    expect(errors).toEqual([expect.stringContaining("restart blew up"), expect.stringContaining("custom blew up")]);
    expect(errors.every((e) => e.startsWith("hook_failed"))).toBe(true);
    // Still alive: a change goes out.
    const described = server.next((r) => r.message.agentDescription !== undefined);
    client.setAgentDescription(agentDescription({ identifying: { "service.name": "alive" } }));
    await described;
    await client.stop();
  });

  it("reports a listener that throws as hook_failed and keeps exchanging messages", async () => {
    const { client, clock } = makeClient(server, kind, { transport: { heartbeatIntervalMs: 10_000 } });
    client.on("message", () => {
      throw new Error("listener bug");
    });
    const errors: string[] = [];
    client.on("error", (e) => errors.push(e.code));
    const reported = nextEvent(client, "error");
    await client.start();
    expect((await reported)[0]).toMatchObject({
      code: "hook_failed",
      message: expect.stringContaining("listener bug"),
    });
    await settle();
    // The next heartbeat / poll still goes out and is answered.
    const next = server.next();
    const answered = eventWhere(client, "error", () => errors.length === 2);
    clock.advance(10_000);
    await next;
    await answered;
    expect(client.state.t).toBe("connected");
    await client.stop();
  });

  it("keeps growing the backoff while the server answers UNAVAILABLE without RetryInfo", async () => {
    server.script = ({ message }) =>
      create(ServerToAgentSchema, {
        instanceUid: message.instanceUid,
        errorResponse: create(ServerErrorResponseSchema, {
          type: ServerErrorResponseType.ServerErrorResponseType_Unavailable,
        }),
      });
    const { client, clock } = makeClient(server, kind);
    const waits: number[] = [];
    let backoff = nextBackoff(client);
    await client.start();
    for (let i = 0; i < 3; i++) {
      const [state] = await backoff;
      const wait = backoffWait(state, clock.now());
      waits.push(wait);
      backoff = nextBackoff(client);
      clock.advance(wait);
    }
    // random() = 0.5 of windows 1 s, 2 s, 4 s: the answer must not reset the backoff.
    expect(waits).toEqual([500, 1_000, 2_000]);
    await client.stop();
  });

  it("stop() during start() waits for it, and nothing is stored after stop() resolves", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const saves: ClientState[] = [];
    const store: ClientStateStore = {
      load: async () => {
        await gate;
        return undefined;
      },
      save: async (state) => {
        saves.push(state);
      },
    };
    const { client } = makeClient(server, kind, { storage: { state: store } });
    const starting = client.start();
    let stopped = false;
    const stopping = client.stop().then(() => {
      stopped = true;
    });
    await settle();
    expect(stopped).toBe(false); // start() is still loading: stop() waits for it
    release();
    await expect(starting).rejects.toMatchObject({ code: "aborted" });
    await stopping;
    await settle();
    expect(saves).toEqual([]);
    expect(server.received).toHaveLength(0);
  });

  it("does not download again when the server repeats an offer that failed", async () => {
    const content = new Uint8Array([1, 2, 3]);
    server.files.set("pkg.tar", content);
    const offer = create(PackagesAvailableSchema, {
      allPackagesHash: new Uint8Array([42]),
      packages: {
        pkg: create(PackageAvailableSchema, {
          type: PackageType.PackageType_Addon,
          version: "1",
          hash: new Uint8Array([1]),
          file: create(DownloadableFileSchema, {
            downloadUrl: server.fileUrl("pkg.tar"),
            contentHash: new Uint8Array(createHash("sha256").update(content).digest()),
            signature: new Uint8Array([7]),
          }),
        }),
      },
    });
    // A sloppy server: the same offer in every answer.
    server.script = ({ message }) =>
      create(ServerToAgentSchema, { instanceUid: message.instanceUid, packagesAvailable: offer });
    const { client, clock } = makeClient(server, kind, {
      transport: { heartbeatIntervalMs: 10_000 },
      storage: { packages: new MemoryPackageStore() },
      hooks: {
        verifyPackageSignature: async () => {
          throw new Error("verifier crashed");
        },
      },
    });
    const hookError = eventWhere(client, "error", (e) => e.code === "hook_failed");
    await client.start();
    expect((await hookError)[0].message).toContain("verifier crashed");
    const failedAnswer = eventWhere(client, "message", () => failedSeen);
    let failedSeen = false;
    const failed = await server.waitFor(
      (r) => r.message.packageStatuses?.packages.pkg?.status === PackageStatusEnum.PackageStatusEnum_InstallFailed,
    );
    failedSeen = true;
    expect(failed.message.packageStatuses?.packages.pkg?.errorMessage).toContain("verifier crashed");
    await failedAnswer; // the answer to the FAILED report carries the same offer again
    await client.idle();
    // More answers carrying the same offer, from heartbeats (WS) or polls (HTTP).
    for (let i = 0; i < 2; i++) {
      await settle();
      const answer = nextEvent(client, "message");
      clock.advance(10_000);
      await answer;
      await client.idle();
    }
    expect(server.downloads).toHaveLength(1);
    await client.stop();
  });
});

describe("WebSocket loop avoidance", () => {
  it("does not answer server messages that change nothing on the agent", async () => {
    const server = await FakeServer.start();
    const config = create(AgentRemoteConfigSchema, { configHash: new Uint8Array([3]) });
    const settings = create(ConnectionSettingsOffersSchema, {
      hash: new Uint8Array([4]),
      opamp: create(OpAMPConnectionSettingsSchema, { heartbeatIntervalSeconds: 30n }),
    });
    server.script = ({ message }) =>
      create(ServerToAgentSchema, {
        instanceUid: message.instanceUid,
        remoteConfig: config,
        connectionSettings: settings,
      });
    const { client } = makeClient(server, "ws", {
      hooks: { onRemoteConfig: async () => undefined, onOpampConnectionSettings: async () => true },
    });
    await client.start();
    await server.waitFor(
      (r) => r.message.remoteConfigStatus?.status === RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
    );
    await client.idle();
    await settle();
    const count = server.received.length;
    let heard = 0;
    client.on("message", () => heard++);
    const all = eventWhere(client, "message", () => heard === 3);
    // The same offers again, plus messages that carry nothing for the agent.
    server.push(create(ServerToAgentSchema, { remoteConfig: config, connectionSettings: settings }));
    server.push(create(ServerToAgentSchema, { capabilities: 3n }));
    server.push(create(ServerToAgentSchema, {}));
    await all;
    await client.idle();
    await settle();
    expect(server.received.length).toBe(count);
    await client.stop();
    await server.close();
  });
});

describe("WebSocket accepted then dropped before any answer", () => {
  it("backs off instead of reconnecting in a tight loop", async () => {
    const server = await FakeServer.start();
    server.script = () => {
      server.closeSockets();
      return undefined;
    };
    const { client, clock } = makeClient(server, "ws");
    const waits: number[] = [];
    let backoff = nextBackoff(client);
    await client.start();
    for (let i = 0; i < 2; i++) {
      const [state] = await backoff;
      const wait = backoffWait(state, clock.now());
      waits.push(wait);
      backoff = nextBackoff(client);
      clock.advance(wait);
    }
    expect(waits).toEqual([500, 1_000]);
    await client.stop();
    await server.close();
  });
});

describe("HTTP deliberate reconnect", () => {
  it("keeps one request in flight while the goodbye before new settings is outstanding", async () => {
    const server = await FakeServer.start();
    server.script = ({ message, headers }) =>
      create(ServerToAgentSchema, {
        instanceUid: message.instanceUid,
        ...(headers.authorization === "Bearer old" && message.agentDisconnect === undefined
          ? {
              connectionSettings: create(ConnectionSettingsOffersSchema, {
                hash: new Uint8Array([9]),
                opamp: create(OpAMPConnectionSettingsSchema, {
                  headers: create(HeadersSchema, {
                    headers: [create(HeaderSchema, { key: "Authorization", value: "Bearer new" })],
                  }),
                }),
              }),
            }
          : {}),
      });
    // The goodbye is held: the client must wait for its answer before posting anything else.
    server.holdIf = (r) => r.message.agentDisconnect !== undefined;
    const { client } = makeClient(server, "http", {
      transport: { headers: { Authorization: "Bearer old" } },
      hooks: { onOpampConnectionSettings: async () => true },
    });
    await client.start();
    await server.waitFor((r) => r.message.agentDisconnect !== undefined);
    const requests = server.httpRequests.length;
    client.setAgentDescription(agentDescription({ identifying: { "service.name": "meanwhile" } }));
    await settle();
    await settle();
    expect(server.httpRequests.length).toBe(requests);
    expect(server.maxActivePosts).toBe(1);
    // The goodbye is answered; the change then goes out with the new settings.
    const described = server.next((r) => r.message.agentDescription !== undefined);
    server.holdIf = undefined;
    server.release();
    expect((await described).headers.authorization).toBe("Bearer new");
    expect(server.maxActivePosts).toBe(1);
    await client.stop();
    await server.close();
  });
});

describe("WebSocket stop during a deliberate reconnect", () => {
  it("resolves only after the old socket's close handshake, leaving no timer behind", async () => {
    const server = await FakeServer.start();
    const { client, clock } = makeClient(server, "ws", { hooks: { onOpampConnectionSettings: async () => true } });
    let stopping: Promise<void> | undefined;
    server.script = ({ message }) => {
      // The goodbye before the new settings: the client now waits for the close handshake.
      if (message.agentDisconnect !== undefined) stopping = client.stop();
      return create(ServerToAgentSchema, {
        instanceUid: message.instanceUid,
        connectionSettings: create(ConnectionSettingsOffersSchema, {
          hash: new Uint8Array([1]),
          opamp: create(OpAMPConnectionSettingsSchema, {
            headers: create(HeadersSchema, { headers: [create(HeaderSchema, { key: "X-Key", value: "new" })] }),
          }),
        }),
      });
    };
    await client.start();
    await server.waitFor((r) => r.message.agentDisconnect !== undefined);
    await stopping;
    expect(clock.pending()).toEqual([]);
    await server.close();
  });
});
