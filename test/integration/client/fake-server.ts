/**
 * A scripted OpAMP server for client tests: node:http + ws on 127.0.0.1, port 0, using
 * only the wire codecs. It records every AgentToServer, answers with a script, and can
 * refuse, garble or close on demand.
 */
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { create } from "@bufbuild/protobuf";
import { type WebSocket, WebSocketServer } from "ws";
import {
  type AgentToServer,
  AgentToServerSchema,
  type ServerToAgent,
  ServerToAgentSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import { decodeWsMessage, encodeWsMessage } from "../../../src/wire/frame.js";
import { decodeHttpBody, encodeHttpBody, gzip } from "../../../src/wire/http-body.js";

/** One refusal of an HTTP request or WS upgrade. */
export interface Refusal {
  readonly status: number;
  readonly headers?: Record<string, string>;
}

/** What the script sees for one received message. */
export interface Received {
  readonly message: AgentToServer;
  readonly transport: "ws" | "http";
  readonly headers: IncomingMessage["headers"];
}

/** Builds the answer to a message; return undefined to send none (WS only). */
export type Script = (received: Received) => ServerToAgent | undefined;

/** The default script: a bare acknowledgement. */
export const ack: Script = ({ message }) => create(ServerToAgentSchema, { instanceUid: message.instanceUid });

/** TLS for an https/wss fake server (PEM strings). */
export interface FakeServerTls {
  readonly key: string;
  readonly cert: string;
  /** CA for client certificates; with `requestCert`, clients must present one it signed. */
  readonly ca?: string;
  readonly requestCert?: boolean;
  readonly minVersion?: "TLSv1.2" | "TLSv1.3";
  readonly maxVersion?: "TLSv1.2" | "TLSv1.3";
}

/** The client certificate's subject CN on a request, if any. */
function peerName(req: IncomingMessage): string | undefined {
  const socket = req.socket as Partial<TLSSocket>;
  if (typeof socket.getPeerCertificate !== "function") return undefined;
  const cn = socket.getPeerCertificate().subject?.CN;
  return typeof cn === "string" && cn !== "" ? cn : undefined;
}

/** A fake OpAMP server. */
export class FakeServer {
  readonly received: Received[] = [];
  readonly upgrades: IncomingMessage["headers"][] = [];
  readonly httpRequests: IncomingMessage["headers"][] = [];
  /** Answers for the next requests/upgrades, consumed in order. */
  readonly refusals: Refusal[] = [];
  /**
   * Raw bodies to answer the next HTTP requests with / WS frames to send instead of an
   * answer. A string is sent as a WS text frame; `{ body, headers }` answers HTTP with
   * extra headers (e.g. a `Content-Encoding` the body does not honour).
   */
  readonly garbage: (Uint8Array | string | { body: Uint8Array; headers: Record<string, string> })[] = [];
  /** Messages merged into the next answers (HTTP) or pushed at once (WS via push()). */
  readonly queued: ServerToAgent[] = [];
  script: Script = ack;
  /** Files served at GET /files/<name> (package downloads). */
  readonly files = new Map<string, Uint8Array>();
  readonly downloads: IncomingMessage["headers"][] = [];
  /** Gzip HTTP answers when the client accepts it. */
  gzipResponses = true;
  readonly sockets = new Set<WebSocket>();
  #waiters: { predicate: (r: Received) => boolean; resolve: (r: Received) => void; from: number }[] = [];
  readonly #http: Server;
  readonly #wss: WebSocketServer;

  /** HTTP requests to leave unanswered (recorded, never answered). */
  hangs = 0;
  /** HTTP requests whose message matches are recorded and answered only by {@link FakeServer.release}. */
  holdIf: ((received: Received) => boolean) | undefined;
  readonly #held: (() => void)[] = [];
  /** OpAMP POSTs being handled right now, and the most there ever were at once. */
  activePosts = 0;
  maxActivePosts = 0;
  /** WebSocket pings received. */
  pings = 0;
  /** Subject CN of the client certificate of each OpAMP POST / upgrade (undefined: none). */
  readonly clientNames: (string | undefined)[] = [];
  /** Remote port of every TCP connection accepted (a proxy's outbound port when proxied). */
  readonly peerPorts: number[] = [];
  readonly #secure: boolean;

  private constructor(autoPong: boolean, tls: FakeServerTls | undefined) {
    this.#wss = new WebSocketServer({ noServer: true, autoPong });
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.#onRequest(req, res);
    this.#secure = tls !== undefined;
    this.#http =
      tls === undefined
        ? createServer(handler)
        : createHttpsServer(
            {
              key: tls.key,
              cert: tls.cert,
              ...(tls.ca === undefined ? {} : { ca: tls.ca }),
              requestCert: tls.requestCert ?? false,
              rejectUnauthorized: tls.requestCert ?? false,
              ...(tls.minVersion === undefined ? {} : { minVersion: tls.minVersion }),
              ...(tls.maxVersion === undefined ? {} : { maxVersion: tls.maxVersion }),
            },
            handler,
          );
    this.#http.on("connection", (socket: Socket) => this.peerPorts.push(socket.remotePort ?? 0));
    this.#http.on("upgrade", (req, socket, head) => {
      this.upgrades.push(req.headers);
      this.clientNames.push(peerName(req));
      const refusal = this.refusals.shift();
      if (refusal !== undefined) {
        const headers = Object.entries(refusal.headers ?? {})
          .map(([k, v]) => `${k}: ${v}\r\n`)
          .join("");
        socket.end(`HTTP/1.1 ${refusal.status} Refused\r\n${headers}Content-Length: 0\r\nConnection: close\r\n\r\n`);
        return;
      }
      this.#wss.handleUpgrade(req, socket, head, (ws) => this.#onSocket(ws, req));
    });
  }

  /** Starts a server on 127.0.0.1 with a free port (https/wss when `tls` is given). */
  static async start(options: { autoPong?: boolean; tls?: FakeServerTls } = {}): Promise<FakeServer> {
    const server = new FakeServer(options.autoPong ?? true, options.tls);
    server.#http.listen(0, "127.0.0.1");
    await once(server.#http, "listening");
    return server;
  }

  /** The OpAMP URL for a transport. */
  url(transport: "ws" | "http"): string {
    const { port } = this.#http.address() as AddressInfo;
    const scheme = this.#secure ? (transport === "ws" ? "wss" : "https") : transport;
    return `${scheme}://127.0.0.1:${port}/v1/opamp`;
  }

  /** Resolves with the first message (received from index `from` on) that matches. */
  waitFor(predicate: (r: Received) => boolean = () => true, from = 0): Promise<Received> {
    const found = this.received.slice(from).find(predicate);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve) => this.#waiters.push({ predicate, resolve, from }));
  }

  /** Resolves with the next message received after this call that matches. */
  next(predicate: (r: Received) => boolean = () => true): Promise<Received> {
    return this.waitFor(predicate, this.received.length);
  }

  /** URL of a file served by {@link FakeServer.files}. */
  fileUrl(name: string): string {
    const { port } = this.#http.address() as AddressInfo;
    return `${this.#secure ? "https" : "http"}://127.0.0.1:${port}/files/${name}`;
  }

  /** Sends a message now on every open socket (WS) or with the next answer (HTTP). */
  push(message: ServerToAgent): void {
    if (this.sockets.size === 0) {
      this.queued.push(message);
      return;
    }
    for (const ws of this.sockets) ws.send(encodeWsMessage(ServerToAgentSchema, message));
  }

  /** Answers every request held by {@link FakeServer.holdIf}. */
  release(): void {
    for (const resolve of this.#held.splice(0)) resolve();
  }

  /** Closes every WebSocket from the server side. */
  closeSockets(code = 1001): void {
    for (const ws of this.sockets) ws.close(code);
  }

  /** Drops every WebSocket without a close frame. */
  terminateSockets(): void {
    for (const ws of this.sockets) ws.terminate();
  }

  async close(): Promise<void> {
    this.terminateSockets();
    this.#wss.close();
    this.#http.closeAllConnections();
    await new Promise<void>((resolve) => this.#http.close(() => resolve()));
  }

  #record(received: Received): void {
    this.received.push(received);
    const index = this.received.length - 1;
    this.#waiters = this.#waiters.filter((waiter) => {
      if (index < waiter.from || !waiter.predicate(received)) return true;
      waiter.resolve(received);
      return false;
    });
  }

  #answer(received: Received): ServerToAgent | undefined {
    const answer = this.script(received);
    const extra = this.queued.shift();
    if (extra === undefined) return answer;
    const merged = answer ?? create(ServerToAgentSchema, { instanceUid: received.message.instanceUid });
    for (const [key, value] of Object.entries(extra)) {
      if (key.startsWith("$") || value === undefined) continue;
      if ((key === "flags" || key === "capabilities") && value === 0n) continue;
      if (key === "instanceUid") continue;
      (merged as unknown as Record<string, unknown>)[key] = value;
    }
    return merged;
  }

  #onSocket(ws: WebSocket, req: IncomingMessage): void {
    this.sockets.add(ws);
    ws.on("close", () => this.sockets.delete(ws));
    ws.on("ping", () => {
      this.pings += 1;
    });
    for (const message of this.queued.splice(0)) ws.send(encodeWsMessage(ServerToAgentSchema, message));
    ws.on("message", (data: Buffer) => {
      const message = decodeWsMessage(AgentToServerSchema, new Uint8Array(data));
      const received: Received = { message, transport: "ws", headers: req.headers };
      this.#record(received);
      const raw = this.garbage.shift();
      if (raw !== undefined) {
        ws.send(raw instanceof Uint8Array || typeof raw === "string" ? raw : raw.body);
        return;
      }
      const answer = this.#answer(received);
      if (answer !== undefined && ws.readyState === ws.OPEN) ws.send(encodeWsMessage(ServerToAgentSchema, answer));
    });
  }

  async #onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === "GET" && req.url?.startsWith("/files/") === true) {
      this.downloads.push(req.headers);
      const file = this.files.get(req.url.slice("/files/".length));
      if (file === undefined) res.writeHead(404).end();
      else res.writeHead(200, { "Content-Length": String(file.length) }).end(file);
      return;
    }
    this.httpRequests.push(req.headers);
    this.clientNames.push(peerName(req));
    this.activePosts += 1;
    this.maxActivePosts = Math.max(this.maxActivePosts, this.activePosts);
    res.on("close", () => {
      this.activePosts -= 1;
    });
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const refusal = this.refusals.shift();
    if (refusal !== undefined) {
      res.writeHead(refusal.status, refusal.headers ?? {}).end();
      return;
    }
    const message = await decodeHttpBody(AgentToServerSchema, new Uint8Array(Buffer.concat(chunks)), {
      contentEncoding: req.headers["content-encoding"] ?? null,
    });
    const received: Received = { message, transport: "http", headers: req.headers };
    this.#record(received);
    if (this.hangs > 0) {
      this.hangs -= 1;
      return;
    }
    if (this.holdIf?.(received) === true) {
      await new Promise<void>((resolve) => this.#held.push(resolve));
    }
    const raw = this.garbage.shift();
    if (raw !== undefined) {
      const extra = raw instanceof Uint8Array || typeof raw === "string" ? {} : raw.headers;
      const body = raw instanceof Uint8Array || typeof raw === "string" ? raw : raw.body;
      res.writeHead(200, { "Content-Type": "application/x-protobuf", ...extra }).end(body);
      return;
    }
    const answer = this.#answer(received) ?? create(ServerToAgentSchema, { instanceUid: message.instanceUid });
    const gzipIt = this.gzipResponses && /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
    const body = await encodeHttpBody(ServerToAgentSchema, answer);
    const headers: Record<string, string> = { "Content-Type": "application/x-protobuf" };
    if (gzipIt) headers["Content-Encoding"] = "gzip";
    res.writeHead(200, headers).end(gzipIt ? await gzip(body) : body);
  }
}

export { AgentToServerSchema };
