/**
 * A fetch-compatible function over `node:https`/`node:http` that takes TLS options
 * (Node only; imported by `opamp-sdk/client/node`, never by the browser-safe client).
 * Global fetch (undici) takes no CA, client certificate or TLS versions without a
 * dispatcher from the undici package, which is not a dependency; this covers what the
 * HTTP transport needs: one request with a byte body, headers, an abort signal, and a
 * streamed, decompressed answer.
 */
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { Readable } from "node:stream";
import { rootCertificates } from "node:tls";
import { createBrotliDecompress, createGunzip, createInflate } from "node:zlib";
import { nodeTlsOptions, type TlsFetchFactory, type TlsSettings } from "./tls.js";

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
 * A fetch that connects with `tls` (CA, client certificate, verification, versions,
 * ciphers). `http:` URLs are fetched without TLS. Each request opens its own connection
 * (no pooled sockets outlive a stopped client). Pass it as `transport.tlsFetch`.
 */
export const nodeTlsFetch: TlsFetchFactory = (tls: TlsSettings): typeof globalThis.fetch => {
  const tlsOptions = nodeTlsOptions(tls, rootCertificates);
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
        agent: false as const,
        ...(secure ? tlsOptions : {}),
      };
      const req = (secure ? httpsRequest : httpRequest)(url, options, (response) => {
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
      });
      const onAbort = () => {
        req.destroy(signal?.reason instanceof Error ? signal.reason : new Error("aborted"));
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      req.on("close", () => signal?.removeEventListener("abort", onAbort));
      req.on("error", (error) => reject(new TypeError(`fetch failed: ${error.message}`, { cause: error })));
      const body = requestBody(init?.body);
      req.end(body);
    });
  };
  return fetchImpl as typeof globalThis.fetch;
};
