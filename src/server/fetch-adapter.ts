/**
 * Web-standard `fetch(Request) → Response` handler for the plain-HTTP transport (for
 * runtimes and frameworks built on the Fetch API). WebSocket upgrades cannot be served
 * this way and get 426.
 */
import { headersToRecord, retryAfterSeconds } from "./auth.js";
import type { ServerCore } from "./core.js";
import { httpExchange } from "./http-exchange.js";
import type { ConnectionGate } from "./node-http-adapter.js";

/** Extra facts about the request that the Fetch API does not carry. */
export interface FetchRequestInfo {
  readonly remoteAddress?: string;
  readonly tlsPeerCertificate?: unknown;
}

function empty(status: number, headers: Record<string, string> = {}): Response {
  return new Response(null, { status, headers });
}

/** Handles one request; a path other than the OpAMP path gets 404. Never rejects. */
export async function handleFetch(
  core: ServerCore,
  gate: ConnectionGate,
  request: Request,
  info: FetchRequestInfo = {},
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
      readBody: async () => request.body ?? new Uint8Array(0),
    });
    const body = result.body === undefined ? null : new Uint8Array(result.body);
    return new Response(body, { status: result.status, headers: result.headers });
  } finally {
    gate.release();
  }
}
