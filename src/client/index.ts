/**
 * `opamp-sdk/client`: the agent side of OpAMP.
 */

export type { BackoffPolicy } from "../internal/backoff.js";
export type { EventArgsMap, EventListener } from "../internal/emitter.js";
export type { LogFn, Logger } from "../internal/logger.js";
export type { ConnectionState } from "../transport/connection-state.js";
export type { ProxyConnector, ProxySettings, WsCreateConnection } from "../transport/proxy.js";
export type { TlsFetchFactory, TlsSettings, TlsVersion } from "../transport/tls.js";
export type { OpAMPClientEvents } from "./events.js";
export type {
  ClientHooks,
  EffectiveConfigInput,
  MaybePromise,
  OpampSettingsOffer,
  PackageSignatureCheck,
  RemoteConfigOffer,
  RemoteConfigResult,
  TelemetrySettingsOffer,
} from "./hooks.js";
export { OpAMPClient } from "./opamp-client.js";
export {
  type AgentDescriptionInput,
  type ClientAgentOptions,
  type ClientLimitsOptions,
  type ClientRetryOptions,
  type ClientStorageOptions,
  type ClientTlsOptions,
  type ClientTransportOptions,
  DEFAULT_CLOSE_TIMEOUT_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_DOWNLOAD_CONNECT_TIMEOUT_MS,
  DEFAULT_DOWNLOAD_IDLE_TIMEOUT_MS,
  DEFAULT_DOWNLOAD_PROGRESS_INTERVAL_MS,
  DEFAULT_DOWNLOAD_TIMEOUT_MS,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_MAX_HEARTBEAT_INTERVAL_MS,
  DEFAULT_MAX_PACKAGE_BYTES,
  DEFAULT_MAX_PENDING_CUSTOM_MESSAGES,
  DEFAULT_MAX_RETRY_AFTER_MS,
  DEFAULT_RESPONSE_TIMEOUT_MS,
  DEFAULT_RETRY,
  type OpAMPClientOptions,
  type ResolvedClientOptions,
} from "./options.js";
export { type InstalledPackage, MemoryPackageStore, type PackageInstall, type PackageStore } from "./package-store.js";
export {
  type ClientState,
  type ClientStateStore,
  type HeaderPair,
  MemoryClientStateStore,
  type StoredConnectionSettings,
  type StoredProxySettings,
  type StoredRemoteConfigStatus,
  type StoredTlsSettings,
} from "./state-store.js";
