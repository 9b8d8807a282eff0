/**
 * OpAMPGateway options: the one object a caller passes, grouped by concern, and the
 * resolved form the gateway keeps (defaults applied, checked once, frozen).
 */
import type { BackoffPolicy } from "../internal/backoff.js";
import { type Clock, systemClock } from "../internal/clock.js";
import {
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_MAX_AGENTS_PER_CONNECTION,
  DEFAULT_MAX_BUFFERED_BYTES,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_PENDING_CUSTOM_MESSAGES_PER_AGENT,
  DEFAULT_STOP_TIMEOUT_MS,
  DEFAULT_SWEEP_INTERVAL_MS,
  DEFAULT_WS_PING_INTERVAL_MS,
} from "../server/options.js";
import type { AuthenticateHook } from "../server/types.js";
import type { TlsSettings } from "../transport/tls.js";
import { OpampError } from "../wire/errors.js";
import { DEFAULT_MAX_MESSAGE_BYTES } from "../wire/limits.js";
import type { MeterProviderLike } from "./metrics.js";

/** Default size of the upstream pool: 3 WebSockets (Bindplane's documented default). */
export const DEFAULT_UPSTREAM_CONNECTIONS = 3;
/**
 * Default reconnect timing of an upstream connection, as Bindplane's gateway (cenkalti's
 * backoff defaults): windows from 500 ms growing ×1.5 up to 60 s, full jitter, for ever.
 */
export const DEFAULT_UPSTREAM_RETRY: Readonly<BackoffPolicy> = Object.freeze({
  initialDelayMs: 500,
  maxDelayMs: 60_000,
  multiplier: 1.5,
});
/** Default time the upstream server has to answer a `connect`: 30 s, then 504 (Bindplane's). */
export const DEFAULT_AUTH_TIMEOUT_MS = 30_000;
/** Default `Retry-After` of the gateway's 503 and 504 answers: 30 s (Bindplane's). */
export const DEFAULT_GATEWAY_RETRY_AFTER_MS = 30_000;
/**
 * Default bytes of one agent's messages waiting for its upstream connection: 1 MiB. Past
 * it the gateway stops reading that agent's WebSocket until the queue drains.
 */
export const DEFAULT_MAX_QUEUED_BYTES_PER_AGENT = 1024 * 1024;
/**
 * Default unsent bytes an upstream WebSocket may hold before agents' messages wait in
 * their own queues (taken from them in turn): 1 MiB.
 */
export const DEFAULT_UPSTREAM_HIGH_WATER_BYTES = 1024 * 1024;
/** Default time an HTTP poll waits for the server's answer relayed upstream: 10 s, then 504. */
export const DEFAULT_UPSTREAM_REPLY_TIMEOUT_MS = 10_000;
/**
 * Default silence after which an HTTP-polling agent counts as gone and the gateway tells
 * the server (`agent_disconnect`): 90 s, three of the spec's 30 s heartbeats.
 */
export const DEFAULT_HTTP_AGENT_TIMEOUT_MS = 90_000;

/** How agents are authenticated. */
export type GatewayAuth<P = unknown> =
  /**
   * Bindplane's auth delegation (default): each agent request's headers and address go to
   * the upstream server in a `connect`, and its `connectResult` decides. The server must
   * support the handshake (OpAMPServer does; so do Bindplane's servers).
   */
  | {
      /** Ask the upstream server. */
      readonly mode: "delegate";
      /**
       * How long the server has to answer a `connect`; then the agent gets 504. Default
       * {@link DEFAULT_AUTH_TIMEOUT_MS}.
       */
      readonly timeoutMs?: number;
    }
  /**
   * The gateway's own hook decides (same contract as OpAMPServer's `authenticate`). The
   * upstream server sees only the gateway's connections, authenticated by `upstream.headers`.
   */
  | {
      /** Decide at the gateway. */
      readonly mode: "local";
      /** Runs for every agent HTTP request and WebSocket upgrade; bounded by `limits.handshakeTimeoutMs`. */
      readonly authenticate: AuthenticateHook<P>;
    }
  /**
   * Each agent gets its own upstream connection (WebSocket) or request (HTTP) carrying the
   * agent's own headers: the server authenticates every agent as if it connected
   * directly. For servers that know nothing of gateways (opamp-go's). The pool is not used.
   */
  | {
      /** One upstream connection per agent, with the agent's headers. */
      readonly mode: "passthrough";
      /** Header names (any case) relayed from the agent. Default: every end-to-end header. */
      readonly forwardHeaders?: readonly string[];
    }
  /** No authentication at the gateway: every agent is let through. */
  | {
      /** Let every agent through. */
      readonly mode: "none";
    };

/** Options of {@link OpAMPGateway}. Only `upstream.url` is required. */
export interface OpAMPGatewayOptions<P = unknown> {
  /** The OpAMP server the gateway relays to (Bindplane's `server` block). */
  readonly upstream: {
    /** `ws://` or `wss://` URL of the server's OpAMP endpoint. */
    readonly url: string;
    /**
     * Headers of every upstream WebSocket upgrade (e.g. the gateway's own credentials);
     * each also gets `X-Opamp-Gateway-Connection-Id: upstream-<i>`. In pass-through mode
     * they fill in names an agent did not send.
     */
    readonly headers?: Readonly<Record<string, string | readonly string[]>>;
    /** TLS for `wss://` (CA, client certificate, versions…). */
    readonly tls?: TlsSettings;
    /** Pool size. Default {@link DEFAULT_UPSTREAM_CONNECTIONS}. */
    readonly connections?: number;
    /** Reconnect timing. Default {@link DEFAULT_UPSTREAM_RETRY}. */
    readonly retry?: Partial<BackoffPolicy>;
  };
  /** How agents are authenticated. Default `{ mode: "delegate" }`. */
  readonly auth?: GatewayAuth<P>;
  /**
   * URL path agents connect to. Default: every path (as Bindplane's gateway, whose handler
   * is mounted on `/`). Set it when the gateway shares a listener with other routes.
   */
  readonly path?: string;
  /** Resource limits; each has a safe default (docs/limits.md). */
  readonly limits?: {
    /** Largest message either way, header included. Keep it at or below the server's. Default 64 MiB. */
    readonly maxMessageBytes?: number;
    /** Open agent WebSockets plus in-flight HTTP requests. Default DEFAULT_MAX_CONNECTIONS (50 000). */
    readonly maxConnections?: number;
    /** Instance UIDs one agent connection may speak for (a chained gateway carries many). Default 1000. */
    readonly maxAgentsPerConnection?: number;
    /** Time for the first WebSocket message, an HTTP body, and a local `authenticate`. Default 30 s. */
    readonly handshakeTimeoutMs?: number;
    /** Agent → server bytes queued per agent before its reading pauses. Default {@link DEFAULT_MAX_QUEUED_BYTES_PER_AGENT}. */
    readonly maxQueuedBytesPerAgent?: number;
    /** Server → agent bytes unsent on one agent's WebSocket before it is dropped as a slow consumer. Default 16 MiB. */
    readonly maxBufferedBytesPerAgent?: number;
    /** Unsent bytes on an upstream WebSocket before agents wait their turn. Default {@link DEFAULT_UPSTREAM_HIGH_WATER_BYTES}. */
    readonly upstreamHighWaterBytes?: number;
    /** Custom messages held for one HTTP agent between polls. Default 16. */
    readonly maxPendingCustomMessages?: number;
    /** How long an HTTP poll waits for the server's answer. Default {@link DEFAULT_UPSTREAM_REPLY_TIMEOUT_MS}. */
    readonly upstreamReplyTimeoutMs?: number;
    /** `Retry-After` of 503/504 answers. Default {@link DEFAULT_GATEWAY_RETRY_AFTER_MS}. */
    readonly retryAfterMs?: number;
  };
  /** Liveness. */
  readonly heartbeat?: {
    /**
     * WebSocket ping period, both sides: a socket that answered neither ping nor sent
     * anything for a whole period is dropped. 0 disables. Default 30 s.
     */
    readonly wsPingIntervalMs?: number;
    /** Silence after which an HTTP agent is gone. Default {@link DEFAULT_HTTP_AGENT_TIMEOUT_MS}. */
    readonly httpAgentTimeoutMs?: number;
    /** Period of the sweep that finds silent HTTP agents. Default 5 s. */
    readonly sweepIntervalMs?: number;
  };
  /**
   * Metrics through the OpenTelemetry metrics API. Default: the global MeterProvider of
   * `@opentelemetry/api` when that optional peer dependency is installed, else none (the
   * plain counters on the object always work).
   */
  readonly metrics?: {
    /** A MeterProvider to use instead of the global one. */
    readonly meterProvider?: MeterProviderLike;
    /** False turns OpenTelemetry export off. Default true. */
    readonly enabled?: boolean;
  };
  /** Time source, for tests. Default the system clock. */
  readonly clock?: Clock;
  /** Random source in [0, 1) for backoff jitter and tie-breaks. Default Math.random. */
  readonly random?: () => number;
  /** How long `stop()` waits for agents and upstreams to close. Default 5 s. */
  readonly stopTimeoutMs?: number;
}

/**
 * The options after defaults and validation, flattened (`gateway.options`). Each field names
 * the option it comes from; see {@link OpAMPGatewayOptions} for meanings and defaults.
 */
export interface ResolvedGatewayOptions {
  /** The server's `ws://`/`wss://` URL (`upstream.url`). */
  readonly upstreamUrl: string;
  /** Headers of every upstream upgrade (`upstream.headers`, lists joined with `, `). */
  readonly upstreamHeaders: Readonly<Record<string, string>>;
  /** TLS towards the server (`upstream.tls`, else `{}`). */
  readonly upstreamTls: TlsSettings;
  /** Size of the upstream pool (`upstream.connections`). */
  readonly connections: number;
  /** Upstream reconnect timing (`upstream.retry`, gaps filled from {@link DEFAULT_UPSTREAM_RETRY}). */
  readonly retry: BackoffPolicy;
  /** How agents are authenticated (`auth`, else `{ mode: "delegate" }`). */
  readonly auth: GatewayAuth;
  /**
   * Time the server has to answer a `connect` (delegate mode's `timeoutMs`;
   * {@link DEFAULT_AUTH_TIMEOUT_MS}, unused, in other modes).
   */
  readonly authTimeoutMs: number;
  /** Lower-case header names relayed in pass-through mode; undefined: all end-to-end headers. */
  readonly forwardHeaders: ReadonlySet<string> | undefined;
  /** URL path agents connect to (`path`); undefined: every path. */
  readonly path: string | undefined;
  /** Largest message either way, header included (`limits.maxMessageBytes`). */
  readonly maxMessageBytes: number;
  /** Open agent WebSockets plus in-flight HTTP requests (`limits.maxConnections`). */
  readonly maxConnections: number;
  /** Instance UIDs one agent connection may speak for (`limits.maxAgentsPerConnection`). */
  readonly maxAgentsPerConnection: number;
  /** Time for the first WebSocket message, an HTTP body and a local `authenticate` (`limits.handshakeTimeoutMs`). */
  readonly handshakeTimeoutMs: number;
  /** Agent → server bytes queued per agent before its reading pauses (`limits.maxQueuedBytesPerAgent`). */
  readonly maxQueuedBytesPerAgent: number;
  /** Server → agent bytes unsent on one agent's WebSocket before it is dropped (`limits.maxBufferedBytesPerAgent`). */
  readonly maxBufferedBytesPerAgent: number;
  /** Unsent bytes on an upstream WebSocket before agents wait their turn (`limits.upstreamHighWaterBytes`). */
  readonly upstreamHighWaterBytes: number;
  /** Custom messages held for one HTTP agent between polls (`limits.maxPendingCustomMessages`). */
  readonly maxPendingCustomMessages: number;
  /** How long an HTTP poll waits for the server's answer (`limits.upstreamReplyTimeoutMs`). */
  readonly upstreamReplyTimeoutMs: number;
  /** `Retry-After` of the gateway's 503 and 504 answers (`limits.retryAfterMs`). */
  readonly retryAfterMs: number;
  /** Period of pings to agent WebSockets; 0: none (`heartbeat.wsPingIntervalMs`). */
  readonly wsPingIntervalMs: number;
  /** Silence after which an HTTP agent is gone (`heartbeat.httpAgentTimeoutMs`). */
  readonly httpAgentTimeoutMs: number;
  /** Period of the sweep that finds silent HTTP agents (`heartbeat.sweepIntervalMs`). */
  readonly sweepIntervalMs: number;
  /**
   * Where metrics go (`metrics.meterProvider`); undefined: the global provider, when
   * `@opentelemetry/api` is installed.
   */
  readonly meterProvider: MeterProviderLike | undefined;
  /** Whether OpenTelemetry metrics are exported (`metrics.enabled`). */
  readonly metricsEnabled: boolean;
  /** Time source for timers (`clock`, else the system clock). */
  readonly clock: Clock;
  /** Random source for backoff jitter and tie-breaks (`random`, else `Math.random`). */
  readonly random: () => number;
  /** How long `stop()` waits for agents and upstreams to close (`stopTimeoutMs`). */
  readonly stopTimeoutMs: number;
}

function int(value: number | undefined, fallback: number, name: string, min = 1): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) {
    throw new OpampError("invalid_argument", `${name} must be an integer of at least ${min}, got ${String(value)}`);
  }
  return value;
}

function flatHeaders(headers: OpAMPGatewayOptions["upstream"]["headers"]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) {
      throw new OpampError("invalid_argument", `upstream.headers: "${name}" is not a header name`);
    }
    const text = typeof value === "string" ? value : Array.isArray(value) ? value.join(", ") : undefined;
    if (text === undefined || /[\r\n\0]/.test(text)) {
      throw new OpampError("invalid_argument", `upstream.headers: the value of "${name}" is not a header value`);
    }
    out[name] = text;
  }
  return out;
}

function resolveAuth(auth: GatewayAuth | undefined): GatewayAuth {
  const value = auth ?? { mode: "delegate" };
  switch (value.mode) {
    case "delegate":
    case "passthrough":
    case "none":
      return value;
    case "local":
      if (typeof value.authenticate !== "function") {
        throw new OpampError("invalid_argument", 'auth.mode "local" needs an authenticate function');
      }
      return value;
    default:
      throw new OpampError(
        "invalid_argument",
        `auth.mode must be "delegate", "local", "passthrough" or "none", got ${JSON.stringify((value as { mode?: unknown }).mode)}`,
      );
  }
}

/**
 * Applies defaults and checks every option.
 *
 * @throws OpampError `invalid_argument` for a missing or non-ws(s) upstream URL, a bad
 *   header, an out-of-range number, an unknown auth mode, or a path not starting with "/".
 */
export function resolveGatewayOptions(options: OpAMPGatewayOptions): ResolvedGatewayOptions {
  const upstream = options.upstream;
  if (upstream === undefined || typeof upstream.url !== "string") {
    throw new OpampError("invalid_argument", "upstream.url is required");
  }
  let url: URL;
  try {
    url = new URL(upstream.url);
  } catch {
    throw new OpampError("invalid_argument", `upstream.url is not a URL: ${upstream.url}`);
  }
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new OpampError("invalid_argument", `upstream.url must be ws:// or wss://, got ${url.protocol}//`);
  }
  const auth = resolveAuth(options.auth as GatewayAuth | undefined);
  if (options.path !== undefined && !options.path.startsWith("/")) {
    throw new OpampError("invalid_argument", `path must start with "/", got "${options.path}"`);
  }
  const retry = { ...DEFAULT_UPSTREAM_RETRY, ...upstream.retry };
  if (!(retry.initialDelayMs > 0) || !(retry.maxDelayMs >= retry.initialDelayMs) || !(retry.multiplier >= 1)) {
    throw new OpampError(
      "invalid_argument",
      "upstream.retry needs initialDelayMs > 0, maxDelayMs >= initialDelayMs and multiplier >= 1",
    );
  }
  const limits = options.limits ?? {};
  const heartbeat = options.heartbeat ?? {};
  const forward = auth.mode === "passthrough" ? auth.forwardHeaders : undefined;
  return Object.freeze({
    upstreamUrl: url.href,
    upstreamHeaders: Object.freeze(flatHeaders(upstream.headers)),
    upstreamTls: upstream.tls ?? {},
    connections: int(upstream.connections, DEFAULT_UPSTREAM_CONNECTIONS, "upstream.connections"),
    retry,
    auth,
    authTimeoutMs:
      auth.mode === "delegate"
        ? int(auth.timeoutMs, DEFAULT_AUTH_TIMEOUT_MS, "auth.timeoutMs")
        : DEFAULT_AUTH_TIMEOUT_MS,
    forwardHeaders: forward === undefined ? undefined : new Set(forward.map((name) => name.toLowerCase())),
    path: options.path,
    maxMessageBytes: int(limits.maxMessageBytes, DEFAULT_MAX_MESSAGE_BYTES, "limits.maxMessageBytes"),
    maxConnections: int(limits.maxConnections, DEFAULT_MAX_CONNECTIONS, "limits.maxConnections"),
    maxAgentsPerConnection: int(
      limits.maxAgentsPerConnection,
      DEFAULT_MAX_AGENTS_PER_CONNECTION,
      "limits.maxAgentsPerConnection",
    ),
    handshakeTimeoutMs: int(limits.handshakeTimeoutMs, DEFAULT_HANDSHAKE_TIMEOUT_MS, "limits.handshakeTimeoutMs"),
    maxQueuedBytesPerAgent: int(
      limits.maxQueuedBytesPerAgent,
      DEFAULT_MAX_QUEUED_BYTES_PER_AGENT,
      "limits.maxQueuedBytesPerAgent",
    ),
    maxBufferedBytesPerAgent: int(
      limits.maxBufferedBytesPerAgent,
      DEFAULT_MAX_BUFFERED_BYTES,
      "limits.maxBufferedBytesPerAgent",
    ),
    upstreamHighWaterBytes: int(
      limits.upstreamHighWaterBytes,
      DEFAULT_UPSTREAM_HIGH_WATER_BYTES,
      "limits.upstreamHighWaterBytes",
    ),
    maxPendingCustomMessages: int(
      limits.maxPendingCustomMessages,
      DEFAULT_MAX_PENDING_CUSTOM_MESSAGES_PER_AGENT,
      "limits.maxPendingCustomMessages",
    ),
    upstreamReplyTimeoutMs: int(
      limits.upstreamReplyTimeoutMs,
      DEFAULT_UPSTREAM_REPLY_TIMEOUT_MS,
      "limits.upstreamReplyTimeoutMs",
    ),
    retryAfterMs: int(limits.retryAfterMs, DEFAULT_GATEWAY_RETRY_AFTER_MS, "limits.retryAfterMs", 0),
    wsPingIntervalMs: int(heartbeat.wsPingIntervalMs, DEFAULT_WS_PING_INTERVAL_MS, "heartbeat.wsPingIntervalMs", 0),
    httpAgentTimeoutMs: int(
      heartbeat.httpAgentTimeoutMs,
      DEFAULT_HTTP_AGENT_TIMEOUT_MS,
      "heartbeat.httpAgentTimeoutMs",
    ),
    sweepIntervalMs: int(heartbeat.sweepIntervalMs, DEFAULT_SWEEP_INTERVAL_MS, "heartbeat.sweepIntervalMs"),
    meterProvider: options.metrics?.meterProvider,
    metricsEnabled: options.metrics?.enabled ?? true,
    clock: options.clock ?? systemClock,
    random: options.random ?? Math.random,
    stopTimeoutMs: int(options.stopTimeoutMs, DEFAULT_STOP_TIMEOUT_MS, "stopTimeoutMs", 0),
  });
}
