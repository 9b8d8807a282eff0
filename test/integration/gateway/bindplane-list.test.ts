/**
 * Bindplane's gateway test list (research B6), re-done as our own tests against a scripted
 * upstream, plus the handshake's wire details: connect JSON, 503/504 with Retry-After 30,
 * a refusal with status 0 answered 401, the connection-id header.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { OpAMPGateway } from "../../../src/gateway/index.js";
import { instanceUidToString } from "../../../src/wire/index.js";
import { hasOpenssl, makeMaterial } from "../client/certs.js";
import { HttpStatusError, TestAgent } from "../server/test-agent.js";
import { FakeUpstream } from "./fake-upstream.js";
import { cleanup, defer, nextEvent, startGateway, waitUpstreams } from "./helpers.js";

afterEach(cleanup);

async function fake(): Promise<FakeUpstream> {
  const upstream = await FakeUpstream.start();
  defer(() => upstream.stop());
  return upstream;
}

const AUTH = { authorization: "Bearer agent-secret" };

describe("Bindplane's test list, our way", () => {
  it("multiple agents round-trip through one upstream", async () => {
    const upstream = await fake();
    const { url } = await startGateway(upstream.url, { upstream: { url: "", connections: 1 } });
    const a = await TestAgent.connect("websocket", url, { headers: AUTH });
    const b = await TestAgent.connect("websocket", url, { headers: AUTH });
    expect((await a.send(a.fullState())).instanceUid).toEqual(a.uid);
    expect((await b.send(b.fullState())).instanceUid).toEqual(b.uid);
    expect(upstream.connections.filter((c) => c.messages.length > 0)).toHaveLength(1);
    a.close();
    b.close();
  });

  it("the handshake: connect JSON with request_uid, remote_address and canonical headers; connection ids", async () => {
    const upstream = await fake();
    await startGateway(upstream.url, { upstream: { url: "", connections: 2 } });
    expect(upstream.connections.map((c) => c.id).sort()).toEqual(["upstream-0", "upstream-1"]);
    expect(upstream.connections[0]!.headers["authorization"]).toBe("Bearer token-gw");
    const { url } = await startGateway(upstream.url, { upstream: { url: "", connections: 1 } });
    const agent = await TestAgent.connect("websocket", url, { headers: { ...AUTH, "x-custom": "one" } });
    const connect = upstream.connects.at(-1)!;
    expect(connect.requestUid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(connect.remoteAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(connect.headers["Authorization"]).toEqual(["Bearer agent-secret"]);
    expect(connect.headers["X-Custom"]).toEqual(["one"]);
    expect(connect.headers["Sec-Websocket-Key"]).toHaveLength(1);
    expect(connect.headers["Upgrade"]).toEqual(["websocket"]);
    agent.close();
  });

  it("agent close: assignments and routes are cleaned up, counts back to 0", async () => {
    const upstream = await fake();
    const { gateway, url } = await startGateway(upstream.url, { upstream: { url: "", connections: 2 } });
    const agent = await TestAgent.connect("websocket", url, { headers: AUTH });
    await agent.send(agent.fullState());
    expect(gateway.agents).toHaveLength(1);
    expect(gateway.upstreams.reduce((n, u) => n + u.agents, 0)).toBe(1);
    const gone = nextEvent(gateway, "agentDisconnected");
    agent.close();
    const [view, reason] = await gone;
    expect(reason).toBe("closed");
    expect(view.instanceUids).toEqual([instanceUidToString(agent.uid)]);
    expect(gateway.agents).toHaveLength(0);
    expect(gateway.upstreams.map((u) => u.agents)).toEqual([0, 0]);
  });

  it("affinity: with 10 upstreams, an agent's messages all go on one connection", async () => {
    const upstream = await fake();
    const { url } = await startGateway(upstream.url, { upstream: { url: "", connections: 10 } });
    const agent = await TestAgent.connect("websocket", url, { headers: AUTH });
    for (let i = 0; i < 8; i++) await agent.send(i === 0 ? agent.fullState() : agent.message());
    const used = upstream.connections.filter((c) => c.messages.length > 0);
    expect(used).toHaveLength(1);
    expect(used[0]!.messages).toHaveLength(8);
    agent.close();
  });

  it("start, stop, start again on one instance, with a round trip each time; stop without start and twice is safe", async () => {
    const upstream = await fake();
    const idle = new OpAMPGateway({ upstream: { url: upstream.url } });
    await idle.stop();
    await idle.stop();
    const gateway = new OpAMPGateway({ upstream: { url: upstream.url, connections: 1 } });
    defer(() => gateway.stop());
    for (let round = 0; round < 2; round++) {
      const opened = waitUpstreams(gateway, 1);
      await gateway.start();
      await opened;
      const { createServer } = await import("node:http");
      const http = createServer();
      gateway.attach(http);
      await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
      const port = (http.address() as { port: number }).port;
      const agent = await TestAgent.connect("websocket", `http://127.0.0.1:${port}/v1/opamp`, { headers: AUTH });
      expect((await agent.send(agent.fullState())).instanceUid).toEqual(agent.uid);
      await gateway.stop();
      await gateway.stop();
      expect((await agent.waitClosed()).code).toBe(1001);
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    }
  });

  for (const transport of ["websocket", "http"] as const) {
    it(`${transport}: an upstream that never answers the connect: 504 with Retry-After: 30`, async () => {
      const upstream = await fake();
      upstream.connectPolicy = "ignore";
      const { gateway, url } = await startGateway(upstream.url, {
        upstream: { url: "", connections: 1 },
        auth: { mode: "delegate", timeoutMs: 300 },
      });
      const timedOut = nextEvent(gateway, "error", (e) => e.code === "timeout");
      const error = await refusal(transport, url, AUTH);
      expect(error.status).toBe(504);
      expect(error.headers.get("retry-after")).toBe("30");
      await timedOut;
      expect(gateway.upstreams[0]!.agents).toBe(0);
    });

    it(`${transport}: no upstream connection open: 503 with Retry-After: 30`, async () => {
      const upstream = await fake();
      upstream.refuseUpgrades = 503;
      const gateway = new OpAMPGateway({ upstream: { url: upstream.url, connections: 2 } });
      gateway.on("error", () => undefined);
      defer(() => gateway.stop());
      const { url } = await gateway.listen({ port: 0, host: "127.0.0.1" });
      const error = await refusal(transport, url, AUTH);
      expect(error.status).toBe(503);
      expect(error.headers.get("retry-after")).toBe("30");
    });

    it(`${transport}: a refusal with status 0 is 401; the server's response headers are passed on`, async () => {
      const upstream = await fake();
      upstream.connectPolicy = { status: 0, headers: { "WWW-Authenticate": 'Bearer realm="opamp"' } };
      const { gateway, url } = await startGateway(upstream.url, { upstream: { url: "", connections: 1 } });
      const error = await refusal(transport, url, AUTH);
      expect(error.status).toBe(401);
      if (transport === "http") expect(error.headers.get("www-authenticate")).toBe('Bearer realm="opamp"');
      upstream.connectPolicy = { status: 429, headers: { "Retry-After": "7" } };
      const limited = await refusal(transport, url, AUTH);
      expect(limited.status).toBe(429);
      expect(gateway.upstreams[0]!.agents).toBe(0);
    });
  }

  it("the upstream closes: the gateway reconnects and a new agent round-trips", async () => {
    const upstream = await fake();
    const { gateway, url } = await startGateway(upstream.url, {
      upstream: { url: "", connections: 1, retry: { initialDelayMs: 20, maxDelayMs: 100 } },
    });
    const back = waitUpstreams(gateway, 1);
    upstream.connection("upstream-0").ws.close(1011, "bye");
    await back;
    const agent = await TestAgent.connect("websocket", url, { headers: AUTH });
    expect((await agent.send(agent.fullState())).instanceUid).toEqual(agent.uid);
    agent.close();
  });

  it("a dead agent does not break the shared upstream", async () => {
    const upstream = await fake();
    const { url } = await startGateway(upstream.url, { upstream: { url: "", connections: 1 } });
    const dead = await TestAgent.connect("websocket", url, { headers: AUTH });
    const alive = await TestAgent.connect("websocket", url, { headers: AUTH });
    await dead.send(dead.fullState());
    upstream.reply = false;
    dead.sendRaw(new Uint8Array([0, 0x0a, 0x10, ...dead.uid]));
    await upstream.next((m) => m.instanceUid.length === 16 && m.sequenceNum === 0n && upstream.messages.length >= 2);
    (dead as unknown as { ws: { terminate(): void } }).ws.terminate();
    const record = upstream.connection("upstream-0");
    upstream.send(record, { instanceUid: dead.uid });
    upstream.reply = true;
    expect((await alive.send(alive.fullState())).instanceUid).toEqual(alive.uid);
    expect(record.ws.readyState).toBe(record.ws.OPEN);
    alive.close();
  });

  for (const uid of [new Uint8Array(0), new Uint8Array(5)]) {
    it(`a server message with a ${uid.length}-byte UID is dropped; the upstream survives`, async () => {
      const upstream = await fake();
      const { gateway, url } = await startGateway(upstream.url, { upstream: { url: "", connections: 1 } });
      const agent = await TestAgent.connect("websocket", url, { headers: AUTH });
      await agent.send(agent.fullState());
      const errors: string[] = [];
      gateway.on("error", (e) => errors.push(e.code));
      const record = upstream.connection("upstream-0");
      upstream.send(record, { instanceUid: uid, flags: 1n });
      expect((await agent.send(agent.message())).flags).toBe(0n);
      expect(agent.received.every((m) => m.instanceUid.length === 16)).toBe(true);
      expect(record.ws.readyState).toBe(record.ws.OPEN);
      if (uid.length === 5) expect(errors).toContain("invalid_instance_uid");
      agent.close();
    });
  }

  describe.skipIf(!hasOpenssl())("TLS", () => {
    const material = makeMaterial(mkdtempSync(join(tmpdir(), "gateway-tls-")));

    it("listener TLS: a wss agent round-trips; plain ws is refused", async () => {
      const upstream = await fake();
      const gateway = new OpAMPGateway({ upstream: { url: upstream.url, connections: 1 } });
      defer(() => gateway.stop());
      const opened = waitUpstreams(gateway, 1);
      const { url } = await gateway.listen({ port: 0, host: "127.0.0.1", tls: material.server });
      await opened;
      expect(url.startsWith("https://")).toBe(true);
      const agent = await TestAgent.connect("websocket", url, { headers: AUTH, tls: { ca: material.ca.cert } });
      expect((await agent.send(agent.fullState())).instanceUid).toEqual(agent.uid);
      agent.close();
      const plain = await TestAgent.connect("websocket", url.replace("https:", "http:"), { headers: AUTH }).catch(
        (e: unknown) => e,
      );
      expect(plain).toBeInstanceOf(Error);
    });

    it("upstream TLS: the configured CA is what the dialer trusts", async () => {
      const { createServer } = await import("node:https");
      const { WebSocketServer } = await import("ws");
      const https = createServer({ ...material.server });
      const wss = new WebSocketServer({ server: https });
      const seen: string[] = [];
      wss.on("connection", (_ws, req) => seen.push(String(req.headers["x-opamp-gateway-connection-id"])));
      await new Promise<void>((resolve) => https.listen(0, "127.0.0.1", resolve));
      defer(
        () =>
          new Promise<void>((resolve) => {
            for (const c of wss.clients) c.terminate();
            https.closeAllConnections();
            https.close(() => resolve());
          }),
      );
      const url = `wss://127.0.0.1:${(https.address() as { port: number }).port}/v1/opamp`;
      const untrusted = new OpAMPGateway({ upstream: { url, connections: 1, retry: { initialDelayMs: 5000 } } });
      const failed = nextEvent(untrusted, "error");
      await untrusted.start();
      const [error] = await failed;
      expect(error.code).toBe("transport_failed");
      await untrusted.stop();
      const trusted = new OpAMPGateway({ upstream: { url, connections: 1, tls: { ca: [material.ca.cert] } } });
      const opened = waitUpstreams(trusted, 1);
      await trusted.start();
      await opened;
      await trusted.stop();
      expect(seen).toEqual(["upstream-0"]);
    });
  });

  it("graceful stop with 5 agents on 2 upstreams: each agent gets 1001, the upstreams 1000", async () => {
    const upstream = await fake();
    const { gateway, url } = await startGateway(upstream.url, { upstream: { url: "", connections: 2 } });
    const agents = await Promise.all(
      Array.from({ length: 5 }, () => TestAgent.connect("websocket", url, { headers: AUTH })),
    );
    for (const agent of agents) await agent.send(agent.fullState());
    expect(gateway.upstreams.map((u) => u.agents).sort()).toEqual([2, 3]);
    const upstreamCodes = upstream.connections.map(
      (c) => new Promise<number>((resolve) => c.ws.once("close", (code) => resolve(code))),
    );
    await gateway.stop();
    for (const agent of agents) expect((await agent.waitClosed()).code).toBe(1001);
    expect(await Promise.all(upstreamCodes)).toEqual([1000, 1000]);
    expect(gateway.agents).toHaveLength(0);
  });

  describe("custom capabilities", () => {
    it("cached caps are injected into each agent's first message only, its own fields kept; the server's are not replaced", async () => {
      const upstream = await fake();
      upstream.customCapabilities = ["io.example.caps", "com.bindplane.opamp-gateway"];
      upstream.replyWith = () => ({ flags: 2n });
      const { url } = await startGateway(upstream.url, { upstream: { url: "", connections: 1 } });
      const a = await TestAgent.connect("websocket", url, { headers: AUTH });
      const b = await TestAgent.connect("websocket", url, { headers: AUTH });
      const first = await a.send(a.fullState());
      expect(first.customCapabilities?.capabilities).toEqual(["io.example.caps"]);
      expect(first.flags).toBe(2n);
      expect(first.instanceUid).toEqual(a.uid);
      expect((await a.send(a.message())).customCapabilities).toBeUndefined();
      expect((await b.send(b.fullState())).customCapabilities?.capabilities).toEqual(["io.example.caps"]);
      upstream.replyWith = () => ({ customCapabilities: { capabilities: ["io.server.own"] } });
      const c = await TestAgent.connect("websocket", url, { headers: AUTH });
      expect((await c.send(c.fullState())).customCapabilities?.capabilities).toEqual(["io.server.own"]);
      for (const agent of [a, b, c]) agent.close();
    });

    it("nothing is injected when the server sent none", async () => {
      const upstream = await fake();
      const { url } = await startGateway(upstream.url, { upstream: { url: "", connections: 1 } });
      const agent = await TestAgent.connect("websocket", url, { headers: AUTH });
      expect((await agent.send(agent.fullState())).customCapabilities).toBeUndefined();
      agent.close();
    });
  });

  it("50 agents on 3 upstreams: all delivered, spread evenly, everything drained afterwards", async () => {
    const upstream = await fake();
    const { gateway, url } = await startGateway(upstream.url, {});
    const agents = await Promise.all(
      Array.from({ length: 50 }, () => TestAgent.connect("websocket", url, { headers: AUTH })),
    );
    const replies = await Promise.all(agents.map((agent) => agent.send(agent.fullState())));
    for (const [i, reply] of replies.entries()) expect(reply.instanceUid).toEqual(agents[i]!.uid);
    const counts = gateway.upstreams.map((u) => u.agents);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(50);
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
    const gone = new Promise<void>((resolve) => {
      let n = 0;
      gateway.on("agentDisconnected", () => {
        if (++n === 50) resolve();
      });
    });
    for (const agent of agents) agent.close();
    await gone;
    expect(gateway.upstreams.map((u) => u.agents)).toEqual([0, 0, 0]);
    expect(gateway.agents).toHaveLength(0);
  });
});

/** The HTTP status an agent is refused with, over either transport. */
async function refusal(
  transport: "websocket" | "http",
  url: string,
  headers: Record<string, string>,
): Promise<HttpStatusError> {
  if (transport === "websocket") {
    const { default: WebSocket } = await import("ws");
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url.replace(/^http/, "ws"), { headers });
      ws.once("unexpected-response", (_req, res) => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === "string") h.set(k, v);
        resolve(new HttpStatusError(res.statusCode ?? 0, h));
        res.resume();
      });
      ws.once("open", () => reject(new Error("accepted")));
      ws.once("error", () => undefined);
    });
  }
  const agent = await TestAgent.connect("http", url, { headers });
  const error = await agent.send(agent.fullState()).catch((e: unknown) => e);
  if (!(error instanceof HttpStatusError)) throw new Error("the poll was answered");
  return error;
}
