/**
 * The checking server that a client under test connects to. It accepts both transports on
 * one endpoint (built only on `node:http`, `ws` and src/wire), records every message with
 * its arrival time, and lets a script decide each reply.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { type WebSocket, WebSocketServer } from "ws";
import { type AgentToServer, AgentToServerSchema, ServerToAgentSchema } from "../../gen/opamp/v1/opamp_pb.js";
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  decodeHttpBody,
  decodeWsMessage,
  encodeHttpBody,
  encodeWsMessage,
  PROTOBUF_CONTENT_TYPE,
  ServerCapability,
} from "../../wire/index.js";
import { errorText } from "./scripted-agent.js";
import type { ConformanceTransport } from "./types.js";

/** Capabilities the checking server announces on every reply. */
export const CHECKING_SERVER_CAPABILITIES =
  ServerCapability.AcceptsStatus |
  ServerCapability.OffersRemoteConfig |
  ServerCapability.AcceptsEffectiveConfig |
  ServerCapability.OffersConnectionSettings;

/** Fields of a reply; instance_uid and capabilities are filled in when left out. */
export type ReplyInit = MessageInitShape<typeof ServerToAgentSchema>;

/** One AgentToServer as received. */
export interface ReceivedMessage {
  /** Position in the log, from 0. */
  readonly index: number;
  /** Arrival time, `performance.now()` milliseconds. */
  readonly at: number;
  /** The transport it arrived on. */
  readonly transport: ConformanceTransport;
  /** WS: the connection number; HTTP: the request number. */
  readonly connection: number;
  /** The decoded message. */
  readonly message: AgentToServer;
  /** Set when the server refused the message at the HTTP level (e.g. 503). */
  refusedWith?: number;
  /** `performance.now()` when the reply (or refusal) was sent. */
  repliedAt?: number;
}

/** A received message whose reply the script decides. Exactly one of the methods must be called. */
export interface Exchange extends ReceivedMessage {
  /** Sends a ServerToAgent (default: an acknowledgement). */
  reply(init?: ReplyInit): void;
  /** HTTP only: refuses the request with a status and headers instead of a ServerToAgent. */
  refuse(status: number, headers?: Readonly<Record<string, string>>): void;
}

/** Transport-level happenings, in order. */
export type ServerEvent =
  | {
      /** A WebSocket was accepted. */
      readonly kind: "ws-open";
      /** When, `performance.now()` milliseconds. */
      readonly at: number;
      /** The connection's number, as in {@link ReceivedMessage.connection}. */
      readonly connection: number;
    }
  | {
      /** A WebSocket closed, from either side. */
      readonly kind: "ws-close";
      /** When, `performance.now()` milliseconds. */
      readonly at: number;
      /** The connection's number. */
      readonly connection: number;
      /** The close code received or sent. */
      readonly code: number;
    }
  | {
      /** A WebSocket handshake was refused (see `refuseNextUpgrade`). */
      readonly kind: "upgrade-refused";
      /** When, `performance.now()` milliseconds. */
      readonly at: number;
      /** The HTTP status it was refused with. */
      readonly status: number;
    }
  | {
      /** An AgentToServer arrived and was added to the log. */
      readonly kind: "message";
      /** When, `performance.now()` milliseconds. */
      readonly at: number;
      /** Its position in {@link CheckingServer.log}. */
      readonly index: number;
    }
  | {
      /** Something that is not a valid OpAMP message arrived (bad header, undecodable body, too large). */
      readonly kind: "bad-input";
      /** When, `performance.now()` milliseconds. */
      readonly at: number;
      /** Where it arrived. */
      readonly transport: ConformanceTransport;
      /** What was wrong with it. */
      readonly detail: string;
    };

interface Waiter {
  resolve(exchange: Exchange | undefined): void;
  timer: ReturnType<typeof setTimeout>;
}

/** A one-shot refusal of WebSocket handshakes. */
interface UpgradeRefusal {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
}

/** The checking server. */
export class CheckingServer {
  /** Every AgentToServer received, in arrival order, on both transports. */
  readonly log: ReceivedMessage[] = [];
  /** Transport-level happenings (connections, closes, refusals, bad input), in order. */
  readonly events: ServerEvent[] = [];
  private readonly http: Server;
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: DEFAULT_MAX_MESSAGE_BYTES });
  private readonly sockets = new Map<number, WebSocket>();
  private waiter: Waiter | undefined;
  private eventWaiters: (() => void)[] = [];
  private nextConnection = 1;
  private upgradeRefusal: UpgradeRefusal | undefined;
  private closed = false;
  private unclaimed: Exchange[] = [];

  constructor() {
    this.http = createServer((req, res) => this.onRequest(req, res));
    this.http.on("upgrade", (req, socket, head) => this.onUpgrade(req, socket, head));
  }

  /** Starts listening; resolves with the bound port. */
  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.http.once("error", reject);
      this.http.listen(port, host, () => {
        this.http.off("error", reject);
        const address = this.http.address();
        resolve(typeof address === "object" && address !== null ? address.port : port);
      });
    });
  }

  /** Closes every connection and the listener. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.waiter?.resolve(undefined);
    for (const ws of this.sockets.values()) ws.terminate();
    this.wss.close();
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  /**
   * The next message (or `undefined` after `timeoutMs`): one that arrived in the current
   * macrotask and is still unclaimed, else the next to arrive. Messages nobody takes are
   * acknowledged by default at the next macrotask.
   */
  take(timeoutMs: number): Promise<Exchange | undefined> {
    if (this.waiter !== undefined) throw new Error("conformance: take() is already pending");
    const queued = this.unclaimed.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        resolve(undefined);
      }, timeoutMs);
      this.waiter = {
        resolve: (exchange) => {
          clearTimeout(timer);
          this.waiter = undefined;
          resolve(exchange);
        },
        timer,
      };
    });
  }

  /** Resolves when `predicate` holds for the events so far, or with false after `timeoutMs`. */
  async waitForEvent(predicate: (events: readonly ServerEvent[]) => boolean, timeoutMs: number): Promise<boolean> {
    if (predicate(this.events)) return true;
    return new Promise((resolve) => {
      const check = (): void => {
        if (predicate(this.events)) done(true);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      const done = (value: boolean): void => {
        clearTimeout(timer);
        this.eventWaiters = this.eventWaiters.filter((w) => w !== check);
        resolve(value);
      };
      this.eventWaiters.push(check);
    });
  }

  /** Whether a WebSocket connection is open. */
  get wsOpen(): boolean {
    return this.sockets.size > 0;
  }

  /** Sends an unsolicited ServerToAgent on the newest WebSocket connection; false when there is none. */
  push(init: ReplyInit, instanceUid: Uint8Array): boolean {
    const ws = [...this.sockets.values()].at(-1);
    if (ws === undefined) return false;
    ws.send(encodeWsMessage(ServerToAgentSchema, buildReply(init, instanceUid)));
    return true;
  }

  /** Closes every WebSocket connection from the server side. */
  closeWebSockets(code: number, reason: string): void {
    for (const ws of this.sockets.values()) ws.close(code, reason);
  }

  /** Refuses the next WebSocket handshake with `status` and `headers`. */
  refuseNextUpgrade(status: number, headers: Readonly<Record<string, string>>): void {
    this.upgradeRefusal = { status, headers };
  }

  private addEvent(event: ServerEvent): void {
    this.events.push(event);
    for (const w of [...this.eventWaiters]) w();
  }

  private deliver(received: ReceivedMessage, send: (init: ReplyInit) => void, refuse: Exchange["refuse"]): void {
    this.log.push(received);
    this.addEvent({ kind: "message", at: received.at, index: received.index });
    let answered = false;
    const exchange: Exchange = Object.assign(received, {
      reply: (init: ReplyInit = {}) => {
        if (answered) return;
        answered = true;
        received.repliedAt = performance.now();
        send(init);
      },
      refuse: (status: number, headers: Readonly<Record<string, string>> = {}) => {
        if (answered) return;
        answered = true;
        received.repliedAt = performance.now();
        received.refusedWith = status;
        refuse(status, headers);
      },
    });
    if (this.waiter !== undefined) {
      this.waiter.resolve(exchange);
      return;
    }
    // Several messages can arrive in one macrotask (one TCP read); the script re-arms take()
    // in a microtask after each one. So an unclaimed message waits until the next macrotask
    // for a taker before it is acknowledged by default.
    this.unclaimed.push(exchange);
    if (this.unclaimed.length === 1) {
      setImmediate(() => {
        for (const ex of this.unclaimed.splice(0)) ex.reply();
      });
    }
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const contentType = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
    if (req.method !== "POST" || contentType !== PROTOBUF_CONTENT_TYPE) {
      this.addEvent({
        kind: "bad-input",
        at: performance.now(),
        transport: "http",
        detail: `${req.method} with Content-Type ${req.headers["content-type"] ?? "(none)"}`,
      });
      res.writeHead(req.method === "POST" ? 415 : 405).end();
      return;
    }
    const connection = this.nextConnection++;
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > DEFAULT_MAX_MESSAGE_BYTES) {
        if (!tooLarge) {
          tooLarge = true;
          chunks.length = 0;
          this.addEvent({ kind: "bad-input", at: performance.now(), transport: "http", detail: "body over 64 MiB" });
          res.writeHead(413, { Connection: "close" }).end();
        }
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => {
      if (tooLarge) return;
      decodeHttpBody(AgentToServerSchema, new Uint8Array(Buffer.concat(chunks)), {
        contentEncoding: req.headers["content-encoding"] ?? null,
      }).then(
        (message) => {
          this.deliver(
            { index: this.log.length, at: performance.now(), transport: "http", connection, message },
            (init) => {
              void encodeHttpBody(ServerToAgentSchema, buildReply(init, message.instanceUid)).then((body) => {
                res.writeHead(200, { "Content-Type": PROTOBUF_CONTENT_TYPE, "Content-Length": body.length });
                res.end(body);
              });
            },
            (status, headers) => {
              res.writeHead(status, { ...headers, "Content-Length": 0 }).end();
            },
          );
        },
        (error: unknown) => {
          this.addEvent({ kind: "bad-input", at: performance.now(), transport: "http", detail: errorText(error) });
          res.writeHead(400).end();
        },
      );
    });
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const refusal = this.upgradeRefusal;
    if (refusal !== undefined) {
      this.upgradeRefusal = undefined;
      const headerLines = Object.entries(refusal.headers).map(([k, v]) => `${k}: ${v}\r\n`);
      socket.end(
        `HTTP/1.1 ${refusal.status} Refused\r\n${headerLines.join("")}Content-Length: 0\r\nConnection: close\r\n\r\n`,
      );
      this.addEvent({ kind: "upgrade-refused", at: performance.now(), status: refusal.status });
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const connection = this.nextConnection++;
      this.sockets.set(connection, ws);
      this.addEvent({ kind: "ws-open", at: performance.now(), connection });
      ws.on("message", (data: Buffer, isBinary: boolean) => {
        let message: AgentToServer;
        try {
          if (!isBinary) throw new Error("a text frame");
          message = decodeWsMessage(AgentToServerSchema, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
        } catch (error) {
          this.addEvent({ kind: "bad-input", at: performance.now(), transport: "ws", detail: errorText(error) });
          return;
        }
        this.deliver(
          { index: this.log.length, at: performance.now(), transport: "ws", connection, message },
          (init) => {
            if (ws.readyState === ws.OPEN)
              ws.send(encodeWsMessage(ServerToAgentSchema, buildReply(init, message.instanceUid)));
          },
          () => {
            // A WebSocket message cannot be refused at the HTTP level; send the acknowledgement instead.
            if (ws.readyState === ws.OPEN)
              ws.send(encodeWsMessage(ServerToAgentSchema, buildReply({}, message.instanceUid)));
          },
        );
      });
      ws.on("close", (code: number) => {
        this.sockets.delete(connection);
        this.addEvent({ kind: "ws-close", at: performance.now(), connection, code });
      });
      ws.on("error", () => {
        // "close" follows.
      });
    });
  }
}

function buildReply(init: ReplyInit, instanceUid: Uint8Array) {
  return create(ServerToAgentSchema, {
    instanceUid,
    capabilities: CHECKING_SERVER_CAPABILITIES,
    ...init,
  });
}
