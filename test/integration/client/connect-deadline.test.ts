/**
 * An endpoint that accepts TCP and never answers: the WebSocket opening handshake fails
 * with `timeout` after `transport.connectTimeoutMs` and backs off; a connection-settings
 * candidate pointing there is rolled back, also when it was persisted and is tried again
 * after a restart (over both transports: HTTP requests are bounded by responseTimeoutMs).
 */
import { once } from "node:events";
import { type AddressInfo, createServer, type Server, type Socket } from "node:net";
import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_RESPONSE_TIMEOUT_MS } from "../../../src/client/options.js";
import { MemoryClientStateStore } from "../../../src/client/state-store.js";
import {
  ConnectionSettingsOffersSchema,
  ConnectionSettingsStatuses,
  OpAMPConnectionSettingsSchema,
  ServerToAgentSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import { FakeServer } from "./fake-server.js";
import { eventWhere, makeClient, nextEvent, settle } from "./helpers.js";

/** Accepts TCP connections and never writes a byte. */
class BlackHole {
  readonly sockets: Socket[] = [];
  readonly #server: Server;
  #waiters: (() => void)[] = [];

  private constructor() {
    this.#server = createServer((socket) => {
      socket.on("error", () => undefined);
      this.sockets.push(socket);
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  static async start(): Promise<BlackHole> {
    const hole = new BlackHole();
    hole.#server.listen(0, "127.0.0.1");
    await once(hole.#server, "listening");
    return hole;
  }

  url(kind: "ws" | "http"): string {
    return `${kind}://127.0.0.1:${(this.#server.address() as AddressInfo).port}/v1/opamp`;
  }

  /** What makeClient reads from a server: its URL. */
  asTarget(): Pick<FakeServer, "url"> {
    return { url: (kind) => this.url(kind) };
  }

  /** Resolves once `count` connections were accepted in all. */
  async accepted(count: number): Promise<void> {
    while (this.sockets.length < count) await new Promise<void>((wake) => this.#waiters.push(wake));
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

const FAILED = ConnectionSettingsStatuses.ConnectionSettingsStatuses_FAILED;

describe("WebSocket opening handshake deadline", () => {
  let hole: BlackHole;
  beforeEach(async () => {
    hole = await BlackHole.start();
  });
  afterEach(async () => {
    await hole.close();
  });

  it("fails with timeout after DEFAULT_CONNECT_TIMEOUT_MS, backs off and tries again", async () => {
    const { client, clock } = makeClient(hole.asTarget(), "ws");
    const failed = nextEvent(client, "connectFailed");
    await client.start();
    await hole.accepted(1);
    expect(client.state.t).toBe("connecting");
    clock.advance(DEFAULT_CONNECT_TIMEOUT_MS - 1);
    await settle();
    expect(client.state.t).toBe("connecting");
    clock.advance(1);
    const [error] = await failed;
    expect(error.code).toBe("timeout");
    // random() = 0.5 and a first window of 1 s: the next attempt comes 500 ms later.
    expect(client.state).toMatchObject({ t: "backoff", until: clock.now() + 500, attempt: 1 });
    clock.advance(500);
    await hole.accepted(2);
    expect(client.state).toMatchObject({ t: "connecting", attempt: 2 });
    const second = nextEvent(client, "connectFailed");
    clock.advance(DEFAULT_CONNECT_TIMEOUT_MS);
    expect((await second)[0].code).toBe("timeout");
    // The backoff grows: the second window is 2 s.
    expect(client.state).toMatchObject({ t: "backoff", until: clock.now() + 1_000, attempt: 2 });
    await client.stop();
  });

  it("honours transport.connectTimeoutMs", async () => {
    const { client, clock } = makeClient(hole.asTarget(), "ws", {
      transport: { connectTimeoutMs: 2_000 },
    });
    const failed = nextEvent(client, "connectFailed");
    await client.start();
    await hole.accepted(1);
    clock.advance(2_000);
    expect((await failed)[0].code).toBe("timeout");
    await client.stop();
  });
});

describe.each(["ws", "http"] as const)("a connection-settings candidate that never connects over %s", (kind) => {
  let server: FakeServer;
  let hole: BlackHole;
  // The candidate fails by the handshake deadline (WS) or by the request deadline (HTTP).
  const deadline = kind === "ws" ? DEFAULT_CONNECT_TIMEOUT_MS : DEFAULT_RESPONSE_TIMEOUT_MS;
  beforeEach(async () => {
    server = await FakeServer.start();
    hole = await BlackHole.start();
  });
  afterEach(async () => {
    await hole.close();
    await server.close();
  });

  it("is rolled back after the deadline and FAILED is reported on the committed settings", async () => {
    const offerHash = new Uint8Array([0xde, 0xad]);
    server.script = ({ message }) =>
      create(ServerToAgentSchema, {
        instanceUid: message.instanceUid,
        ...(message.sequenceNum === 0n
          ? {
              connectionSettings: create(ConnectionSettingsOffersSchema, {
                hash: offerHash,
                opamp: create(OpAMPConnectionSettingsSchema, { destinationEndpoint: hole.url(kind) }),
              }),
            }
          : {}),
      });
    const store = new MemoryClientStateStore();
    const { client, clock } = makeClient(server, kind, {
      storage: { state: store },
      hooks: { onOpampConnectionSettings: async () => true },
    });
    const failedStatus = eventWhere(client, "connectionSettingsStatus", (s) => s.status === FAILED);
    await client.start();
    await hole.accepted(1);
    expect((await store.load())?.candidateConnectionSettings?.endpoint).toBe(hole.url(kind));
    clock.advance(deadline);
    const [status] = await failedStatus;
    expect(status.lastConnectionSettingsHash).toEqual(offerHash);
    expect(status.errorMessage).toMatch(/timeout|within/);
    const reported = server.waitFor((r) => r.message.connectionSettingsStatus?.status === FAILED);
    const reconnected = nextEvent(client, "connect");
    clock.advance(1_000);
    await reported;
    await reconnected;
    await client.stop();
    const stored = await store.load();
    expect(stored?.candidateConnectionSettings).toBeUndefined();
    expect(stored?.connectionSettings?.endpoint ?? server.url(kind)).toBe(server.url(kind));
  });

  it("is rolled back when a restart finds it persisted and tries it again", async () => {
    const offerHash = new Uint8Array([0xbe, 0xef]);
    const store = new MemoryClientStateStore();
    await store.save({
      connectionSettings: { endpoint: server.url(kind), headers: [] },
      candidateConnectionSettings: { endpoint: hole.url(kind), headers: [], offerHash },
    });
    const { client, clock } = makeClient(server, kind, {
      storage: { state: store },
      hooks: { onOpampConnectionSettings: async () => true },
    });
    const failedStatus = eventWhere(client, "connectionSettingsStatus", (s) => s.status === FAILED);
    await client.start();
    // The restart tries the persisted candidate first: the dead endpoint.
    await hole.accepted(1);
    expect(client.state.t).toBe("connecting");
    clock.advance(deadline);
    expect((await failedStatus)[0].lastConnectionSettingsHash).toEqual(offerHash);
    const reported = server.waitFor((r) => r.message.connectionSettingsStatus?.status === FAILED);
    clock.advance(1_000);
    expect((await reported).message.connectionSettingsStatus?.lastConnectionSettingsHash).toEqual(offerHash);
    await client.stop();
    expect((await store.load())?.candidateConnectionSettings).toBeUndefined();
    // The next restart goes straight to the committed endpoint.
    const again = makeClient(server, kind, {
      storage: { state: store },
      hooks: { onOpampConnectionSettings: async () => true },
    });
    const before = server.received.length;
    const connected = nextEvent(again.client, "connect");
    await again.client.start();
    await connected;
    await server.waitFor(() => true, before);
    expect(hole.sockets).toHaveLength(1);
    await again.client.stop();
  });
});
