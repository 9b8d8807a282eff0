/**
 * Web-standard `fetch(Request) → Response` handler for the plain-HTTP transport (for
 * runtimes and frameworks built on the Fetch API). WebSocket upgrades cannot be served
 * this way and get 426.
 */
import type { TimerHandle } from "../internal/clock.js";
import { OpampError } from "../wire/index.js";
import { headersToRecord, retryAfterSeconds } from "./auth.js";
import type { ServerCore } from "./core.js";
import { httpExchange } from "./http-exchange.js";
import type { ConnectionGate } from "./node-http-adapter.js";

/** Extra facts about the request that the Fetch API does not carry. */
export interface FetchRequestInfo {
  /** The client's address, as the runtime or the proxy in front knows it; becomes `AuthRequest.remoteAddress`. */
  readonly remoteAddress?: string;
  /** The client certificate, when the TLS layer in front has one; becomes `AuthRequest.tlsPeerCertificate`. */
  readonly tlsPeerCertificate?: unknown;
  /** Whether the TLS layer in front verified the client certificate. Default false. */
  readonly tlsAuthorized?: boolean;
  /** Why it did not, when known. */
  readonly tlsAuthorizationError?: string;
}

function empty(status: number, headers: Record<string, string> = {}): Response {
  return new Response(null, { status, headers });
}

/**
 * The request body, failing with `timeout` when it has not ended within
 * `handshakeTimeoutMs` (counted from this call, as the node:http adapter does): a client
 * that sends its headers and then stalls would otherwise hold its connection slot for
 * good. On timeout the source is cancelled, so the runtime stops waiting for it. The
 * size limit stays with the reader (`decodeHttpBody`), which also cancels this stream,
 * and through it the source, when the body is refused.
 */
function timedBody(source: ReadableStream<Uint8Array>, core: ServerCore): ReadableStream<Uint8Array> {
  const clock = core.options.clock;
  const reader = source.getReader();
  let timer: TimerHandle | undefined;
  let settled = false;
  const settle = () => {
    settled = true;
    if (timer !== undefined) clock.clearTimeout(timer);
    timer = undefined;
  };
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        timer = clock.setTimeout(() => {
          timer = undefined;
          settle();
          const error = new OpampError("timeout", "request body not received in time");
          controller.error(error);
          reader.cancel(error).catch(() => undefined);
        }, core.options.handshakeTimeoutMs);
      },
      async pull(controller) {
        let result: ReadableStreamReadResult<Uint8Array>;
        try {
          result = await reader.read();
        } catch (e) {
          if (settled) return;
          settle();
          controller.error(OpampError.from(e, "transport_failed"));
          return;
        }
        // The timeout fired meanwhile: the stream already failed, and the source is cancelled.
        if (settled) return;
        if (result.done) {
          settle();
          controller.close();
        } else {
          controller.enqueue(result.value);
        }
      },
      cancel(reason) {
        settle();
        return reader.cancel(reason).catch(() => undefined);
      },
    },
    // Read only when the reader asks: nothing is buffered ahead of the limit checks.
    { highWaterMark: 0 },
  );
}

/**
 * Handles one request; a path other than the OpAMP path gets 404. Never rejects: an
 * unexpected throw is reported on `error` (`internal`) and answered 500.
 */
export async function handleFetch(
  core: ServerCore,
  gate: ConnectionGate,
  request: Request,
  info: FetchRequestInfo = {},
): Promise<Response> {
  try {
    return await fetchExchange(core, gate, request, info);
  } catch (e) {
    core.reportError(e);
    return empty(500, { connection: "close" });
  }
}

async function fetchExchange(
  core: ServerCore,
  gate: ConnectionGate,
  request: Request,
  info: FetchRequestInfo,
): Promise<Response> {
  const url = new URL(request.url);
  if (url.pathname !== core.options.path) return empty(404);
  const retry = { "retry-after": retryAfterSeconds(core.options.retryAfterMs) };
  if (!core.accepting) return empty(503, retry);
  if (request.headers.get("upgrade") !== null) return empty(426);
  if (!gate.tryAcquire()) return empty(503, retry);
  try {
    const result = await httpExchange(core, {
      method: request.method,
      url,
      headers: headersToRecord(request.headers),
      remoteAddress: info.remoteAddress,
      tlsPeerCertificate: info.tlsPeerCertificate,
      tlsAuthorized: info.tlsAuthorized === true,
      tlsAuthorizationError: info.tlsAuthorizationError,
      readBody: async () => (request.body === null ? new Uint8Array(0) : timedBody(request.body, core)),
    });
    // As the node:http adapter answers a stalled body: the rest of it will not be read.
    if (result.status === 408) result.headers["connection"] = "close";
    const body = result.body === undefined ? null : new Uint8Array(result.body);
    return new Response(body, { status: result.status, headers: result.headers });
  } finally {
    gate.release();
  }
}
