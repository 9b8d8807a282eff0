// Deliberately configurable fake peers for the kit's own tests. With default behaviour each
// one follows the spec (so every check can pass); each switch breaks one rule (so every
// check is shown able to fail). Built on src/wire, node:http and ws only.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { create } from "@bufbuild/protobuf";
import WebSocket, { WebSocketServer } from "ws";
import {
  AgentDisconnectSchema,
  type AgentToServer,
  AgentToServerSchema,
  RemoteConfigStatuses,
  RemoteConfigStatusSchema,
  ServerErrorResponseType,
  type ServerToAgent,
  ServerToAgentSchema,
} from "../../src/gen/opamp/v1/opamp_pb.js";
import {
  AgentCapability,
  AgentToServerFlag,
  agentDescription,
  decodeHttpBody,
  decodeWsMessage,
  encodeHttpBody,
  encodeWsMessage,
  hasBit,
  instanceUidToString,
  newInstanceUid,
  PROTOBUF_CONTENT_TYPE,
  ServerCapability,
  ServerToAgentFlag,
} from "../../src/wire/index.js";

// ---------------------------------------------------------------------------------------
// Fake server (for the server checks)

export interface FakeServerBehaviour {
  /** WS replies as text frames. */
  readonly textFrames?: boolean;
  /** WS replies without the 0x00 header. */
  readonly noHeader?: boolean;
  /** Answer every HTTP POST with this status and no body. */
  readonly httpStatus?: number;
  /** Capabilities in replies (default AcceptsStatus | OffersRemoteConfig). */
  readonly capabilities?: bigint;
  /** Answer only the first message of each connection / agent. */
  readonly answerOnlyFirst?: boolean;
  /** Never ask for full state. */
  readonly ignoreGaps?: boolean;
  /** Refuse gzip bodies with 400. */
  readonly noGzip?: boolean;
  /** Refuse messages over this many bytes (1009 / 413); unset accepts everything. */
  readonly maxMessageBytes?: number;
  /** What to do with bytes that are not an AgentToServer. */
  readonly garbage?: "bad-request" | "success" | "kill-everyone";
  /** After agent_disconnect, never answer that agent again. */
  readonly shunAfterDisconnect?: boolean;
  /** How to answer RequestInstanceUid. */
  readonly assignUid?: "valid" | "short" | "none";
  /** Require `Authorization: Bearer <token>`. */
  readonly authToken?: string;
  /** Status for a missing credential (default 401). */
  readonly authStatus?: number;
}

export interface FakeServer {
  readonly url: string;
  close(): Promise<void>;
}

export async function startFakeServer(behaviour: FakeServerBehaviour = {}): Promise<FakeServer> {
  const agents = new Map<string, bigint>();
  const shunned = new Set<string>();
  const answeredOnce = new Set<string>();
  let dead = false;
  const sockets = new Set<WebSocket>();
  const wss = new WebSocketServer({
    noServer: true,
    ...(behaviour.maxMessageBytes === undefined ? {} : { maxPayload: behaviour.maxMessageBytes }),
  });

  /** The reply to a decoded message, or undefined for no reply. */
  const answer = (m: AgentToServer, channel: string): ServerToAgent | undefined => {
    const uid = instanceUidToString(m.instanceUid);
    if (shunned.has(uid) || dead) return undefined;
    if (behaviour.answerOnlyFirst === true) {
      if (answeredOnce.has(channel)) return undefined;
      answeredOnce.add(channel);
    }
    const reply = create(ServerToAgentSchema, {
      instanceUid: m.instanceUid,
      capabilities: behaviour.capabilities ?? ServerCapability.AcceptsStatus | ServerCapability.OffersRemoteConfig,
    });
    const last = agents.get(uid);
    if (behaviour.ignoreGaps !== true) {
      if (
        (last === undefined && m.agentDescription === undefined) ||
        (last !== undefined && m.sequenceNum !== last + 1n)
      )
        reply.flags |= ServerToAgentFlag.ReportFullState;
    }
    agents.set(uid, m.sequenceNum);
    if (hasBit(m.flags, AgentToServerFlag.RequestInstanceUid)) {
      const mode = behaviour.assignUid ?? "valid";
      if (mode !== "none") {
        const fresh = newInstanceUid();
        reply.agentIdentification = {
          $typeName: "opamp.proto.v1.AgentIdentification",
          newInstanceUid: mode === "short" ? fresh.subarray(0, 8) : fresh,
        };
        agents.set(instanceUidToString(fresh), m.sequenceNum);
      }
    }
    if (m.agentDisconnect !== undefined && behaviour.shunAfterDisconnect === true) shunned.add(uid);
    return reply;
  };

  const garbageReply = (): ServerToAgent =>
    create(ServerToAgentSchema, {
      capabilities: behaviour.garbage === "success" ? ServerCapability.AcceptsStatus : 0n,
      ...(behaviour.garbage === "success"
        ? {}
        : {
            errorResponse: {
              type: ServerErrorResponseType.ServerErrorResponseType_BadRequest,
              errorMessage: "not an AgentToServer",
            },
          }),
    });

  const encodeWs = (reply: ServerToAgent): Uint8Array | string => {
    const frame = encodeWsMessage(ServerToAgentSchema, reply);
    if (behaviour.textFrames === true) return Buffer.from(frame).toString("latin1");
    return behaviour.noHeader === true ? frame.subarray(1) : frame;
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    if (!authorized(req)) {
      res.writeHead(behaviour.authStatus ?? 401).end();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (behaviour.maxMessageBytes !== undefined && size > behaviour.maxMessageBytes && !refused) {
        refused = true;
        res.writeHead(413, { Connection: "close" }).end();
      }
      if (!refused) chunks.push(chunk);
    });
    req.on("end", () => {
      if (refused) return;
      if (behaviour.httpStatus !== undefined) {
        res.writeHead(behaviour.httpStatus).end();
        return;
      }
      if (dead) {
        res.writeHead(500).end();
        return;
      }
      const encoding = req.headers["content-encoding"] ?? null;
      if (behaviour.noGzip === true && encoding !== null) {
        res.writeHead(400).end();
        return;
      }
      decodeHttpBody(AgentToServerSchema, new Uint8Array(Buffer.concat(chunks)), { contentEncoding: encoding }).then(
        async (m) => {
          const reply = answer(m, instanceUidToString(m.instanceUid));
          if (reply === undefined) {
            res.writeHead(500).end();
            return;
          }
          const body = await encodeHttpBody(ServerToAgentSchema, reply);
          res.writeHead(200, { "Content-Type": PROTOBUF_CONTENT_TYPE }).end(body);
        },
        async () => {
          if (behaviour.garbage === "kill-everyone") {
            dead = true;
            res.writeHead(500).end();
          } else if (behaviour.garbage === "success") {
            res
              .writeHead(200, { "Content-Type": PROTOBUF_CONTENT_TYPE })
              .end(await encodeHttpBody(ServerToAgentSchema, garbageReply()));
          } else {
            res.writeHead(400).end();
          }
        },
      );
    });
  };

  const authorized = (req: IncomingMessage): boolean =>
    behaviour.authToken === undefined || req.headers.authorization === `Bearer ${behaviour.authToken}`;

  const http: Server = createServer(onRequest);
  let connections = 0;
  http.on("upgrade", (req, socket, head) => {
    if (!authorized(req)) {
      socket.end(`HTTP/1.1 ${behaviour.authStatus ?? 401} Unauthorized\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const channel = `ws-${connections++}`;
      sockets.add(ws);
      ws.on("close", () => sockets.delete(ws));
      ws.on("error", () => undefined); // e.g. over maxPayload: ws closes with 1009 itself
      ws.on("message", (data: Buffer) => {
        let m: AgentToServer;
        try {
          m = decodeWsMessage(AgentToServerSchema, new Uint8Array(data));
        } catch {
          if (behaviour.garbage === "kill-everyone") {
            dead = true;
            for (const s of sockets) s.terminate();
          } else ws.send(encodeWs(garbageReply()));
          return;
        }
        const reply = answer(m, channel);
        if (reply !== undefined) ws.send(encodeWs(reply));
      });
    });
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const address = http.address();
  const port = typeof address === "object" && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/v1/opamp`,
    async close() {
      for (const s of sockets) s.terminate();
      wss.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------------------------------
// Fake client (for the client checks)

export interface FakeClientBehaviour {
  readonly transport: "ws" | "http";
  /** The first message lacks the agent description. */
  readonly firstCompressed?: boolean;
  /** Ignore ReportFullState. */
  readonly ignoreFullState?: boolean;
  /** Keep the old UID when the server assigns a new one. */
  readonly keepUid?: boolean;
  /** Accept remote config but never report its status. */
  readonly silentOnConfig?: boolean;
  /** Send another message after every reply (the loop the spec forbids). */
  readonly loop?: boolean;
  /** Ignore the offered heartbeat and send every 200 ms instead. */
  readonly ignoreHeartbeat?: boolean;
  /** Retry at once after a 503 / refused handshake. */
  readonly ignoreRetryAfter?: boolean;
  /** Keep sending after UNAVAILABLE. */
  readonly ignoreUnavailable?: boolean;
  /** Never increment sequence_num. */
  readonly frozenSequence?: boolean;
  /** Send capabilities only in the first message. */
  readonly capabilitiesOnce?: boolean;
  /** Stop without agent_disconnect. */
  readonly noDisconnect?: boolean;
  /** Idle interval before any offer (default 3000 ms). */
  readonly idleMs?: number;
  /**
   * WS: apply offered OpAMP connection settings as the spec's offer flow says (agent_disconnect,
   * close, reconnect to the offered destination), as settings-accepting clients such as the
   * Collector's supervisor do. A destination that is not ws:// or wss:// is taken as a switch
   * to another transport: the client goes quiet on this one.
   */
  readonly reconnectOnSettings?: boolean;
  /**
   * When assigned a new UID, first send a report still under the old one, as a WebSocket
   * client's report that crossed the server's reply on the wire would arrive (over HTTP the
   * same is a report sent after the reply: a deviation).
   */
  readonly crossOnNewUid?: boolean;
}

export interface FakeClient {
  stop(): Promise<void>;
}

const FAKE_CLIENT_CAPABILITIES =
  AgentCapability.ReportsStatus |
  AgentCapability.AcceptsRemoteConfig |
  AgentCapability.ReportsRemoteConfig |
  AgentCapability.ReportsHeartbeat;

export function startFakeClient(url: string, b: FakeClientBehaviour): FakeClient {
  let endpoint = url;
  let uid = newInstanceUid();
  let seq = 0n;
  let sentFirst = false;
  let interval = b.idleMs ?? 3000;
  let configStatus: AgentToServer["remoteConfigStatus"];
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let pausedUntil = 0;
  let socket: WebSocket | undefined;
  let inFlight = false;
  let pending: boolean | undefined; // undefined: nothing pending; true: full; false: compressed

  const build = (full: boolean, disconnect = false): AgentToServer => {
    const m = create(AgentToServerSchema, {
      instanceUid: uid,
      sequenceNum: seq,
      capabilities: b.capabilitiesOnce === true && sentFirst ? 0n : FAKE_CLIENT_CAPABILITIES,
    });
    if (b.frozenSequence !== true) seq++;
    if (full) {
      m.agentDescription = agentDescription({ identifying: { "service.name": "fake-client" } });
      if (configStatus !== undefined) m.remoteConfigStatus = configStatus;
    }
    if (disconnect) m.agentDisconnect = create(AgentDisconnectSchema);
    sentFirst = true;
    return m;
  };

  const arm = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    if (stopped) return;
    timer = setTimeout(() => send(false), Math.max(interval, pausedUntil - Date.now()));
  };

  const handle = (reply: ServerToAgent): void => {
    if (stopped) return;
    if (reply.errorResponse?.type === ServerErrorResponseType.ServerErrorResponseType_Unavailable) {
      if (b.ignoreUnavailable === true) {
        send(false);
        return;
      }
      {
        const d = reply.errorResponse.Details;
        const waitMs = d.case === "retryInfo" ? Number(d.value.retryAfterNanoseconds / 1_000_000n) : 1000;
        pausedUntil = Date.now() + waitMs;
        if (b.transport === "ws") {
          socket?.close(1000);
          setTimeout(() => connect(), waitMs);
          return;
        }
      }
      arm();
      return;
    }
    let next: boolean | undefined;
    if (reply.agentIdentification !== undefined && b.crossOnNewUid === true) {
      const crossed = build(false);
      if (b.transport === "ws") socket?.send(encodeWsMessage(AgentToServerSchema, crossed));
      else {
        // One request at a time: the report goes first, the adopted UID after its reply.
        uid = reply.agentIdentification.newInstanceUid;
        void post(crossed).then(() => send(true));
        return;
      }
    }
    if (reply.agentIdentification !== undefined && b.keepUid !== true) uid = reply.agentIdentification.newInstanceUid;
    if (hasBit(reply.flags, ServerToAgentFlag.ReportFullState) && b.ignoreFullState !== true) next = true;
    if (reply.remoteConfig !== undefined && b.silentOnConfig !== true) {
      configStatus = create(RemoteConfigStatusSchema, {
        lastRemoteConfigHash: reply.remoteConfig.configHash,
        status: RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
      });
      next = true;
    }
    const offered = reply.connectionSettings?.opamp?.heartbeatIntervalSeconds;
    if (offered !== undefined) interval = b.ignoreHeartbeat === true ? 200 : Number(offered) * 1000;
    const destination = reply.connectionSettings?.opamp?.destinationEndpoint;
    if (b.reconnectOnSettings === true && b.transport === "ws" && destination !== undefined) {
      const old = socket;
      old?.send(encodeWsMessage(AgentToServerSchema, build(false, true)));
      old?.close(1000);
      socket = undefined;
      if (!/^wss?:/.test(destination)) {
        if (timer !== undefined) clearTimeout(timer);
        stopped = true; // gone to another transport
        return;
      }
      endpoint = destination;
      connect();
      return;
    }
    if (b.loop === true) next ??= false;
    if (next !== undefined) send(next);
    else arm();
  };

  const post = async (m: AgentToServer): Promise<void> => {
    inFlight = true;
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: { "Content-Type": PROTOBUF_CONTENT_TYPE },
        body: (await encodeHttpBody(AgentToServerSchema, m)) as Uint8Array<ArrayBuffer>,
      });
      const body = new Uint8Array(await response.arrayBuffer());
      inFlight = false;
      if (response.status === 503) {
        const retryAfter = Number(response.headers.get("retry-after") ?? "1") * 1000;
        pausedUntil = b.ignoreRetryAfter === true ? 0 : Date.now() + retryAfter;
        timer = setTimeout(() => send(false), b.ignoreRetryAfter === true ? 0 : retryAfter);
        return;
      }
      if (response.status !== 200) return arm();
      handle(await decodeHttpBody(ServerToAgentSchema, body));
    } catch {
      inFlight = false;
      if (!stopped) arm();
    }
    if (pending !== undefined && !stopped) {
      const full = pending;
      pending = undefined;
      send(full);
    }
  };

  const send = (full: boolean): void => {
    if (stopped) return;
    if (timer !== undefined) clearTimeout(timer);
    if (b.transport === "http") {
      if (inFlight) {
        pending = (pending ?? false) || full;
        return;
      }
      void post(build(full));
      return;
    }
    if (socket?.readyState === WebSocket.OPEN) socket.send(encodeWsMessage(AgentToServerSchema, build(full)));
    arm();
  };

  const connect = (): void => {
    if (stopped) return;
    const ws = new WebSocket(endpoint.replace(/^http/, "ws"));
    socket = ws;
    // A reconnection to apply new settings starts with a full report, as a new connection does.
    ws.on("open", () => send(!sentFirst ? b.firstCompressed !== true : endpoint !== url));
    ws.on("message", (data: Buffer) => handle(decodeWsMessage(ServerToAgentSchema, new Uint8Array(data))));
    ws.on("unexpected-response", (req, res) => {
      const retryAfter = Number(res.headers["retry-after"] ?? "1") * 1000;
      res.resume();
      req.destroy();
      setTimeout(() => connect(), b.ignoreRetryAfter === true ? 50 : retryAfter);
    });
    ws.on("close", (code) => {
      if (socket === ws && !stopped && code === 1013) connect();
    });
    ws.on("error", () => undefined);
  };

  if (b.transport === "ws") connect();
  else send(b.firstCompressed !== true);

  return {
    async stop() {
      if (timer !== undefined) clearTimeout(timer);
      const bye = b.noDisconnect === true ? undefined : build(false, true);
      stopped = true;
      if (b.transport === "http") {
        if (bye !== undefined)
          await fetch(url, {
            method: "POST",
            headers: { "Content-Type": PROTOBUF_CONTENT_TYPE },
            body: (await encodeHttpBody(AgentToServerSchema, bye)) as Uint8Array<ArrayBuffer>,
          }).catch(() => undefined);
        return;
      }
      const ws = socket;
      if (ws === undefined || ws.readyState !== WebSocket.OPEN) return;
      if (bye !== undefined) ws.send(encodeWsMessage(AgentToServerSchema, bye));
      await new Promise<void>((resolve) => {
        ws.once("close", () => resolve());
        ws.close(1000);
      });
    },
  };
}
