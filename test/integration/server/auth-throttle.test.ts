/**
 * Repeated refused authentications from one address are slowed down with 429 and
 * Retry-After, over both transports, without touching other addresses; the window runs on
 * the server's clock.
 */
import { request } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { AuthenticateHook } from "../../../src/server/index.js";
import { ManualClock } from "../../../src/testing/index.js";
import type { OpampError } from "../../../src/wire/index.js";
import { startServer, stopAll } from "./helpers.js";
import type { Transport } from "./test-agent.js";

afterEach(stopAll);

const transports: Transport[] = ["websocket", "http"];

let asked = 0;
const authenticate: AuthenticateHook = ({ headers }) => {
  asked++;
  return headers.authorization === "Bearer good" ? { accept: true } : { accept: false, status: 401 };
};

/** One request or upgrade from `from`; resolves with the status (101 for an accepted upgrade) and Retry-After. */
function attempt(
  transport: Transport,
  url: string,
  token: string,
  from = "127.0.0.1",
): Promise<{ status: number; retryAfter: string | undefined }> {
  const headers = { authorization: `Bearer ${token}` };
  if (transport === "websocket") {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url.replace(/^http/, "ws"), { headers, localAddress: from });
      ws.once("open", () => {
        ws.terminate();
        resolve({ status: 101, retryAfter: undefined });
      });
      ws.once("unexpected-response", (_req, res) => {
        resolve({ status: res.statusCode ?? 0, retryAfter: res.headers["retry-after"] as string | undefined });
        res.resume();
        ws.terminate();
      });
      ws.once("error", reject);
    });
  }
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: "POST", headers: { ...headers, "content-type": "application/x-protobuf" }, localAddress: from },
      (res) => {
        res.resume();
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, retryAfter: res.headers["retry-after"] as string | undefined }),
        );
      },
    );
    req.on("error", reject);
    // An empty AgentToServer: accepted, it is answered (an error_response BadRequest, status 200).
    req.end();
  });
}

describe.each(transports)("authentication throttle over %s", (transport) => {
  it("answers 429 + Retry-After after too many refusals from one address, other addresses unaffected", async () => {
    const clock = new ManualClock(1_000_000);
    const { server, url } = await startServer({
      allowAnonymous: false,
      clock,
      hooks: { authenticate },
      limits: { maxAuthFailures: 3, authFailureWindowMs: 60_000 },
    });
    const errors: OpampError[] = [];
    server.on("error", (e) => errors.push(e));
    asked = 0;
    for (let i = 0; i < 3; i++) expect((await attempt(transport, url, "wrong")).status).toBe(401);
    expect(asked).toBe(3);
    expect(errors.map((e) => e.code)).toEqual(["limit_exceeded"]);

    // Throttled: even good credentials wait, and the hook is not asked.
    const throttled = await attempt(transport, url, "good");
    expect(throttled.status).toBe(429);
    expect(throttled.retryAfter).toBe("60");
    expect(asked).toBe(3);

    // Another address is not affected.
    const other = await attempt(transport, url, "good", "127.0.0.2");
    expect(other.status).not.toBe(429);
    expect(other.status).not.toBe(401);
    expect(asked).toBe(4);

    // Retry-After shrinks with the window, and once it has passed the address is asked again.
    clock.advance(45_000);
    expect((await attempt(transport, url, "wrong")).retryAfter).toBe("15");
    clock.advance(15_000);
    const after = await attempt(transport, url, "good");
    expect(after.status).toBe(transport === "websocket" ? 101 : 200);
    expect(errors).toHaveLength(1);
  });

  it("counts by the application's key, and 0 turns throttling off", async () => {
    const keyed = await startServer({
      allowAnonymous: false,
      hooks: { authenticate, authThrottleKey: ({ headers }) => headers["x-site"] ?? "none" },
      limits: { maxAuthFailures: 1 },
    });
    expect((await attempt(transport, keyed.url, "wrong")).status).toBe(401);
    // Same address, but every request without x-site shares the key "none": throttled.
    expect((await attempt(transport, keyed.url, "wrong")).status).toBe(429);

    const off = await startServer({ allowAnonymous: false, hooks: { authenticate }, limits: { maxAuthFailures: 0 } });
    for (let i = 0; i < 20; i++) expect((await attempt(transport, off.url, "wrong")).status).toBe(401);
  });
});
