/**
 * OpAMPServer options: the one object a caller passes, grouped by concern, and the
 * resolved form the server keeps. Resolution happens once, at construction; the result is
 * frozen and never mutated.
 */
import { describeValue, optionGroup, rejectUnknownKeys, requireFunctions } from "../internal/check-options.js";
import { type Clock, systemClock } from "../internal/clock.js";
import { componentLogger, type Logger, loggerProblem } from "../internal/logger.js";
import type { MeterProviderLike } from "../internal/otel.js";
import { type ServerCapabilityFlags, serverCapabilities } from "../wire/capabilities.js";
import { OpampError } from "../wire/errors.js";
import { DEFAULT_GZIP_MIN_BYTES } from "../wire/limits.js";
import type { ServerBus } from "./bus.js";
import { defaultPrincipalKey } from "./principal-key.js";
import type { ServerStore } from "./store.js";
import type {
  AuthenticateHook,
  AuthorizeMessageHook,
  AuthRequest,
  CertificateRequestHook,
  InstanceUidHook,
  PrincipalKeyHook,
  RebindHook,
} from "./types.js";

/** Default URL path of the OpAMP endpoint (spec: default `/v1/opamp`). */
export const DEFAULT_OPAMP_PATH = "/v1/opamp";
/** Default heartbeat interval told to agents and used for HTTP liveness: 30 s (spec default). */
export const DEFAULT_HEARTBEAT_INTERVAL_SECONDS = 30;
/** Default number of heartbeat intervals an HTTP agent may miss before it is considered gone. */
export const DEFAULT_MISSED_HEARTBEATS = 3;
/** Default period of WebSocket pings; a socket silent for a whole period is dropped: 30 s. */
export const DEFAULT_WS_PING_INTERVAL_MS = 30_000;
/** Default period of the one liveness sweep timer: 5 s. */
export const DEFAULT_SWEEP_INTERVAL_MS = 5_000;
/**
 * Default largest message the server takes or sends, header included: 1 MiB. Below the
 * spec's recommended 64 MiB on purpose: decoding costs up to about 45 bytes of heap and
 * 0.5 ms of event loop per byte received (a message of empty key-values, measured in
 * docs/limits.md), so one 64 MiB message could stall every agent for half a minute.
 */
export const DEFAULT_SERVER_MAX_MESSAGE_BYTES = 1024 * 1024;
/**
 * Default budget of one agent's state, in encoded bytes (what the store is given): 1 MiB.
 * A message that would take an agent's state past it is refused with BadRequest and the
 * old state kept.
 */
export const DEFAULT_MAX_AGENT_STATE_BYTES = 1024 * 1024;
/** Default bytes of available-component sets kept for agents that report only the hash: 16 MiB. */
export const DEFAULT_MAX_COMPONENT_CACHE_BYTES = 16 * 1024 * 1024;
/** Default limit on open WebSocket connections plus in-flight HTTP requests. */
export const DEFAULT_MAX_CONNECTIONS = 50_000;
/** Default limit on agents carried by one WebSocket connection (a gateway may carry many). */
export const DEFAULT_MAX_AGENTS_PER_CONNECTION = 1_000;
/** Default time a WebSocket has to send its first message, and an HTTP request its body: 30 s. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 30_000;
/** Default bytes a WebSocket may have queued unsent before it is dropped as a slow consumer: 16 MiB. */
export const DEFAULT_MAX_BUFFERED_BYTES = 16 * 1024 * 1024;
/** Default custom messages held per HTTP agent until its next poll. */
export const DEFAULT_MAX_PENDING_CUSTOM_MESSAGES_PER_AGENT = 16;
/** Default delay suggested to clients when the server is over capacity: 30 s (spec minimum recommended). */
export const DEFAULT_RETRY_AFTER_MS = 30_000;
/**
 * Default number of sessions an agent may start within {@link DEFAULT_RECONNECT_WINDOW_MS}
 * after it was sent connection settings before it counts as looping: 10.
 */
export const DEFAULT_MAX_RECONNECTS_PER_WINDOW = 10;
/** Default window of the reconnect-loop guard: 60 s. */
export const DEFAULT_RECONNECT_WINDOW_MS = 60_000;
/**
 * Default number of requests from one address that `authenticate` may refuse (401/403)
 * within {@link DEFAULT_AUTH_FAILURE_WINDOW_MS} before further requests from it get 429: 10.
 */
export const DEFAULT_MAX_AUTH_FAILURES = 10;
/** Default window of the authentication throttle: 60 s. */
export const DEFAULT_AUTH_FAILURE_WINDOW_MS = 60_000;
/** Default time a replica waits for another to answer a forwarded push: 5 s. */
export const DEFAULT_BUS_REQUEST_TIMEOUT_MS = 5_000;
export { DEFAULT_GZIP_MIN_BYTES };
/** Default time `stop()` waits for in-flight work before it cuts every connection still open: 5 s. */
export const DEFAULT_STOP_TIMEOUT_MS = 5_000;
/**
 * Server capabilities advertised when `capabilities` is not given: everything but CSR
 * handling, which is on when `hooks.onCertificateRequest` is given.
 */
export const DEFAULT_SERVER_CAPABILITIES: Required<ServerCapabilityFlags> = {
  acceptsStatus: true,
  offersRemoteConfig: true,
  acceptsEffectiveConfig: true,
  offersPackages: true,
  acceptsPackagesStatus: true,
  offersConnectionSettings: true,
  acceptsConnectionSettingsRequest: false,
};

/** Decisions the server waits on (see {@link OpAMPServerOptions}). Each may be async. */
export interface ServerHooks<P = unknown> {
  /**
   * Runs for every HTTP request and every WebSocket upgrade before anything is read.
   * Without it the server refuses to start unless `allowAnonymous` is true.
   */
  readonly authenticate?: AuthenticateHook<P>;
  /** Runs for every agent message; returning false refuses it (WS close 1008 / HTTP 403). */
  readonly authorizeMessage?: AuthorizeMessageHook<P>;
  /**
   * The identity an instance UID is bound to. Each UID is bound to the principal that
   * first spoke for it (stored with the agent); a message for it from another principal
   * is refused unless `allowRebind` allows it. Default `defaultPrincipalKey`. Return
   * undefined to leave a principal's UIDs unbound (`() => undefined` turns binding off).
   */
  readonly principalKey?: PrincipalKeyHook<P>;
  /** Lets a principal take over a UID bound to another (re-enrollment). Default: never. */
  readonly allowRebind?: RebindHook<P>;
  /**
   * What refused authentications are counted by (see `limits.maxAuthFailures`). Default
   * the remote address. Behind a proxy or load balancer, key by the client's address from
   * a header you trust (e.g. the last hop of `x-forwarded-for`), or every agent behind it
   * shares one count. Return undefined to leave a request uncounted.
   */
  readonly authThrottleKey?: (request: AuthRequest) => string | undefined;
  /** Picks the UID for an agent that sets RequestInstanceUid. Default: a new UUIDv7. */
  readonly newInstanceUid?: InstanceUidHook;
  /**
   * Signs agents' certificate requests. Giving it advertises
   * AcceptsConnectionSettingsRequest (unless `capabilities` says otherwise).
   */
  readonly onCertificateRequest?: CertificateRequestHook<P>;
}

/**
 * Options of {@link OpAMPServer}. Every field is optional except the auth decision: the
 * type requires `hooks.authenticate`, or `allowAnonymous: true` to accept every agent.
 */
export type OpAMPServerOptions<P = unknown> = ServerOptionsBase &
  (
    | {
        /** Decisions the server waits on; `authenticate` is required unless `allowAnonymous` is true. */
        readonly hooks: ServerHooks<P> & {
          /**
           * Runs for every HTTP request and WebSocket upgrade before anything is read (see
           * {@link ServerHooks.authenticate}).
           */
          readonly authenticate: AuthenticateHook<P>;
        };
        /** Must be true to run without an `authenticate` hook. Default false. */
        readonly allowAnonymous?: boolean;
      }
    | {
        /** Decisions the server waits on. */
        readonly hooks?: ServerHooks<P>;
        /** Accept every agent without an `authenticate` hook. */
        readonly allowAnonymous: true;
      }
  );

/** The options of {@link OpAMPServerOptions} other than the auth decision. */
export interface ServerOptionsBase {
  /** URL path served, for both transports. Default {@link DEFAULT_OPAMP_PATH}. */
  readonly path?: string;
  /**
   * What to do when a UID is spoken for by two live WebSockets at once. `"newest-wins"`
   * (default): the agent follows the connection that spoke last. `"reassign"`: once the
   * UID moved to a newer connection, a message for it from the older, still open one is
   * answered with a new instance UID (spec: duplicates SHOULD get a new UID), so the two
   * instances become two agents. Keep the default behind gateways that move agents
   * between upstream connections.
   */
  readonly duplicateUid?: "newest-wins" | "reassign";
  /**
   * Gateways that relay many agents over one WebSocket and delegate each agent's
   * authentication to this server (Bindplane's `com.bindplane.opamp-gateway` handshake,
   * and opamp-sdk's `OpAMPGateway`). See docs/server.md "Gateways".
   */
  readonly gateways?: {
    /**
     * Answer `connect` requests by running `authenticate` on the headers and address the
     * gateway forwards. Default true. When false, such messages are treated as any other
     * message (an empty instance UID gets `error_response` BadRequest).
     */
    readonly accept?: boolean;
    /**
     * On a gateway connection (one that sent `connect`), an instance UID the gateway never
     * tied to an authenticated request (opamp-sdk's `attach`) is refused by default: the
     * gateway cannot speak for an agent it did not authenticate. Set true for a gateway
     * that authenticates agents but does not send `attach` (Bindplane's opampgateway):
     * such UIDs then speak with the gateway connection's own principal. Default false.
     */
    readonly trustUnattached?: boolean;
  };
  /** Capabilities advertised in the first reply. Default {@link DEFAULT_SERVER_CAPABILITIES}. */
  readonly capabilities?: ServerCapabilityFlags;
  /** Custom capabilities (reverse-FQDN names) the server supports; sent with capabilities. */
  readonly customCapabilities?: readonly string[];
  /** Heartbeat and liveness. */
  readonly heartbeat?: {
    /** Interval told to agents that report heartbeats. Default {@link DEFAULT_HEARTBEAT_INTERVAL_SECONDS}. */
    readonly intervalSeconds?: number;
    /** Intervals an HTTP agent may miss before it is disconnected. Default {@link DEFAULT_MISSED_HEARTBEATS}. */
    readonly missedHeartbeats?: number;
    /**
     * Silence after which an HTTP agent is disconnected. Default `missedHeartbeats` ×
     * the larger of `intervalSeconds` and {@link DEFAULT_HEARTBEAT_INTERVAL_SECONDS}: agents
     * that ignore the server's interval still poll at the spec's 30 s default.
     */
    readonly httpAgentTimeoutMs?: number;
    /** Period of the single liveness sweep. Default {@link DEFAULT_SWEEP_INTERVAL_MS}. */
    readonly sweepIntervalMs?: number;
    /**
     * Period of WebSocket ping rounds (RFC 6455 ping/pong, answered by every WS stack): a
     * socket that answered neither ping nor sent anything for a whole period is dropped.
     * 0 disables. Default {@link DEFAULT_WS_PING_INTERVAL_MS}.
     */
    readonly wsPingIntervalMs?: number;
    /**
     * Whether to send the interval to agents with ReportsHeartbeat but without
     * AcceptsOpAMPConnectionSettings, in their first reply. Default true.
     */
    readonly advertise?: boolean;
  };
  /** Resource limits; each has a safe default. */
  readonly limits?: {
    /**
     * Largest message in or out, header included (after decompression in, before
     * compression out). Default {@link DEFAULT_SERVER_MAX_MESSAGE_BYTES} (1 MiB).
     */
    readonly maxMessageBytes?: number;
    /**
     * Largest state one agent may hold, in encoded bytes (every part it reported, as
     * written to the store). A message that would pass it is refused (BadRequest) and
     * reported on `error` (`limit_exceeded`); the agent keeps its old state. Default
     * {@link DEFAULT_MAX_AGENT_STATE_BYTES}.
     */
    readonly maxAgentStateBytes?: number;
    /**
     * Bytes of available-component sets cached for agents that report only the hash (least
     * recently used dropped first). Default {@link DEFAULT_MAX_COMPONENT_CACHE_BYTES}.
     */
    readonly maxComponentCacheBytes?: number;
    /** Open WebSockets plus in-flight HTTP requests. Default {@link DEFAULT_MAX_CONNECTIONS}. */
    readonly maxConnections?: number;
    /** Agents one WebSocket may carry. Default {@link DEFAULT_MAX_AGENTS_PER_CONNECTION}. */
    readonly maxAgentsPerConnection?: number;
    /**
     * Time allowed for the `authenticate` hook to answer, and then for the first WS message /
     * the full HTTP body (fetch handler included). Default {@link DEFAULT_HANDSHAKE_TIMEOUT_MS}.
     */
    readonly handshakeTimeoutMs?: number;
    /** Unsent bytes a WebSocket may queue. Default {@link DEFAULT_MAX_BUFFERED_BYTES}. */
    readonly maxBufferedBytes?: number;
    /** Custom messages queued per HTTP agent. Default {@link DEFAULT_MAX_PENDING_CUSTOM_MESSAGES_PER_AGENT}. */
    readonly maxPendingCustomMessages?: number;
    /** Retry delay suggested when over capacity. Default {@link DEFAULT_RETRY_AFTER_MS}. */
    readonly retryAfterMs?: number;
    /**
     * Reconnect-loop guard: an agent that was sent connection settings and then starts more
     * than this many sessions (connections, or restarts of its sequence numbers) within
     * `reconnectWindowMs` is taken to be looping. Settings offers to it pause until it has
     * been quiet for a whole window, and `error` reports it once (`limit_exceeded`).
     * Default {@link DEFAULT_MAX_RECONNECTS_PER_WINDOW}.
     */
    readonly maxReconnectsPerWindow?: number;
    /** Window of the reconnect-loop guard. Default {@link DEFAULT_RECONNECT_WINDOW_MS}. */
    readonly reconnectWindowMs?: number;
    /**
     * Authentication throttle: once `authenticate` refused (401 or 403) this many requests
     * from one address (`hooks.authThrottleKey`) within `authFailureWindowMs`, further
     * requests from it get 429 with `Retry-After` until the window has passed, without the
     * hook being asked; `error` reports it once (`limit_exceeded`). Other addresses are not
     * affected. 0 turns it off. Default {@link DEFAULT_MAX_AUTH_FAILURES}.
     */
    readonly maxAuthFailures?: number;
    /** Window of the authentication throttle. Default {@link DEFAULT_AUTH_FAILURE_WINDOW_MS}. */
    readonly authFailureWindowMs?: number;
    /**
     * With a bus: how long a push forwarded to the replica holding the agent waits for its
     * answer before failing with `timeout`. Default {@link DEFAULT_BUS_REQUEST_TIMEOUT_MS}.
     */
    readonly busRequestTimeoutMs?: number;
  };
  /** Transport details. */
  readonly transport?: {
    /** Offer permessage-deflate on WebSockets. Default false. */
    readonly perMessageDeflate?: boolean;
    /** Gzip HTTP responses when the request's Accept-Encoding allows. Default true. */
    readonly gzipResponses?: boolean;
    /**
     * Smallest HTTP response that is gzipped: below it gzip's ~20 bytes of framing cost
     * more than they save. Default {@link DEFAULT_GZIP_MIN_BYTES}.
     */
    readonly gzipMinBytes?: number;
  };
  /** Where agents' state, desired configs and deliveries live. Default: a new in-memory store. */
  readonly store?: ServerStore;
  /**
   * Makes this server one replica among several that share `store` (docs/replicas.md): the
   * bus says which replica holds each agent, and a push for an agent held by another
   * replica is carried out there. Default: none (a single server; nothing changes).
   */
  readonly bus?: ServerBus;
  /** This replica's id on the bus, unique among live replicas. Default: a random UUID. */
  readonly replicaId?: string;
  /** Time source, for tests. Default the system clock. */
  readonly clock?: Clock;
  /**
   * How long `stop()` waits for in-flight work (close handshakes, requests, connections);
   * at this deadline every connection still open is cut. Default {@link DEFAULT_STOP_TIMEOUT_MS}.
   */
  readonly stopTimeoutMs?: number;
  /**
   * Where the server logs (pino-compatible: `trace`, `debug`, `info`, `warn`, `error`,
   * optional `child`): start, stop and `listen()` at `info`; agents, connections and
   * refused authentications at `debug`; an `error` event nobody listens to at `warn`.
   * Default: warnings and errors to `console`, nothing else.
   */
  readonly logger?: Logger;
  /**
   * OpenTelemetry metrics (docs/server.md "Diagnostics"): agents connected, messages and
   * bytes in and out, pushes and their outcomes, refused authentications. Recorded through
   * `meterProvider`, else the global one of `@opentelemetry/api` when that optional peer
   * dependency is installed; nothing when it is not.
   */
  readonly metrics?: {
    /** Default true. */
    readonly enabled?: boolean;
    /** Default the global MeterProvider of `@opentelemetry/api`. */
    readonly meterProvider?: MeterProviderLike;
  };
}

/**
 * The options after defaults and validation, flattened, as the server reads them
 * (`server.options`). Each field names the option it comes from; see
 * {@link OpAMPServerOptions} for meanings and defaults.
 */
export interface ResolvedServerOptions {
  /** URL path served for both transports (`path`). */
  readonly path: string;
  /** What happens when a second connection speaks for a connected UID (`duplicateUid`). */
  readonly duplicateUid: "newest-wins" | "reassign";
  /**
   * Decides every HTTP request and WebSocket upgrade (`hooks.authenticate`); undefined only
   * with `allowAnonymous: true`.
   */
  readonly authenticate: AuthenticateHook | undefined;
  /** Re-authorises each agent message (`hooks.authorizeMessage`); undefined: every message allowed. */
  readonly authorizeMessage: AuthorizeMessageHook | undefined;
  /** The identity a UID is bound to (`hooks.principalKey`, else `defaultPrincipalKey`). */
  readonly principalKey: PrincipalKeyHook;
  /** Lets another principal take over a bound UID (`hooks.allowRebind`); undefined: never. */
  readonly allowRebind: RebindHook | undefined;
  /** Picks the UID for an agent that asks for one (`hooks.newInstanceUid`); undefined: a new UUIDv7. */
  readonly newInstanceUid: InstanceUidHook | undefined;
  /** Answers agents' certificate signing requests (`hooks.onCertificateRequest`); undefined: not answered. */
  readonly onCertificateRequest: CertificateRequestHook | undefined;
  /** Whether gateways' `connect` requests are answered (`gateways.accept`). */
  readonly acceptGateways: boolean;
  /**
   * Whether UIDs a gateway never attached speak with the gateway connection's principal
   * instead of being refused (`gateways.trustUnattached`).
   */
  readonly trustUnattachedGatewayAgents: boolean;
  /** ServerCapabilities bits sent in the first reply (`capabilities`). */
  readonly capabilities: bigint;
  /** Custom capabilities the server announces (`customCapabilities`). */
  readonly customCapabilities: readonly string[];
  /** Heartbeat interval told to agents that report heartbeats (`heartbeat.intervalSeconds`). */
  readonly heartbeatIntervalSeconds: number;
  /**
   * Silence after which an HTTP agent is disconnected (`heartbeat.httpAgentTimeoutMs`, else
   * intervals × `missedHeartbeats`).
   */
  readonly httpAgentTimeoutMs: number;
  /** Period of the liveness sweep (`heartbeat.sweepIntervalMs`). */
  readonly sweepIntervalMs: number;
  /** Period of WebSocket pings; 0: none (`heartbeat.wsPingIntervalMs`). */
  readonly wsPingIntervalMs: number;
  /** Whether the first reply offers the heartbeat interval (`heartbeat.advertise`). */
  readonly advertiseHeartbeat: boolean;
  /** Largest message taken or sent, header included (`limits.maxMessageBytes`). */
  readonly maxMessageBytes: number;
  /** Budget of one agent's encoded state (`limits.maxAgentStateBytes`). */
  readonly maxAgentStateBytes: number;
  /** Bytes of available-component sets kept for hash-only reports (`limits.maxComponentCacheBytes`). */
  readonly maxComponentCacheBytes: number;
  /** Open WebSockets plus in-flight HTTP requests (`limits.maxConnections`). */
  readonly maxConnections: number;
  /** Agents one WebSocket may carry (`limits.maxAgentsPerConnection`). */
  readonly maxAgentsPerConnection: number;
  /** Time for a WebSocket's first message or an HTTP body (`limits.handshakeTimeoutMs`). */
  readonly handshakeTimeoutMs: number;
  /** Unsent bytes a WebSocket may queue before it is dropped (`limits.maxBufferedBytes`). */
  readonly maxBufferedBytes: number;
  /** Custom messages queued per HTTP agent (`limits.maxPendingCustomMessages`). */
  readonly maxPendingCustomMessages: number;
  /** Retry delay suggested when over capacity (`limits.retryAfterMs`). */
  readonly retryAfterMs: number;
  /**
   * Sessions an agent that was sent connection settings may start per window before offers
   * to it pause (`limits.maxReconnectsPerWindow`).
   */
  readonly maxReconnectsPerWindow: number;
  /** Window of the reconnect-loop guard (`limits.reconnectWindowMs`). */
  readonly reconnectWindowMs: number;
  /**
   * Refused authentications from one key within the window before further requests get 429;
   * 0: no throttle (`limits.maxAuthFailures`).
   */
  readonly maxAuthFailures: number;
  /** Window of the authentication throttle (`limits.authFailureWindowMs`). */
  readonly authFailureWindowMs: number;
  /** What refused authentications are counted by (`hooks.authThrottleKey`, else the remote address). */
  readonly authThrottleKey: (request: AuthRequest) => string | undefined;
  /** Time another replica has to answer a forwarded push (`limits.busRequestTimeoutMs`). */
  readonly busRequestTimeoutMs: number;
  /** This replica's id on the bus (`replicaId`, else a random UUID). */
  readonly replicaId: string;
  /** Whether WebSockets offer permessage-deflate (`transport.perMessageDeflate`). */
  readonly perMessageDeflate: boolean;
  /** Whether HTTP replies are gzipped when the client accepts it (`transport.gzipResponses`). */
  readonly gzipResponses: boolean;
  /** Smaller HTTP replies go out uncompressed (`transport.gzipMinBytes`). */
  readonly gzipMinBytes: number;
  /** Time source for every protocol timer (`clock`, else the system clock). */
  readonly clock: Clock;
  /** How long `stop()` waits for in-flight work (`stopTimeoutMs`). */
  readonly stopTimeoutMs: number;
  /** The logger in use (the given one's `child({ component: "opamp-server" })`, or the default). */
  readonly logger: Logger;
  /** Whether OpenTelemetry metrics are recorded (`metrics.enabled`). */
  readonly metricsEnabled: boolean;
  /**
   * Where metrics go (`metrics.meterProvider`); undefined: the global provider, when
   * `@opentelemetry/api` is installed.
   */
  readonly meterProvider: MeterProviderLike | undefined;
}

function replicaId(value: string | undefined): string {
  if (value === undefined) return globalThis.crypto.randomUUID();
  if (typeof value !== "string" || value === "" || value.length > 200) {
    throw new OpampError("invalid_argument", "replicaId must be a non-empty string of at most 200 characters");
  }
  return value;
}

function positiveInt(value: number | undefined, fallback: number, name: string, allowZero = false): number {
  if (value === undefined) return fallback;
  const ok = Number.isSafeInteger(value) && (allowZero ? value >= 0 : value > 0);
  if (!ok) {
    throw new OpampError(
      "invalid_argument",
      `${name} must be a ${allowZero ? "non-negative" : "positive"} integer, got ${describeValue(value)}`,
    );
  }
  return value;
}

const TOP_KEYS = [
  "path",
  "hooks",
  "duplicateUid",
  "allowAnonymous",
  "gateways",
  "capabilities",
  "customCapabilities",
  "heartbeat",
  "limits",
  "transport",
  "store",
  "bus",
  "replicaId",
  "clock",
  "stopTimeoutMs",
  "logger",
  "metrics",
];
const HOOK_KEYS = [
  "authenticate",
  "authorizeMessage",
  "principalKey",
  "allowRebind",
  "authThrottleKey",
  "newInstanceUid",
  "onCertificateRequest",
];
const HEARTBEAT_KEYS = [
  "intervalSeconds",
  "missedHeartbeats",
  "httpAgentTimeoutMs",
  "sweepIntervalMs",
  "wsPingIntervalMs",
  "advertise",
];
const LIMIT_KEYS = [
  "maxMessageBytes",
  "maxAgentStateBytes",
  "maxComponentCacheBytes",
  "maxConnections",
  "maxAgentsPerConnection",
  "handshakeTimeoutMs",
  "maxBufferedBytes",
  "maxPendingCustomMessages",
  "retryAfterMs",
  "maxReconnectsPerWindow",
  "reconnectWindowMs",
  "maxAuthFailures",
  "authFailureWindowMs",
  "busRequestTimeoutMs",
];
const CAPABILITY_KEYS = Object.keys(DEFAULT_SERVER_CAPABILITIES);

/** Unknown keys, option groups that are no objects, hooks that are no functions. */
function checkShape(options: OpAMPServerOptions): void {
  rejectUnknownKeys(options, TOP_KEYS, "");
  const hooks = optionGroup(options.hooks, HOOK_KEYS, "hooks");
  if (hooks !== undefined) requireFunctions(hooks, "hooks");
  optionGroup(options.gateways, ["accept", "trustUnattached"], "gateways");
  optionGroup(options.capabilities, CAPABILITY_KEYS, "capabilities");
  optionGroup(options.heartbeat, HEARTBEAT_KEYS, "heartbeat");
  optionGroup(options.limits, LIMIT_KEYS, "limits");
  optionGroup(options.transport, ["perMessageDeflate", "gzipResponses", "gzipMinBytes"], "transport");
  optionGroup(options.metrics, ["enabled", "meterProvider"], "metrics");
  const provider = options.metrics?.meterProvider;
  if (provider !== undefined && typeof (provider as { getMeter?: unknown }).getMeter !== "function") {
    throw new OpampError(
      "invalid_argument",
      `metrics.meterProvider must be a MeterProvider, got ${describeValue(provider)}`,
    );
  }
  const loggerIssue = loggerProblem(options.logger, "logger");
  if (loggerIssue !== undefined) throw new OpampError("invalid_argument", loggerIssue);
  if (options.allowAnonymous !== undefined && typeof options.allowAnonymous !== "boolean") {
    throw new OpampError(
      "invalid_argument",
      `allowAnonymous must be a boolean, got ${describeValue(options.allowAnonymous)}`,
    );
  }
}

/**
 * Applies defaults and checks every option.
 *
 * @throws OpampError `invalid_argument` for an out-of-range value, a path not starting
 *   with "/", or no `authenticate` hook without `allowAnonymous: true`.
 */
export function resolveServerOptions(options: OpAMPServerOptions): ResolvedServerOptions {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new OpampError(
      "invalid_argument",
      `OpAMPServer needs options: { hooks: { authenticate } }, or { allowAnonymous: true } to accept every agent; got ${describeValue(options)}`,
    );
  }
  checkShape(options);
  const path = options.path ?? DEFAULT_OPAMP_PATH;
  if (typeof path !== "string" || !path.startsWith("/")) {
    throw new OpampError("invalid_argument", `path must be a string starting with "/", got ${describeValue(path)}`);
  }
  const authenticate = options.hooks?.authenticate;
  if (authenticate === undefined && options.allowAnonymous !== true) {
    throw new OpampError(
      "invalid_argument",
      "no hooks.authenticate given: pass one, or set allowAnonymous: true to accept every agent",
    );
  }
  const caps = serverCapabilities({
    ...DEFAULT_SERVER_CAPABILITIES,
    acceptsConnectionSettingsRequest: options.hooks?.onCertificateRequest !== undefined,
    ...options.capabilities,
    acceptsStatus: true,
  });
  const heartbeat = options.heartbeat ?? {};
  const heartbeatIntervalSeconds = positiveInt(
    heartbeat.intervalSeconds,
    DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
    "heartbeat.intervalSeconds",
  );
  const missed = positiveInt(heartbeat.missedHeartbeats, DEFAULT_MISSED_HEARTBEATS, "heartbeat.missedHeartbeats");
  const limits = options.limits ?? {};
  for (const name of options.customCapabilities ?? []) {
    if (typeof name !== "string" || name === "") {
      throw new OpampError("invalid_argument", "customCapabilities must be non-empty strings");
    }
  }
  const duplicateUid = options.duplicateUid ?? "newest-wins";
  if (duplicateUid !== "newest-wins" && duplicateUid !== "reassign") {
    throw new OpampError("invalid_argument", `duplicateUid must be "newest-wins" or "reassign"`);
  }
  return Object.freeze({
    path,
    duplicateUid,
    authenticate,
    authorizeMessage: options.hooks?.authorizeMessage,
    principalKey: options.hooks?.principalKey ?? defaultPrincipalKey,
    allowRebind: options.hooks?.allowRebind,
    newInstanceUid: options.hooks?.newInstanceUid,
    onCertificateRequest: options.hooks?.onCertificateRequest,
    acceptGateways: options.gateways?.accept ?? true,
    trustUnattachedGatewayAgents: options.gateways?.trustUnattached ?? false,
    capabilities: caps,
    customCapabilities: Object.freeze([...(options.customCapabilities ?? [])]),
    heartbeatIntervalSeconds,
    httpAgentTimeoutMs: positiveInt(
      heartbeat.httpAgentTimeoutMs,
      Math.max(heartbeatIntervalSeconds, DEFAULT_HEARTBEAT_INTERVAL_SECONDS) * 1000 * missed,
      "heartbeat.httpAgentTimeoutMs",
    ),
    sweepIntervalMs: positiveInt(heartbeat.sweepIntervalMs, DEFAULT_SWEEP_INTERVAL_MS, "heartbeat.sweepIntervalMs"),
    wsPingIntervalMs: positiveInt(
      heartbeat.wsPingIntervalMs,
      DEFAULT_WS_PING_INTERVAL_MS,
      "heartbeat.wsPingIntervalMs",
      true,
    ),
    advertiseHeartbeat: heartbeat.advertise ?? true,
    maxMessageBytes: positiveInt(limits.maxMessageBytes, DEFAULT_SERVER_MAX_MESSAGE_BYTES, "limits.maxMessageBytes"),
    maxAgentStateBytes: positiveInt(
      limits.maxAgentStateBytes,
      DEFAULT_MAX_AGENT_STATE_BYTES,
      "limits.maxAgentStateBytes",
    ),
    maxComponentCacheBytes: positiveInt(
      limits.maxComponentCacheBytes,
      DEFAULT_MAX_COMPONENT_CACHE_BYTES,
      "limits.maxComponentCacheBytes",
    ),
    maxConnections: positiveInt(limits.maxConnections, DEFAULT_MAX_CONNECTIONS, "limits.maxConnections"),
    maxAgentsPerConnection: positiveInt(
      limits.maxAgentsPerConnection,
      DEFAULT_MAX_AGENTS_PER_CONNECTION,
      "limits.maxAgentsPerConnection",
    ),
    handshakeTimeoutMs: positiveInt(
      limits.handshakeTimeoutMs,
      DEFAULT_HANDSHAKE_TIMEOUT_MS,
      "limits.handshakeTimeoutMs",
    ),
    maxBufferedBytes: positiveInt(limits.maxBufferedBytes, DEFAULT_MAX_BUFFERED_BYTES, "limits.maxBufferedBytes"),
    maxPendingCustomMessages: positiveInt(
      limits.maxPendingCustomMessages,
      DEFAULT_MAX_PENDING_CUSTOM_MESSAGES_PER_AGENT,
      "limits.maxPendingCustomMessages",
    ),
    retryAfterMs: positiveInt(limits.retryAfterMs, DEFAULT_RETRY_AFTER_MS, "limits.retryAfterMs", true),
    maxReconnectsPerWindow: positiveInt(
      limits.maxReconnectsPerWindow,
      DEFAULT_MAX_RECONNECTS_PER_WINDOW,
      "limits.maxReconnectsPerWindow",
    ),
    reconnectWindowMs: positiveInt(limits.reconnectWindowMs, DEFAULT_RECONNECT_WINDOW_MS, "limits.reconnectWindowMs"),
    maxAuthFailures: positiveInt(limits.maxAuthFailures, DEFAULT_MAX_AUTH_FAILURES, "limits.maxAuthFailures", true),
    authFailureWindowMs: positiveInt(
      limits.authFailureWindowMs,
      DEFAULT_AUTH_FAILURE_WINDOW_MS,
      "limits.authFailureWindowMs",
    ),
    authThrottleKey: options.hooks?.authThrottleKey ?? ((request: AuthRequest) => request.remoteAddress),
    busRequestTimeoutMs: positiveInt(
      limits.busRequestTimeoutMs,
      DEFAULT_BUS_REQUEST_TIMEOUT_MS,
      "limits.busRequestTimeoutMs",
    ),
    replicaId: replicaId(options.replicaId),
    perMessageDeflate: options.transport?.perMessageDeflate ?? false,
    gzipResponses: options.transport?.gzipResponses ?? true,
    gzipMinBytes: positiveInt(options.transport?.gzipMinBytes, DEFAULT_GZIP_MIN_BYTES, "transport.gzipMinBytes", true),
    clock: options.clock ?? systemClock,
    stopTimeoutMs: positiveInt(options.stopTimeoutMs, DEFAULT_STOP_TIMEOUT_MS, "stopTimeoutMs", true),
    logger: componentLogger(options.logger, "opamp-server"),
    metricsEnabled: options.metrics?.enabled ?? true,
    meterProvider: options.metrics?.meterProvider,
  });
}
