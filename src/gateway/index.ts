/**
 * `opamp-sdk/gateway`: an OpAMP gateway (fan-in relay) wire-compatible with Bindplane's
 * opampgateway, and the gateway ↔ server control protocol it speaks. Node only.
 *
 * @module
 */
export type { TlsSettings, TlsVersion } from "../transport/tls.js";
export {
  decodeGatewayAttach,
  decodeGatewayConnect,
  decodeGatewayConnectResult,
  decodeGatewayRefused,
  encodeGatewayAttach,
  encodeGatewayConnect,
  encodeGatewayConnectResult,
  encodeGatewayRefused,
  GATEWAY_ATTACH,
  GATEWAY_CAPABILITY,
  GATEWAY_CONNECT,
  GATEWAY_CONNECT_RESULT,
  GATEWAY_EXTENSION_CAPABILITY,
  GATEWAY_REFUSED,
  type GatewayAttach,
  type GatewayConnect,
  type GatewayConnectResult,
  type GatewayRefused,
  type GoHeaders,
} from "../wire/gateway-protocol.js";
export { type ConfigContext, type GatewayConfig, loadGatewayConfig, parseGatewayConfig } from "./config.js";
export type { GatewayAgent, GatewayDisconnectReason, GatewayEvents } from "./events.js";
export type { LinkCloseReason } from "./link.js";
export {
  type ByDirection,
  type Direction,
  type GatewayMetricsSnapshot,
  type InstrumentOptionsLike,
  LATENCY_BUCKETS_MS,
  type LatencySnapshot,
  type MeterLike,
  type MeterProviderLike,
} from "./metrics.js";
export {
  DEFAULT_GATEWAY_PORT,
  type GatewayAddress,
  type GatewayListenOptions,
  type GatewayUpstream,
  OpAMPGateway,
} from "./opamp-gateway.js";
export {
  DEFAULT_AUTH_TIMEOUT_MS,
  DEFAULT_GATEWAY_RETRY_AFTER_MS,
  DEFAULT_HTTP_AGENT_TIMEOUT_MS,
  DEFAULT_MAX_QUEUED_BYTES_PER_AGENT,
  DEFAULT_UPSTREAM_CONNECTIONS,
  DEFAULT_UPSTREAM_HIGH_WATER_BYTES,
  DEFAULT_UPSTREAM_REPLY_TIMEOUT_MS,
  DEFAULT_UPSTREAM_RETRY,
  type GatewayAuth,
  type OpAMPGatewayOptions,
  type ResolvedGatewayOptions,
} from "./options.js";
