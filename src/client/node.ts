/**
 * Node-only additions to `opamp-sdk/client` (they import `node:` modules, so they are
 * kept out of the browser-safe client entry).
 */

export { nodeProxyConnector } from "../transport/node-proxy-connector.js";
export { type ProxyEnvironment, proxyFromEnvironment } from "../transport/node-proxy-env.js";
export { nodeTlsFetch } from "../transport/node-tls-fetch.js";
export type { ProxyConnector, ProxySettings, WsCreateConnection } from "../transport/proxy.js";
export type { TlsFetchFactory, TlsSettings, TlsVersion } from "../transport/tls.js";
export { FilePackageStore } from "./file-package-store.js";
export { FileClientStateStore } from "./file-state-store.js";
export type { InstalledPackage, PackageInstall, PackageStore } from "./package-store.js";
export type { ClientState, ClientStateStore } from "./state-store.js";
