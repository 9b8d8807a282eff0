/**
 * Connection-settings offers over both transports: an agent that cannot report
 * connection-settings status gets a given hash once (also after a server restart), the
 * reconnect guard stops a loop the server would otherwise drive, the destination defaults
 * to the agent's own endpoint, and headers may be plain records.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { ServerToAgent } from "../../../src/gen/opamp/v1/opamp_pb.js";
import { type Agent, InMemoryServerStore, type OpAMPServer } from "../../../src/server/index.js";
import { AgentCapability, instanceUidToString, type OpampError } from "../../../src/wire/index.js";
import { startServer, stopAll } from "./helpers.js";
import { DEFAULT_CAPS, TestAgent, type Transport } from "./test-agent.js";

afterEach(stopAll);

const transports: Transport[] = ["websocket", "http"];

/** Like the Collector's opampsupervisor v0.149.0: accepts OpAMP settings, cannot report their status. */
const NO_STATUS_CAPS = DEFAULT_CAPS | AgentCapability.AcceptsOpAMPConnectionSettings;
const WITH_STATUS_CAPS = NO_STATUS_CAPS | AgentCapability.ReportsConnectionSettingsStatus;

/**
 * The enrollment pattern of the issue: the application offers the agent's key from
 * `agentConnected`, on every connection. Returns the offers' promises, to wait on.
 */
function offerOnEveryConnection(server: OpAMPServer, key: () => string, endpoint?: string): Promise<unknown>[] {
  const pushes: Promise<unknown>[] = [];
  server.on("agentConnected", (agent: Agent) => {
    const headers = { Authorization: `Bearer ${key()}` };
    pushes.push(
      server.offerConnectionSettings(agent.id, {
        opamp: endpoint === undefined ? { headers } : { headers, destinationEndpoint: endpoint },
      }),
    );
  });
  return pushes;
}

/**
 * One session of an agent: connects (WebSocket) or restarts its sequence (HTTP), reports
 * its full state, waits for the application's offer to be made, polls once more, and leaves
 * (closes the WebSocket; sends agent_disconnect over HTTP). Returns every message the server
 * sent in the session.
 */
async function session(
  transport: Transport,
  url: string,
  uid: Uint8Array,
  caps: bigint,
  pushes: Promise<unknown>[],
  init: Parameters<TestAgent["fullState"]>[0] = {},
): Promise<ServerToAgent[]> {
  const agent = await TestAgent.connect(transport, url, { uid, capabilities: caps });
  const before = pushes.length;
  await agent.send(agent.fullState(init));
  // The offer made from agentConnected: WS writes it at once, HTTP holds it for the next poll.
  await Promise.all(pushes.slice(before));
  // Messages of one WebSocket arrive in order: a pushed offer comes before this reply.
  await agent.send(agent.message());
  if (transport === "websocket") {
    agent.close();
    await agent.waitClosed();
  } else {
    // spec: an HTTP agent applying new OpAMP settings SHOULD say goodbye first.
    await agent.send(agent.message({ agentDisconnect: {} }));
  }
  return agent.received;
}

const offersIn = (messages: ServerToAgent[]) => messages.filter((m) => m.connectionSettings !== undefined);

describe.each(transports)("connection-settings offers over %s", (transport) => {
  it("an agent without ReportsConnectionSettingsStatus is offered a given hash once", async () => {
    const { server, url } = await startServer();
    const pushes = offerOnEveryConnection(server, () => "xag_1");
    const uid = (await TestAgent.connect("http", url)).uid; // just a fresh UID
    const first = offersIn(await session(transport, url, uid, NO_STATUS_CAPS, pushes));
    expect(first).toHaveLength(1);
    const offer = first[0]!.connectionSettings!;
    // The plain header record became the protobuf shape.
    expect(offer.opamp?.headers?.headers).toEqual([
      expect.objectContaining({ key: "Authorization", value: "Bearer xag_1" }),
    ]);
    // No destination given: the endpoint this agent connected to.
    expect(offer.opamp?.destinationEndpoint).toBe(transport === "websocket" ? url.replace(/^http/, "ws") : url);
    // It reconnects with the settings, and the application offers them again each time.
    for (let i = 0; i < 4; i++) {
      expect(offersIn(await session(transport, url, uid, NO_STATUS_CAPS, pushes))).toHaveLength(0);
    }
    expect(pushes.length).toBe(5);
    // The hash it is taken to hold is in the store, for a restarted server.
    const stored = await server.store.getDesired(instanceUidToString(uid));
    expect(stored?.sentConnectionSettingsHash).toEqual(offer.hash);
  });

  it("keeps the rule across a server restart with the same store, and sends new settings once", async () => {
    const store = new InMemoryServerStore();
    // One public URL for both servers (in the field a restarted server keeps its URL).
    const endpoint = "wss://opamp.example/v1/opamp";
    const a = await startServer({ store });
    const pushesA = offerOnEveryConnection(a.server, () => "xag_1", endpoint);
    const uid = (await TestAgent.connect("http", a.url)).uid;
    expect(offersIn(await session(transport, a.url, uid, NO_STATUS_CAPS, pushesA))).toHaveLength(1);
    await a.server.stop();

    let key = "xag_1";
    const b = await startServer({ store });
    const pushesB = offerOnEveryConnection(b.server, () => key, endpoint);
    // The desired settings are restored from the store, and so is the hash the agent holds.
    expect(offersIn(await session(transport, b.url, uid, NO_STATUS_CAPS, pushesB))).toHaveLength(0);
    // A new key (another hash) goes out once.
    key = "xag_2";
    const rotated = offersIn(await session(transport, b.url, uid, NO_STATUS_CAPS, pushesB));
    expect(rotated).toHaveLength(1);
    expect(rotated[0]!.connectionSettings!.opamp?.headers?.headers[0]?.value).toBe("Bearer xag_2");
    expect(offersIn(await session(transport, b.url, uid, NO_STATUS_CAPS, pushesB))).toHaveLength(0);
  });

  it("resends to an agent that reports another hash, and the reconnect guard stops the loop", async () => {
    const { server, url } = await startServer({ limits: { maxReconnectsPerWindow: 3, reconnectWindowMs: 60_000 } });
    const errors: OpampError[] = [];
    server.on("error", (e) => errors.push(e));
    const pushes = offerOnEveryConnection(server, () => "xag_1");
    const uid = (await TestAgent.connect("http", url)).uid;
    // A misbehaving agent: it reports the old settings' hash after every reconnect.
    const stale = { connectionSettingsStatus: { lastConnectionSettingsHash: new Uint8Array([1, 2, 3]) } };
    const counts: number[] = [];
    for (let i = 0; i < 6; i++) {
      counts.push(offersIn(await session(transport, url, uid, WITH_STATUS_CAPS, pushes, stale)).length);
    }
    // Sent on the first session and on each reconnect within the limit (it reports another
    // hash, so the spec says resend); from the fourth reconnect on, the guard holds it back.
    expect(counts).toEqual([1, 1, 1, 1, 0, 0]);
    const loops = errors.filter((e) => e.code === "limit_exceeded");
    expect(loops).toHaveLength(1);
    expect(loops[0]!.details.instanceUid).toBe(instanceUidToString(uid));
  });
});

describe.each(transports)("connection-settings offers left incomplete, over %s", (transport) => {
  it("fill in the server's heartbeat interval for agents that report heartbeats", async () => {
    const { server, url } = await startServer({ heartbeat: { intervalSeconds: 17 } });
    const offers = async (caps: bigint, heartbeatIntervalSeconds?: bigint) => {
      const agent = await TestAgent.connect(transport, url, { capabilities: caps });
      await agent.send(agent.fullState());
      const opamp = heartbeatIntervalSeconds === undefined ? {} : { heartbeatIntervalSeconds };
      await server.offerConnectionSettings(agent.uid, { opamp: { ...opamp, headers: { A: "b" } } });
      const reply =
        transport === "websocket"
          ? await agent.next((m) => m.connectionSettings !== undefined)
          : await agent.send(agent.message());
      agent.close();
      return reply.connectionSettings?.opamp;
    };
    const heartbeats = NO_STATUS_CAPS | AgentCapability.ReportsHeartbeat;
    const filled = await offers(heartbeats);
    expect(filled?.heartbeatIntervalSeconds).toBe(17n);
    expect(filled?.destinationEndpoint).toBe(transport === "websocket" ? url.replace(/^http/, "ws") : url);
    expect((await offers(heartbeats, 5n))?.heartbeatIntervalSeconds).toBe(5n);
    expect((await offers(NO_STATUS_CAPS))?.heartbeatIntervalSeconds).toBe(0n);
  });
});

describe("connection-settings offer input", () => {
  it("accepts plain header records (arrays repeat the header) and refuses other shapes", async () => {
    const { server, url } = await startServer();
    const agent = await TestAgent.connect("websocket", url, { capabilities: NO_STATUS_CAPS });
    await agent.send(agent.fullState());
    await server.offerConnectionSettings(agent.uid, {
      opamp: {
        destinationEndpoint: "wss://next.example/v1/opamp",
        headers: { "X-Tag": ["a", "b"], Authorization: "k" },
      },
    });
    const offer = (await agent.next((m) => m.connectionSettings !== undefined)).connectionSettings!;
    expect(offer.opamp?.destinationEndpoint).toBe("wss://next.example/v1/opamp");
    expect(offer.opamp?.headers?.headers.map((h) => [h.key, h.value])).toEqual([
      ["X-Tag", "a"],
      ["X-Tag", "b"],
      ["Authorization", "k"],
    ]);

    const refuse = (headers: unknown) =>
      server.offerConnectionSettings(agent.uid, { opamp: { headers: headers as never } });
    await expect(refuse({ Authorization: 5 })).rejects.toMatchObject({
      code: "invalid_argument",
      message: expect.stringContaining(
        "opamp.headers.Authorization must be a string or an array of strings, got a number",
      ),
    });
    await expect(refuse("Bearer x")).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(refuse({ Authorization: "Bearer x\r\nX-Evil: 1" })).rejects.toMatchObject({
      code: "invalid_argument",
      message: expect.stringContaining("CR, LF or NUL"),
    });
    await expect(refuse({ "Bad Name": "x" })).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(refuse({ headers: [{ key: "a" }] })).rejects.toMatchObject({
      code: "invalid_argument",
      message: expect.stringContaining("opamp.headers.headers[0]"),
    });
    await expect(
      server.offerConnectionSettings(agent.uid, { ownMetrics: { headers: { "x y": "z" } } }),
    ).rejects.toMatchObject({ code: "invalid_argument" });
    // Nothing refused was stored or sent: the one good offer is the only desired settings.
    expect(offersIn(agent.received)).toHaveLength(1);
    agent.close();
  });
});
