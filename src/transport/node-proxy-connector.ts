/**
 * The Node {@link ProxyConnector}: HTTP polling through {@link nodeFetch}, WebSocket
 * through a CONNECT tunnel handed to `ws` as its `createConnection` (Node only; exported
 * by `opamp-sdk/client/node`).
 */
// spec: Connection Settings Management (ProxyConnectionSettings)
import type { Socket } from "node:net";
import { proxyFromEnvironment } from "./node-proxy-env.js";
import { openTunnel, proxyEndpoint, tlsOverTunnel } from "./node-proxy-tunnel.js";
import { nodeFetch } from "./node-tls-fetch.js";
import type { ProxyConnector, ProxySettings, WsCreateConnection } from "./proxy.js";
import type { TlsSettings } from "./tls.js";

function webSocketConnection(proxy: ProxySettings, signal: AbortSignal): WsCreateConnection {
  const endpoint = proxyEndpoint(proxy);
  return (options, callback) => {
    const host = String(options["host"]);
    const port = Number(options["port"]);
    // ws sets defaultPort from the URL's scheme (443 for wss:), also for a redirect it
    // follows; the options are ws's own with the TLS options the transport gave it.
    const secure = Number(options["defaultPort"]) === 443;
    openTunnel(endpoint, host, port, options, signal).then(
      (socket: Socket) => callback(null, secure ? tlsOverTunnel(socket, options, host) : socket),
      (error: Error) => callback(error),
    );
    return undefined;
  };
}

/**
 * Connects through `http://` and `https://` proxies with node:http, node:https and
 * node:tls only: WebSocket and `https:` requests through an HTTP CONNECT tunnel (with the
 * connect headers and `Proxy-Authorization` from the URL's userinfo; TLS to the server
 * inside the tunnel), plain `http:` requests in absolute form. TLS to an `https://` proxy
 * uses the connection's trust settings (as opamp-go does). Without `transport.proxy` (and
 * no offered proxy) it takes the proxy from `HTTPS_PROXY` / `HTTP_PROXY` / `ALL_PROXY`,
 * minus `NO_PROXY`, read at each connection (see `proxyFromEnvironment`). Pass it as
 * `transport.proxyConnector`.
 */
export const nodeProxyConnector: ProxyConnector = Object.freeze({
  fetch: (proxy: ProxySettings, tls: TlsSettings): typeof globalThis.fetch => nodeFetch(tls, proxy),
  webSocketConnection,
  fromEnvironment: (target: string) => proxyFromEnvironment(target),
});
