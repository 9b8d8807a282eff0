/**
 * Safe mounting (issue 15): unknown upgrade paths get 404 under attach(), attachUpgrade()
 * and listen(); attach() leaves an Express app's other routes alone; the client names a
 * wrong path; and the framework helpers run on Fastify, Express and Hono (their real
 * packages), each with a WebSocket and an HTTP agent.
 */
import { once } from "node:events";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import express from "express";
import Fastify from "fastify";
import { Hono } from "hono";
import { afterEach, describe, expect, it } from "vitest";
import { OpAMPClient } from "../../../src/client/index.js";
import { nodeFetchInfo, OpAMPServer, opampFastify } from "../../../src/server/index.js";
import type { OpampError } from "../../../src/wire/errors.js";

const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

function anonymous(): OpAMPServer {
  const server = new OpAMPServer({ allowAnonymous: true });
  cleanup.push(() => server.stop());
  return server;
}

async function listening(http: Server): Promise<number> {
  if (!http.listening) {
    http.listen(0, "127.0.0.1");
    await once(http, "listening");
  }
  cleanup.push(() => new Promise((resolve) => http.close(resolve)));
  cleanup.push(() => http.closeAllConnections());
  return (http.address() as AddressInfo).port;
}

/** The raw answer to a WebSocket upgrade for `path`: the status line, or "closed" when the socket just ends. */
function upgradeStatus(port: number, path: string): Promise<number | "closed"> {
  return new Promise((resolve) => {
    const req = request({
      host: "127.0.0.1",
      port,
      path,
      headers: {
        connection: "Upgrade",
        upgrade: "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      },
    });
    req.on("response", (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("upgrade", (_res, socket) => {
      socket.destroy();
      resolve(101);
    });
    req.on("error", () => resolve("closed"));
    req.end();
  });
}

/** Connects a client and waits for the server to see it; returns the agent's transport. */
async function connectAgent(server: OpAMPServer, url: string): Promise<string> {
  const client = new OpAMPClient({ transport: { url, heartbeatIntervalMs: 60_000 } });
  cleanup.push(() => client.stop());
  const seen = once(server, "agentConnected");
  await client.start();
  await client.whenConnected({ signal: AbortSignal.timeout(10_000) });
  const [agent] = (await seen) as [{ transport: string }];
  return agent.transport;
}

describe("unknown upgrade paths", () => {
  it("listen(): 404 for a wrong path, and a WebSocket client names the path it used", async () => {
    const server = anonymous();
    const { port } = await server.listen({ port: 0, host: "127.0.0.1" });
    expect(await upgradeStatus(port, "/opamp")).toBe(404);
    expect(await upgradeStatus(port, "/v1/opamp")).toBe(101);
    for (const scheme of ["ws", "http"]) {
      const client = new OpAMPClient({ transport: { url: `${scheme}://127.0.0.1:${port}/opamp` } });
      cleanup.push(() => client.stop());
      const failed = once(client, "connectFailed");
      await client.start();
      const [error] = (await failed) as [OpampError];
      expect(error).toMatchObject({ code: "http_status", message: "HTTP 404 on /opamp: is the path /v1/opamp?" });
      expect(error.details.status).toBe(404);
      // Not connected, backing off: the client retries, it does not drop its messages.
      expect(client.state.status).toBe("backoff");
    }
  });

  it("attachUpgrade() on a server of yours: 404 for other paths, unless another upgrade listener takes them", async () => {
    const server = anonymous();
    await server.start();
    const http = createServer((_req, res) => res.writeHead(200).end("app"));
    server.attachUpgrade(http);
    const port = await listening(http);
    expect(await upgradeStatus(port, "/elsewhere")).toBe(404);
    http.on("upgrade", (req, socket) => {
      if (req.url === "/mine") socket.end("HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n");
    });
    expect(await upgradeStatus(port, "/mine")).toBe(418);
    expect(await connectAgent(server, `ws://127.0.0.1:${port}/v1/opamp`)).toBe("websocket");
  });
});

describe("framework helpers on the frameworks' real packages", () => {
  it("Express: attach() leaves the app's other routes alone (no ERR_HTTP_HEADERS_SENT)", async () => {
    const server = anonymous();
    await server.start();
    const app = express();
    app.get("/health", (_req, res) => {
      res.json({ ok: true });
    });
    const http = createServer(app);
    const errors: unknown[] = [];
    http.on("clientError", (e) => errors.push(e));
    server.on("error", (e) => errors.push(e));
    server.attach(http);
    const port = await listening(http);
    const health = await fetch(`http://127.0.0.1:${port}/health`);
    expect(await health.json()).toEqual({ ok: true });
    const missing = await fetch(`http://127.0.0.1:${port}/nowhere`);
    expect(missing.status).toBe(404); // Express's own 404
    expect(await missing.text()).toContain("Cannot GET /nowhere");
    expect(await connectAgent(server, `http://127.0.0.1:${port}/v1/opamp`)).toBe("http");
    expect(await connectAgent(server, `ws://127.0.0.1:${port}/v1/opamp`)).toBe("websocket");
    expect(errors).toEqual([]);
  });

  it("Express: the requestHandler middleware plus attachUpgrade(app.listen())", async () => {
    const server = anonymous();
    await server.start();
    const app = express();
    app.use(server.requestHandler);
    app.use(express.json());
    app.post("/api/echo", (req, res) => {
      res.json(req.body);
    });
    const http = app.listen(0, "127.0.0.1");
    server.attachUpgrade(http);
    const port = await listening(http);
    const echo = await fetch(`http://127.0.0.1:${port}/api/echo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ a: 1 }),
    });
    expect(await echo.json()).toEqual({ a: 1 });
    expect(await upgradeStatus(port, "/v1/wrong")).toBe(404);
    expect(await connectAgent(server, `http://127.0.0.1:${port}/v1/opamp`)).toBe("http");
    expect(await connectAgent(server, `ws://127.0.0.1:${port}/v1/opamp`)).toBe("websocket");
  });

  it("Fastify: register(opampFastify(server)) serves both transports, other routes unchanged, stops on close", async () => {
    const server = anonymous();
    const app = Fastify();
    app.get("/health", async () => ({ ok: true }));
    await app.register(opampFastify(server));
    await app.listen({ port: 0, host: "127.0.0.1" });
    let closed = false;
    cleanup.push(() => (closed ? undefined : app.close()));
    const port = (app.server.address() as AddressInfo).port;
    expect(await (await fetch(`http://127.0.0.1:${port}/health`)).json()).toEqual({ ok: true });
    expect(await upgradeStatus(port, "/v1/wrong")).toBe(404);
    expect(await connectAgent(server, `http://127.0.0.1:${port}/v1/opamp`)).toBe("http");
    expect(await connectAgent(server, `ws://127.0.0.1:${port}/v1/opamp`)).toBe("websocket");
    // Fastify's close stops the OpAMP server first, which closes its WebSockets: close()
    // returns (this used to hang: a client whose socket was closing re-flushed in a
    // microtask loop).
    const reasons: string[] = [];
    server.on("agentDisconnected", (_a, r) => reasons.push(r));
    await app.close();
    closed = true;
    expect(reasons).toEqual(["server_stopped", "server_stopped"]);
  });

  it("Hono on @hono/node-server: server.fetch with nodeFetchInfo, and attachUpgrade on serve()", async () => {
    const server = anonymous();
    await server.start();
    const app = new Hono<{ Bindings: { incoming: import("node:http").IncomingMessage } }>();
    app.get("/health", (c) => c.json({ ok: true }));
    const addresses: (string | undefined)[] = [];
    server.on("agentConnected", (agent) => addresses.push(agent.remoteAddress));
    app.post(server.options.path, (c) => server.fetch(c.req.raw, nodeFetchInfo(c.env.incoming)));
    const http = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }) as Server;
    server.attachUpgrade(http);
    await once(http, "listening");
    const port = await listening(http);
    expect(await (await fetch(`http://127.0.0.1:${port}/health`)).json()).toEqual({ ok: true });
    expect(await upgradeStatus(port, "/v1/wrong")).toBe(404);
    expect(await connectAgent(server, `http://127.0.0.1:${port}/v1/opamp`)).toBe("http");
    expect(await connectAgent(server, `ws://127.0.0.1:${port}/v1/opamp`)).toBe("websocket");
    expect(addresses).toEqual(["127.0.0.1", "127.0.0.1"]);
  });
});
