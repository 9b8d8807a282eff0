/**
 * One plain-HTTP OpAMP exchange, independent of node:http and fetch: authenticate, decode
 * (gzip allowed), hand to the core, encode (gzip when accepted). Both HTTP adapters use it.
 */
import { AgentToServerSchema } from "../gen/opamp/v1/opamp_pb.js";
import { parse } from "../wire/frame.js";
import { readHttpBody } from "../wire/http-body.js";
import { OpampError, PROTOBUF_CONTENT_TYPE } from "../wire/index.js";
import { authenticate, retryAfterSeconds } from "./auth.js";
import type { ServerCore } from "./core.js";
import { nodeGzip } from "./node-gzip.js";
import type { AuthDecision, AuthRequest } from "./types.js";

/** What an adapter hands over. */
export interface HttpExchangeRequest {
  readonly method: string;
  readonly url: URL;
  readonly headers: Readonly<Record<string, string>>;
  readonly remoteAddress: string | undefined;
  readonly tlsPeerCertificate: unknown;
  /** Node's verdict on the client certificate (false when unknown). */
  readonly tlsAuthorized?: boolean;
  readonly tlsAuthorizationError?: string | undefined;
  /** Reads the body, or fails with `message_too_large` / `timeout` / `transport_failed`. */
  readonly readBody: () => Promise<Uint8Array | ReadableStream<Uint8Array>>;
}

/** What the adapter writes back. */
export interface HttpExchangeResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array | undefined;
}

/** True when `Content-Type` names protobuf (parameters ignored). */
export function isProtobufRequest(contentType: string | undefined): boolean {
  if (contentType === PROTOBUF_CONTENT_TYPE) return true; // the usual case, without parsing
  return (contentType ?? "").split(";")[0]?.trim().toLowerCase() === PROTOBUF_CONTENT_TYPE;
}

/**
 * Whether `Accept-Encoding` allows gzip: `gzip` or `*` with a non-zero q; an explicit
 * `gzip;q=0` refuses it even when `*` is present.
 */
export function acceptsGzip(header: string | undefined): boolean {
  if (header === undefined) return false;
  let star = false;
  for (const item of header.split(",")) {
    const [coding = "", ...params] = item.trim().toLowerCase().split(";");
    let q = 1;
    for (const p of params) {
      const [k, v] = p.trim().split("=");
      if (k === "q" && v !== undefined) q = Number(v);
    }
    const name = coding.trim();
    if (name === "gzip" || name === "x-gzip") return q > 0;
    if (name === "*") star = q > 0;
  }
  return star;
}

function plain(status: number, message: string, headers: Record<string, string> = {}): HttpExchangeResponse {
  return {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...headers },
    body: new TextEncoder().encode(message),
  };
}

/** Limit-exceeding or undecodable input as an HTTP status. */
function statusFor(error: OpampError): number {
  switch (error.code) {
    case "message_too_large":
      return 413;
    case "timeout":
      return 408;
    case "transport_failed":
      // The client went away mid-body: nobody reads this answer, and it is not our fault.
      return 400;
    case "malformed_message":
    case "compression_failed":
    case "invalid_instance_uid":
      return 400;
    default:
      return 500;
  }
}

/**
 * Runs one exchange. Never throws: every failure is an HTTP status, and failures the
 * application should hear about (hooks, internal errors) are also reported on `error`.
 */
export async function httpExchange(core: ServerCore, request: HttpExchangeRequest): Promise<HttpExchangeResponse> {
  const options = core.options;
  if (request.method !== "POST") return plain(405, "OpAMP over HTTP uses POST", { allow: "POST" });
  if (!isProtobufRequest(request.headers["content-type"])) {
    return plain(415, `Content-Type must be ${PROTOBUF_CONTENT_TYPE}`);
  }
  const length = Number(request.headers["content-length"] ?? Number.NaN);
  // Refuse before reading: the declared body is already over the limit.
  if (Number.isFinite(length) && length > options.maxMessageBytes) return plain(413, "message too large");
  const authRequest: AuthRequest = {
    headers: request.headers,
    url: request.url,
    remoteAddress: request.remoteAddress,
    tlsPeerCertificate: request.tlsPeerCertificate,
    tlsAuthorized: request.tlsAuthorized === true,
    ...(request.tlsAuthorizationError === undefined ? {} : { tlsAuthorizationError: request.tlsAuthorizationError }),
    transport: "http",
  };
  const retry = { "retry-after": retryAfterSeconds(options.retryAfterMs) };
  let decision: AuthDecision;
  try {
    decision = await authenticate(options.authenticate, authRequest, core.authLimits(authRequest));
  } catch (e) {
    const error = OpampError.from(e, "hook_failed");
    // Cut short by stop(): refused like any request that arrives while stopping.
    if (error.code === "aborted") return plain(503, error.message, retry);
    core.reportError(error);
    // A hook that did not answer in time: the client may come back later.
    if (error.code === "timeout") return plain(503, error.message, retry);
    return plain(500, "authentication failed");
  }
  if (!decision.accept) return plain(decision.status, decision.message ?? "refused", { ...decision.headers });
  // The hook answered just as stop() began: take no new work.
  if (!core.accepting) return plain(503, "the server is stopping", retry);
  try {
    let body = await request.readBody();
    // A streamed body (fetch) is counted as it passes, and only when someone measures.
    let streamed = 0;
    if (!(body instanceof Uint8Array) && core.telemetry.measuring) {
      body = body.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, controller) {
            streamed += chunk.length;
            controller.enqueue(chunk);
          },
        }),
      );
    }
    const payload = await readHttpBody(body, {
      contentEncoding: request.headers["content-encoding"] ?? null,
      maxMessageBytes: options.maxMessageBytes,
      codec: nodeGzip,
    });
    const message = parse(AgentToServerSchema, payload);
    const endpoint = request.url.origin + request.url.pathname;
    const reply = await core.handleMessage(
      {
        transport: "http",
        principal: decision.principal,
        remoteAddress: request.remoteAddress,
        channel: undefined,
        endpoint,
      },
      message,
      payload,
      body instanceof Uint8Array ? body.length : streamed,
    );
    const headers: Record<string, string> = { "content-type": PROTOBUF_CONTENT_TYPE };
    // A small reply gzipped grows (~20 bytes of gzip framing) and costs CPU for nothing.
    if (
      options.gzipResponses &&
      reply.length >= options.gzipMinBytes &&
      acceptsGzip(request.headers["accept-encoding"])
    ) {
      headers["content-encoding"] = "gzip";
      const compressed = await nodeGzip.gzip(reply);
      core.telemetry.sent("http", compressed);
      return { status: 200, headers, body: compressed };
    }
    core.telemetry.sent("http", reply);
    return { status: 200, headers, body: reply };
  } catch (e) {
    const error = OpampError.from(e);
    if (error.code === "unauthenticated") return plain(403, error.message);
    if (error.code === "unavailable") return plain(503, error.message, retry);
    const status = statusFor(error);
    // A body that did not arrive in time (408) is reported like a hook that did not answer.
    if (status === 500 || error.code === "timeout") core.reportError(error);
    // What went wrong inside is for the `error` listener, not for the peer.
    return plain(status, status === 500 ? "internal error" : error.message);
  }
}
