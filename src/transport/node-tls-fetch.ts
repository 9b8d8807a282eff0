/**
 * A fetch-compatible function over `node:https`/`node:http` that takes TLS options and,
 * optionally, an HTTP proxy (Node only; imported by `opamp-sdk/client/node`, never by the
 * browser-safe client). Global fetch (undici) takes no CA, client certificate, TLS
 * versions or proxy without a dispatcher from the undici package, which is not a
 * dependency; this covers what the HTTP transport needs: one request with a byte body,
 * headers, an abort signal, and a streamed, decompressed answer.
 */
import {
  type ClientRequest,
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  type RequestOptions,
} from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { type Duplex, Readable } from "node:stream";
import { rootCertificates } from "node:tls";
import { createBrotliDecompress, createGunzip, createInflate } from "node:zlib";
import { OpampError } from "../wire/errors.js";
import {
  bareHost,
  openTunnel,
  type ProxyEndpoint,
  proxyEndpoint,
  proxyTlsOptions,
  tlsOverTunnel,
} from "./node-proxy-tunnel.js";
import type { ProxySettings } from "./proxy.js";
import { type ClosableFetch, nodeTlsOptions, type TlsFetchFactory, type TlsSettings } from "./tls.js";

function requestHeaders(init: RequestInit | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  new Headers(init?.headers).forEach((value, name) => {
    out[name] = value;
  });
  return out;
}

function requestBody(body: BodyInit | null | undefined): Uint8Array | string | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body === "string") return body;
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  throw new TypeError("nodeTlsFetch: only string and byte bodies are supported");
}

function decoded(response: IncomingMessage): Readable {
  const encoding = String(response.headers["content-encoding"] ?? "")
    .trim()
    .toLowerCase();
  if (encoding === "gzip" || encoding === "x-gzip") return response.pipe(createGunzip());
  if (encoding === "deflate") return response.pipe(createInflate());
  if (encoding === "br") return response.pipe(createBrotliDecompress());
  return response;
}

function responseHeaders(response: IncomingMessage, dropEncoding: boolean): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(response.headers)) {
    if (value === undefined) continue;
    // Like fetch: the body is handed over decoded, so its length and encoding no longer apply.
    if (dropEncoding && (name === "content-encoding" || name === "content-length")) continue;
    for (const one of Array.isArray(value) ? value : [value]) headers.append(name, one);
  }
  return headers;
}

/**
 * Sends one request through `proxy`: an `https:` target through a CONNECT tunnel, then
 * TLS with `tlsOptions` inside it; an `http:` target in absolute form to the proxy (as
 * browsers and Go do), with `Proxy-Authorization` and without the other connect headers,
 * which belong to CONNECT.
 */
function proxiedRequest(
  proxy: ProxyEndpoint,
  url: URL,
  options: RequestOptions,
  tlsOptions: Readonly<Record<string, unknown>>,
  signal: AbortSignal | undefined,
  onResponse: (response: IncomingMessage) => void,
): ClientRequest {
  if (url.protocol === "https:") {
    const host = bareHost(url.hostname);
    const port = url.port === "" ? 443 : Number(url.port);
    const createConnection = (_options: unknown, callback: (error: Error | null, socket: Duplex) => void) => {
      openTunnel(proxy, host, port, tlsOptions, signal).then(
        (socket) => callback(null, tlsOverTunnel(socket, tlsOptions, host)),
        (error: Error) => callback(error, undefined as never),
      );
      return undefined;
    };
    // No agent: node:http then asks createConnection (and may wait for its callback).
    const { agent: _agent, ...rest } = options;
    return httpsRequest(url, { ...rest, ...tlsOptions, createConnection }, onResponse);
  }
  const headers: Record<string, string> = { ...(options.headers as Record<string, string>), host: url.host };
  if (proxy.authorization !== undefined) headers["proxy-authorization"] = proxy.authorization;
  const absolute: RequestOptions = {
    ...options,
    host: proxy.host,
    port: proxy.port,
    path: url.href,
    headers,
    ...(proxy.secure ? proxyTlsOptions(proxy, tlsOptions) : {}),
  };
  return (proxy.secure ? httpsRequest : httpRequest)(absolute, onResponse);
}

/**
 * A fetch over node:http(s) with `tls` for `https:` targets and, when `proxy` is given,
 * every request sent through it. Direct requests reuse their connections (keep-alive), so
 * an HTTP-polling agent over TLS does one handshake, not one per poll; idle sockets do not
 * keep the process alive, and `close()` (called by the HTTP transport at stop and when it
 * moves to other settings) destroys them. Through a proxy each request opens its own
 * tunnel.
 * @throws OpampError `invalid_argument` when `proxy` names an unsupported proxy.
 */
export function nodeFetch(tls: TlsSettings, proxy: ProxySettings | undefined): ClosableFetch {
  const tlsOptions = nodeTlsOptions(tls, rootCertificates);
  const endpoint = proxy === undefined ? undefined : proxyEndpoint(proxy);
  // One pool per fetch: its TLS settings are fixed, and close() ends exactly its sockets.
  const agents =
    endpoint === undefined
      ? { http: new HttpAgent({ keepAlive: true }), https: new HttpsAgent({ keepAlive: true }) }
      : undefined;
  const fetchImpl = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(typeof input === "string" || input instanceof URL ? input : input.url);
    const signal = init?.signal ?? undefined;
    return new Promise<Response>((resolve, reject) => {
      if (signal?.aborted === true) {
        reject(signal.reason);
        return;
      }
      const secure = url.protocol === "https:";
      if (!secure && url.protocol !== "http:") {
        reject(new TypeError(`nodeTlsFetch: unsupported protocol ${url.protocol}`));
        return;
      }
      const options = {
        method: init?.method ?? "GET",
        headers: requestHeaders(init),
        agent: agents === undefined ? (false as const) : secure ? agents.https : agents.http,
        ...(secure ? tlsOptions : {}),
      };
      const onResponse = (response: IncomingMessage) => {
        const status = response.statusCode ?? 0;
        const nullBody = status === 204 || status === 205 || status === 304 || options.method === "HEAD";
        const body = nullBody ? null : decoded(response);
        if (body === null) response.resume();
        else if (body !== response) response.on("error", (error) => body.destroy(error));
        resolve(
          new Response(body === null ? null : (Readable.toWeb(body) as ReadableStream<Uint8Array>), {
            status,
            statusText: response.statusMessage ?? "",
            headers: responseHeaders(response, body !== response),
          }),
        );
      };
      const req =
        endpoint === undefined
          ? (secure ? httpsRequest : httpRequest)(url, options, onResponse)
          : proxiedRequest(endpoint, url, options, tlsOptions, signal, onResponse);
      const onAbort = () => {
        req.destroy(signal?.reason instanceof Error ? signal.reason : new Error("aborted"));
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      req.on("close", () => signal?.removeEventListener("abort", onAbort));
      req.on("error", (error) =>
        // A proxy's refusal keeps its code (http_status 407, …); the rest fails like fetch.
        reject(error instanceof OpampError ? error : new TypeError(`fetch failed: ${error.message}`, { cause: error })),
      );
      const body = requestBody(init?.body);
      req.end(body);
    });
  };
  return Object.assign(fetchImpl as typeof globalThis.fetch, {
    close(): void {
      agents?.http.destroy();
      agents?.https.destroy();
    },
  });
}

/**
 * A fetch that connects with `tls` (CA, client certificate, verification, versions,
 * ciphers). `http:` URLs are fetched without TLS. Connections are kept alive between
 * polls (one TLS handshake per connection, not per request); idle ones do not hold the
 * process open, and the client closes them when it stops. Pass it as `transport.tlsFetch`.
 */
export const nodeTlsFetch: TlsFetchFactory = (tls: TlsSettings): typeof globalThis.fetch => nodeFetch(tls, undefined);
