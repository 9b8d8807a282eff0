/**
 * What the server does with hostile or unlucky input, over both transports: auth
 * rejections, oversized and garbage messages (other agents carry on), gzip both ways,
 * capacity limits and stop().
 */
import { toBinary } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { AgentToServerSchema, ServerErrorResponseType } from "../../../src/gen/opamp/v1/opamp_pb.js";
import type { AuthDecision } from "../../../src/server/index.js";
import { gzip, PROTOBUF_CONTENT_TYPE } from "../../../src/wire/index.js";
import { startServer, stopAll } from "./helpers.js";
import { HttpStatusError, rawPost, TestAgent, type Transport, waitFor } from "./test-agent.js";

afterEach(stopAll);

const transports: Transport[] = ["websocket", "http"];

/** Accepts `Bearer good`, answers 401/403/429 for the other tokens. */
function tokenAuth(headers: Readonly<Record<string, string>>): AuthDecision {
  switch (headers["authorization"]) {
    case "Bearer good":
      return { accept: true, principal: { tenant: "t1" } };
    case "Bearer banned":
      return { accept: false, status: 403 };
    case "Bearer busy":
      return { accept: false, status: 429, headers: { "Retry-After": "7" } };
    default:
      return { accept: false, status: 401, headers: { "WWW-Authenticate": "Bearer" } };
  }
}

async function statusOf(transport: Transport, url: string, token: string): Promise<number> {
  try {
    const agent = await TestAgent.connect(transport, url, { headers: { authorization: token } });
    await agent.send(agent.fullState());
    agent.close();
    return 200;
  } catch (e) {
    if (e instanceof HttpStatusError) return e.status;
    throw e;
  }
}

describe.each(transports)("safety over %s", (transport) => {
  it("authenticates with the hook: 401, 403, 429 rejections and the principal on the agent", async () => {
    const { server, url } = await startServer({
      allowAnonymous: false,
      hooks: { authenticate: (r) => tokenAuth(r.headers) },
    });
    expect(await statusOf(transport, url, "nothing")).toBe(401);
    expect(await statusOf(transport, url, "Bearer banned")).toBe(403);
    expect(await statusOf(transport, url, "Bearer busy")).toBe(429);
    const connected = waitFor(server, "agentConnected");
    expect(await statusOf(transport, url, "Bearer good")).toBe(200);
    const [agent] = await connected;
    expect(agent.principal).toEqual({ tenant: "t1" });
  });

  it("refuses oversized messages (WS 1009, HTTP 413) and keeps serving other agents", async () => {
    const { server, url } = await startServer({ limits: { maxMessageBytes: 1024 } });
    const bystander = await TestAgent.connect(transport, url);
    await bystander.send(bystander.fullState());
    const big = await TestAgent.connect(transport, url);
    const huge = big.fullState({
      effectiveConfig: { configMap: { configMap: { x: { body: new Uint8Array(4096) } } } },
    });
    if (transport === "websocket") {
      void big.send(huge);
      expect((await big.waitClosed()).code).toBe(1009);
    } else {
      await expect(big.send(huge)).rejects.toMatchObject({ status: 413 });
    }
    const reply = await bystander.send(bystander.message());
    expect(reply.errorResponse).toBeUndefined();
    expect(server.agents.size).toBe(1);
    bystander.close();
  });

  it("rejects garbage (WS 1002, HTTP 400) and keeps serving other agents", async () => {
    const { url } = await startServer();
    const bystander = await TestAgent.connect(transport, url);
    await bystander.send(bystander.fullState());
    const bad = await TestAgent.connect(transport, url);
    if (transport === "websocket") {
      bad.sendRaw(new Uint8Array([0x05, 0xff, 0xff])); // non-zero header
      expect((await bad.waitClosed()).code).toBe(1002);
      const overlong = await TestAgent.connect(transport, url);
      overlong.sendRaw(new Uint8Array(12).fill(0x80)); // a varint header that never ends
      expect((await overlong.waitClosed()).code).toBe(1002);
      const text = await TestAgent.connect(transport, url);
      text.sendRaw("hello");
      expect((await text.waitClosed()).code).toBe(1003);
    } else {
      await expect(bad.post(new Uint8Array([0xff, 0xff, 0xff, 0xff]))).rejects.toMatchObject({ status: 400 });
      await expect(bad.post(new Uint8Array([1, 2, 3]), { "content-encoding": "gzip" })).rejects.toMatchObject({
        status: 400,
      });
    }
    expect((await bystander.send(bystander.message())).errorResponse).toBeUndefined();
    bystander.close();
  });

  it("answers an invalid instance UID with BadRequest", async () => {
    const { url } = await startServer();
    const agent = await TestAgent.connect(transport, url, { uid: new Uint8Array(5) });
    const reply = await agent.send(agent.fullState());
    expect(reply.errorResponse?.type).toBe(ServerErrorResponseType.ServerErrorResponseType_BadRequest);
    agent.close();
  });

  it("refuses connections over maxConnections (503 + Retry-After)", async () => {
    const { url } = await startServer({ limits: { maxConnections: 1, retryAfterMs: 9000 } });
    const holder = await TestAgent.connect("websocket", url);
    await holder.send(holder.fullState());
    if (transport === "websocket") {
      await expect(TestAgent.connect("websocket", url)).rejects.toMatchObject({ status: 503 });
    } else {
      const agent = await TestAgent.connect("http", url);
      const err = await agent.send(agent.fullState()).catch((e: HttpStatusError) => e);
      expect(err).toBeInstanceOf(HttpStatusError);
      expect((err as HttpStatusError).status).toBe(503);
      expect((err as HttpStatusError).headers.get("retry-after")).toBe("9");
    }
    holder.close();
  });

  it("closes with 1001 / answers 503 after stop()", async () => {
    const { server, url } = await startServer();
    const agent = await TestAgent.connect(transport, url);
    await agent.send(agent.fullState());
    const gone = waitFor(server, "agentDisconnected");
    await server.stop();
    const [, reason] = await gone;
    expect(reason).toBe("server_stopped");
    if (transport === "websocket") expect((await agent.waitClosed()).code).toBe(1001);
    else await expect(agent.send(agent.message())).rejects.toBeDefined();
  });
});

describe("safety over http only", () => {
  it("accepts gzip request bodies and gzips responses when allowed", async () => {
    // gzipMinBytes 1: these replies are smaller than the default threshold.
    const { server, url } = await startServer({ transport: { gzipMinBytes: 1 } });
    const agent = await TestAgent.connect("http", url, { gzipRequest: true, acceptGzip: true });
    const connected = waitFor(server, "agentConnected");
    const reply = await agent.send(agent.fullState());
    expect(agent.lastResponseHeaders?.get("content-encoding")).toBe("gzip");
    expect(reply.instanceUid).toEqual(agent.uid);
    await connected;
    const plain = await TestAgent.connect("http", url);
    await plain.send(plain.fullState());
    expect(plain.lastResponseHeaders?.get("content-encoding")).toBeNull();
  });

  it("answers 413 from Content-Length before reading the body", async () => {
    const { url } = await startServer({ limits: { maxMessageBytes: 100 } });
    const agent = await TestAgent.connect("http", url);
    const body = toBinary(
      AgentToServerSchema,
      agent.fullState({ effectiveConfig: { configMap: { configMap: { x: { body: new Uint8Array(500) } } } } }),
    );
    const res = await rawPost(url, { "content-type": PROTOBUF_CONTENT_TYPE }, body);
    expect(res.status).toBe(413);
  });

  it("answers 415 for another content type and 405 for GET", async () => {
    const { url } = await startServer();
    expect((await rawPost(url, { "content-type": "text/plain" }, new Uint8Array(1))).status).toBe(415);
    expect((await fetch(url)).status).toBe(405);
  });
});

describe("safety over websocket only", () => {
  it("closes a WebSocket that sends nothing within the handshake timeout", async () => {
    const { url } = await startServer({ limits: { handshakeTimeoutMs: 50 } });
    const agent = await TestAgent.connect("websocket", url);
    expect((await agent.waitClosed()).code).toBe(1008);
  });

  it("refuses agents over maxAgentsPerConnection with Unavailable + RetryInfo", async () => {
    const { server, url } = await startServer({ limits: { maxAgentsPerConnection: 1, retryAfterMs: 2000 } });
    const socket = await TestAgent.connect("websocket", url);
    await socket.send(socket.fullState());
    socket.uid = new Uint8Array(16).fill(9);
    socket.seq = 0n;
    const reply = await socket.send(socket.fullState());
    expect(reply.errorResponse?.type).toBe(ServerErrorResponseType.ServerErrorResponseType_Unavailable);
    expect(reply.errorResponse?.Details.case).toBe("retryInfo");
    expect(reply.errorResponse?.Details.value?.retryAfterNanoseconds).toBe(2_000_000_000n);
    expect(server.agents.size).toBe(1);
    socket.close();
  });

  it("moves a UID to the newest connection (duplicate-UID policy)", async () => {
    const { server, url } = await startServer();
    const a = await TestAgent.connect("websocket", url);
    await a.send(a.fullState());
    const b = await TestAgent.connect("websocket", url, { uid: a.uid });
    b.seq = a.seq;
    const updated = waitFor(server, "agentUpdated", (_x, changes) => changes.includes("connection"));
    await b.send(b.message());
    await updated;
    // The old connection closing no longer disconnects the agent.
    a.close();
    await a.waitClosed();
    const restart = server.setRemoteConfig(a.uid, { k: "v" });
    await restart;
    expect((await b.next((m) => m.remoteConfig !== undefined)).remoteConfig).toBeDefined();
    expect(server.agents.size).toBe(1);
    b.close();
  });
});

describe("duplicate UIDs with duplicateUid: reassign", () => {
  it("gives the older of two live instances sharing a UID a new one", async () => {
    const { server, url } = await startServer({ duplicateUid: "reassign" });
    const a = await TestAgent.connect("websocket", url);
    await a.send(a.fullState());
    const clone = await TestAgent.connect("websocket", url, { uid: a.uid });
    await clone.send(clone.fullState()); // the UID moves to the clone's connection
    const reply = await a.send(a.message()); // the original speaks again on its old connection
    const fresh = reply.agentIdentification?.newInstanceUid;
    expect(fresh?.length).toBe(16);
    expect(reply.instanceUid).toEqual(a.uid);
    a.uid = fresh!;
    a.seq = 0n;
    await a.send(a.fullState());
    expect(server.agents.size).toBe(2);
    expect(server.getAgent(clone.uid)).toBeDefined();
    expect(server.getAgent(fresh!)).toBeDefined();
    a.close();
    clone.close();
  });
});

describe("handshake failures", () => {
  it("gives the connection slot back when the upgrade request itself is invalid", async () => {
    const { server, url } = await startServer({ limits: { maxConnections: 1 } });
    const { hostname, port, pathname } = new URL(url);
    const { connect } = await import("node:net");
    // An upgrade without Sec-WebSocket-Key: ws refuses it without accepting.
    await new Promise<void>((resolve, reject) => {
      const socket = connect(Number(port), hostname, () => {
        socket.write(
          `GET ${pathname} HTTP/1.1\r\nHost: ${hostname}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        );
      });
      socket.on("data", () => undefined);
      socket.on("close", () => resolve());
      socket.on("error", reject);
    });
    const agent = await TestAgent.connect("websocket", url);
    expect((await agent.send(agent.fullState())).instanceUid).toEqual(agent.uid);
    expect(server.connectionCount).toBe(1);
    agent.close();
  });
});

describe("limits measured after decompression", () => {
  it("HTTP: a small gzip body that inflates past the limit gets 413", async () => {
    const { url } = await startServer({ limits: { maxMessageBytes: 64 * 1024 } });
    const agent = await TestAgent.connect("http", url);
    const big = agent.fullState({
      effectiveConfig: { configMap: { configMap: { z: { body: new Uint8Array(1024 * 1024) } } } },
    });
    const bomb = await gzip(toBinary(AgentToServerSchema, big));
    expect(bomb.length).toBeLessThan(64 * 1024);
    const res = await rawPost(url, { "content-type": PROTOBUF_CONTENT_TYPE, "content-encoding": "gzip" }, bomb);
    expect(res.status).toBe(413);
  });

  it("WebSocket: a permessage-deflate message that inflates past the limit closes with 1009", async () => {
    const { url } = await startServer({
      limits: { maxMessageBytes: 64 * 1024 },
      transport: { perMessageDeflate: true },
    });
    const { default: WebSocket } = await import("ws");
    const ws = new WebSocket(url.replace("http", "ws"), { perMessageDeflate: true });
    await new Promise((resolve) => ws.once("open", resolve));
    expect(ws.extensions).toContain("permessage-deflate");
    const closed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
    ws.send(new Uint8Array(1024 * 1024)); // zeros: tiny on the wire, 1 MiB inflated
    expect(await closed).toBe(1009);
  });
});
