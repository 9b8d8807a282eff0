/**
 * OpAMPServer's side of gateway connections, driven by a hand-written gateway (raw `ws`
 * and the protocol helpers): `connect` runs `authenticate` on the forwarded headers and
 * address; the principal it returns is what the attached UIDs speak with (bound to it,
 * seen by authorizeMessage); a UID never tied to an accepted request is refused for that
 * agent alone; the gateway connection and its other agents carry on.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { AgentToServerSchema, type ServerToAgent, ServerToAgentSchema } from "../../../src/gen/opamp/v1/opamp_pb.js";
import type { AuthRequest } from "../../../src/server/index.js";
import {
  agentControlFrame,
  decodeGatewayConnectResult,
  decodeGatewayRefused,
  encodeGatewayAttach,
  encodeGatewayConnect,
  GATEWAY_ATTACH,
  GATEWAY_CAPABILITY,
  GATEWAY_CONNECT,
  GATEWAY_CONNECT_RESULT,
  GATEWAY_EXTENSION_CAPABILITY,
  GATEWAY_REFUSED,
} from "../../../src/wire/gateway-protocol.js";
import {
  agentDescription,
  decodeWsFrame,
  encodeWsFrame,
  instanceUidToString,
  newInstanceUid,
} from "../../../src/wire/index.js";
import { startServer, stopAll } from "./helpers.js";
import { waitFor } from "./test-agent.js";

afterEach(stopAll);

const TOKENS: Record<string, string> = { "token-gw": "gateway", "token-a": "alice", "token-b": "bob" };

function authenticate({ headers }: AuthRequest) {
  const principal = TOKENS[/^Bearer (.+)$/.exec(headers["authorization"] ?? "")?.[1] ?? ""];
  return principal === undefined ? { accept: false as const, status: 401 } : { accept: true as const, principal };
}

/** A hand-driven gateway connection. */
class RawGateway {
  readonly received: ServerToAgent[] = [];
  #waiters: { match: (m: ServerToAgent) => boolean; resolve: (m: ServerToAgent) => void }[] = [];
  closed = false;
  #n = 0;
  private constructor(readonly ws: WebSocket) {
    ws.on("message", (data) => {
      const m = fromBinary(ServerToAgentSchema, decodeWsFrame(new Uint8Array(data as Buffer)));
      const i = this.#waiters.findIndex((w) => w.match(m));
      if (i >= 0) this.#waiters.splice(i, 1)[0]!.resolve(m);
      else this.received.push(m);
    });
    ws.on("close", () => {
      this.closed = true;
    });
  }

  static async open(url: string): Promise<RawGateway> {
    const ws = new WebSocket(url.replace(/^http/, "ws"), { headers: { authorization: "Bearer token-gw" } });
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    return new RawGateway(ws);
  }

  next(match: (m: ServerToAgent) => boolean): Promise<ServerToAgent> {
    const found = this.received.find(match);
    if (found !== undefined) {
      this.received.splice(this.received.indexOf(found), 1);
      return Promise.resolve(found);
    }
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }

  /** Sends a connect for `token` and resolves with the parsed connectResult. */
  async connect(token: string, remoteAddress = "10.1.2.3:5555") {
    const requestUid = `req-${++this.#n}`;
    const answer = this.next(
      (m) => m.customMessage?.type === GATEWAY_CONNECT_RESULT && m.customMessage.data.length > 0,
    );
    this.ws.send(
      agentControlFrame(
        GATEWAY_CAPABILITY,
        GATEWAY_CONNECT,
        encodeGatewayConnect({
          requestUid,
          remoteAddress,
          headers: { Authorization: [`Bearer ${token}`], "X-Trace": ["a", "b"], Upgrade: ["websocket"] },
        }),
      ),
    );
    const reply = await answer;
    return { reply, result: decodeGatewayConnectResult(reply.customMessage!.data) };
  }

  attach(requestUid: string, uid: Uint8Array): void {
    this.ws.send(
      agentControlFrame(
        GATEWAY_EXTENSION_CAPABILITY,
        GATEWAY_ATTACH,
        encodeGatewayAttach({ requestUid, instanceUid: instanceUidToString(uid) }),
      ),
    );
  }

  /** Sends an agent's full report for `uid` and resolves with the server's answer to it. */
  report(uid: Uint8Array, seq = 0n): Promise<ServerToAgent> {
    const id = instanceUidToString(uid);
    const answer = this.next((m) => m.instanceUid.length === 16 && instanceUidToString(m.instanceUid) === id);
    const message = create(AgentToServerSchema, {
      instanceUid: uid,
      sequenceNum: seq,
      capabilities: 1n,
      agentDescription: agentDescription({ identifying: { "service.name": "behind-gateway" } }),
    });
    this.ws.send(encodeWsFrame(toBinary(AgentToServerSchema, message)));
    return answer;
  }
}

describe("OpAMPServer: gateway connections", () => {
  it("connect runs authenticate on the forwarded headers and address; the answer carries the gateway capabilities", async () => {
    const seen: AuthRequest[] = [];
    const { url } = await startServer({
      allowAnonymous: false,
      customCapabilities: ["io.example.server"],
      hooks: {
        authenticate: (r) => {
          seen.push(r);
          return authenticate(r);
        },
      },
    });
    const gw = await RawGateway.open(url);
    const { reply, result } = await gw.connect("token-a", "[2001:db8::7]:4711");
    expect(result).toEqual({ requestUid: "req-1", accept: true, httpStatusCode: 200, responseHeaders: {} });
    expect(reply.instanceUid).toHaveLength(0);
    expect(reply.customCapabilities?.capabilities).toEqual([
      "io.example.server",
      GATEWAY_CAPABILITY,
      GATEWAY_EXTENSION_CAPABILITY,
    ]);
    const forwarded = seen.at(-1)!;
    expect(forwarded.headers["authorization"]).toBe("Bearer token-a");
    expect(forwarded.headers["x-trace"]).toBe("a, b");
    expect(forwarded.remoteAddress).toBe("2001:db8::7");
    expect(forwarded.transport).toBe("websocket");
    expect(forwarded.gateway?.principal).toBe("gateway");
    expect(forwarded.gateway?.remoteAddress).toBe("127.0.0.1");
    const refused = await gw.connect("wrong");
    expect(refused.result).toMatchObject({ accept: false, httpStatusCode: 401 });
    gw.ws.close();
  });

  it("attached UIDs speak with their own request's principal: bound to it, seen by authorizeMessage", async () => {
    const authorized: { principal: unknown; gateway: unknown }[] = [];
    const { server, url } = await startServer({
      allowAnonymous: false,
      hooks: {
        authenticate,
        authorizeMessage: ({ principal, gateway }) => {
          authorized.push({ principal, gateway });
          return true;
        },
      },
    });
    const gw = await RawGateway.open(url);
    const a = await gw.connect("token-a", "10.0.0.1:1000");
    const b = await gw.connect("token-b", "10.0.0.2:2000");
    const uidA = newInstanceUid();
    const uidB = newInstanceUid();
    gw.attach(a.result.requestUid, uidA);
    gw.attach(b.result.requestUid, uidB);
    const connected = waitFor(server, "agentConnected", (agent) => agent.id === instanceUidToString(uidB));
    await gw.report(uidA);
    await gw.report(uidB);
    await connected;
    expect(server.getAgent(uidA)).toMatchObject({
      principal: "alice",
      boundPrincipal: "alice",
      remoteAddress: "10.0.0.1",
    });
    expect(server.getAgent(uidB)).toMatchObject({ principal: "bob", boundPrincipal: "bob", remoteAddress: "10.0.0.2" });
    expect(authorized.map((x) => x.principal)).toEqual(["alice", "bob"]);
    expect(authorized[0]!.gateway).toEqual({ principal: "gateway", remoteAddress: "127.0.0.1" });
    gw.ws.close();
  });

  it("a UID not tied to an accepted request is refused for that agent only (refused 403/1008); others carry on", async () => {
    const { server, url } = await startServer({ allowAnonymous: false, hooks: { authenticate } });
    const errors: string[] = [];
    server.on("error", (e) => errors.push(e.code));
    const gw = await RawGateway.open(url);
    const a = await gw.connect("token-a");
    const uidA = newInstanceUid();
    gw.attach(a.result.requestUid, uidA);
    await gw.report(uidA);
    const stranger = newInstanceUid();
    const refusal = await gw.report(stranger);
    expect(refusal.customMessage?.capability).toBe(GATEWAY_EXTENSION_CAPABILITY);
    expect(refusal.customMessage?.type).toBe(GATEWAY_REFUSED);
    expect(decodeGatewayRefused(refusal.customMessage!.data)).toMatchObject({ httpStatusCode: 403, wsCloseCode: 1008 });
    expect(server.getAgent(stranger)).toBeUndefined();
    expect(errors).toContain("unauthenticated");
    // An attach naming a request the server never accepted is refused the same way.
    gw.attach("req-unknown", stranger);
    const again = await gw.next((m) => m.customMessage?.type === GATEWAY_REFUSED);
    expect(again.instanceUid).toEqual(stranger);
    // Bob's request cannot take Alice's UID: it is bound to alice.
    const b = await gw.connect("token-b");
    gw.attach(b.result.requestUid, uidA);
    const taken = await gw.report(uidA, 1n);
    expect(taken.customMessage?.type).toBe(GATEWAY_REFUSED);
    expect(server.getAgent(uidA)?.boundPrincipal).toBe("alice");
    // The gateway connection is still open and Alice's agent still answered.
    gw.attach(a.result.requestUid, uidA);
    const fine = await gw.report(uidA, 2n);
    expect(fine.customMessage).toBeUndefined();
    expect(gw.closed).toBe(false);
    gw.ws.close();
  });

  it("gateways.trustUnattached: a gateway that never attaches (Bindplane's) speaks with its own principal", async () => {
    const { server, url } = await startServer({
      allowAnonymous: false,
      hooks: { authenticate },
      gateways: { trustUnattached: true },
    });
    const gw = await RawGateway.open(url);
    await gw.connect("token-a");
    const uid = newInstanceUid();
    const reply = await gw.report(uid);
    expect(reply.customMessage).toBeUndefined();
    expect(server.getAgent(uid)?.principal).toBe("gateway");
    gw.ws.close();
  });

  it("gateways.accept: false treats a connect as any message (an empty UID gets BadRequest)", async () => {
    const { url } = await startServer({ allowAnonymous: false, hooks: { authenticate }, gateways: { accept: false } });
    const gw = await RawGateway.open(url);
    const answer = gw.next(() => true);
    gw.ws.send(
      agentControlFrame(
        GATEWAY_CAPABILITY,
        GATEWAY_CONNECT,
        encodeGatewayConnect({ requestUid: "x", remoteAddress: "", headers: {} }),
      ),
    );
    expect((await answer).errorResponse).toBeDefined();
    gw.ws.close();
  });

  it("a malformed connect gets a 400 result when it names its request; an agent's bad bytes do not close the connection", async () => {
    const { server, url } = await startServer({ allowAnonymous: false, hooks: { authenticate } });
    server.on("error", () => undefined);
    const gw = await RawGateway.open(url);
    await gw.connect("token-a");
    const answer = gw.next((m) => m.customMessage?.type === GATEWAY_CONNECT_RESULT);
    gw.ws.send(
      agentControlFrame(
        GATEWAY_CAPABILITY,
        GATEWAY_CONNECT,
        new TextEncoder().encode('{"request_uid":"r9","headers":7}'),
      ),
    );
    expect(decodeGatewayConnectResult((await answer).customMessage!.data)).toMatchObject({
      requestUid: "r9",
      accept: false,
      httpStatusCode: 400,
    });
    gw.ws.send(new Uint8Array([0, 0xff, 0xff, 0xff]));
    const a = await gw.connect("token-a");
    const uid = newInstanceUid();
    gw.attach(a.result.requestUid, uid);
    expect((await gw.report(uid)).instanceUid).toEqual(uid);
    expect(gw.closed).toBe(false);
    gw.ws.close();
  });
});
