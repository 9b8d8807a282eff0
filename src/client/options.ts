/**
 * Options of {@link OpAMPClient}: one object grouped by concern, resolved once at
 * construction into a frozen {@link ResolvedClientOptions} with the exported defaults.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { AgentDescription, AgentDescriptionSchema, ComponentHealthSchema } from "../gen/opamp/v1/opamp_pb.js";
import { type BackoffPolicy, MAX_TIMER_DELAY_MS } from "../internal/backoff.js";
import { describeValue, optionGroup, rejectUnknownKeys, requireFunctions } from "../internal/check-options.js";
import { type Clock, systemClock } from "../internal/clock.js";
import { componentLogger, type Logger, loggerProblem } from "../internal/logger.js";
import { invalidHeaderReason } from "../transport/headers.js";
import { type ProxyConnector, type ProxySettings, parseProxyUrl } from "../transport/proxy.js";
import type { TlsFetchFactory } from "../transport/tls.js";
import { agentDescription } from "../wire/agent-description.js";
import type { AttributeValue } from "../wire/any-value.js";
import type { AgentCapabilityFlags } from "../wire/capabilities.js";
import { OpampError } from "../wire/errors.js";
import { DEFAULT_MAX_MESSAGE_BYTES, resolveMaxBytes } from "../wire/limits.js";
import { isInstanceUid } from "../wire/uid.js";
import type { ClientHooks } from "./hooks.js";
import type { PackageStore } from "./package-store.js";
import { type ClientStateStore, MemoryClientStateStore } from "./state-store.js";

/** Heartbeat (WS) and poll (HTTP) interval when the server offers none: 30 s (spec default). */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 30_000;
/** How long to wait for the server's answer (WS: before the socket counts as dead; HTTP: per request): 30 s. */
export const DEFAULT_RESPONSE_TIMEOUT_MS = 30_000;
/** Bound on sending agent_disconnect and the close handshake at stop(): 5 s (as opamp-go). */
export const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;
/** Reconnect backoff: first window 1 s, doubling, capped at 60 s, full jitter. */
export const DEFAULT_RETRY: BackoffPolicy = Object.freeze({ initialDelayMs: 1_000, maxDelayMs: 60_000, multiplier: 2 });
/** Custom messages waiting to be sent before sendCustomMessage() rejects with limit_exceeded: 64. */
export const DEFAULT_MAX_PENDING_CUSTOM_MESSAGES = 64;
/** Largest package download accepted: 1 GiB. */
export const DEFAULT_MAX_PACKAGE_BYTES = 1024 * 1024 * 1024;
/** Interval between Downloading progress reports: 1 s. */
export const DEFAULT_DOWNLOAD_PROGRESS_INTERVAL_MS = 1_000;
/**
 * Longest wait a server may ask for with `Retry-After` or `RetryInfo`: 1 hour. A longer
 * request is shortened to this (a hostile or buggy server cannot park a fleet for years).
 */
export const DEFAULT_MAX_RETRY_AFTER_MS = 3_600_000;
/** Longest heartbeat / poll interval a server may offer (`heartbeat_interval_seconds`): 1 hour. */
export const DEFAULT_MAX_HEARTBEAT_INTERVAL_MS = 3_600_000;
/** Deadline of a WebSocket opening handshake (TCP, proxy tunnel, TLS and upgrade): 30 s. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
/** Time a package download URL has to answer with its response headers: 30 s. */
export const DEFAULT_DOWNLOAD_CONNECT_TIMEOUT_MS = 30_000;
/** Longest silence allowed between two chunks of a package download: 60 s. */
export const DEFAULT_DOWNLOAD_IDLE_TIMEOUT_MS = 60_000;
/** Deadline of one whole package download, headers to last byte: 1 hour. */
export const DEFAULT_DOWNLOAD_TIMEOUT_MS = 3_600_000;

/** How the client reaches the server. */
export interface ClientTransportOptions {
  /** OpAMP URL. `ws:`/`wss:` selects WebSocket, `http:`/`https:` HTTP polling. Required. */
  readonly url: string;
  /** Headers for the WS upgrade or every POST (e.g. `Authorization`). Default none. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Heartbeat (WS) / poll (HTTP) interval in ms until the server offers one. Default {@link DEFAULT_HEARTBEAT_INTERVAL_MS}. */
  readonly heartbeatIntervalMs?: number;
  /** Gzip HTTP request bodies. Default false. Responses are always accepted gzipped. */
  readonly compression?: boolean;
  /** Time the server has to answer: WS — after a send, else the socket is replaced; HTTP — per request, else it is aborted and retried. Default {@link DEFAULT_RESPONSE_TIMEOUT_MS}. */
  readonly responseTimeoutMs?: number;
  /** Bound on the last message and close at stop(). Default {@link DEFAULT_CLOSE_TIMEOUT_MS}. */
  readonly closeTimeoutMs?: number;
  /**
   * WebSocket only: the opening handshake (TCP connect, proxy tunnel, TLS, HTTP upgrade)
   * must finish within this, else the attempt fails with `timeout` and is retried after a
   * backoff; a connection-settings candidate that never connects is rolled back. HTTP
   * requests are bounded by `responseTimeoutMs` instead. Default {@link DEFAULT_CONNECT_TIMEOUT_MS}.
   */
  readonly connectTimeoutMs?: number;
  /**
   * Upper bound of a heartbeat / poll interval offered by the server
   * (`heartbeat_interval_seconds`); a longer offer is shortened to this. Default
   * {@link DEFAULT_MAX_HEARTBEAT_INTERVAL_MS}.
   */
  readonly maxHeartbeatIntervalMs?: number;
  /** The fetch used for HTTP polling and package downloads. Default `globalThis.fetch`. */
  readonly fetch?: typeof globalThis.fetch;
  /**
   * Makes the fetch the HTTP transport uses for `https:` when TLS settings apply (the
   * `tls` option, an offered client certificate or offered TLSConnectionSettings). Global
   * fetch takes no TLS options, so in Node pass `nodeTlsFetch` from `opamp-sdk/client/node`;
   * it is injected rather than imported so `opamp-sdk/client` stays free of `node:`
   * modules for browsers. Without it, `tls` with an `https:` URL is an invalid_argument
   * and such offers for `https:` are reported FAILED. Default none.
   */
  readonly tlsFetch?: TlsFetchFactory;
  /**
   * An HTTP proxy for the OpAMP connection (Node only): `{ url: "http://proxy:3128",
   * connectHeaders: { … } }`. WebSocket and `https:` polling go through an HTTP CONNECT
   * tunnel carrying `connectHeaders` (and `Proxy-Authorization` from credentials in the
   * URL); `http:` polling sends absolute-form requests to the proxy. An `https://` proxy
   * URL means TLS to the proxy. Only `http://` and `https://` proxies are supported.
   * Needs {@link ClientTransportOptions.proxyConnector}. A proxy from an accepted
   * connection-settings offer replaces it. Package downloads do not use it (they use
   * `fetch`). Default none: direct connections.
   */
  readonly proxy?: ProxySettings;
  /**
   * Connects through a proxy (the `proxy` option or an offered one): in Node pass
   * `nodeProxyConnector` from `opamp-sdk/client/node`. It is injected rather than
   * imported so `opamp-sdk/client` stays free of `node:` modules for browsers. Without
   * it, `proxy` is an invalid_argument and offers with a proxy are reported FAILED.
   * Through a proxy it also applies the TLS settings of HTTP polling, so `tlsFetch` is
   * not needed there. Default none.
   */
  readonly proxyConnector?: ProxyConnector;
}

/**
 * TLS for `wss:` and `https:` connections (Node only). WebSocket: passed to `ws`. HTTP:
 * applied through `transport.tlsFetch` (see {@link ClientTransportOptions.tlsFetch}).
 * Browsers use their own trust store and certificates; the options do not apply there.
 */
export interface ClientTlsOptions {
  /** PEM CA bundle trusted in addition to / instead of the system pool. */
  readonly ca?: string | Uint8Array;
  /** PEM client certificate. */
  readonly cert?: string | Uint8Array;
  /** PEM private key of the client certificate. */
  readonly key?: string | Uint8Array;
  /** Verify the server certificate. Default true. */
  readonly rejectUnauthorized?: boolean;
  /** Server name for SNI and the certificate check. Default the URL's host. */
  readonly servername?: string;
}

/** Reconnect and retry timing. The backoff fields default to {@link DEFAULT_RETRY}. */
export interface ClientRetryOptions extends Partial<BackoffPolicy> {
  /**
   * Upper bound of a wait the server asks for (HTTP `Retry-After`, `RetryInfo` of an
   * Unavailable error): a longer one, or an absurd one (a date in the year 9999, 2^64−1 ns),
   * is shortened to this. Default {@link DEFAULT_MAX_RETRY_AFTER_MS}.
   */
  readonly maxRetryAfterMs?: number;
}

/** Resource limits. */
export interface ClientLimitsOptions {
  /** Largest message sent or accepted, in bytes. Default {@link DEFAULT_MAX_MESSAGE_BYTES}. */
  readonly maxMessageBytes?: number;
  /** Queue bound of sendCustomMessage(). Default {@link DEFAULT_MAX_PENDING_CUSTOM_MESSAGES}. */
  readonly maxPendingCustomMessages?: number;
  /** Largest package download in bytes. Default {@link DEFAULT_MAX_PACKAGE_BYTES}. */
  readonly maxPackageBytes?: number;
  /**
   * Time a package's download URL has to answer with response headers; else the download
   * fails with `timeout` (the package is InstallFailed). Default {@link DEFAULT_DOWNLOAD_CONNECT_TIMEOUT_MS}.
   */
  readonly downloadConnectTimeoutMs?: number;
  /** Longest gap between two chunks of a download body. Default {@link DEFAULT_DOWNLOAD_IDLE_TIMEOUT_MS}. */
  readonly downloadIdleTimeoutMs?: number;
  /** Deadline of a whole download (a trickle never ends otherwise). Default {@link DEFAULT_DOWNLOAD_TIMEOUT_MS}. */
  readonly downloadTimeoutMs?: number;
}

/** Persistence. */
export interface ClientStorageOptions {
  /** Where the instance UID, remote config status and connection settings are kept. Default a new {@link MemoryClientStateStore}. */
  readonly state?: ClientStateStore;
  /** Where packages are installed; setting it declares AcceptsPackages and ReportsPackageStatuses. Default none. */
  readonly packages?: PackageStore;
}

/** Who the agent is and what it reports at start. */
export interface ClientAgentOptions {
  /** 16-byte instance UID. Default: loaded from the state store, else a new UUIDv7 that is then persisted. */
  readonly instanceUid?: Uint8Array;
  /** Set the RequestInstanceUid flag until the server assigns a UID. Default false. */
  readonly requestInstanceUid?: boolean;
  /**
   * Identifying and non-identifying attributes: plain records
   * (`{ identifying: { "service.name": "x" }, nonIdentifying: { … } }`), or an
   * AgentDescription message (`agentDescription()` from `opamp-sdk`). Default empty.
   */
  readonly description?: AgentDescriptionInput;
  /** Initial health; giving it declares ReportsHealth. Default none. */
  readonly health?: MessageInitShape<typeof ComponentHealthSchema>;
  /** Extra capability bits (e.g. reportsOwnMetrics) on top of those implied by hooks. */
  readonly capabilities?: AgentCapabilityFlags;
  /** Custom capabilities (reverse-FQDN names) announced to the server. Default none. */
  readonly customCapabilities?: readonly string[];
}

/**
 * An agent description: plain attribute records (as `agentDescription()` takes them), an
 * AgentDescription message, or its init shape (`{ identifyingAttributes: [KeyValue…] }`).
 */
export type AgentDescriptionInput =
  | {
      /** Attributes that identify the agent (`service.name`, `service.instance.id`, …). Default none. */
      readonly identifying?: Readonly<Record<string, AttributeValue>>;
      /** Attributes that describe it without identifying it (`os.type`, `host.name`, …). Default none. */
      readonly nonIdentifying?: Readonly<Record<string, AttributeValue>>;
    }
  | AgentDescription
  | MessageInitShape<typeof AgentDescriptionSchema>;

/** Everything `new OpAMPClient()` accepts. Only `transport.url` is required. */
export interface OpAMPClientOptions {
  /** Where and how to reach the server. Required (`transport.url`). */
  readonly transport: ClientTransportOptions;
  /**
   * TLS for `wss:` and `https:` URLs (over HTTP it needs `transport.tlsFetch`). Default: the platform's CAs
   * and checks.
   */
  readonly tls?: ClientTlsOptions;
  /** Reconnect backoff and the cap on the server's Retry-After. Default {@link DEFAULT_RETRY}. */
  readonly retry?: ClientRetryOptions;
  /** Message, queue and download limits; each has a safe default. */
  readonly limits?: ClientLimitsOptions;
  /** Where state and packages are kept. Default: state in memory, no packages. */
  readonly storage?: ClientStorageOptions;
  /** Who the agent is: instance UID, description, health, extra capabilities. */
  readonly agent?: ClientAgentOptions;
  /** What the agent does with what the server sends; the hooks given declare their capabilities. Default none. */
  readonly hooks?: ClientHooks;
  /** Time source; tests pass a fake one. Default the system clock. */
  readonly clock?: Clock;
  /** Random source in [0, 1) for backoff jitter. Default Math.random. */
  readonly random?: () => number;
  /**
   * Where the client logs (pino-compatible: `trace`, `debug`, `info`, `warn`, `error`,
   * optional `child`): connection changes at `info`/`debug`, an `error` event nobody
   * listens to at `warn`. Default: warnings and errors to `console`, nothing else.
   */
  readonly logger?: Logger;
}

/**
 * The options after defaults and validation, flattened and frozen (`client.options`). Each
 * field names the option it comes from; see {@link OpAMPClientOptions} for meanings.
 */
export interface ResolvedClientOptions {
  /** `"ws"` for `ws:`/`wss:` URLs, `"http"` for `http:`/`https:`. */
  readonly transportKind: "ws" | "http";
  /** The server's URL (`transport.url`). */
  readonly url: string;
  /** Headers of the WebSocket upgrade or every POST (`transport.headers`), frozen. */
  readonly headers: Readonly<Record<string, string>>;
  /** Heartbeat / poll interval until the server offers one (`transport.heartbeatIntervalMs`). */
  readonly heartbeatIntervalMs: number;
  /** Whether HTTP request bodies are gzipped (`transport.compression`). */
  readonly compression: boolean;
  /** Time the server has to answer (`transport.responseTimeoutMs`). */
  readonly responseTimeoutMs: number;
  /** Bound on the last message and close at `stop()` (`transport.closeTimeoutMs`). */
  readonly closeTimeoutMs: number;
  /** Time a WebSocket's opening handshake has to finish (`transport.connectTimeoutMs`). */
  readonly connectTimeoutMs: number;
  /** Longest heartbeat interval a server offer may set (`transport.maxHeartbeatIntervalMs`). */
  readonly maxHeartbeatIntervalMs: number;
  /**
   * The fetch for HTTP polling and package downloads (`transport.fetch`, else
   * `globalThis.fetch`); undefined only where neither exists, which only a WebSocket client
   * may run with.
   */
  readonly fetch: typeof globalThis.fetch | undefined;
  /** Makes a fetch with TLS options for `https:` (`transport.tlsFetch`). */
  readonly tlsFetch: TlsFetchFactory | undefined;
  /** The proxy with its URL normalised (`http://host:port/`), or undefined for direct connections. */
  readonly proxy: ProxySettings | undefined;
  /** Opens proxied connections (`transport.proxyConnector`). */
  readonly proxyConnector: ProxyConnector | undefined;
  /** TLS for `wss:` and `https:` (`tls`, else `{}`). */
  readonly tls: ClientTlsOptions;
  /** Reconnect backoff (`retry`, gaps filled from {@link DEFAULT_RETRY}). */
  readonly retry: BackoffPolicy;
  /** Cap on a server-requested retry delay (`retry.maxRetryAfterMs`). */
  readonly maxRetryAfterMs: number;
  /** Largest message sent or accepted (`limits.maxMessageBytes`). */
  readonly maxMessageBytes: number;
  /** Queue bound of `sendCustomMessage()` (`limits.maxPendingCustomMessages`). */
  readonly maxPendingCustomMessages: number;
  /** Largest package download (`limits.maxPackageBytes`). */
  readonly maxPackageBytes: number;
  /** Time a download has to get its response headers (`limits.downloadConnectTimeoutMs`). */
  readonly downloadConnectTimeoutMs: number;
  /** Longest gap between two chunks of a download (`limits.downloadIdleTimeoutMs`). */
  readonly downloadIdleTimeoutMs: number;
  /** Deadline of a whole download (`limits.downloadTimeoutMs`). */
  readonly downloadTimeoutMs: number;
  /** Where UID, statuses and settings persist (`storage.state`, else a new {@link MemoryClientStateStore}). */
  readonly stateStore: ClientStateStore;
  /** Where packages are installed (`storage.packages`); undefined: packages are not accepted. */
  readonly packageStore: PackageStore | undefined;
  /** Who the agent is (`agent`, else `{}`). */
  readonly agent: ClientAgentOptions;
  /** What the agent does with what the server sends (`hooks`, else `{}`). */
  readonly hooks: ClientHooks;
  /** Time source for every protocol timer (`clock`, else the system clock). */
  readonly clock: Clock;
  /** Random source for backoff jitter (`random`, else `Math.random`). */
  readonly random: () => number;
  /** The logger in use (the given one's `child({ component: "opamp-client" })`, or the default). */
  readonly logger: Logger;
}

function invalid(message: string): OpampError {
  return new OpampError("invalid_argument", message);
}

function nonNegative(value: number | undefined, name: string, fallback: number, allowZero = true): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw invalid(`${name} must be a ${allowZero ? "non-negative" : "positive"} number, got ${describeValue(value)}`);
  }
  return value;
}

/** A time in ms that a timer can wait: a longer one would fire after 1 ms (see MAX_TIMER_DELAY_MS). */
function duration(value: number | undefined, name: string, fallback: number, allowZero = true): number {
  const ms = nonNegative(value, name, fallback, allowZero);
  if (ms > MAX_TIMER_DELAY_MS) throw invalid(`${name} must be at most ${MAX_TIMER_DELAY_MS} ms, got ${ms}`);
  return ms;
}

/** Which transport a URL selects. @throws OpampError invalid_argument for other schemes. */
export function transportKindOf(url: string): "ws" | "http" {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalid(`transport.url is not a valid URL: ${JSON.stringify(url)}`);
  }
  if (parsed.protocol === "ws:" || parsed.protocol === "wss:") return "ws";
  if (parsed.protocol === "http:" || parsed.protocol === "https:") return "http";
  throw invalid(`transport.url must use ws:, wss:, http: or https:, got ${parsed.protocol}`);
}

/**
 * Checks `transport.proxy` and normalises its URL.
 * @throws OpampError `invalid_argument` for a malformed proxy, an unsupported scheme or a
 *   connect header that is not a string.
 */
function resolveProxy(proxy: ProxySettings | undefined): ProxySettings | undefined {
  if (proxy === undefined) return undefined;
  if (typeof proxy !== "object" || proxy === null || typeof proxy.url !== "string") {
    throw invalid("transport.proxy.url is required (a string)");
  }
  const url = parseProxyUrl(proxy.url, "transport.proxy.url");
  const connectHeaders = { ...(proxy.connectHeaders ?? {}) };
  for (const [name, value] of Object.entries(connectHeaders)) {
    if (typeof value !== "string") {
      throw invalid(`transport.proxy.connectHeaders[${JSON.stringify(name)}] must be a string`);
    }
    const reason = invalidHeaderReason(name, value);
    if (reason !== undefined) throw invalid(`transport.proxy.connectHeaders: ${reason}`);
  }
  return Object.freeze({ url: url.href, connectHeaders: Object.freeze(connectHeaders) });
}

/**
 * Applies defaults and checks every option once.
 * @throws OpampError `invalid_argument` naming the offending option.
 */
export function resolveClientOptions(options: OpAMPClientOptions): ResolvedClientOptions {
  if (typeof options !== "object" || options === null) {
    throw invalid(`options must be an object with at least transport.url, got ${describeValue(options)}`);
  }
  rejectUnknownKeys(options, TOP_KEYS, "");
  const transport = optionGroup(options.transport, TRANSPORT_KEYS, "transport");
  if (transport === undefined || typeof transport.url !== "string") {
    throw invalid(`transport.url is required (a ws:, wss:, http: or https: URL), got ${describeValue(transport?.url)}`);
  }
  optionGroup(options.tls, TLS_KEYS, "tls");
  optionGroup(options.retry, RETRY_KEYS, "retry");
  optionGroup(options.limits, LIMITS_KEYS, "limits");
  optionGroup(options.storage, STORAGE_KEYS, "storage");
  optionGroup(options.agent, AGENT_KEYS, "agent");
  const hooksIn = optionGroup(options.hooks, HOOK_KEYS, "hooks") ?? {};
  requireFunctions(hooksIn, "hooks");
  for (const name of ["clock", "random"] as const) {
    const value = options[name];
    if (value !== undefined && (name === "random" ? typeof value !== "function" : typeof value !== "object")) {
      throw invalid(`${name} must be a ${name === "random" ? "function" : "Clock"}, got ${describeValue(value)}`);
    }
  }
  const loggerIssue = loggerProblem(options.logger, "logger");
  if (loggerIssue !== undefined) throw invalid(loggerIssue);
  const transportKind = transportKindOf(transport.url);
  const retryIn = options.retry ?? {};
  const retry: BackoffPolicy = Object.freeze({
    initialDelayMs: duration(retryIn.initialDelayMs, "retry.initialDelayMs", DEFAULT_RETRY.initialDelayMs, false),
    maxDelayMs: duration(retryIn.maxDelayMs, "retry.maxDelayMs", DEFAULT_RETRY.maxDelayMs, false),
    multiplier: nonNegative(retryIn.multiplier, "retry.multiplier", DEFAULT_RETRY.multiplier, false),
  });
  if (retry.multiplier < 1) throw invalid("retry.multiplier must be at least 1");
  if (retry.maxDelayMs < retry.initialDelayMs) throw invalid("retry.maxDelayMs must be at least retry.initialDelayMs");
  const agentIn = options.agent ?? {};
  if (agentIn.instanceUid !== undefined && !isInstanceUid(agentIn.instanceUid)) {
    throw new OpampError(
      "invalid_instance_uid",
      `agent.instanceUid must be a Uint8Array of 16 bytes, got ${describeValue(agentIn.instanceUid)}`,
    );
  }
  const agent: ClientAgentOptions =
    agentIn.description === undefined
      ? agentIn
      : { ...agentIn, description: resolveAgentDescription(agentIn.description, "agent.description") };
  const headers = { ...(transport.headers ?? {}) };
  for (const [name, value] of Object.entries(headers)) {
    if (typeof value !== "string") {
      throw invalid(`transport.headers[${JSON.stringify(name)}] must be a string, got ${describeValue(value)}`);
    }
    const reason = invalidHeaderReason(name, value);
    if (reason !== undefined) throw invalid(`transport.headers: ${reason}`);
  }
  const fetchImpl = transport.fetch ?? (typeof globalThis.fetch === "function" ? globalThis.fetch : undefined);
  if (transportKind === "http" && fetchImpl === undefined)
    throw invalid("HTTP transport needs fetch (transport.fetch)");
  if (transport.tlsFetch !== undefined && typeof transport.tlsFetch !== "function") {
    throw invalid("transport.tlsFetch must be a function");
  }
  const proxy = resolveProxy(transport.proxy);
  const proxyConnector = transport.proxyConnector;
  if (
    proxyConnector !== undefined &&
    (typeof proxyConnector !== "object" ||
      proxyConnector === null ||
      typeof proxyConnector.fetch !== "function" ||
      typeof proxyConnector.webSocketConnection !== "function")
  ) {
    throw invalid("transport.proxyConnector must be a ProxyConnector (Node: nodeProxyConnector)");
  }
  if (proxy !== undefined && proxyConnector === undefined) {
    throw invalid(
      "transport.proxy needs transport.proxyConnector (Node: nodeProxyConnector from opamp-sdk/client/node)",
    );
  }
  const tls = Object.freeze({ ...(options.tls ?? {}) });
  if (
    new URL(transport.url).protocol === "https:" &&
    transport.tlsFetch === undefined &&
    // Through a proxy the connector's fetch applies the TLS settings.
    proxy === undefined &&
    Object.values(tls).some((value) => value !== undefined)
  ) {
    throw invalid(
      "tls options for an https: URL need transport.tlsFetch (Node: nodeTlsFetch from opamp-sdk/client/node); global fetch takes no TLS options",
    );
  }
  const limits = options.limits ?? {};
  const maxPending = nonNegative(
    limits.maxPendingCustomMessages,
    "limits.maxPendingCustomMessages",
    DEFAULT_MAX_PENDING_CUSTOM_MESSAGES,
    false,
  );
  return Object.freeze({
    transportKind,
    url: transport.url,
    headers: Object.freeze(headers),
    heartbeatIntervalMs: duration(
      transport.heartbeatIntervalMs,
      "transport.heartbeatIntervalMs",
      DEFAULT_HEARTBEAT_INTERVAL_MS,
      false,
    ),
    compression: transport.compression ?? false,
    responseTimeoutMs: duration(
      transport.responseTimeoutMs,
      "transport.responseTimeoutMs",
      DEFAULT_RESPONSE_TIMEOUT_MS,
      false,
    ),
    closeTimeoutMs: duration(transport.closeTimeoutMs, "transport.closeTimeoutMs", DEFAULT_CLOSE_TIMEOUT_MS),
    connectTimeoutMs: duration(
      transport.connectTimeoutMs,
      "transport.connectTimeoutMs",
      DEFAULT_CONNECT_TIMEOUT_MS,
      false,
    ),
    maxHeartbeatIntervalMs: duration(
      transport.maxHeartbeatIntervalMs,
      "transport.maxHeartbeatIntervalMs",
      DEFAULT_MAX_HEARTBEAT_INTERVAL_MS,
      false,
    ),
    fetch: fetchImpl,
    tlsFetch: transport.tlsFetch,
    proxy,
    proxyConnector,
    tls,
    retry,
    maxRetryAfterMs: duration(retryIn.maxRetryAfterMs, "retry.maxRetryAfterMs", DEFAULT_MAX_RETRY_AFTER_MS),
    maxMessageBytes: resolveMaxBytes(limits.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES, "limits.maxMessageBytes"),
    maxPendingCustomMessages: maxPending,
    maxPackageBytes: nonNegative(limits.maxPackageBytes, "limits.maxPackageBytes", DEFAULT_MAX_PACKAGE_BYTES, false),
    downloadConnectTimeoutMs: duration(
      limits.downloadConnectTimeoutMs,
      "limits.downloadConnectTimeoutMs",
      DEFAULT_DOWNLOAD_CONNECT_TIMEOUT_MS,
      false,
    ),
    downloadIdleTimeoutMs: duration(
      limits.downloadIdleTimeoutMs,
      "limits.downloadIdleTimeoutMs",
      DEFAULT_DOWNLOAD_IDLE_TIMEOUT_MS,
      false,
    ),
    downloadTimeoutMs: duration(
      limits.downloadTimeoutMs,
      "limits.downloadTimeoutMs",
      DEFAULT_DOWNLOAD_TIMEOUT_MS,
      false,
    ),
    stateStore: options.storage?.state ?? new MemoryClientStateStore(),
    packageStore: options.storage?.packages,
    agent: Object.freeze({ ...agent }),
    hooks: Object.freeze({ ...hooksIn }),
    clock: options.clock ?? systemClock,
    random: options.random ?? Math.random,
    logger: componentLogger(options.logger, "opamp-client"),
  });
}

const TOP_KEYS = ["transport", "tls", "retry", "limits", "storage", "agent", "hooks", "clock", "random", "logger"];
const TRANSPORT_KEYS = [
  "url",
  "headers",
  "heartbeatIntervalMs",
  "compression",
  "responseTimeoutMs",
  "closeTimeoutMs",
  "connectTimeoutMs",
  "maxHeartbeatIntervalMs",
  "fetch",
  "tlsFetch",
  "proxy",
  "proxyConnector",
];
const TLS_KEYS = ["ca", "cert", "key", "rejectUnauthorized", "servername"];
const RETRY_KEYS = ["initialDelayMs", "maxDelayMs", "multiplier", "maxRetryAfterMs"];
const LIMITS_KEYS = [
  "maxMessageBytes",
  "maxPendingCustomMessages",
  "maxPackageBytes",
  "downloadConnectTimeoutMs",
  "downloadIdleTimeoutMs",
  "downloadTimeoutMs",
];
const STORAGE_KEYS = ["state", "packages"];
const AGENT_KEYS = ["instanceUid", "requestInstanceUid", "description", "health", "capabilities", "customCapabilities"];
const HOOK_KEYS = [
  "onRemoteConfig",
  "getEffectiveConfig",
  "onOpampConnectionSettings",
  "onTelemetryConnectionSettings",
  "onRestart",
  "onCustomMessage",
  "verifyPackageSignature",
];

const DESCRIPTION_MESSAGE_KEYS = ["identifyingAttributes", "nonIdentifyingAttributes", "$typeName", "$unknown"];
const DESCRIPTION_RECORD_KEYS = ["identifying", "nonIdentifying"];

/**
 * Turns an agent description given as plain records into the message's init shape, and
 * refuses an object that is neither (a plain `{ "service.name": "x" }` would otherwise
 * be sent as an empty description).
 * @throws OpampError `invalid_argument` naming what was received.
 */
export function resolveAgentDescription(
  value: AgentDescriptionInput,
  name: string,
): MessageInitShape<typeof AgentDescriptionSchema> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalid(`${name} must be an agent description, got ${describeValue(value)}`);
  }
  const keys = Object.keys(value);
  if (keys.every((key) => DESCRIPTION_MESSAGE_KEYS.includes(key))) {
    for (const list of ["identifyingAttributes", "nonIdentifyingAttributes"] as const) {
      const attributes = (value as Record<string, unknown>)[list];
      if (attributes !== undefined && !Array.isArray(attributes)) {
        throw invalid(`${name}.${list} must be an array of KeyValue, got ${describeValue(attributes)}`);
      }
    }
    return value as MessageInitShape<typeof AgentDescriptionSchema>;
  }
  if (keys.every((key) => DESCRIPTION_RECORD_KEYS.includes(key))) {
    const records = value as { identifying?: unknown; nonIdentifying?: unknown };
    for (const key of DESCRIPTION_RECORD_KEYS) {
      const record = (records as Record<string, unknown>)[key];
      if (record !== undefined && (typeof record !== "object" || record === null || Array.isArray(record))) {
        throw invalid(`${name}.${key} must be a record of attributes, got ${describeValue(record)}`);
      }
    }
    try {
      return agentDescription(records as Parameters<typeof agentDescription>[0]);
    } catch (cause) {
      throw invalid(`${name}: ${OpampError.from(cause).message}`);
    }
  }
  throw invalid(
    `${name} must be { identifying: {…}, nonIdentifying: {…} } or an AgentDescription message ` +
      `(agentDescription() from opamp-sdk); got an object with the keys ${keys.map((k) => JSON.stringify(k)).join(", ")}`,
  );
}
