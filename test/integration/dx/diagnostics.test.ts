/**
 * Diagnostics (issue 15), over both transports with a real client and server: the
 * `node:diagnostics_channel` channels report connections, messages (with their wire size)
 * and pushes with their outcome, and the OpenTelemetry metrics count the same, plus the
 * refused authentications.
 */
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { OpAMPClient } from "../../../src/client/index.js";
import { AgentToServerSchema } from "../../../src/gen/opamp/v1/opamp_pb.js";
import {
  type Agent,
  bearerToken,
  CONNECTION_CHANNEL,
  type ConnectionDiagnostic,
  MESSAGE_CHANNEL,
  type MessageDiagnostic,
  type MeterProviderLike,
  PUSH_CHANNEL,
  type PushDiagnostic,
  SERVER_METRIC_NAMES,
} from "../../../src/server/index.js";
import {
  AgentCapability,
  instanceUidToString,
  newInstanceUid,
  OpampError,
  PROTOBUF_CONTENT_TYPE,
} from "../../../src/wire/index.js";
import { startServer, stopAll } from "../server/helpers.js";
import { rawPost, waitFor } from "../server/test-agent.js";

/** A MeterProvider that sums every recorded value by metric name and attributes. */
function recordingMeterProvider() {
  const sums = new Map<string, number>();
  const meters: string[] = [];
  const instrument = (name: string) => ({
    add(value: number, attributes: object = {}) {
      const key = `${name} ${JSON.stringify(Object.entries(attributes).sort())}`;
      sums.set(key, (sums.get(key) ?? 0) + value);
    },
    record() {},
  });
  const provider: MeterProviderLike = {
    getMeter(name) {
      meters.push(name);
      return { createCounter: instrument, createUpDownCounter: instrument, createHistogram: instrument };
    },
  };
  const sum = (name: string, attributes: Record<string, string | number>) =>
    sums.get(`${name} ${JSON.stringify(Object.entries(attributes).sort())}`) ?? 0;
  return { provider, sum, meters, sums };
}

/** Collects what a channel publishes until the test ends. */
const subscriptions: [string, (message: unknown) => void][] = [];
function collect<T>(name: string): T[] {
  const seen: T[] = [];
  const listener = (message: unknown) => seen.push(message as T);
  subscribe(name, listener);
  subscriptions.push([name, listener]);
  return seen;
}

const clients: OpAMPClient[] = [];
afterEach(async () => {
  for (const [name, listener] of subscriptions.splice(0)) unsubscribe(name, listener);
  await Promise.all(clients.splice(0).map((c) => c.stop()));
  await stopAll();
});

const TOKEN = "diag-token";
const authenticate = (request: { headers: Readonly<Record<string, string>> }) =>
  bearerToken(request.headers) === TOKEN
    ? { accept: true as const }
    : { accept: false as const, status: 401, message: "bad token" };

describe.each(["ws", "http"] as const)("diagnostics over %s", (scheme) => {
  const transport = scheme === "ws" ? "websocket" : "http";

  it("reports connections, messages and pushes on the channels and in the metrics", async () => {
    const metrics = recordingMeterProvider();
    const { server, url } = await startServer({
      allowAnonymous: false,
      hooks: { authenticate },
      metrics: { meterProvider: metrics.provider },
      heartbeat: { intervalSeconds: 1 },
    });
    expect(metrics.meters).toEqual(["opamp-sdk/server"]);
    const connections = collect<ConnectionDiagnostic>(CONNECTION_CHANNEL);
    const messages = collect<MessageDiagnostic>(MESSAGE_CHANNEL);
    const pushes = collect<PushDiagnostic>(PUSH_CHANNEL);

    const client = new OpAMPClient({
      transport: { url: url.replace(/^http/, scheme), headers: { authorization: `Bearer ${TOKEN}` } },
      agent: { description: { identifying: { "service.name": "diag" } } },
      hooks: { onRemoteConfig: () => ({ status: "applied" }) },
    });
    clients.push(client);
    const connected = waitFor(server, "agentConnected");
    await client.start();
    const [agent] = await connected;

    expect(connections).toEqual([{ event: "connected", agent, transport }]);
    expect(metrics.sum("opamp.server.agents", { transport })).toBe(1);
    const received = messages.filter((m) => m.direction === "received");
    expect(received.length).toBeGreaterThanOrEqual(1);
    expect(received[0]).toMatchObject({ transport, instanceUid: agent.id });
    expect(received[0]?.direction === "received" && received[0].message.agentDescription).toBeDefined();

    // A push to the agent: sent to one; to an unknown UID: failed with its error; to
    // every agent with a capability this one lacks: skipped.
    const applied = waitFor(server, "agentUpdated", (a: Agent) => a.remoteConfigState?.status === "applied");
    await server.setRemoteConfig(agent.id, { "c.yaml": "a: 1" });
    await expect(server.setRemoteConfig(instanceUidToString(newInstanceUid()), { "c.yaml": "a: 1" })).rejects.toThrow(
      OpampError,
    );
    server.sendRestart(() => true);
    expect(pushes.map(({ kind, sent, skipped, error }) => ({ kind, sent, skipped, code: error?.code }))).toEqual([
      { kind: "remoteConfig", sent: 1, skipped: 0, code: undefined },
      { kind: "remoteConfig", sent: 0, skipped: 0, code: "unknown_agent" },
      { kind: "restart", sent: 0, skipped: 1, code: undefined },
    ]);
    expect(metrics.sum("opamp.server.pushes", { kind: "remoteConfig", outcome: "sent" })).toBe(1);
    expect(metrics.sum("opamp.server.pushes", { kind: "remoteConfig", outcome: "failed" })).toBe(1);
    expect(metrics.sum("opamp.server.pushes", { kind: "restart", outcome: "skipped" })).toBe(1);
    await applied;

    // The metrics count what the channel reports, message for message and byte for byte.
    const count = (direction: "received" | "sent") => messages.filter((m) => m.direction === direction);
    const bytes = (direction: "received" | "sent") => count(direction).reduce((n, m) => n + m.bytes, 0);
    for (const direction of ["received", "sent"] as const) {
      expect(count(direction).length).toBeGreaterThanOrEqual(2);
      expect(count(direction).every((m) => m.transport === transport && m.bytes > 0)).toBe(true);
      expect(metrics.sum("opamp.server.messages", { direction, transport })).toBe(count(direction).length);
      expect(metrics.sum("opamp.server.message.bytes", { direction, transport })).toBe(bytes(direction));
    }

    const gone = waitFor(server, "agentDisconnected");
    await client.stop();
    await gone;
    expect(connections.at(-1)).toEqual({ event: "disconnected", agent, transport, reason: "agent_disconnect" });
    expect(metrics.sum("opamp.server.agents", { transport })).toBe(0);
  });

  it("counts refused authentications by status", async () => {
    const metrics = recordingMeterProvider();
    const { url } = await startServer({
      allowAnonymous: false,
      hooks: { authenticate },
      metrics: { meterProvider: metrics.provider },
    });
    const body = toBinary(AgentToServerSchema, create(AgentToServerSchema, { instanceUid: newInstanceUid() }));
    if (scheme === "http") {
      const refused = await rawPost(url, { "content-type": PROTOBUF_CONTENT_TYPE }, body);
      expect(refused.status).toBe(401);
    } else {
      const ws = new WebSocket(url.replace(/^http/, "ws"), { headers: { authorization: "Bearer wrong" } });
      ws.on("error", () => undefined); // terminate() below aborts the refused handshake
      const status = await new Promise<number>((resolve) =>
        ws.on("unexpected-response", (_q, r) => resolve(r.statusCode ?? 0)),
      );
      ws.terminate();
      expect(status).toBe(401);
    }
    expect(metrics.sum("opamp.server.auth.refusals", { status: 401 })).toBe(1);
  });
});

describe("diagnostics when nobody looks", () => {
  it("asks for no meter when metrics are disabled, and still serves", async () => {
    const metrics = recordingMeterProvider();
    const { url } = await startServer({ metrics: { enabled: false, meterProvider: metrics.provider } });
    const body = toBinary(
      AgentToServerSchema,
      create(AgentToServerSchema, { instanceUid: newInstanceUid(), capabilities: AgentCapability.ReportsStatus }),
    );
    expect((await rawPost(url, { "content-type": PROTOBUF_CONTENT_TYPE }, body)).status).toBe(200);
    expect(metrics.meters).toEqual([]);
    expect(metrics.sums.size).toBe(0);
  });

  it("reports the exact HTTP body sizes, gzipped or not", async () => {
    const messages = collect<MessageDiagnostic>(MESSAGE_CHANNEL);
    const { url } = await startServer({ transport: { gzipMinBytes: 1 } });
    const body = toBinary(
      AgentToServerSchema,
      create(AgentToServerSchema, { instanceUid: newInstanceUid(), capabilities: AgentCapability.ReportsStatus }),
    );
    const reply = await rawPost(url, { "content-type": PROTOBUF_CONTENT_TYPE, "accept-encoding": "gzip" }, body);
    expect(reply.headers.get("content-encoding")).toBe("gzip");
    expect(messages.map((m) => [m.direction, m.bytes])).toEqual([
      ["received", body.length],
      ["sent", reply.body.length],
    ]);
  });
});

// Published names are part of the contract.
it("names the channels and metrics as documented", () => {
  expect([CONNECTION_CHANNEL, MESSAGE_CHANNEL, PUSH_CHANNEL]).toEqual([
    "opamp-sdk:server:connection",
    "opamp-sdk:server:message",
    "opamp-sdk:server:push",
  ]);
  expect(SERVER_METRIC_NAMES).toContain("opamp.server.auth.refusals");
});

describe("server logging", () => {
  it("logs start, listen, agents, refused authentications and stop through the given logger", async () => {
    const lines: { level: string; message: string; fields: Record<string, unknown> }[] = [];
    const at = (level: string) => (fields: Readonly<Record<string, unknown>>, message: string) =>
      void lines.push({ level, message, fields: { ...fields } });
    const logger = { trace: at("trace"), debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
    const { server, url } = await startServer({ allowAnonymous: false, hooks: { authenticate }, logger });
    const uid = newInstanceUid();
    const report = toBinary(
      AgentToServerSchema,
      create(AgentToServerSchema, { instanceUid: uid, capabilities: AgentCapability.ReportsStatus }),
    );
    const headers = { "content-type": PROTOBUF_CONTENT_TYPE };
    expect((await rawPost(url, headers, report)).status).toBe(401);
    expect((await rawPost(url, { ...headers, authorization: `Bearer ${TOKEN}` }, report)).status).toBe(200);
    await server.stop();
    expect(lines.map((l) => `${l.level} ${l.message}`)).toEqual([
      "info started",
      "info listening",
      "debug authentication refused",
      "debug agent connected",
      "debug agent disconnected",
      "info stopped",
    ]);
    expect(lines[1]?.fields).toEqual({ url });
    expect(lines[2]?.fields["status"]).toBe(401);
    expect(lines[3]?.fields).toMatchObject({ instanceUid: instanceUidToString(uid), transport: "http" });
    expect(lines[4]?.fields).toEqual({ instanceUid: instanceUidToString(uid), reason: "server_stopped" });
  });
});
