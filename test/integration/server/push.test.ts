/**
 * Push APIs other than remote config, over both transports, plus desired state surviving
 * a restart through a shared store, UID assignment and per-message authorisation.
 */
import { afterEach, describe, expect, it } from "vitest";
import {
  AgentCapabilities,
  PackageType,
  RemoteConfigStatuses,
  ServerErrorResponseType,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import { InMemoryServerStore } from "../../../src/server/index.js";
import {
  AgentCapability,
  AgentToServerFlag,
  hasBit,
  instanceUidToString,
  ServerCapability,
  ServerToAgentFlag,
} from "../../../src/wire/index.js";
import { startServer, stopAll } from "./helpers.js";
import { DEFAULT_CAPS, TestAgent, type Transport, waitFor } from "./test-agent.js";

afterEach(stopAll);

const transports: Transport[] = ["websocket", "http"];

const ALL_CAPS =
  DEFAULT_CAPS |
  AgentCapability.AcceptsPackages |
  AgentCapability.ReportsPackageStatuses |
  AgentCapability.AcceptsOpAMPConnectionSettings |
  AgentCapability.AcceptsRestartCommand |
  AgentCapability.ReportsConnectionSettingsStatus;

/** The pushed message: read at once on WS, fetched with a poll on HTTP. */
async function receive(agent: TestAgent, has: (m: Awaited<ReturnType<TestAgent["next"]>>) => boolean) {
  if (agent.transport === "websocket") return agent.next(has);
  const reply = await agent.send(agent.message());
  expect(has(reply)).toBe(true);
  return reply;
}

describe.each(transports)("push APIs over %s", (transport) => {
  it("offers packages with an all_packages_hash, only to agents that accept packages", async () => {
    const { server, url } = await startServer();
    const agent = await TestAgent.connect(transport, url, { capabilities: ALL_CAPS });
    await agent.send(agent.fullState());
    await server.offerPackages(agent.uid, {
      packages: {
        "": {
          type: PackageType.PackageType_TopLevel,
          version: "1.2.3",
          hash: new Uint8Array([1]),
          file: { downloadUrl: "https://example.com/a.tgz" },
        },
      },
    });
    const msg = await receive(agent, (m) => m.packagesAvailable !== undefined);
    expect(msg.packagesAvailable?.allPackagesHash.length).toBe(32);
    expect(msg.packagesAvailable?.packages[""]?.version).toBe("1.2.3");
    const plain = await TestAgent.connect(transport, url);
    await plain.send(plain.fullState());
    await expect(server.offerPackages(plain.uid, { packages: {} })).rejects.toMatchObject({
      code: "capability_missing",
    });
    agent.close();
    plain.close();
  });

  it("offers connection settings, resent while the agent reports another hash", async () => {
    const { server, url } = await startServer();
    const agent = await TestAgent.connect(transport, url, { capabilities: ALL_CAPS });
    await agent.send(agent.fullState());
    await server.offerConnectionSettings(agent.uid, {
      opamp: {
        destinationEndpoint: "wss://new.example.com/v1/opamp",
        headers: { headers: [{ key: "authorization", value: "Bearer next" }] },
        heartbeatIntervalSeconds: 15n,
      },
    });
    const msg = await receive(agent, (m) => m.connectionSettings !== undefined);
    expect(msg.connectionSettings?.opamp?.headers?.headers[0]?.value).toBe("Bearer next");
    expect(msg.connectionSettings?.hash.length).toBe(32);
    // Without a matching status the offer is not repeated on every reply…
    expect((await agent.send(agent.message())).connectionSettings).toBeUndefined();
    // …but a full-state report with another hash (e.g. after a restart) gets it again.
    const again = await agent.send(
      agent.fullState({ connectionSettingsStatus: { lastConnectionSettingsHash: new Uint8Array([9]) } }),
    );
    expect(again.connectionSettings?.hash).toEqual(msg.connectionSettings?.hash);
    // An opamp offer needs AcceptsOpAMPConnectionSettings.
    const plain = await TestAgent.connect(transport, url);
    await plain.send(plain.fullState());
    await expect(
      server.offerConnectionSettings(plain.uid, { opamp: { destinationEndpoint: "x" } }),
    ).rejects.toMatchObject({
      code: "capability_missing",
    });
    agent.close();
    plain.close();
  });

  it("sends restart, custom messages and full-state requests", async () => {
    const { server, url } = await startServer();
    const agent = await TestAgent.connect(transport, url, { capabilities: ALL_CAPS });
    await agent.send(agent.fullState({ customCapabilities: { capabilities: ["io.example.ping"] } }));
    server.sendRestart(agent.uid);
    expect((await receive(agent, (m) => m.command !== undefined)).command?.type).toBe(0);
    server.sendCustomMessage(agent.uid, { capability: "io.example.ping", type: "ping", data: new Uint8Array([42]) });
    const custom = await receive(agent, (m) => m.customMessage !== undefined);
    expect(custom.customMessage?.type).toBe("ping");
    expect(() => server.sendCustomMessage(agent.uid, { capability: "io.other", type: "x" })).toThrow(
      expect.objectContaining({ code: "capability_missing" }),
    );
    const result = server.requestFullState(() => true);
    expect(result.sent.length).toBe(1);
    const flagged = await receive(agent, (m) => hasBit(m.flags, ServerToAgentFlag.ReportFullState));
    expect(flagged.instanceUid).toEqual(agent.uid);
    agent.close();
  });

  it("assigns a new instance UID on request and follows the agent to it", async () => {
    const { server, url } = await startServer();
    const agent = await TestAgent.connect(transport, url);
    const reply = await agent.send(agent.fullState({ flags: AgentToServerFlag.RequestInstanceUid }));
    const next = reply.agentIdentification?.newInstanceUid;
    expect(next?.length).toBe(16);
    expect(reply.instanceUid).toEqual(agent.uid); // spec: the reply still carries the old UID
    const oldId = instanceUidToString(agent.uid);
    agent.uid = next!;
    await agent.send(agent.message());
    expect(server.getAgent(next!)).toBeDefined();
    expect(server.getAgent(oldId)).toBeUndefined();
    expect(server.agents.size).toBe(1);
    // And the server may reassign on its own.
    const updated = waitFor(server, "agentUpdated", (_a, c) => c.includes("instanceUid"));
    const third = server.assignInstanceUid(next!);
    const pushed = await receive(agent, (m) => m.agentIdentification !== undefined);
    expect(pushed.agentIdentification?.newInstanceUid).toEqual(third);
    await updated;
    agent.close();
  });

  it("records what the agent reports, not 'offered', when a config it holds is pushed again", async () => {
    const { server, url } = await startServer();
    const agent = await TestAgent.connect(transport, url);
    await agent.send(agent.fullState());
    const config = { "a.yaml": "x: 1" };
    const { hash } = await server.setRemoteConfig(agent.uid, config);
    expect((await receive(agent, (m) => m.remoteConfig !== undefined)).remoteConfig?.configHash).toEqual(hash);
    await agent.send(
      agent.message({
        remoteConfigStatus: { lastRemoteConfigHash: hash, status: RemoteConfigStatuses.RemoteConfigStatuses_APPLIED },
      }),
    );
    // An application reconciling (after a restart, on a timer) pushes the same config again:
    // nothing is sent, and the history still ends with what the agent holds.
    await server.setRemoteConfig(agent.uid, config);
    expect((await agent.send(agent.message())).remoteConfig).toBeUndefined();
    const steps = async () => (await server.deliveries(agent.uid)).map((d) => d.history.map((h) => h.status));
    expect(await steps()).toEqual([["offered", "applied", "applied"]]);
    // A config it does not hold is offered as before.
    const next = await server.setRemoteConfig(agent.uid, { "a.yaml": "x: 2" });
    expect((await receive(agent, (m) => m.remoteConfig !== undefined)).remoteConfig?.configHash).toEqual(next.hash);
    expect((await steps())[1]).toEqual(["offered"]);
    agent.close();
  });

  it("resends the desired config after a restart of a server sharing a durable store", async () => {
    const store = new InMemoryServerStore();
    const first = await startServer({ store });
    const agent = await TestAgent.connect(transport, first.url);
    await agent.send(agent.fullState());
    const { hash } = await first.server.setRemoteConfig(agent.uid, { "a.yaml": "x: 1" });
    await first.server.stop();

    const second = await startServer({ store });
    const again = await TestAgent.connect(transport, second.url, { uid: agent.uid });
    again.seq = agent.seq;
    // The agent reconnects reporting an older config: it gets the desired one again.
    const reply = await again.send(
      again.fullState({
        remoteConfigStatus: {
          lastRemoteConfigHash: new Uint8Array([1, 2, 3]),
          status: RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
        },
      }),
    );
    expect(reply.remoteConfig?.configHash).toEqual(hash);
    expect(second.server.getAgent(agent.uid)?.desiredConfigHash).toEqual(hash);
    const history = await second.server.deliveries(agent.uid);
    expect(history[0]?.history[0]?.status).toBe("offered");
    again.close();
  });
});

describe.each(transports)("certificate requests over %s", (transport) => {
  it("answers a CSR through the hook, and BadRequest when the hook refuses", async () => {
    const { url } = await startServer({
      hooks: {
        onCertificateRequest: async ({ csr, agent }) => {
          if (new TextDecoder().decode(csr) !== `csr-for-${agent.id}`) throw new Error("CSR does not name the agent");
          return { certificate: { cert: new TextEncoder().encode("signed"), caCert: new Uint8Array([1]) } };
        },
      },
    });
    const agent = await TestAgent.connect(transport, url, { capabilities: ALL_CAPS });
    const first = await agent.send(agent.fullState());
    expect(hasBit(first.capabilities, ServerCapability.AcceptsConnectionSettingsRequest)).toBe(true);
    const csr = (text: string) => ({ opamp: { certificateRequest: { csr: new TextEncoder().encode(text) } } });
    const answer = await agent.send(
      agent.message({ connectionSettingsRequest: csr(`csr-for-${instanceUidToString(agent.uid)}`) }),
    );
    expect(new TextDecoder().decode(answer.connectionSettings?.opamp?.certificate?.cert)).toBe("signed");
    expect(answer.connectionSettings?.opamp?.destinationEndpoint).toBe(agent.url);
    expect(answer.connectionSettings?.hash.length).toBe(32);
    const refused = await agent.send(agent.message({ connectionSettingsRequest: csr("someone else") }));
    expect(refused.errorResponse?.type).toBe(ServerErrorResponseType.ServerErrorResponseType_BadRequest);
    agent.close();
  });
});

describe("answering from a listener", () => {
  it("puts a push made inside a message listener into the reply to that HTTP poll", async () => {
    const { server, url } = await startServer();
    server.on("message", (agent, message) => {
      if (message.customMessage?.type === "ping") {
        server.sendCustomMessage(agent.id, { capability: "io.example.ping", type: "pong" });
      }
    });
    const agent = await TestAgent.connect("http", url);
    await agent.send(agent.fullState({ customCapabilities: { capabilities: ["io.example.ping"] } }));
    const reply = await agent.send(agent.message({ customMessage: { capability: "io.example.ping", type: "ping" } }));
    expect(reply.customMessage?.type).toBe("pong");
  });
});

describe.each(transports)("prepared configs over %s", (transport) => {
  it("delivers a prepared config pushed from agentConnected in the reply to the first message", async () => {
    const { server, url } = await startServer();
    const prepared = await server.prepareRemoteConfig({ "base.yaml": "level: info" });
    server.on("agentConnected", (agent) => {
      void server.setRemoteConfig(agent.id, prepared);
    });
    const agent = await TestAgent.connect(transport, url);
    // Both transports: the push rides in the reply, no separate message.
    const first = await agent.send(agent.fullState());
    expect(first.remoteConfig?.configHash).toEqual(prepared.hash);
    expect(agent.received.length).toBe(1);
    agent.close();
  });
});

describe("per-message authorisation and selections", () => {
  it("refuses messages the authorizeMessage hook rejects (WS 1008, HTTP 403)", async () => {
    const { url } = await startServer({
      hooks: {
        authorizeMessage: ({ message }) =>
          message.capabilities !== BigInt(AgentCapabilities.AgentCapabilities_ReportsStatus),
      },
    });
    const ws = await TestAgent.connect("websocket", url, { capabilities: AgentCapability.ReportsStatus });
    void ws.send(ws.fullState());
    expect((await ws.waitClosed()).code).toBe(1008);
    const http = await TestAgent.connect("http", url, { capabilities: AgentCapability.ReportsStatus });
    await expect(http.send(http.fullState())).rejects.toMatchObject({ status: 403 });
  });

  it("pushes one config to a selection, encoding it once", async () => {
    const { server, url } = await startServer();
    const agents = await Promise.all([0, 1, 2].map(() => TestAgent.connect("websocket", url)));
    for (const a of agents) await a.send(a.fullState());
    const http = await TestAgent.connect("http", url);
    await http.send(http.fullState());
    const result = await server.setRemoteConfig((a) => a.transport === "websocket", { "c.yaml": "shared" });
    expect(result.sent.length).toBe(3);
    const offers = await Promise.all(agents.map((a) => a.next((m) => m.remoteConfig !== undefined)));
    for (const o of offers) expect(o.remoteConfig?.configHash).toEqual(result.hash);
    // The HTTP agent was not selected.
    expect((await http.send(http.message())).remoteConfig).toBeUndefined();
    for (const a of agents) a.close();
  });
});
