/**
 * A scripted upstream server for gateway tests, as Bindplane's test harness has: it
 * answers `connect`s (accept by default), answers every agent message with a reply to its
 * UID, can add custom capabilities, and records each connection's
 * `X-Opamp-Gateway-Connection-Id`. Tests reach into its sockets to send anything.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { type WebSocket, WebSocketServer } from "ws";
import {
  decodeGatewayConnect,
  encodeGatewayConnectResult,
  GATEWAY_CAPABILITY,
  GATEWAY_CONNECT,
  GATEWAY_CONNECT_RESULT,
  type GatewayConnect,
} from "../../../src/gateway/index.js";
import {
  type AgentToServer,
  AgentToServerSchema,
  type ServerToAgent,
  ServerToAgentSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import { decodeWsFrame, encodeWsFrame } from "../../../src/wire/index.js";

/** How the fake answers a connect. */
export type ConnectPolicy =
  | "accept"
  | "ignore"
  | { readonly status: number; readonly headers?: Record<string, string> };

export type ReplyInit = MessageInitShape<typeof ServerToAgentSchema>;

export interface UpstreamConnectionRecord {
  readonly ws: WebSocket;
  readonly id: string | undefined;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly messages: AgentToServer[];
  replies: number;
}

export class FakeUpstream {
  readonly connections: UpstreamConnectionRecord[] = [];
  readonly connects: GatewayConnect[] = [];
  /** Messages of agents (non-control), in arrival order. */
  readonly messages: AgentToServer[] = [];
  connectPolicy: ConnectPolicy = "accept";
  /** Sent in the first reply (connectResult or agent reply) of each connection. */
  customCapabilities: string[] | undefined;
  /** Answer agent messages (true) or stay silent. */
  reply = true;
  /** Extra fields of every agent reply. */
  replyWith: (message: AgentToServer) => ReplyInit = () => ({});
  /** Refuse upgrades with this status while set. */
  refuseUpgrades: number | undefined;
  readonly #waiters: { match: (m: AgentToServer) => boolean; resolve: (m: AgentToServer) => void }[] = [];
  readonly #connWaiters: (() => void)[] = [];
  private constructor(
    readonly http: Server,
    readonly wss: WebSocketServer,
    readonly url: string,
  ) {}

  static async start(port = 0): Promise<FakeUpstream> {
    const http = createServer((_req, res) => res.writeHead(404).end());
    const wss = new WebSocketServer({ noServer: true });
    await new Promise<void>((resolve) => http.listen(port, "127.0.0.1", resolve));
    const address = http.address() as AddressInfo;
    const fake = new FakeUpstream(http, wss, `ws://127.0.0.1:${address.port}/v1/opamp`);
    http.on("upgrade", (req, socket, head) => {
      if (fake.refuseUpgrades !== undefined) {
        socket.end(`HTTP/1.1 ${fake.refuseUpgrades} Refused\r\nContent-Length: 0\r\nRetry-After: 1\r\n\r\n`);
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => fake.#accept(ws, req.headers));
    });
    return fake;
  }

  #accept(ws: WebSocket, headers: Record<string, string | string[] | undefined>): void {
    const record: UpstreamConnectionRecord = {
      ws,
      id: headers["x-opamp-gateway-connection-id"] as string | undefined,
      headers,
      messages: [],
      replies: 0,
    };
    this.connections.push(record);
    for (const w of this.#connWaiters.splice(0)) w();
    ws.on("message", (data) => {
      const message = fromBinary(AgentToServerSchema, decodeWsFrame(new Uint8Array(data as Buffer)));
      const custom = message.customMessage;
      if (
        message.instanceUid.length === 0 &&
        custom?.capability === GATEWAY_CAPABILITY &&
        custom.type === GATEWAY_CONNECT
      ) {
        const connect = decodeGatewayConnect(custom.data);
        this.connects.push(connect);
        const policy = this.connectPolicy;
        if (policy === "ignore") return;
        const accept = policy === "accept";
        this.send(record, {
          customMessage: {
            capability: GATEWAY_CAPABILITY,
            type: GATEWAY_CONNECT_RESULT,
            data: encodeGatewayConnectResult({
              requestUid: connect.requestUid,
              accept,
              httpStatusCode: accept ? 200 : policy.status,
              responseHeaders: accept ? {} : (policy.headers ?? {}),
            }),
          },
        });
        return;
      }
      record.messages.push(message);
      this.messages.push(message);
      const i = this.#waiters.findIndex((w) => w.match(message));
      if (i >= 0) this.#waiters.splice(i, 1)[0]!.resolve(message);
      if (this.reply && message.instanceUid.length > 0) {
        this.send(record, { instanceUid: message.instanceUid, ...this.replyWith(message) });
      }
    });
  }

  /** Sends a ServerToAgent on a connection (custom capabilities on its first message when set). */
  send(record: UpstreamConnectionRecord, init: ReplyInit): void {
    const message: ServerToAgent = create(ServerToAgentSchema, init);
    if (record.replies === 0 && this.customCapabilities !== undefined && message.customCapabilities === undefined) {
      message.customCapabilities = create(ServerToAgentSchema, {
        customCapabilities: { capabilities: [...this.customCapabilities] },
      }).customCapabilities;
    }
    record.replies++;
    record.ws.send(encodeWsFrame(toBinary(ServerToAgentSchema, message)));
  }

  /** Resolves with the next agent message for which `match` is true (already received ones count). */
  next(match: (m: AgentToServer) => boolean): Promise<AgentToServer> {
    const found = this.messages.find(match);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }

  /** Resolves once `n` connections were accepted in total. */
  async waitConnections(n: number): Promise<void> {
    while (this.connections.length < n) await new Promise<void>((resolve) => this.#connWaiters.push(resolve));
  }

  /** The open connection whose gateway id is `id`. */
  connection(id: string): UpstreamConnectionRecord {
    const found = [...this.connections].reverse().find((c) => c.id === id && c.ws.readyState === c.ws.OPEN);
    if (found === undefined) throw new Error(`no open upstream connection ${id}`);
    return found;
  }

  async stop(): Promise<void> {
    for (const c of this.connections) c.ws.terminate();
    this.wss.close();
    await new Promise<void>((resolve) => {
      this.http.close(() => resolve());
      this.http.closeAllConnections();
    });
  }
}
