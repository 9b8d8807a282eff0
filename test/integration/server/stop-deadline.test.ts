/**
 * Issue 16, defect 8: `stop()` ends at its `stopTimeoutMs` deadline whatever the peers do.
 * Idle TCP connections, half-sent request headers and stalled request bodies are cut
 * there, on the `listen()` server and, for requests in flight, on a mounted one.
 */
import { createServer, type Server } from "node:http";
import { type AddressInfo, connect, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { OpAMPServer } from "../../../src/server/index.js";
import { ManualClock } from "../../../src/testing/client-manual-clock.js";
import { TestAgent } from "./test-agent.js";

const servers: OpAMPServer[] = [];
const listeners: Server[] = [];

afterEach(async () => {
  for (const listener of listeners.splice(0)) {
    listener.closeAllConnections();
    await new Promise((resolve) => listener.close(resolve));
  }
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

/** A server on its own listener, on a manual clock so that the test moves the deadline. */
async function listening(stopTimeoutMs: number) {
  const clock = new ManualClock();
  const server = new OpAMPServer({ allowAnonymous: true, clock, stopTimeoutMs });
  servers.push(server);
  const { port } = await server.listen({ port: 0, host: "127.0.0.1" });
  return { server, clock, port };
}

/** Opens a TCP connection, writes `text` (if any), and resolves once connected. */
function rawConnection(port: number, text = ""): Promise<{ socket: Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => {
      if (text !== "") socket.write(text);
      resolve({ socket, closed: new Promise((done) => socket.once("close", () => done())) });
    });
    socket.on("error", () => undefined);
    socket.once("error", reject);
  });
}

/** Resolves once the server has the request in hand (its connection slot taken). */
async function untilInFlight(server: OpAMPServer, count: number): Promise<void> {
  while (server.connectionCount < count) await new Promise((resolve) => setImmediate(resolve));
}

describe("stop() deadline with listen()", () => {
  it("cuts idle connections and half-sent request headers at stopTimeoutMs", async () => {
    const { server, clock, port } = await listening(1000);
    const idle = await rawConnection(port);
    const halfHeaders = await rawConnection(port, "POST /v1/opamp HTTP/1.1\r\nHost: x\r\nContent-Ty");
    const stopped = server.stop();
    clock.advance(1000);
    await stopped;
    await Promise.all([idle.closed, halfHeaders.closed]);
    expect(idle.socket.destroyed).toBe(true);
  });

  it("cuts 20 stalled request bodies at the deadline (no wait for the body timeout)", async () => {
    const { server, clock, port } = await listening(2000);
    const stalled = await Promise.all(
      Array.from({ length: 20 }, () =>
        rawConnection(
          port,
          "POST /v1/opamp HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\n0123",
        ),
      ),
    );
    await untilInFlight(server, 20);
    const stopped = server.stop();
    clock.advance(2000);
    await stopped;
    await Promise.all(stalled.map((c) => c.closed));
    expect(server.connectionCount).toBe(0);
  });

  it("ends at once when nothing is in flight, without waiting for the deadline", async () => {
    const { server, port } = await listening(60_000);
    const agent = await TestAgent.connect("http", `http://127.0.0.1:${port}/v1/opamp`);
    await agent.send(agent.fullState());
    // The keep-alive connection of that exchange is idle: closed at once, not at the deadline.
    await server.stop();
  });
});

describe("stop() deadline on a mounted server", () => {
  it("destroys the sockets of requests still in flight at the deadline, leaving the application's server up", async () => {
    const clock = new ManualClock();
    const server = new OpAMPServer({ allowAnonymous: true, clock, stopTimeoutMs: 500 });
    servers.push(server);
    await server.start();
    const listener = createServer();
    listeners.push(listener);
    server.attach(listener);
    await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
    const { port } = listener.address() as AddressInfo;
    const stalled = await rawConnection(
      port,
      "POST /v1/opamp HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 50\r\n\r\n01",
    );
    await untilInFlight(server, 1);
    const stopped = server.stop();
    clock.advance(500);
    await stopped;
    await stalled.closed;
    expect(listener.listening).toBe(true);
  });
});
