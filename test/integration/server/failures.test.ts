/**
 * Failures of the application's parts (hooks, store) and slow peers: each is reported on
 * `error` with its code and the server keeps serving.
 */
import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { InMemoryServerStore } from "../../../src/server/index.js";
import { OpampError } from "../../../src/wire/index.js";
import { startServer, stopAll } from "./helpers.js";
import { HttpStatusError, TestAgent, type Transport, waitFor } from "./test-agent.js";

afterEach(stopAll);

/** A store whose agent writes always fail. */
class BrokenStore extends InMemoryServerStore {
  override async putAgent(): Promise<void> {
    throw new Error("disk full");
  }
}

describe.each(["websocket", "http"] as Transport[])("failures over %s", (transport) => {
  it("answers 500 and reports hook_failed when authenticate throws", async () => {
    const { server, url } = await startServer({
      allowAnonymous: false,
      hooks: {
        authenticate: () => {
          throw new Error("auth backend down");
        },
      },
    });
    const reported = waitFor(server, "error", (e) => e.code === "hook_failed");
    const status = await (async () => {
      try {
        const agent = await TestAgent.connect(transport, url);
        await agent.send(agent.fullState());
        return 200;
      } catch (e) {
        return e instanceof HttpStatusError ? e.status : -1;
      }
    })();
    expect(status).toBe(500);
    await reported;
  });

  it("reports storage_failed and keeps answering when the store fails", async () => {
    const { server, url } = await startServer({ store: new BrokenStore(), heartbeat: { sweepIntervalMs: 20 } });
    const reported = waitFor(server, "error", (e) => e.code === "storage_failed");
    const agent = await TestAgent.connect(transport, url);
    await agent.send(agent.fullState());
    const [error] = await reported;
    expect(error).toBeInstanceOf(OpampError);
    expect((await agent.send(agent.message())).errorResponse).toBeUndefined();
    expect(server.agents.size).toBe(1);
    agent.close();
  });

  it("keeps serving when an event listener throws", async () => {
    const { server, url } = await startServer();
    server.on("agentConnected", () => {
      throw new Error("listener bug");
    });
    const reported = waitFor(server, "error", (e) => e.message === "listener bug");
    const agent = await TestAgent.connect(transport, url);
    expect((await agent.send(agent.fullState())).instanceUid).toEqual(agent.uid);
    await reported;
    agent.close();
  });
});

describe("slow HTTP peers", () => {
  it("answers 408 when the body does not arrive within handshakeTimeoutMs", async () => {
    const { url } = await startServer({ limits: { handshakeTimeoutMs: 100 } });
    const { hostname, port, pathname } = new URL(url);
    const response = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), hostname, () => {
        socket.write(
          `POST ${pathname} HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/x-protobuf\r\nContent-Length: 100\r\n\r\nabc`,
        );
      });
      let data = "";
      socket.on("data", (d) => {
        data += d.toString();
      });
      socket.on("close", () => resolve(data));
      socket.on("error", reject);
    });
    expect(response.startsWith("HTTP/1.1 408")).toBe(true);
  });
});

describe("clients that vanish", () => {
  it("gives the slot back at once when a client disconnects mid-body", async () => {
    const { server, url } = await startServer({ limits: { maxConnections: 1 } });
    const { hostname, port, pathname } = new URL(url);
    const socket = connect(Number(port), hostname);
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    socket.write(
      `POST ${pathname} HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/x-protobuf\r\nContent-Length: 100\r\n\r\nabc`,
    );
    // Wait until the server holds the request, then vanish.
    while (server.connectionCount === 0) await new Promise((r) => setImmediate(r));
    socket.destroy();
    while (server.connectionCount > 0) await new Promise((r) => setImmediate(r));
    const agent = await TestAgent.connect("http", url);
    expect((await agent.send(agent.fullState())).instanceUid).toEqual(agent.uid);
  });
});
