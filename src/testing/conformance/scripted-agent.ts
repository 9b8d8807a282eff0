/**
 * A scripted agent built only on src/wire, `ws` and `fetch`, so that the server checks do
 * not depend on opamp-sdk's own client. It can send well-formed messages and deliberately
 * broken bytes, and it reports exactly what came back.
 */
import { create } from "@bufbuild/protobuf";
import WebSocket from "ws";
import {
  AgentDisconnectSchema,
  type AgentToServer,
  AgentToServerSchema,
  type ServerToAgent,
  ServerToAgentSchema,
} from "../../gen/opamp/v1/opamp_pb.js";
import {
  AgentCapability,
  agentDescription,
  decodeHttpBody,
  decodeWsMessage,
  encodeHttpBody,
  encodeWsMessage,
  instanceUidToString,
  PROTOBUF_CONTENT_TYPE,
} from "../../wire/index.js";

/** Where and how to reach the server under test. */
export interface ServerTarget {
  /** The server's `ws:`/`wss:` URL. */
  readonly wsUrl: string;
  /** The server's `http:`/`https:` URL. */
  readonly httpUrl: string;
  /** Headers (credentials) sent on every request and WebSocket handshake. */
  readonly headers: Readonly<Record<string, string>>;
  /** How long to wait for any single answer from the server. */
  readonly timeoutMs: number;
}

/** Capabilities of the scripted agent: it only reports status. */
export const SCRIPTED_AGENT_CAPABILITIES = AgentCapability.ReportsStatus;

/** Builds an AgentToServer; `full` adds the agent description (the scripted agent's full state). */
export function agentMessage(
  uid: Uint8Array,
  seq: number,
  options: { full?: boolean; flags?: bigint; disconnect?: boolean } = {},
): AgentToServer {
  const message = create(AgentToServerSchema, {
    instanceUid: uid,
    sequenceNum: BigInt(seq),
    capabilities: SCRIPTED_AGENT_CAPABILITIES,
    flags: options.flags ?? 0n,
  });
  if (options.full === true) {
    message.agentDescription = agentDescription({
      identifying: { "service.name": "opamp-conformance", "service.instance.id": instanceUidToString(uid) },
      nonIdentifying: { "os.type": "conformance" },
    });
  }
  if (options.disconnect === true) message.agentDisconnect = create(AgentDisconnectSchema);
  return message;
}

/** Something the server sent on a WebSocket, or the connection closing. */
export type WsEvent =
  | {
      readonly kind: "message";
      readonly isBinary: boolean;
      readonly raw: Uint8Array;
      readonly message?: ServerToAgent;
      readonly decodeError?: string;
    }
  | { readonly kind: "close"; readonly code: number; readonly reason: string }
  | { readonly kind: "timeout" };

/** Result of a WebSocket handshake attempt. */
export type WsOpenResult =
  | { readonly ok: true; readonly conn: WsAgentConnection }
  | { readonly ok: false; readonly status?: number; readonly error: string };

/** One raw WebSocket connection to the server under test. */
export class WsAgentConnection {
  private readonly events: WsEvent[] = [];
  private waiter: ((event: WsEvent) => void) | undefined;
  private closeEvent: WsEvent | undefined;

  private constructor(private readonly socket: WebSocket) {
    socket.on("message", (data: WebSocket.RawData, isBinary: boolean) => {
      const raw = toBytes(data);
      let event: WsEvent;
      try {
        event = { kind: "message", isBinary, raw, message: decodeWsMessage(ServerToAgentSchema, raw) };
      } catch (error) {
        event = { kind: "message", isBinary, raw, decodeError: errorText(error) };
      }
      this.push(event);
    });
    socket.on("close", (code: number, reason: Buffer) => {
      this.closeEvent = { kind: "close", code, reason: reason.toString("utf8") };
      this.push(this.closeEvent);
    });
    socket.on("error", () => {
      // A failed socket also emits "close"; that is what the checks look at.
    });
  }

  /** Opens a connection; `headers` replaces the target's headers when given. */
  static open(target: ServerTarget, headers: Readonly<Record<string, string>> = target.headers): Promise<WsOpenResult> {
    return new Promise((resolve) => {
      const socket = new WebSocket(target.wsUrl, { headers: { ...headers }, handshakeTimeout: target.timeoutMs });
      let settled = false;
      const settle = (result: WsOpenResult): void => {
        if (settled) return;
        settled = true;
        resolve(result);
      };
      const conn = new this(socket);
      socket.once("open", () => settle({ ok: true, conn }));
      socket.once("unexpected-response", (request, response) => {
        settle({
          ok: false,
          status: response.statusCode ?? 0,
          error: `handshake answered HTTP ${response.statusCode}`,
        });
        response.resume();
        request.destroy();
      });
      socket.once("error", (error) => settle({ ok: false, error: errorText(error) }));
    });
  }

  /** Sends a well-formed message with the zero header. */
  send(message: AgentToServer): void {
    this.socket.send(encodeWsMessage(AgentToServerSchema, message, { maxMessageBytes: Number.MAX_SAFE_INTEGER }));
  }

  /** Sends bytes as they are, in one binary message. */
  sendRaw(bytes: Uint8Array): void {
    this.socket.send(bytes, { binary: true });
  }

  /** The next event from the server, or `timeout`. The close event repeats once reached. */
  next(timeoutMs: number): Promise<WsEvent> {
    const queued = this.events.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.closeEvent !== undefined) return Promise.resolve(this.closeEvent);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        resolve({ kind: "timeout" });
      }, timeoutMs);
      this.waiter = (event) => {
        clearTimeout(timer);
        this.waiter = undefined;
        resolve(event);
      };
    });
  }

  /** Sends a message and waits for the next thing the server does. */
  async exchange(message: AgentToServer, timeoutMs: number): Promise<WsEvent> {
    this.send(message);
    return this.next(timeoutMs);
  }

  /** Starts the close handshake. */
  close(code = 1000): void {
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) {
      this.socket.close(code);
    }
  }

  /** Drops the TCP connection without a close handshake (for cleanup). */
  terminate(): void {
    this.socket.terminate();
  }

  get isOpen(): boolean {
    return this.socket.readyState === WebSocket.OPEN;
  }

  private push(event: WsEvent): void {
    if (this.waiter !== undefined) this.waiter(event);
    else if (event.kind !== "close") this.events.push(event);
  }
}

/** What came back from one HTTP POST. */
export interface HttpAnswer {
  /** 0 when no HTTP response was received (`error` says why). */
  readonly status: number;
  readonly headers: Headers | undefined;
  readonly raw: Uint8Array | undefined;
  readonly message?: ServerToAgent;
  readonly decodeError?: string;
  readonly error?: string;
}

/** Posts a body to the server under test and decodes the answer when it is a 200. */
export async function postRaw(
  target: ServerTarget,
  body: Uint8Array,
  options: { headers?: Readonly<Record<string, string>>; contentEncoding?: string; withTargetHeaders?: boolean } = {},
): Promise<HttpAnswer> {
  const headers: Record<string, string> = {
    ...(options.withTargetHeaders === false ? {} : target.headers),
    "Content-Type": PROTOBUF_CONTENT_TYPE,
    ...(options.contentEncoding === undefined ? {} : { "Content-Encoding": options.contentEncoding }),
    ...options.headers,
  };
  let response: Response;
  try {
    response = await fetch(target.httpUrl, {
      method: "POST",
      headers,
      // A view over an ArrayBuffer (never shared memory here), as BodyInit wants.
      body: body as Uint8Array<ArrayBuffer>,
      signal: AbortSignal.timeout(target.timeoutMs),
    });
  } catch (error) {
    return { status: 0, headers: undefined, raw: undefined, error: `no HTTP response: ${errorText(error)}` };
  }
  let raw: Uint8Array;
  try {
    raw = new Uint8Array(await response.arrayBuffer());
  } catch (error) {
    return { status: response.status, headers: response.headers, raw: undefined, error: errorText(error) };
  }
  if (response.status !== 200) return { status: response.status, headers: response.headers, raw };
  try {
    // fetch already undid any Content-Encoding of the response.
    const message = await decodeHttpBody(ServerToAgentSchema, raw, { maxMessageBytes: Number.MAX_SAFE_INTEGER });
    return { status: 200, headers: response.headers, raw, message };
  } catch (error) {
    return { status: 200, headers: response.headers, raw, decodeError: errorText(error) };
  }
}

/** Posts a well-formed message, gzipped when asked. */
export async function postMessage(
  target: ServerTarget,
  message: AgentToServer,
  options: { gzip?: boolean; headers?: Readonly<Record<string, string>>; withTargetHeaders?: boolean } = {},
): Promise<HttpAnswer> {
  const body = await encodeHttpBody(AgentToServerSchema, message, {
    gzip: options.gzip === true,
    maxMessageBytes: Number.MAX_SAFE_INTEGER,
  });
  return postRaw(target, body, {
    ...(options.gzip === true ? { contentEncoding: "gzip" } : {}),
    headers: { "OpAMP-Instance-UID": instanceUidToString(message.instanceUid), ...options.headers },
    ...(options.withTargetHeaders === undefined ? {} : { withTargetHeaders: options.withTargetHeaders }),
  });
}

function toBytes(data: WebSocket.RawData): Uint8Array {
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data));
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Message text of anything thrown. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
