/**
 * Error paths over both transports, on a manual clock: Retry-After (seconds and date),
 * 401, 413, garbage answers, BadRequest, Unavailable + RetryInfo, lost connections.
 */
import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  ConnectionSettingsOffersSchema,
  OpAMPConnectionSettingsSchema,
  RetryInfoSchema,
  ServerErrorResponseSchema,
  ServerErrorResponseType,
  ServerToAgentSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import { agentDescription } from "../../../src/wire/agent-description.js";
import { FakeServer } from "./fake-server.js";
import { eventWhere, makeClient, nextEvent, settle } from "./helpers.js";

const description = agentDescription({ identifying: { "service.name": "errors" } });

describe.each(["ws", "http"] as const)("client error handling over %s", (kind) => {
  let server: FakeServer;
  const attempts = () => (kind === "ws" ? server.upgrades.length : server.httpRequests.length);
  beforeEach(async () => {
    server = await FakeServer.start();
  });
  afterEach(async () => {
    await server.close();
  });

  it("honours Retry-After seconds on 503", async () => {
    server.refusals.push({ status: 503, headers: { "Retry-After": "120" } });
    const { client, clock } = makeClient(server, kind);
    const failed = nextEvent(client, "connectFailed");
    await client.start();
    const [error] = await failed;
    expect(error.code).toBe("unavailable");
    expect(error.details.retryAfterMs).toBe(120_000);
    expect(client.state).toMatchObject({ t: "backoff", until: clock.now() + 120_000 });
    clock.advance(119_999);
    await settle();
    expect(attempts()).toBe(1);
    const connected = nextEvent(client, "connect");
    clock.advance(1);
    await connected;
    expect(attempts()).toBe(2);
    await client.stop();
  });

  it("honours Retry-After as an HTTP date on 429", async () => {
    const { client, clock } = makeClient(server, kind);
    server.refusals.push({ status: 429, headers: { "Retry-After": new Date(clock.now() + 90_000).toUTCString() } });
    const failed = nextEvent(client, "connectFailed");
    await client.start();
    expect((await failed)[0].details.retryAfterMs).toBe(90_000);
    clock.advance(89_000);
    await settle();
    expect(attempts()).toBe(1);
    const connected = nextEvent(client, "connect");
    clock.advance(1_000);
    await connected;
    await client.stop();
  });

  it("backs off and reports 401, then retries with jittered backoff", async () => {
    server.refusals.push({ status: 401 }, { status: 401 });
    const { client, clock } = makeClient(server, kind);
    const failures: string[] = [];
    client.on("connectFailed", (e) => failures.push(e.code));
    const second = eventWhere(client, "connectFailed", () => failures.length === 2);
    await client.start();
    await eventWhere(client, "connectFailed", () => true).catch(() => undefined);
    await settle();
    // random() = 0.5, first window 1 s → 500 ms; the second window 2 s → 1000 ms.
    expect(client.state).toMatchObject({ t: "backoff", until: clock.now() + 500 });
    clock.advance(500);
    await second;
    expect(client.state).toMatchObject({ t: "backoff", until: clock.now() + 1_000 });
    const connected = nextEvent(client, "connect");
    clock.advance(1_000);
    await connected;
    expect(failures).toEqual(["unauthenticated", "unauthenticated"]);
    await client.stop();
  });

  it("reports a garbage answer and recovers", async () => {
    server.garbage.push(new Uint8Array([0xff, 0xff, 0xff]));
    const { client, clock } = makeClient(server, kind, { agent: { description } });
    const errors: string[] = [];
    client.on("error", (e) => errors.push(e.code));
    client.on("connectFailed", (e) => errors.push(e.code));
    await client.start();
    await server.waitFor();
    await eventWhere(client, kind === "ws" ? "error" : "connectFailed", () => true);
    expect(errors.some((code) => code === "malformed_message" || code === "malformed_frame")).toBe(true);
    const next = server.next((r) => r.message.agentDescription !== undefined);
    client.setAgentDescription(agentDescription({ identifying: { "service.name": "still-alive" } }));
    if (kind === "http") clock.advance(500);
    expect((await next).message.agentDescription).toBeDefined();
    await client.stop();
  });

  it("does not resend a message the server called a BadRequest", async () => {
    server.script = ({ message }) =>
      create(ServerToAgentSchema, {
        instanceUid: message.instanceUid,
        ...(message.sequenceNum === 1n
          ? {
              errorResponse: create(ServerErrorResponseSchema, {
                type: ServerErrorResponseType.ServerErrorResponseType_BadRequest,
                errorMessage: "nope",
              }),
            }
          : {}),
      });
    const { client, clock } = makeClient(server, kind, { transport: { heartbeatIntervalMs: 10_000 } });
    await client.start();
    await nextEvent(client, "message");
    const error = nextEvent(client, "error");
    client.setAgentDescription(description);
    expect((await error)[0].code).toBe("server_error");
    await settle();
    const next = server.next();
    clock.advance(10_000);
    const msg = (await next).message;
    expect(msg.sequenceNum).toBe(2n);
    expect(msg.agentDescription).toBeUndefined();
    await client.stop();
  });

  it("waits RetryInfo after Unavailable and then sends full state", async () => {
    server.script = ({ message }) =>
      create(ServerToAgentSchema, {
        instanceUid: message.instanceUid,
        ...(message.sequenceNum === 0n
          ? {
              errorResponse: create(ServerErrorResponseSchema, {
                type: ServerErrorResponseType.ServerErrorResponseType_Unavailable,
                Details: {
                  case: "retryInfo",
                  value: create(RetryInfoSchema, { retryAfterNanoseconds: 45_000_000_000n }),
                },
              }),
            }
          : {}),
      });
    const { client, clock } = makeClient(server, kind, { agent: { description } });
    const failed = eventWhere(client, "stateChange", (s) => s.t === "backoff");
    await client.start();
    await failed;
    expect(client.state).toMatchObject({ t: "backoff", until: clock.now() + 45_000 });
    clock.advance(44_999);
    await settle();
    expect(server.received).toHaveLength(1);
    const next = server.next();
    clock.advance(1);
    const msg = (await next).message;
    expect(msg.agentDescription).toBeDefined();
    await client.stop();
  });
});

describe("WebSocket connection loss", () => {
  let server: FakeServer;
  beforeEach(async () => {
    server = await FakeServer.start();
  });
  afterEach(async () => {
    await server.close();
  });

  it("reconnects within the first backoff window when the server closes the socket, without resending unchanged status", async () => {
    const { client, clock } = makeClient(server, "ws", { agent: { description }, retry: { initialDelayMs: 800 } });
    await client.start();
    await nextEvent(client, "message");
    const lost = nextEvent(client, "disconnect");
    const back = server.next();
    server.closeSockets();
    expect((await lost)[0].code).toBe("transport_failed");
    // Jitter pinned at 0.5: the quick retry waits 0.5 × 800 ms, spread so a fleet does not
    // come back in one burst, and not a backoff step (which would not have been reset).
    expect(client.state).toMatchObject({ t: "backoff", until: clock.now() + 400 });
    clock.advance(399);
    await settle();
    expect(server.upgrades).toHaveLength(1);
    clock.advance(1);
    const msg = (await back).message;
    expect(msg.sequenceNum).toBe(1n);
    expect(msg.agentDescription).toBeUndefined();
    expect(server.upgrades).toHaveLength(2);
    await client.stop();
  });

  it("pings an idle socket when heartbeats are off and replaces it when no pong comes", async () => {
    await server.close();
    server = await FakeServer.start({ autoPong: false });
    server.script = ({ message }) =>
      create(ServerToAgentSchema, {
        instanceUid: message.instanceUid,
        connectionSettings: create(ConnectionSettingsOffersSchema, {
          hash: new Uint8Array([1]),
          opamp: create(OpAMPConnectionSettingsSchema, { heartbeatIntervalSeconds: 0n }),
        }),
      });
    const { client, clock } = makeClient(server, "ws", { transport: { responseTimeoutMs: 5_000 } });
    await client.start();
    await nextEvent(client, "message");
    await settle();
    clock.advance(4_999); // the first answer cleared the deadline; nothing is due yet
    expect(client.state.t).toBe("connected");
    const lost = nextEvent(client, "disconnect");
    clock.advance(1); // idle for responseTimeoutMs: ping
    clock.advance(5_000); // no pong within responseTimeoutMs: dead
    expect((await lost)[0].code).toBe("timeout");
    await client.stop();
  });

  it("replaces a socket that stops answering", async () => {
    const { client, clock } = makeClient(server, "ws", { transport: { responseTimeoutMs: 5_000 } });
    server.script = () => undefined;
    await client.start();
    await server.waitFor();
    const lost = nextEvent(client, "disconnect");
    clock.advance(5_000);
    expect((await lost)[0].code).toBe("timeout");
    const again = server.next();
    clock.advance(500);
    await again;
    expect(server.upgrades).toHaveLength(2);
    await client.stop();
  });
});

describe("HTTP status handling", () => {
  let server: FakeServer;
  beforeEach(async () => {
    server = await FakeServer.start();
  });
  afterEach(async () => {
    await server.close();
  });

  it("does not retry a message refused with 413", async () => {
    const { client, clock } = makeClient(server, "http", { transport: { heartbeatIntervalMs: 10_000 } });
    await client.start();
    await nextEvent(client, "message");
    await settle();
    server.refusals.push({ status: 413 });
    const error = nextEvent(client, "error");
    client.setAgentDescription(description);
    expect((await error)[0].code).toBe("message_too_large");
    await settle();
    expect(server.httpRequests).toHaveLength(2);
    const poll = server.next();
    clock.advance(10_000);
    expect((await poll).message.agentDescription).toBeUndefined();
    await client.stop();
  });

  it("gives up on a request the server never answers and retries after a backoff", async () => {
    server.hangs = 1;
    const { client, clock } = makeClient(server, "http", { transport: { responseTimeoutMs: 5_000 } });
    const failed = nextEvent(client, "connectFailed");
    await client.start();
    await server.waitFor();
    clock.advance(5_000);
    expect((await failed)[0].code).toBe("timeout");
    const retry = server.next();
    clock.advance(500);
    await retry;
    await nextEvent(client, "connect");
    await client.stop();
  });

  it("gzips requests of 1 KiB and more when asked, smaller ones not, and sends the protocol headers", async () => {
    // A first report over DEFAULT_GZIP_MIN_BYTES (1 KiB): its description is long.
    const { client } = makeClient(server, "http", {
      transport: { compression: true, headers: { Authorization: "Bearer t" } },
      agent: {
        description: agentDescription({
          identifying: { "service.name": "big" },
          nonIdentifying: { notes: "n".repeat(2000) },
        }),
      },
    });
    await client.start();
    const first = await server.waitFor();
    expect(first.headers["content-type"]).toBe("application/x-protobuf");
    expect(first.headers["content-encoding"]).toBe("gzip");
    expect(first.headers["accept-encoding"]).toContain("gzip");
    expect(first.headers.authorization).toBe("Bearer t");
    expect(first.message.agentDescription?.nonIdentifyingAttributes[0]?.value?.value.value).toBe("n".repeat(2000));
    await nextEvent(client, "message");
    // A small change goes out plain: gzipped it would grow.
    const next = server.next();
    client.setAgentDescription(agentDescription({ identifying: { "service.name": "small" } }));
    const second = await next;
    expect(second.headers["content-encoding"]).toBeUndefined();
    expect(second.message.agentDescription?.identifyingAttributes[0]?.value?.value.value).toBe("small");
    await client.stop();
  });
});
