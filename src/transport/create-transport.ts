/** Picks the transport for a URL scheme. */
import { HttpTransport } from "./http-transport.js";
import type { ProxyConnector } from "./proxy.js";
import type { BaseTlsOptions, TlsFetchFactory } from "./tls.js";
import type { Transport, TransportHost, TransportSettings } from "./types.js";
import { WsTransport } from "./ws-transport.js";

/** Transport-specific settings, each used by one kind only. */
export interface TransportExtras {
  /** TLS material from the options (Node only). */
  readonly tls: BaseTlsOptions;
  /** HTTP: makes the fetch used for `https:` with TLS settings (Node only). */
  readonly tlsFetch: TlsFetchFactory | undefined;
  /** Both kinds: connects through a target's proxy (Node only). */
  readonly proxyConnector: ProxyConnector | undefined;
  /** HTTP: gzip request bodies. */
  readonly compression: boolean;
  /** HTTP: the fetch to use (required for "http"). */
  readonly fetch: typeof globalThis.fetch | undefined;
}

/**
 * A new, unstarted transport of `kind`.
 * @throws Error when `kind` is "http" and no fetch is given (options validation prevents it).
 */
export function createTransport(
  kind: "ws" | "http",
  host: TransportHost,
  settings: TransportSettings,
  extras: TransportExtras,
): Transport {
  if (kind === "ws") return new WsTransport(host, settings, extras.tls, extras.proxyConnector);
  if (extras.fetch === undefined) throw new Error("HTTP transport needs fetch");
  return new HttpTransport(host, settings, {
    compression: extras.compression,
    fetch: extras.fetch,
    tls: extras.tls,
    tlsFetch: extras.tlsFetch,
    proxyConnector: extras.proxyConnector,
  });
}
