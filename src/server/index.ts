/**
 * `opamp-sdk/server`: the OpAMP server and what it takes and gives.
 */

export type { InstrumentOptionsLike, MeterLike, MeterProviderLike } from "../internal/otel.js";
export { InMemoryServerBus } from "../storage/memory-server-bus.js";
export {
  DEFAULT_STORE_AGENT_TTL_MS,
  DEFAULT_STORE_MAX_AGENTS,
  DEFAULT_STORE_MAX_BYTES,
  DEFAULT_STORE_MAX_DELIVERIES_PER_AGENT,
  InMemoryServerStore,
  type InMemoryServerStoreOptions,
} from "../storage/memory-server-store.js";
export type { BusMember, BusMessageHandler, ServerBus } from "./bus.js";
export type { FetchRequestInfo } from "./fetch-adapter.js";
export { type FastifyInstanceLike, nodeFetchInfo, type OpampFastifyOptions, opampFastify } from "./frameworks.js";
export {
  DEFAULT_LISTEN_PORT,
  type ListenAddress,
  type ListenOptions,
  OpAMPServer,
  refuseUpgrade,
} from "./opamp-server.js";
export {
  DEFAULT_AUTH_FAILURE_WINDOW_MS,
  DEFAULT_BUS_REQUEST_TIMEOUT_MS,
  DEFAULT_GZIP_MIN_BYTES,
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
  DEFAULT_MAX_AGENT_STATE_BYTES,
  DEFAULT_MAX_AGENTS_PER_CONNECTION,
  DEFAULT_MAX_AUTH_FAILURES,
  DEFAULT_MAX_BUFFERED_BYTES,
  DEFAULT_MAX_COMPONENT_CACHE_BYTES,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_PENDING_CUSTOM_MESSAGES_PER_AGENT,
  DEFAULT_MAX_RECONNECTS_PER_WINDOW,
  DEFAULT_MISSED_HEARTBEATS,
  DEFAULT_OPAMP_PATH,
  DEFAULT_RECONNECT_WINDOW_MS,
  DEFAULT_RETRY_AFTER_MS,
  DEFAULT_SERVER_CAPABILITIES,
  DEFAULT_SERVER_MAX_MESSAGE_BYTES,
  DEFAULT_STOP_TIMEOUT_MS,
  DEFAULT_SWEEP_INTERVAL_MS,
  DEFAULT_WS_PING_INTERVAL_MS,
  type OpAMPServerOptions,
  type ResolvedServerOptions,
  type ServerHooks,
  type ServerOptionsBase,
} from "./options.js";
export { defaultPrincipalKey } from "./principal-key.js";
export {
  type CustomMessageInput,
  type PackagesInput,
  PreparedRemoteConfig,
  type RemoteConfigInput,
} from "./push.js";
export { bearerToken, safeEqual } from "./secrets.js";
export type { ConnectionSettingsInput, HeadersInput } from "./settings-offer.js";
export type {
  DeliveryEvent,
  DeliveryKind,
  DeliveryStatus,
  ServerStore,
  StoredAgent,
  StoredDelivery,
  StoredDesired,
} from "./store.js";
export {
  CONNECTION_CHANNEL,
  type ConnectionDiagnostic,
  MESSAGE_CHANNEL,
  type MessageDiagnostic,
  PUSH_CHANNEL,
  type PushDiagnostic,
  type PushKind,
  SERVER_METRIC_NAMES,
} from "./telemetry.js";
export type {
  Agent,
  AgentPart,
  AgentTarget,
  AgentTransport,
  AppliedState,
  AuthDecision,
  AuthenticateHook,
  AuthorizeMessageHook,
  AuthRequest,
  CertificateRequestHook,
  DisconnectReason,
  ForwardedPush,
  GatewayInfo,
  InstanceUidHook,
  PackageState,
  PrincipalKeyHook,
  PushResult,
  RebindHook,
  ServerEventArgs,
  ServerEvents,
} from "./types.js";
export { WS_CLOSE } from "./ws-adapter.js";
