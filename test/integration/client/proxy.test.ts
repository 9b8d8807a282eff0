/**
 * HTTP proxies over both transports, through a fake proxy on 127.0.0.1 that records every
 * CONNECT and absolute-form request: the `transport.proxy` option, offered
 * ProxyConnectionSettings verified by connecting, committed, persisted or rolled back
 * with FAILED, refused schemes, and start() failing fast on committed settings the client
 * cannot apply. TLS cases (wss/https through a tunnel, an https:// proxy) need `openssl`.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { OpAMPClient } from "../../../src/client/opamp-client.js";
import { type ClientState, MemoryClientStateStore } from "../../../src/client/state-store.js";
import {
  ConnectionSettingsOffersSchema,
  ConnectionSettingsStatuses,
  HeaderSchema,
  HeadersSchema,
  OpAMPConnectionSettingsSchema,
  ProxyConnectionSettingsSchema,
  ServerToAgentSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import { nodeProxyConnector } from "../../../src/transport/node-proxy-connector.js";
import { hasOpenssl, inCI, type Material, makeMaterial } from "./certs.js";
import { FakeProxy } from "./fake-proxy.js";
import { FakeServer } from "./fake-server.js";
import { eventWhere, makeClient, nextEvent } from "./helpers.js";

const OPENSSL = hasOpenssl();
if (!OPENSSL && !inCI()) console.warn("proxy.test.ts: TLS cases skipped — the `openssl` command is missing");

const FAILED = ConnectionSettingsStatuses.ConnectionSettingsStatuses_FAILED;
const APPLIED = ConnectionSettingsStatuses.ConnectionSettingsStatuses_APPLIED;

const basic = (credentials: string) => `Basic ${Buffer.from(credentials).toString("base64")}`;

/** Every connection the server accepted came from the proxy's side of a tunnel or forward. */
function onlyThrough(server: FakeServer, proxy: FakeProxy): void {
  expect(server.peerPorts.length).toBeGreaterThan(0);
  expect(server.peerPorts.filter((port) => !proxy.upstreamPorts.includes(port))).toEqual([]);
}

/** The server answers every message with a connection-settings offer carrying `proxy`. */
function offerProxy(server: FakeServer, hash: number, url: string, headers: Record<string, string> = {}): void {
  const connectHeaders = create(HeadersSchema, {
    headers: Object.entries(headers).map(([key, value]) => create(HeaderSchema, { key, value })),
  });
  server.script = ({ message }) =>
    create(ServerToAgentSchema, {
      instanceUid: message.instanceUid,
      connectionSettings: create(ConnectionSettingsOffersSchema, {
        hash: new Uint8Array([hash]),
        opamp: create(OpAMPConnectionSettingsSchema, {
          proxy: create(ProxyConnectionSettingsSchema, { url, connectHeaders }),
        }),
      }),
    });
}

describe("proxy", () => {
  const servers: FakeServer[] = [];
  const proxies: FakeProxy[] = [];
  const clients: OpAMPClient[] = [];

  afterEach(async () => {
    for (const client of clients.splice(0)) await client.stop();
    for (const proxy of proxies.splice(0)) await proxy.close();
    for (const server of servers.splice(0)) await server.close();
  });

  async function startServer(): Promise<FakeServer> {
    const server = await FakeServer.start();
    servers.push(server);
    return server;
  }

  async function startProxy(tls?: { key: string; cert: string }): Promise<FakeProxy> {
    const proxy = await FakeProxy.start(tls);
    proxies.push(proxy);
    return proxy;
  }

  function track<T extends { client: OpAMPClient }>(harness: T): T {
    clients.push(harness.client);
    return harness;
  }

  describe.each(["ws", "http"] as const)("over %s", (kind) => {
    it("reaches the server only through the proxy of the options, with its credentials and headers", async () => {
      const server = await startServer();
      const proxy = await startProxy();
      const { client } = track(
        makeClient(server, kind, {
          transport: {
            headers: { Authorization: "Bearer enrollment" },
            proxy: { url: proxy.url("agent:s3cret"), connectHeaders: { "X-Proxy-Tag": "options" } },
            proxyConnector: nodeProxyConnector,
          },
        }),
      );
      const answered = nextEvent(client, "message");
      await client.start();
      await answered;
      const { port } = new URL(server.url(kind));
      const seen = proxy.requests[0];
      expect(seen?.headers["proxy-authorization"]).toBe(basic("agent:s3cret"));
      if (kind === "ws") {
        // WebSocket: a CONNECT tunnel to the server, with the connect headers.
        expect(seen).toMatchObject({ kind: "connect", target: `127.0.0.1:${port}` });
        expect(seen?.headers["x-proxy-tag"]).toBe("options");
      } else {
        // Plain http: absolute-form requests; connect headers belong to CONNECT only.
        expect(seen).toMatchObject({ kind: "forward", method: "POST", target: server.url("http") });
        expect(seen?.headers["x-proxy-tag"]).toBeUndefined();
      }
      expect(server.received[0]?.headers["authorization"]).toBe("Bearer enrollment");
      expect(server.received[0]?.headers["proxy-authorization"]).toBeUndefined();
      onlyThrough(server, proxy);
    });

    it("verifies an offered proxy by connecting through it, commits and persists it, and uses it after a restart", async () => {
      const server = await startServer();
      const proxy = await startProxy();
      offerProxy(server, 1, proxy.url(), { "Proxy-Authorization": basic("offered:key"), "X-Proxy-Tag": "offered" });
      const store = new MemoryClientStateStore();
      const options = {
        storage: { state: store },
        transport: { proxyConnector: nodeProxyConnector },
        hooks: { onOpampConnectionSettings: async () => true },
      };
      const first = track(makeClient(server, kind, options));
      const committed = nextEvent(first.client, "connectionSettings");
      await first.client.start();
      const [settings] = await committed;
      expect(settings.proxy).toEqual({
        url: `${proxy.url()}/`,
        connectHeaders: [
          { name: "Proxy-Authorization", value: basic("offered:key") },
          { name: "X-Proxy-Tag", value: "offered" },
        ],
      });
      const applied = await server.waitFor((r) => r.message.connectionSettingsStatus?.status === APPLIED);
      expect(applied.message.connectionSettingsStatus?.lastConnectionSettingsHash).toEqual(new Uint8Array([1]));
      const seen = await proxy.waitFor();
      expect(seen.headers["proxy-authorization"]).toBe(basic("offered:key"));
      if (kind === "ws") expect(seen.headers["x-proxy-tag"]).toBe("offered");
      expect((await store.load())?.connectionSettings?.proxy?.url).toBe(`${proxy.url()}/`);

      // A restarted client connects through the committed proxy straight away.
      await first.client.stop();
      const before = proxy.requests.length;
      const directPorts = server.peerPorts.filter((port) => !proxy.upstreamPorts.includes(port)).length;
      const second = track(makeClient(server, kind, options));
      const answered = nextEvent(second.client, "message");
      await second.client.start();
      await answered;
      expect(proxy.requests.length).toBeGreaterThan(before);
      expect(server.peerPorts.filter((port) => !proxy.upstreamPorts.includes(port)).length).toBe(directPorts);
    });

    it("reports FAILED and stays on its committed connection when the proxy refuses with 407", async () => {
      const server = await startServer();
      const proxy = await startProxy();
      proxy.refuseWith = 407;
      offerProxy(server, 2, proxy.url());
      const store = new MemoryClientStateStore();
      const { client, clock } = track(
        makeClient(server, kind, {
          storage: { state: store },
          transport: { proxyConnector: nodeProxyConnector },
          hooks: { onOpampConnectionSettings: async () => true },
        }),
      );
      const failed = eventWhere(client, "connectionSettingsStatus", (s) => s.status === FAILED);
      await client.start();
      const [status] = await failed;
      expect(status.errorMessage).toMatch(/new settings failed: .*407/);
      clock.advance(1_000);
      const reported = await server.waitFor((r) => r.message.connectionSettingsStatus?.status === FAILED);
      expect(reported.transport).toBe(kind);
      expect(proxy.requests.length).toBeGreaterThan(0);
      // Nothing went through the proxy: the FAILED report came over the old, direct connection.
      expect(proxy.upstreamPorts).toEqual([]);
      expect((await store.load())?.connectionSettings?.proxy).toBeUndefined();
    });

    it("reports an offered proxy with an unsupported scheme FAILED at once, without reconnecting", async () => {
      const server = await startServer();
      offerProxy(server, 3, "socks5://127.0.0.1:1080");
      const { client } = track(
        makeClient(server, kind, {
          transport: { proxyConnector: nodeProxyConnector },
          hooks: { onOpampConnectionSettings: async () => true },
        }),
      );
      const failed = eventWhere(client, "connectionSettingsStatus", (s) => s.status === FAILED);
      await client.start();
      const [status] = await failed;
      expect(status.errorMessage).toMatch(/invalid proxy settings: .*unsupported proxy scheme socks5:/);
      await server.waitFor((r) => r.message.connectionSettingsStatus?.status === FAILED);
      expect(server.received.some((r) => r.message.agentDisconnect !== undefined)).toBe(false);
    });

    it("reports an offered proxy FAILED when no proxyConnector is configured", async () => {
      const server = await startServer();
      const proxy = await startProxy();
      offerProxy(server, 4, proxy.url());
      const { client } = track(makeClient(server, kind, { hooks: { onOpampConnectionSettings: async () => true } }));
      const failed = eventWhere(client, "connectionSettingsStatus", (s) => s.status === FAILED);
      await client.start();
      expect((await failed)[0].errorMessage).toMatch(/transport\.proxyConnector/);
      await server.waitFor((r) => r.message.connectionSettingsStatus?.status === FAILED);
      expect(proxy.requests).toEqual([]);
    });

    it("rejects start() for a committed proxy in the store when no proxyConnector is configured", async () => {
      const server = await startServer();
      const state: ClientState = {
        connectionSettings: {
          endpoint: server.url(kind),
          headers: [],
          offerHash: new Uint8Array([5]),
          proxy: { url: "http://127.0.0.1:9/", connectHeaders: [] },
        },
      };
      const { client } = track(makeClient(server, kind, { storage: { state: new MemoryClientStateStore(state) } }));
      await expect(client.start()).rejects.toMatchObject({
        code: "invalid_argument",
        message: expect.stringMatching(/committed connection settings .* transport\.proxyConnector/),
      });
      expect(client.state.t).toBe("idle");
      expect(server.peerPorts).toEqual([]);
    });
  });

  it("closes a tunnel the proxy never answers when the client stops", async () => {
    const server = await startServer();
    const proxy = await startProxy();
    proxy.hang = true;
    const { client } = track(
      makeClient(server, "ws", {
        transport: { proxy: { url: proxy.url() }, proxyConnector: nodeProxyConnector },
      }),
    );
    await client.start();
    await proxy.waitFor((r) => r.kind === "connect");
    await client.stop();
    await proxy.waitForClosed(1);
    expect(server.peerPorts).toEqual([]);
  });

  it("rejects start() for committed TLS settings over https: when transport.tlsFetch is missing", async () => {
    const server = await startServer();
    const state: ClientState = {
      connectionSettings: {
        endpoint: server.url("http").replace("http:", "https:"),
        headers: [],
        offerHash: new Uint8Array([6]),
        tls: { insecureSkipVerify: true },
      },
    };
    const { client } = track(makeClient(server, "http", { storage: { state: new MemoryClientStateStore(state) } }));
    // Before, every attempt failed with invalid_argument and the client retried for ever.
    await expect(client.start()).rejects.toMatchObject({
      code: "invalid_argument",
      message: expect.stringMatching(/committed connection settings .* transport\.tlsFetch/),
    });
    expect(client.state.t).toBe("idle");
    expect(server.peerPorts).toEqual([]);
  });

  describe.runIf(OPENSSL || inCI())("with TLS", () => {
    let dir: string;
    let pem: Material;

    beforeAll(() => {
      if (!OPENSSL) throw new Error("the `openssl` command is required under CI");
      dir = mkdtempSync(join(tmpdir(), "opamp-proxy-"));
      pem = makeMaterial(dir);
    });
    afterAll(() => {
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    });

    async function startTlsServer(): Promise<FakeServer> {
      const server = await FakeServer.start({ tls: { key: pem.server.key, cert: pem.server.cert } });
      servers.push(server);
      return server;
    }

    describe.each(["ws", "http"] as const)("over %s", (kind) => {
      it("tunnels to a TLS server: CONNECT with the headers, then TLS to the server inside the tunnel", async () => {
        const server = await startTlsServer();
        const proxy = await startProxy();
        const { client } = track(
          makeClient(server, kind, {
            tls: { ca: pem.ca.cert },
            transport: {
              proxy: {
                url: proxy.url(),
                connectHeaders: { "Proxy-Authorization": basic("a:b"), "X-Proxy-Tag": "tls" },
              },
              proxyConnector: nodeProxyConnector,
            },
          }),
        );
        expect(server.url(kind)).toMatch(/^(wss|https):/);
        const answered = nextEvent(client, "message");
        await client.start();
        await answered;
        const { port } = new URL(server.url(kind));
        expect(proxy.requests[0]).toMatchObject({ kind: "connect", target: `127.0.0.1:${port}` });
        expect(proxy.requests[0]?.headers["proxy-authorization"]).toBe(basic("a:b"));
        expect(proxy.requests[0]?.headers["x-proxy-tag"]).toBe("tls");
        expect(server.received[0]?.transport).toBe(kind);
        onlyThrough(server, proxy);
      });

      it("does not trust the server through the tunnel without its CA", async () => {
        const server = await startTlsServer();
        const proxy = await startProxy();
        const { client } = track(
          makeClient(server, kind, {
            tls: { ca: pem.otherCa.cert },
            transport: { proxy: { url: proxy.url() }, proxyConnector: nodeProxyConnector },
          }),
        );
        const failed = nextEvent(client, "connectFailed");
        await client.start();
        const [error] = await failed;
        expect(error.message).toMatch(/certificate/i);
        expect(proxy.requests[0]?.kind).toBe("connect");
        expect(server.received).toHaveLength(0);
      });

      it("speaks TLS to an https:// proxy, then reaches the server through it", async () => {
        const server = await startServer();
        const proxy = await startProxy({ key: pem.server.key, cert: pem.server.cert });
        expect(proxy.url()).toMatch(/^https:/);
        const { client } = track(
          makeClient(server, kind, {
            // The connection's trust settings verify the proxy too (as in opamp-go).
            tls: { ca: pem.ca.cert },
            transport: { proxy: { url: proxy.url() }, proxyConnector: nodeProxyConnector },
          }),
        );
        const answered = nextEvent(client, "message");
        await client.start();
        await answered;
        expect(proxy.requests[0]?.kind).toBe(kind === "ws" ? "connect" : "forward");
        onlyThrough(server, proxy);
      });
    });
  });
});

describe("proxy from the environment (nodeProxyConnector)", () => {
  const saved = { ...process.env };
  const servers: FakeServer[] = [];
  const proxies: FakeProxy[] = [];
  const clients: OpAMPClient[] = [];
  afterEach(async () => {
    for (const key of [
      "HTTP_PROXY",
      "http_proxy",
      "HTTPS_PROXY",
      "https_proxy",
      "NO_PROXY",
      "no_proxy",
      "ALL_PROXY",
      "all_proxy",
    ]) {
      if (saved[key] === undefined) delete process.env[key];
      else process.env[key] = saved[key];
    }
    for (const client of clients.splice(0)) await client.stop();
    for (const proxy of proxies.splice(0)) await proxy.close();
    for (const server of servers.splice(0)) await server.close();
  });

  describe.each(["ws", "http"] as const)("over %s", (kind) => {
    it("goes through HTTP_PROXY, and directly for a NO_PROXY host or with an explicit proxy option", async () => {
      const server = await FakeServer.start();
      servers.push(server);
      const proxy = await FakeProxy.start();
      proxies.push(proxy);
      process.env["HTTP_PROXY"] = proxy.url("env:pw");
      const { client } = makeClient(server, kind, { transport: { proxyConnector: nodeProxyConnector } });
      clients.push(client);
      const answered = nextEvent(client, "message");
      await client.start();
      await answered;
      expect(proxy.requests[0]?.headers["proxy-authorization"]).toBe(basic("env:pw"));
      onlyThrough(server, proxy);
      await client.stop();

      // NO_PROXY names the server's host: straight to it, the proxy sees nothing more.
      process.env["NO_PROXY"] = "127.0.0.1";
      const seen = proxy.requests.length;
      const direct = makeClient(server, kind, { transport: { proxyConnector: nodeProxyConnector } }).client;
      clients.push(direct);
      const answeredDirect = nextEvent(direct, "message");
      await direct.start();
      await answeredDirect;
      expect(proxy.requests.length).toBe(seen);
    });
  });

  it("makes start() fail on an unusable proxy in the environment, naming the variable", async () => {
    const server = await FakeServer.start();
    servers.push(server);
    process.env["HTTPS_PROXY"] = "socks5://127.0.0.1:1080";
    const { client } = makeClient(server, "ws", {
      transport: { url: "wss://opamp.invalid/v1/opamp", proxyConnector: nodeProxyConnector },
    });
    clients.push(client);
    await expect(client.start()).rejects.toMatchObject({
      code: "invalid_argument",
      message: expect.stringContaining("HTTPS_PROXY"),
    });
  });
});
