/**
 * Proxy settings shared by both transports: the options' proxy and an offered
 * ProxyConnectionSettings, validated here; connecting through the proxy is the injected
 * {@link ProxyConnector}'s job (Node: `nodeProxyConnector` from `opamp-sdk/client/node`).
 * Browser-safe: no `node:` import here.
 */
// spec: Connection Settings Management (ProxyConnectionSettings)
import { OpampError } from "../wire/errors.js";
import type { TlsSettings } from "./tls.js";

/**
 * An HTTP proxy the client connects through (spec: ProxyConnectionSettings). WebSocket
 * connections and `https:` requests go through an HTTP CONNECT tunnel; plain `http:`
 * requests are sent to the proxy in absolute form.
 */
export interface ProxySettings {
  /**
   * `http://host:port` (plain TCP to the proxy) or `https://host:port` (TLS to the
   * proxy); a bare `host:port` means `http://host:port`. Credentials in the URL
   * (`http://user:pass@host:port`) are sent as `Proxy-Authorization: Basic …`. Other
   * schemes (socks5, …) are refused.
   */
  readonly url: string;
  /** Headers sent with the CONNECT request (e.g. `Proxy-Authorization`). Default none. */
  readonly connectHeaders?: Readonly<Record<string, string>>;
}

/**
 * A `createConnection` function as Node's `http.request` (and the `ws` package, which
 * passes it on) calls it: `options` are the request's (host, port, TLS options…), and
 * the socket is handed over through `callback` once it is ready.
 */
export type WsCreateConnection = (
  options: Readonly<Record<string, unknown>>,
  callback: (error: Error | null, socket?: unknown) => void,
) => undefined;

/**
 * Connects the client's transports through an HTTP proxy. Node's implementation is
 * `nodeProxyConnector` from `opamp-sdk/client/node`; it is injected rather than imported
 * so that `opamp-sdk/client` stays free of `node:` modules for browsers (which cannot
 * choose a proxy: the browser's own settings apply).
 */
export interface ProxyConnector {
  /**
   * A fetch for HTTP polling that sends every request through `proxy`: an `https:`
   * target through a CONNECT tunnel and then TLS with `tls`, an `http:` target as an
   * absolute-form request. It must behave like fetch for what the HTTP transport uses
   * (see `TlsFetchFactory`) and reject with an `OpampError` when the proxy refuses.
   */
  fetch(proxy: ProxySettings, tls: TlsSettings): typeof globalThis.fetch;
  /**
   * The `createConnection` option for the `ws` package: a CONNECT tunnel to the host and
   * port `ws` asks for, then TLS through it for `wss:`. `signal` fires when the
   * WebSocket is given up, so a tunnel still being opened is closed.
   */
  webSocketConnection(proxy: ProxySettings, signal: AbortSignal): WsCreateConnection;
  /**
   * The proxy the environment names for the OpAMP URL `target`, or undefined to connect
   * directly. Optional; consulted when neither `transport.proxy` nor an offer sets one
   * (Node's connector reads `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY`).
   * @throws OpampError `invalid_argument` for an unusable proxy in the environment.
   */
  fromEnvironment?(target: string): ProxySettings | undefined;
}

/**
 * Normalises a proxy URL: a bare `host:port` gets `http://`; only `http:` and `https:`
 * proxies (HTTP CONNECT) are supported.
 * @param field - names the value in the error, e.g. `transport.proxy.url`
 * @throws OpampError `invalid_argument` for an empty or malformed URL or another scheme.
 */
export function parseProxyUrl(value: string, field: string): URL {
  const text = value.trim();
  if (text === "") throw new OpampError("invalid_argument", `${field} is empty`);
  // "proxy.internal:3128" would parse as a URL with the scheme "proxy.internal:".
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new OpampError("invalid_argument", `${field} is not a valid proxy URL or host:port`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new OpampError(
      "invalid_argument",
      `${field} uses the unsupported proxy scheme ${url.protocol} (only http:// and https:// proxies, through HTTP CONNECT)`,
    );
  }
  if (url.hostname === "") throw new OpampError("invalid_argument", `${field} names no proxy host`);
  return url;
}

/** `host:port` of a proxy URL for messages: never its credentials. */
export function proxyLabel(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}`;
  } catch {
    return "(invalid proxy URL)";
  }
}
