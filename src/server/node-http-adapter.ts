/**
 * node:http request handler for the plain-HTTP transport, and the connection gate shared
 * with the WebSocket adapter.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import type { Clock } from "../internal/clock.js";
import { OpampError } from "../wire/index.js";
import { flattenHeaders, retryAfterSeconds, STATUS_TEXT } from "./auth.js";
import type { ServerCore } from "./core.js";
import { type HttpExchangeResponse, httpExchange } from "./http-exchange.js";

/** Counts open WebSockets and in-flight HTTP requests against `limits.maxConnections`. */
export class ConnectionGate {
  #active = 0;
  readonly #idle = new Set<() => void>();
  /** Sockets of node:http requests being handled, destroyed if `stop()` runs out of time. */
  readonly requestSockets = new Set<Duplex>();

  constructor(readonly max: number) {}

  get active(): number {
    return this.#active;
  }

  /** Takes a slot; false when the server is at its limit. */
  tryAcquire(): boolean {
    if (this.#active >= this.max) return false;
    this.#active++;
    return true;
  }

  release(): void {
    this.#active--;
    if (this.#active === 0) for (const resolve of this.#idle) resolve();
  }

  /** Resolves when no slot is taken. */
  idle(): Promise<void> {
    if (this.#active === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.#idle.delete(done);
        resolve();
      };
      this.#idle.add(done);
    });
  }
}

/** Node's verdict on a TLS client's certificate, in the shape `AuthRequest` carries it. */
export interface TlsVerdict {
  readonly tlsAuthorized: boolean;
  readonly tlsAuthorizationError?: string;
}

/** Whether Node verified the client certificate, and why not when it did not. */
export function tlsVerdict(req: IncomingMessage): TlsVerdict {
  const socket = req.socket as Partial<TLSSocket>;
  if (socket.encrypted !== true) return { tlsAuthorized: false };
  if (socket.authorized === true) return { tlsAuthorized: true };
  // Typed as an Error, but Node sets a string code ("UNABLE_TO_VERIFY_LEAF_SIGNATURE").
  const reason: unknown = socket.authorizationError;
  if (reason === undefined || reason === null) return { tlsAuthorized: false };
  const text = reason instanceof Error ? ((reason as { code?: string }).code ?? reason.message) : String(reason);
  return { tlsAuthorized: false, tlsAuthorizationError: text };
}

/** The peer certificate of a TLS socket, or undefined for plain TCP or no client cert. */
export function peerCertificate(req: IncomingMessage): unknown {
  const socket = req.socket as Partial<TLSSocket>;
  if (socket.encrypted !== true || typeof socket.getPeerCertificate !== "function") return undefined;
  const cert = socket.getPeerCertificate(true);
  return cert && Object.keys(cert).length > 0 ? cert : undefined;
}

/** A node request's path and, when its Host header makes one, its whole URL. */
export interface RequestTarget {
  readonly pathname: string;
  /** Undefined when the Host header (or the target) does not form a valid URL: answer 400. */
  readonly url: URL | undefined;
}

/** The URL of a node request, with the scheme the socket implies. Never throws. */
export function requestUrl(req: IncomingMessage, ws: boolean): RequestTarget {
  const secure = (req.socket as Partial<TLSSocket>).encrypted === true;
  const scheme = ws ? (secure ? "wss" : "ws") : secure ? "https" : "http";
  const target = req.url ?? "/";
  // A hostile Host header must not become an exception in a listener.
  const url = parseUrl(target, `${scheme}://${req.headers.host ?? "localhost"}`);
  const pathname = url?.pathname ?? parseUrl(target, `${scheme}://localhost`)?.pathname ?? "";
  return { pathname, url };
}

function parseUrl(target: string, base: string): URL | undefined {
  try {
    return new URL(target, base);
  } catch {
    return undefined;
  }
}

/**
 * Reads a node request body up to `limit` bytes within `handshakeTimeoutMs` (also used by
 * the gateway, hence the narrow `core` type).
 */
export function readNodeBody(
  req: IncomingMessage,
  limit: number,
  core: { readonly options: { readonly clock: Clock; readonly handshakeTimeoutMs: number } },
): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const clock = core.options.clock;
    // The 408 goes out with Connection: close, which ends the stalled socket.
    const timer = clock.setTimeout(() => {
      finish(new OpampError("timeout", "request body not received in time"));
    }, core.options.handshakeTimeoutMs);
    let done = false;
    const finish = (error?: OpampError) => {
      if (done) return;
      done = true;
      clock.clearTimeout(timer);
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
      if (error) reject(error);
      else {
        // A plain Uint8Array (see ws-adapter toBytes): decoded bytes fields then copy on .slice().
        const body = Buffer.concat(chunks, size);
        resolve(new Uint8Array(body.buffer, body.byteOffset, body.byteLength));
      }
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      // Compressed bodies are bounded too: gzip rarely grows data, never by much.
      if (size > limit) {
        finish(new OpampError("message_too_large", "request body over the limit", { details: { limit } }));
        req.resume();
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => finish();
    const onError = (e: Error) => finish(new OpampError("transport_failed", e.message, { cause: e }));
    // A client that goes away mid-body must not hold its connection slot until the timeout.
    const onClose = () => finish(new OpampError("transport_failed", "request closed before its body ended"));
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}

/** Bodies up to this size are copied into Node's buffer pool rather than wrapped. */
const COPY_BODY_BYTES = 1024;

function write(res: ServerResponse, response: HttpExchangeResponse): void {
  res.writeHead(response.status, STATUS_TEXT[response.status], response.headers);
  const body = response.body;
  // A usual reply is a few dozen bytes, an array V8 keeps inside its heap: reading its
  // `.buffer` to wrap it would first move it out to memory of its own. Copying is cheaper.
  res.end(
    body === undefined
      ? undefined
      : body.length <= COPY_BODY_BYTES
        ? Buffer.from(body)
        : Buffer.from(body.buffer, body.byteOffset, body.byteLength),
  );
}

/**
 * Handles one node request. Returns false without touching `res` when the path is not the
 * OpAMP path (so a framework can pass it on).
 */
export async function handleNodeRequest(
  core: ServerCore,
  gate: ConnectionGate,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<boolean> {
  const { pathname, url } = requestUrl(req, false);
  if (pathname !== core.options.path) return false;
  if (url === undefined) {
    write(res, { status: 400, headers: { connection: "close" }, body: undefined });
    req.resume();
    return true;
  }
  if (!core.accepting) {
    write(res, {
      status: 503,
      headers: { "retry-after": retryAfterSeconds(core.options.retryAfterMs) },
      body: undefined,
    });
    return true;
  }
  if (req.headers.upgrade !== undefined) {
    // The upgrade listener is not mounted: say so instead of treating it as a poll.
    write(res, { status: 426, headers: {}, body: undefined });
    return true;
  }
  if (!gate.tryAcquire()) {
    write(res, {
      status: 503,
      headers: { "retry-after": retryAfterSeconds(core.options.retryAfterMs) },
      body: undefined,
    });
    req.resume();
    return true;
  }
  const socket = req.socket;
  gate.requestSockets.add(socket);
  try {
    const response = await httpExchange(core, {
      method: req.method ?? "GET",
      url,
      headers: flattenHeaders(req.headers),
      remoteAddress: req.socket.remoteAddress,
      tlsPeerCertificate: peerCertificate(req),
      ...tlsVerdict(req),
      readBody: () => readNodeBody(req, core.options.maxMessageBytes, core),
    });
    if (response.status === 413 || response.status === 408) {
      // Do not keep reading an oversized or stalled body on a kept-alive socket.
      response.headers["connection"] = "close";
    }
    write(res, response);
  } finally {
    gate.requestSockets.delete(socket);
    gate.release();
  }
  return true;
}
