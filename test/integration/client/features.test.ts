/**
 * Custom messages, available components, restart command and connection settings over
 * both transports.
 */
import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MemoryClientStateStore } from "../../../src/client/state-store.js";
import {
  AvailableComponentsSchema,
  ComponentDetailsSchema,
  ConnectionSettingsOffersSchema,
  ConnectionSettingsStatuses,
  CustomMessageSchema,
  HeaderSchema,
  HeadersSchema,
  OpAMPConnectionSettingsSchema,
  ServerToAgentCommandSchema,
  ServerToAgentSchema,
  TLSCertificateSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import { agentDescription } from "../../../src/wire/agent-description.js";
import { AgentCapability, hasBit, ServerToAgentFlag } from "../../../src/wire/capabilities.js";
import { FakeServer } from "./fake-server.js";
import { eventWhere, makeClient, nextEvent, settle } from "./helpers.js";

const text = (value: string) => new TextEncoder().encode(value);

describe.each(["ws", "http"] as const)("client features over %s", (kind) => {
  let server: FakeServer;
  beforeEach(async () => {
    server = await FakeServer.start();
  });
  afterEach(async () => {
    await server.close();
  });

  it("sends custom messages one per message, in order, and delivers announced ones to the hook", async () => {
    const got: string[] = [];
    let delivered!: () => void;
    const deliveredOnce = new Promise<void>((resolve) => {
      delivered = resolve;
    });
    const { client } = makeClient(server, kind, {
      agent: { customCapabilities: ["io.example.pause"] },
      hooks: {
        onCustomMessage: async (m) => {
          got.push(`${m.capability}/${m.type}`);
          delivered();
        },
      },
    });
    await client.start();
    const first = (await server.waitFor()).message;
    expect(first.customCapabilities?.capabilities).toEqual(["io.example.pause"]);
    await nextEvent(client, "message");
    await Promise.all(
      ["a", "b", "c"].map((type) =>
        client.sendCustomMessage({ capability: "io.example.pause", type, data: text(type) }),
      ),
    );
    await server.waitFor((r) => r.message.customMessage?.type === "c");
    const customs = server.received
      .filter((r) => r.message.customMessage !== undefined)
      .map((r) => r.message.customMessage?.type);
    expect(customs).toEqual(["a", "b", "c"]);
    server.push(
      create(ServerToAgentSchema, {
        customMessage: create(CustomMessageSchema, { capability: "io.other", type: "x" }),
      }),
    );
    server.push(
      create(ServerToAgentSchema, {
        customMessage: create(CustomMessageSchema, { capability: "io.example.pause", type: "resume" }),
      }),
    );
    if (kind === "http") {
      await client.sendCustomMessage({ capability: "io.example.pause", type: "poll1", data: text("") });
      await client.sendCustomMessage({ capability: "io.example.pause", type: "poll2", data: text("") });
    }
    await deliveredOnce;
    expect(got).toEqual(["io.example.pause/resume"]);
    await client.stop();
  });

  it("reports available components by hash, and in full when the server asks", async () => {
    const { client } = makeClient(server, kind);
    await client.start();
    await nextEvent(client, "message");
    const components = create(AvailableComponentsSchema, {
      hash: new Uint8Array([4, 2]),
      components: { receivers: create(ComponentDetailsSchema, {}) },
    });
    const hashOnly = server.next((r) => r.message.availableComponents !== undefined);
    server.script = ({ message }) =>
      create(ServerToAgentSchema, {
        instanceUid: message.instanceUid,
        flags:
          message.availableComponents !== undefined && Object.keys(message.availableComponents.components).length === 0
            ? ServerToAgentFlag.ReportAvailableComponents
            : 0n,
      });
    const full = server.next((r) => Object.keys(r.message.availableComponents?.components ?? {}).length > 0);
    client.setAvailableComponents(components);
    const first = (await hashOnly).message;
    expect(first.availableComponents?.hash).toEqual(new Uint8Array([4, 2]));
    expect(Object.keys(first.availableComponents?.components ?? {})).toEqual([]);
    expect(hasBit(first.capabilities, AgentCapability.ReportsAvailableComponents)).toBe(true);
    if (kind === "http") {
      await nextEvent(client, "message");
      client.setCustomCapabilities(["io.example.poke"]);
    }
    expect(Object.keys((await full).message.availableComponents?.components ?? {})).toEqual(["receivers"]);
    await client.stop();
  });

  it("hands a restart command to the hook and ignores the rest of that message", async () => {
    let restarts = 0;
    const configs: unknown[] = [];
    const { client } = makeClient(server, kind, {
      hooks: {
        onRestart: async () => {
          restarts += 1;
        },
        onRemoteConfig: async (o) => {
          configs.push(o);
          return undefined;
        },
      },
    });
    server.queued.push(
      create(ServerToAgentSchema, {
        command: create(ServerToAgentCommandSchema, {}),
        flags: ServerToAgentFlag.ReportFullState,
      }),
    );
    const answered = eventWhere(client, "message", (m) => m.command !== undefined);
    await client.start();
    expect(hasBit((await server.waitFor()).message.capabilities, AgentCapability.AcceptsRestartCommand)).toBe(true);
    await answered;
    await settle();
    expect(restarts).toBe(1);
    await client.stop();
  });

  it("moves to offered headers after verifying them, and persists them", async () => {
    const store = new MemoryClientStateStore();
    const offerHash = new Uint8Array([5, 5]);
    server.script = ({ message, headers }) =>
      create(ServerToAgentSchema, {
        instanceUid: message.instanceUid,
        ...(headers.authorization === "Bearer enrollment"
          ? {
              connectionSettings: create(ConnectionSettingsOffersSchema, {
                hash: offerHash,
                opamp: create(OpAMPConnectionSettingsSchema, {
                  headers: create(HeadersSchema, {
                    headers: [create(HeaderSchema, { key: "Authorization", value: "Bearer agent-key" })],
                  }),
                }),
              }),
            }
          : {}),
      });
    const { client } = makeClient(server, kind, {
      transport: { headers: { Authorization: "Bearer enrollment" } },
      storage: { state: store },
      hooks: { onOpampConnectionSettings: async () => true },
    });
    const committed = nextEvent(client, "connectionSettings");
    await client.start();
    expect((await committed)[0].headers).toEqual([{ name: "Authorization", value: "Bearer agent-key" }]);
    const applied = await server.waitFor(
      (r) =>
        r.message.connectionSettingsStatus?.status === ConnectionSettingsStatuses.ConnectionSettingsStatuses_APPLIED,
    );
    expect(applied.headers.authorization).toBe("Bearer agent-key");
    expect(applied.message.connectionSettingsStatus?.lastConnectionSettingsHash).toEqual(offerHash);
    expect(server.received.some((r) => r.message.agentDisconnect !== undefined)).toBe(true);
    await client.stop();
    expect((await store.load())?.connectionSettings?.headers).toEqual([
      { name: "Authorization", value: "Bearer agent-key" },
    ]);

    // A restarted agent connects with the per-agent key straight away.
    const again = makeClient(server, kind, {
      transport: { headers: { Authorization: "Bearer enrollment" } },
      storage: { state: store },
      hooks: { onOpampConnectionSettings: async () => true },
    });
    const before = server.received.length;
    await again.client.start();
    expect((await server.waitFor(() => true, before)).headers.authorization).toBe("Bearer agent-key");
    await again.client.stop();
  });

  it("rolls back offered settings that fail to connect and reports FAILED", async () => {
    server.script = ({ message }) =>
      create(ServerToAgentSchema, {
        instanceUid: message.instanceUid,
        connectionSettings: create(ConnectionSettingsOffersSchema, {
          hash: new Uint8Array([6]),
          opamp: create(OpAMPConnectionSettingsSchema, {
            headers: create(HeadersSchema, {
              headers: [create(HeaderSchema, { key: "Authorization", value: "Bearer bad" })],
            }),
          }),
        }),
      });
    const { client, clock } = makeClient(server, kind, {
      transport: { headers: { Authorization: "Bearer good" } },
      hooks: { onOpampConnectionSettings: async () => true },
    });
    const failedStatus = eventWhere(
      client,
      "connectionSettingsStatus",
      (s) => s.status === ConnectionSettingsStatuses.ConnectionSettingsStatuses_FAILED,
    );
    await client.start();
    await eventWhere(
      client,
      "connectionSettingsStatus",
      (s) => s.status === ConnectionSettingsStatuses.ConnectionSettingsStatuses_APPLYING,
    );
    server.refusals.push({ status: 401 });
    await failedStatus;
    clock.advance(1_000);
    const reported = await server.waitFor(
      (r) =>
        r.message.connectionSettingsStatus?.status === ConnectionSettingsStatuses.ConnectionSettingsStatuses_FAILED,
    );
    expect(reported.headers.authorization).toBe("Bearer good");
    await client.stop();
  });
});

describe("connection settings that change the transport", () => {
  let server: FakeServer;
  beforeEach(async () => {
    server = await FakeServer.start();
  });
  afterEach(async () => {
    await server.close();
  });

  it.each([
    ["ws", "http"],
    ["http", "ws"],
  ] as const)("moves from %s to %s after agent_disconnect and reports APPLIED there", async (from, to) => {
    server.script = ({ message, transport }) =>
      create(ServerToAgentSchema, {
        instanceUid: message.instanceUid,
        ...(transport === from
          ? {
              connectionSettings: create(ConnectionSettingsOffersSchema, {
                hash: new Uint8Array([7]),
                opamp: create(OpAMPConnectionSettingsSchema, { destinationEndpoint: server.url(to) }),
              }),
            }
          : {}),
      });
    const { client } = makeClient(server, from, {
      agent: { description: agentDescription({ identifying: { "service.name": "mover" } }) },
      hooks: { onOpampConnectionSettings: async () => true },
    });
    const committed = nextEvent(client, "connectionSettings");
    await client.start();
    expect((await committed)[0].endpoint).toBe(server.url(to));
    const applied = await server.waitFor(
      (r) =>
        r.message.connectionSettingsStatus?.status === ConnectionSettingsStatuses.ConnectionSettingsStatuses_APPLIED,
    );
    expect(applied.transport).toBe(to);
    // The new endpoint may be another server: its first message carries the full state.
    const firstThere = server.received.find((r) => r.transport === to);
    expect(firstThere?.message.agentDescription).toBeDefined();
    const goodbye = server.received.find((r) => r.message.agentDisconnect !== undefined);
    expect(goodbye?.transport).toBe(from);
    await client.stop();
    expect(server.received.at(-1)?.transport).toBe(to);
  });
});

describe("client-initiated certificate request (CSR flow) over ws", () => {
  it("sends the CSR and pairs the issued certificate, which carries no key, with the CSR's key", async () => {
    const server = await FakeServer.start();
    const csr = text("-----BEGIN CERTIFICATE REQUEST-----");
    const key = text("-----BEGIN PRIVATE KEY-----");
    const cert = text("-----BEGIN CERTIFICATE-----");
    server.script = ({ message }) =>
      create(ServerToAgentSchema, {
        instanceUid: message.instanceUid,
        ...(message.connectionSettingsRequest === undefined
          ? {}
          : {
              connectionSettings: create(ConnectionSettingsOffersSchema, {
                hash: new Uint8Array([8]),
                // spec: the server issues the certificate and sends no private_key.
                opamp: create(OpAMPConnectionSettingsSchema, { certificate: create(TLSCertificateSchema, { cert }) }),
              }),
            }),
      });
    const { client } = makeClient(server, "ws", { hooks: { onOpampConnectionSettings: async () => true } });
    const committed = nextEvent(client, "connectionSettings");
    await client.start();
    await nextEvent(client, "message");
    client.requestCertificate(csr, key);
    const request = await server.waitFor((r) => r.message.connectionSettingsRequest !== undefined);
    expect(request.message.connectionSettingsRequest?.opamp?.certificateRequest?.csr).toEqual(csr);
    const [settings] = await committed;
    expect(settings.certificate?.cert).toEqual(cert);
    expect(settings.certificate?.privateKey).toEqual(key);
    await client.stop();
    await server.close();
  });
});

describe.each(["ws", "http"] as const)("committed connection settings after a restart over %s", (kind) => {
  it("reports the committed offer as APPLIED and ignores a re-offer of the same hash", async () => {
    const server = await FakeServer.start();
    const offerHash = new Uint8Array([7, 7]);
    const store = new MemoryClientStateStore({
      connectionSettings: {
        endpoint: server.url(kind),
        headers: [{ name: "Authorization", value: "Bearer agent-key" }],
        offerHash,
      },
    });
    // The server re-sends the offer it made before the restart (as it may while it has not
    // seen the agent report that hash).
    server.script = ({ message }) =>
      create(ServerToAgentSchema, {
        instanceUid: message.instanceUid,
        connectionSettings: create(ConnectionSettingsOffersSchema, {
          hash: offerHash,
          opamp: create(OpAMPConnectionSettingsSchema, {
            certificate: create(TLSCertificateSchema, { cert: text("cert") }),
          }),
        }),
      });
    let offered = 0;
    const { client } = makeClient(server, kind, {
      storage: { state: store },
      hooks: {
        onOpampConnectionSettings: async () => {
          offered++;
          return true;
        },
      },
    });
    const answered = nextEvent(client, "message");
    await client.start();
    const first = (await server.waitFor()).message;
    expect(first.connectionSettingsStatus?.status).toBe(ConnectionSettingsStatuses.ConnectionSettingsStatuses_APPLIED);
    expect(first.connectionSettingsStatus?.lastConnectionSettingsHash).toEqual(offerHash);
    await answered;
    await settle();
    expect(offered).toBe(0);
    expect(server.received.some((r) => r.message.agentDisconnect !== undefined)).toBe(false);
    await client.stop();
    await server.close();
  });
});
