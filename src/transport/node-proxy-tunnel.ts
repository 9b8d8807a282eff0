/**
 * HTTP CONNECT tunnels through an `http://` or `https://` proxy, over `node:http`,
 * `node:https` and `node:tls` (Node only; reached from `opamp-sdk/client/node`, never
 * from the browser-safe client).
 */
// spec: Connection Settings Management (ProxyConnectionSettings)
import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP, type Socket } from "node:net";
import { type ConnectionOptions, type TLSSocket, connect as tlsConnect } from "node:tls";
import { OpampError } from "../wire/errors.js";
import { type ProxySettings, parseProxyUrl, proxyLabel } from "./proxy.js";

/** A proxy ready to be connected to. */
export interface ProxyEndpoint {
  /** `http://host:port` for messages (no credentials). */
  readonly label: string;
  readonly host: string;
  readonly port: number;
  /** TLS to the proxy itself (`https://` proxy URL). */
  readonly secure: boolean;
  /** `Proxy-Authorization` value: from the URL's userinfo, else from the connect headers. */
  readonly authorization: string | undefined;
  /** Connect headers other than `Proxy-Authorization`. */
  readonly connectHeaders: Readonly<Record<string, string>>;
}

/** A URL's host without the brackets of an IPv6 literal (what `net.connect` wants). */
export function bareHost(hostname: string): string {
  return hostname.startsWith("[") && hostname.endsWith("]") ? hostname.slice(1, -1) : hostname;
}

/**
 * Resolves proxy settings once per connection target.
 * @throws OpampError `invalid_argument` for a URL {@link parseProxyUrl} refuses.
 */
export function proxyEndpoint(proxy: ProxySettings): ProxyEndpoint {
  const url = parseProxyUrl(proxy.url, "proxy URL");
  const secure = url.protocol === "https:";
  const connectHeaders: Record<string, string> = {};
  let authorization: string | undefined;
  for (const [name, value] of Object.entries(proxy.connectHeaders ?? {})) {
    if (name.toLowerCase() === "proxy-authorization") authorization = value;
    else connectHeaders[name] = value;
  }
  if (url.username !== "" || url.password !== "") {
    // As Go's http.Transport: credentials in the proxy URL win over a connect header.
    const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
    authorization = `Basic ${Buffer.from(credentials, "utf8").toString("base64")}`;
  }
  return {
    label: proxyLabel(url.href),
    host: bareHost(url.hostname),
    port: url.port === "" ? (secure ? 443 : 80) : Number(url.port),
    secure,
    authorization,
    connectHeaders,
  };
}

/** The keys of Node TLS options that describe trust and protocol, not the peer's name. */
const TRUST_KEYS = ["ca", "cert", "key", "rejectUnauthorized", "minVersion", "maxVersion", "ciphers"] as const;

/**
 * TLS options for the connection to an `https://` proxy: the connection's own trust and
 * protocol settings (as Go's http.Transport uses one TLS config for both), checked
 * against the proxy's host name.
 */
export function proxyTlsOptions(proxy: ProxyEndpoint, tls: Readonly<Record<string, unknown>>): ConnectionOptions {
  const options: Record<string, unknown> = {};
  for (const key of TRUST_KEYS) if (tls[key] !== undefined) options[key] = tls[key];
  if (isIP(proxy.host) === 0) options["servername"] = proxy.host;
  return options as ConnectionOptions;
}

/** `host:port` as a CONNECT request names it (IPv6 literals in brackets). */
function authority(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

function abortReason(signal: AbortSignal): OpampError {
  const reason: unknown = signal.reason;
  return reason instanceof OpampError ? reason : new OpampError("aborted", "the proxy tunnel was abandoned");
}

/**
 * Opens a tunnel to `host:port` through `proxy` with an HTTP CONNECT request carrying
 * the connect headers and `Proxy-Authorization`; resolves with the raw socket once the
 * proxy answers 2xx. `tls` (Node TLS options) is used for an `https://` proxy.
 * @throws OpampError `http_status` (`details.status`) when the proxy answers anything
 *   but 2xx (407: it wants other credentials); `transport_failed` when it cannot be
 *   reached or hangs up; the signal's reason (or `aborted`) when `signal` fires first.
 */
export function openTunnel(
  proxy: ProxyEndpoint,
  host: string,
  port: number,
  tls: Readonly<Record<string, unknown>>,
  signal?: AbortSignal,
): Promise<Socket> {
  const target = authority(host, port);
  return new Promise<Socket>((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(abortReason(signal));
      return;
    }
    const headers: Record<string, string> = { ...proxy.connectHeaders, host: target };
    if (proxy.authorization !== undefined) headers["proxy-authorization"] = proxy.authorization;
    const options = {
      host: proxy.host,
      port: proxy.port,
      method: "CONNECT",
      path: target,
      headers,
      agent: false as const,
      ...(proxy.secure ? proxyTlsOptions(proxy, tls) : {}),
    };
    const req = (proxy.secure ? httpsRequest : httpRequest)(options);
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      return true;
    };
    const onAbort = () => {
      if (!settle() || signal === undefined) return;
      req.destroy();
      reject(abortReason(signal));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    req.once("connect", (response: IncomingMessage, socket: Socket, head: Buffer) => {
      const status = response.statusCode ?? 0;
      if (!settle()) {
        socket.destroy();
        return;
      }
      if (status < 200 || status >= 300) {
        socket.destroy();
        const text =
          response.statusMessage === undefined || response.statusMessage === "" ? "" : ` ${response.statusMessage}`;
        reject(
          new OpampError(
            "http_status",
            `the proxy ${proxy.label} refused CONNECT to ${target} with HTTP ${status}${text}`,
            {
              details: { status },
            },
          ),
        );
        return;
      }
      // Bytes the proxy sent after its answer belong to the tunnelled connection.
      if (head.length > 0) socket.unshift(head);
      resolve(socket);
    });
    req.on("error", (error: Error) => {
      if (!settle()) return;
      reject(
        new OpampError("transport_failed", `cannot open a tunnel through the proxy ${proxy.label}: ${error.message}`, {
          cause: error,
        }),
      );
    });
    req.once("close", () => {
      if (!settle()) return;
      reject(
        new OpampError("transport_failed", `the proxy ${proxy.label} closed the connection before answering CONNECT`),
      );
    });
    req.end();
  });
}

/**
 * TLS to `host` over an open tunnel. Node checks the certificate against `host`; SNI
 * carries `servername` (given, else `host` unless it is an IP address).
 */
export function tlsOverTunnel(socket: Socket, tls: Readonly<Record<string, unknown>>, host: string): TLSSocket {
  const servername = typeof tls["servername"] === "string" && tls["servername"] !== "" ? tls["servername"] : undefined;
  return tlsConnect({
    ...(tls as ConnectionOptions),
    // The options may be a whole request's (ws passes its own): a path would mean IPC.
    path: undefined,
    socket,
    host,
    servername: servername ?? (isIP(host) === 0 ? host : ""),
  });
}
