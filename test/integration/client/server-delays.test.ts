/**
 * Delays chosen by the server (Retry-After, RetryInfo, heartbeat_interval_seconds) are
 * bounded before they reach a timer, over both transports. Unbounded, a delay above
 * 2^31-1 ms makes Node fire the timer after 1 ms: a request or heartbeat storm.
 */
import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_MAX_HEARTBEAT_INTERVAL_MS, DEFAULT_MAX_RETRY_AFTER_MS } from "../../../src/client/options.js";
import {
  ConnectionSettingsOffersSchema,
  OpAMPConnectionSettingsSchema,
  RetryInfoSchema,
  ServerErrorResponseSchema,
  ServerErrorResponseType,
  ServerToAgentSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import { FakeServer } from "./fake-server.js";
import { eventWhere, makeClient, nextEvent, settle } from "./helpers.js";

const ABSURD_RETRY_AFTER = {
  "401 digits": "9".repeat(401),
  "3,000,000,000 seconds": "3000000000",
  "a date in the year 9999": "Fri, 31 Dec 9999 23:59:59 GMT",
};

describe.each(["ws", "http"] as const)("server-given delays over %s", (kind) => {
  let server: FakeServer;
  const attempts = () => (kind === "ws" ? server.upgrades.length : server.httpRequests.length);
  beforeEach(async () => {
    server = await FakeServer.start();
  });
  afterEach(async () => {
    await server.close();
  });

  for (const [what, value] of Object.entries(ABSURD_RETRY_AFTER)) {
    it(`bounds Retry-After of ${what} by DEFAULT_MAX_RETRY_AFTER_MS and retries once it has passed`, async () => {
      server.refusals.push({ status: 503, headers: { "Retry-After": value } });
      const { client, clock } = makeClient(server, kind);
      const failed = nextEvent(client, "connectFailed");
      await client.start();
      const [error] = await failed;
      expect(error.code).toBe("unavailable");
      expect(error.details.retryAfterMs).toBe(DEFAULT_MAX_RETRY_AFTER_MS);
      expect(client.state).toMatchObject({ t: "backoff", until: clock.now() + DEFAULT_MAX_RETRY_AFTER_MS });
      expect(Math.max(...clock.pending())).toBeLessThanOrEqual(DEFAULT_MAX_RETRY_AFTER_MS);
      clock.advance(DEFAULT_MAX_RETRY_AFTER_MS - 1);
      await settle();
      expect(attempts()).toBe(1);
      const connected = nextEvent(client, "connect");
      clock.advance(1);
      await connected;
      expect(attempts()).toBe(2);
      await client.stop();
    });
  }

  it("honours retry.maxRetryAfterMs", async () => {
    server.refusals.push({ status: 429, headers: { "Retry-After": "86400" } });
    const { client, clock } = makeClient(server, kind, { retry: { maxRetryAfterMs: 120_000 } });
    const failed = nextEvent(client, "connectFailed");
    await client.start();
    expect((await failed)[0].details.retryAfterMs).toBe(120_000);
    expect(client.state).toMatchObject({ t: "backoff", until: clock.now() + 120_000 });
    await client.stop();
  });

  it("bounds RetryInfo of 2^64-1 ns by DEFAULT_MAX_RETRY_AFTER_MS", async () => {
    server.script = ({ message }) =>
      create(ServerToAgentSchema, {
        instanceUid: message.instanceUid,
        ...(message.sequenceNum === 0n
          ? {
              errorResponse: create(ServerErrorResponseSchema, {
                type: ServerErrorResponseType.ServerErrorResponseType_Unavailable,
                Details: {
                  case: "retryInfo",
                  value: create(RetryInfoSchema, { retryAfterNanoseconds: 2n ** 64n - 1n }),
                },
              }),
            }
          : {}),
      });
    const { client, clock } = makeClient(server, kind);
    const unavailable = eventWhere(client, "error", (e) => e.code === "unavailable");
    const backoff = eventWhere(client, "stateChange", (s) => s.t === "backoff");
    await client.start();
    expect((await unavailable)[0].details.retryAfterMs).toBe(DEFAULT_MAX_RETRY_AFTER_MS);
    await backoff;
    expect(client.state).toMatchObject({ t: "backoff", until: clock.now() + DEFAULT_MAX_RETRY_AFTER_MS });
    expect(Math.max(...clock.pending())).toBeLessThanOrEqual(DEFAULT_MAX_RETRY_AFTER_MS);
    const again = server.next();
    clock.advance(DEFAULT_MAX_RETRY_AFTER_MS);
    expect((await again).message.sequenceNum).toBeGreaterThan(0n);
    await client.stop();
  });

  it("bounds an offered heartbeat_interval_seconds of 3,000,000 s by DEFAULT_MAX_HEARTBEAT_INTERVAL_MS", async () => {
    const { client, clock } = makeClient(server, kind, { transport: { heartbeatIntervalMs: 10_000 } });
    server.script = ({ message }) =>
      create(ServerToAgentSchema, {
        instanceUid: message.instanceUid,
        ...(message.sequenceNum === 0n
          ? {
              connectionSettings: create(ConnectionSettingsOffersSchema, {
                hash: new Uint8Array([7]),
                opamp: create(OpAMPConnectionSettingsSchema, { heartbeatIntervalSeconds: 3_000_000n }),
              }),
            }
          : {}),
      });
    const answered = nextEvent(client, "message");
    await client.start();
    await answered;
    await settle();
    // The only timer left is the heartbeat (WS) or the poll (HTTP): at the bound, not 1 ms.
    expect(clock.pending()).toEqual([DEFAULT_MAX_HEARTBEAT_INTERVAL_MS]);
    clock.advance(DEFAULT_MAX_HEARTBEAT_INTERVAL_MS - 1);
    await settle();
    expect(server.received).toHaveLength(1);
    const beat = server.next();
    clock.advance(1);
    expect((await beat).message.sequenceNum).toBe(1n);
    await client.stop();
  });

  it("honours transport.maxHeartbeatIntervalMs", async () => {
    const { client, clock } = makeClient(server, kind, { transport: { maxHeartbeatIntervalMs: 45_000 } });
    server.script = ({ message }) =>
      create(ServerToAgentSchema, {
        instanceUid: message.instanceUid,
        connectionSettings: create(ConnectionSettingsOffersSchema, {
          hash: new Uint8Array([8]),
          opamp: create(OpAMPConnectionSettingsSchema, { heartbeatIntervalSeconds: 2n ** 64n - 1n }),
        }),
      });
    const answered = nextEvent(client, "message");
    await client.start();
    await answered;
    await settle();
    expect(clock.pending()).toEqual([45_000]);
    await client.stop();
  });
});
