/**
 * The ways to mount the server: the fetch handler (no listener at all), handlers on an
 * application's own node:http server next to other routes, plus the slow-consumer limit
 * and the heartbeat interval advertised to agents.
 */

import { createServer } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { AgentToServerSchema, ServerToAgentSchema } from "../../../src/gen/opamp/v1/opamp_pb.js";
import { OpAMPServer } from "../../../src/server/index.js";
import { ManualClock } from "../../../src/testing/index.js";
import {
  AgentCapability,
  agentDescription,
  gunzip,
  gzip,
  newInstanceUid,
  PROTOBUF_CONTENT_TYPE,
  ServerCapability,
} from "../../../src/wire/index.js";
import { startServer, stopAll } from "./helpers.js";
import { DEFAULT_CAPS, TestAgent, waitFor } from "./test-agent.js";

afterEach(stopAll);

function firstReport(uid = newInstanceUid()): Uint8Array {
  return toBinary(
    AgentToServerSchema,
    create(AgentToServerSchema, {
      instanceUid: uid,
      capabilities: AgentCapability.ReportsStatus,
      agentDescription: agentDescription({ identifying: { "service.name": "fetch" } }),
    }),
  );
}

describe("fetch handler", () => {
  it("serves HTTP polling from a Request without any listener, gzip both ways", async () => {
    // gzipMinBytes 1: this first reply is far smaller than the default threshold.
    const server = new OpAMPServer({ allowAnonymous: true, transport: { gzipMinBytes: 1 } });
    await server.start();
    const uid = newInstanceUid();
    const connected = waitFor(server, "agentConnected");
    const res = await server.fetch(
      new Request("http://opamp.test/v1/opamp", {
        method: "POST",
        headers: { "content-type": PROTOBUF_CONTENT_TYPE, "content-encoding": "gzip", "accept-encoding": "gzip" },
        body: new Uint8Array(await gzip(firstReport(uid))),
      }),
      { remoteAddress: "10.0.0.1" },
    );
    expect(res.status).toBe(200);
    expect(res.headers.get("content-encoding")).toBe("gzip");
    const reply = fromBinary(ServerToAgentSchema, await gunzip(new Uint8Array(await res.arrayBuffer())));
    expect(reply.instanceUid).toEqual(uid);
    expect(reply.capabilities & ServerCapability.AcceptsStatus).toBe(ServerCapability.AcceptsStatus);
    const [agent] = await connected;
    expect(agent.remoteAddress).toBe("10.0.0.1");
    await server.stop();
  });

  it("answers 404 off-path, 426 to upgrades, 400 to garbage, 503 after stop", async () => {
    const server = new OpAMPServer({ allowAnonymous: true });
    await server.start();
    const post = (body: Uint8Array, url = "http://x/v1/opamp", headers: Record<string, string> = {}) =>
      server.fetch(
        new Request(url, {
          method: "POST",
          headers: { "content-type": PROTOBUF_CONTENT_TYPE, ...headers },
          body: new Uint8Array(body),
        }),
      );
    expect((await post(firstReport(), "http://x/other")).status).toBe(404);
    expect((await server.fetch(new Request("http://x/v1/opamp", { headers: { upgrade: "websocket" } }))).status).toBe(
      426,
    );
    expect((await post(new Uint8Array([0xff, 0xff, 0xff]))).status).toBe(400);
    await server.stop();
    expect((await post(firstReport())).status).toBe(503);
  });
});

describe("mounting on an application's node:http server", () => {
  it("shares the server with other routes through requestHandler(next) and upgradeHandler", async () => {
    const opamp = new OpAMPServer({ allowAnonymous: true });
    await opamp.start();
    const app = createServer((req, res) => {
      opamp.requestHandler(req, res, () => res.writeHead(200, { "content-type": "text/plain" }).end("app"));
    });
    app.on("upgrade", (req, socket, head) => void opamp.upgradeHandler(req, socket, head));
    await new Promise<void>((resolve) => app.listen(0, "127.0.0.1", resolve));
    const { port } = app.address() as AddressInfo;
    const url = `http://127.0.0.1:${port}/v1/opamp`;
    try {
      expect(await (await fetch(`http://127.0.0.1:${port}/health`)).text()).toBe("app");
      const ws = await TestAgent.connect("websocket", url);
      expect((await ws.send(ws.fullState())).instanceUid).toEqual(ws.uid);
      const http = await TestAgent.connect("http", url);
      expect((await http.send(http.fullState())).instanceUid).toEqual(http.uid);
      expect(opamp.agents.size).toBe(2);
      await opamp.stop();
      expect((await ws.waitClosed()).code).toBe(1001);
    } finally {
      await opamp.stop();
      app.closeAllConnections();
      await new Promise<void>((resolve) => app.close(() => resolve()));
    }
  });

  it("answers polls with small and large bodies whole, with parameters on Content-Type", async () => {
    const { server, url } = await startServer();
    const agent = await TestAgent.connect("http", url);
    // A reply of a few dozen bytes (copied into Node's pool when written)…
    const first = await agent.send(agent.fullState());
    expect(first.instanceUid).toEqual(agent.uid);
    // …and one carrying a 20 KB config (written as a view over the encoded reply).
    const body = new Uint8Array(20_000).map((_, i) => (i * 7) & 0xff);
    const { hash } = await server.setRemoteConfig(agent.uid, { "big.bin": body });
    const withConfig = await agent.send(agent.message());
    expect(withConfig.remoteConfig?.configHash).toEqual(hash);
    expect(withConfig.remoteConfig?.config?.configMap["big.bin"]?.body).toEqual(body);

    const raw = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "Application/X-Protobuf; charset=binary" },
      body: toBinary(AgentToServerSchema, agent.message()),
    });
    expect(raw.status).toBe(200);
    expect(fromBinary(ServerToAgentSchema, new Uint8Array(await raw.arrayBuffer())).instanceUid).toEqual(agent.uid);
  });

  it("refuses to construct without authenticate unless allowAnonymous is set", () => {
    // @ts-expect-error the types require hooks.authenticate or allowAnonymous: true
    expect(() => new OpAMPServer({})).toThrow(expect.objectContaining({ code: "invalid_argument" }));
  });
});

describe("limits and heartbeat", () => {
  it("drops a WebSocket that stops reading once its send buffer passes maxBufferedBytes", async () => {
    const { server, url } = await startServer({ limits: { maxBufferedBytes: 64 * 1024 } });
    const agent = await TestAgent.connect("websocket", url);
    await agent.send(agent.fullState());
    (agent.ws as unknown as { _socket: Socket })._socket.pause();
    const limit = waitFor(server, "error", (e) => e.code === "limit_exceeded");
    const big = "x".repeat(512 * 1024); // under the 1 MiB message limit
    const gone = waitFor(server, "agentDisconnected");
    for (let i = 0; i < 64 && server.agents.size > 0; i++) {
      await server.setRemoteConfig(() => true, { "big.txt": `${i}${big}` });
    }
    await limit;
    expect((await gone)[1]).toBe("connection_closed");
  });

  it("drops a WebSocket that stops answering pings (half-open connection)", async () => {
    const { server, url } = await startServer({ heartbeat: { wsPingIntervalMs: 50 } });
    const live = await TestAgent.connect("websocket", url);
    await live.send(live.fullState());
    const dead = await TestAgent.connect("websocket", url);
    await dead.send(dead.fullState());
    (dead.ws as unknown as { _socket: Socket })._socket.pause(); // reads nothing, so never pongs
    const [gone] = await waitFor(server, "agentDisconnected");
    expect(gone.instanceUid).toEqual(dead.uid);
    expect(server.agents.size).toBe(1); // the live one answers its pings and stays
    live.close();
  });

  it("spreads the ping round over its interval, one slice of the sockets at a time", async () => {
    // 3 s: three slices, one a second; sockets are dealt to them in turn.
    const clock = new ManualClock();
    const { server, url } = await startServer({ clock, heartbeat: { wsPingIntervalMs: 3000 } });
    const agents: TestAgent[] = [];
    const pings: number[] = [];
    for (let i = 0; i < 6; i++) {
      const agent = await TestAgent.connect("websocket", url);
      await agent.send(agent.fullState());
      pings.push(0);
      agent.ws!.on("ping", () => pings[i]!++);
      agents.push(agent);
    }
    // A ping goes out before any later reply on its socket: after one round trip per agent,
    // every ping of the slice just visited has arrived.
    const settle = () => Promise.all(agents.map((a) => a.send(a.message())));
    const pinged = () => pings.filter((n) => n > 0).length;
    clock.advance(1000);
    await settle();
    expect(pinged()).toBe(2);
    clock.advance(1000);
    await settle();
    expect(pinged()).toBe(4);
    clock.advance(1000);
    await settle();
    expect(pings).toEqual([1, 1, 1, 1, 1, 1]);

    // A socket that stops reading is dropped at the next visit of its slice that finds it
    // silent since the previous one; the others stay.
    const dead = agents[1]!;
    (dead.ws as unknown as { _socket: Socket })._socket.pause();
    const gone = waitFor(server, "agentDisconnected");
    for (let i = 0; i < 6 && server.agents.size === 6; i++) {
      clock.advance(1000);
      await Promise.all(agents.filter((a) => a !== dead).map((a) => a.send(a.message())));
    }
    expect((await gone)[0].instanceUid).toEqual(dead.uid);
    expect(server.agents.size).toBe(5);
    for (const agent of agents) agent.close();
  });

  it("tells heartbeat-reporting agents the interval in the first reply", async () => {
    const { url } = await startServer({ heartbeat: { intervalSeconds: 17 } });
    const agent = await TestAgent.connect("websocket", url, {
      capabilities: DEFAULT_CAPS | AgentCapability.ReportsHeartbeat,
    });
    const first = await agent.send(agent.fullState());
    expect(first.connectionSettings?.opamp?.heartbeatIntervalSeconds).toBe(17n);
    expect(first.connectionSettings?.opamp?.destinationEndpoint).toBe(url.replace("http", "ws"));
    expect((await agent.send(agent.message())).connectionSettings).toBeUndefined();
    agent.close();
  });
});
