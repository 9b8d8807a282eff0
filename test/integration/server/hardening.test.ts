/**
 * Review findings at the edges: upgrade requests the URL parser refuses, authenticate hooks
 * that return unusable headers or never answer.
 */
import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { OpampError } from "../../../src/wire/index.js";
import { startServer, stopAll } from "./helpers.js";
import { HttpStatusError, TestAgent, type Transport, waitFor } from "./test-agent.js";

afterEach(stopAll);

const transports: Transport[] = ["websocket", "http"];

/** Writes a raw request and resolves with the whole response text once the server ends it. */
function rawExchange(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(request));
    let text = "";
    socket.on("data", (d) => {
      text += d.toString("latin1");
    });
    socket.on("end", () => resolve(text));
    socket.on("close", () => resolve(text));
    socket.on("error", reject);
  });
}

async function statusOf(transport: Transport, url: string): Promise<number> {
  try {
    const agent = await TestAgent.connect(transport, url);
    await agent.send(agent.fullState());
    agent.close();
    return 200;
  } catch (e) {
    if (e instanceof HttpStatusError) return e.status;
    throw e;
  }
}

describe("hardening", () => {
  it("answers 400 to an upgrade whose Host header is not a valid URL host (no unhandled rejection)", async () => {
    const { server, url } = await startServer();
    const port = Number(new URL(url).port);
    const response = await rawExchange(
      port,
      "GET /v1/opamp HTTP/1.1\r\nHost: a b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    expect(response.split("\r\n")[0]).toMatch(/^HTTP\/1\.1 400/);
    expect(server.connectionCount).toBe(0);
  });

  it("answers 400 to a poll whose Host header is not a valid URL host", async () => {
    const { url } = await startServer();
    const port = Number(new URL(url).port);
    const response = await rawExchange(
      port,
      "POST /v1/opamp HTTP/1.1\r\nHost: a b\r\nContent-Type: application/x-protobuf\r\n" +
        "Content-Length: 0\r\nConnection: close\r\n\r\n",
    );
    expect(response.split("\r\n")[0]).toMatch(/^HTTP\/1\.1 400/);
  });

  it("rejects (never throws) deliveries() for something that is not a UID", async () => {
    const { server } = await startServer();
    await expect(server.deliveries("not-a-uid")).rejects.toMatchObject({ code: "invalid_instance_uid" });
    await expect(server.deliveries(new Uint8Array(3))).rejects.toMatchObject({ code: "invalid_instance_uid" });
  });

  describe.each(transports)("over %s", (transport) => {
    it("answers 500 and reports hook_failed when authenticate returns a header with CR/LF", async () => {
      const { server, url } = await startServer({
        allowAnonymous: false,
        hooks: {
          authenticate: () => ({ accept: false, status: 401, headers: { "WWW-Authenticate": "x\r\nX-Evil: 1" } }),
        },
      });
      const error = waitFor(server, "error");
      expect(await statusOf(transport, url)).toBe(500);
      const [e] = (await error) as [OpampError];
      expect(e.code).toBe("hook_failed");
    });

    it("answers 503 + Retry-After when authenticate does not answer within handshakeTimeoutMs", async () => {
      const { server, url } = await startServer({
        allowAnonymous: false,
        limits: { handshakeTimeoutMs: 50 },
        hooks: { authenticate: () => new Promise(() => undefined) },
      });
      const error = waitFor(server, "error");
      expect(await statusOf(transport, url)).toBe(503);
      const [e] = (await error) as [OpampError];
      expect(e.code).toBe("timeout");
      expect(server.connectionCount).toBe(0);
    });
  });
});
