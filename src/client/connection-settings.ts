/**
 * Connection settings offers: OpAMP settings become a candidate that is verified by
 * connecting with it, then committed and persisted or rolled back; telemetry and other
 * connections go to a hook; the outcome is reported as ConnectionSettingsStatus.
 */
// spec: Connection Settings Management
import { create } from "@bufbuild/protobuf";
import {
  type ConnectionSettingsOffers,
  type ConnectionSettingsStatus,
  ConnectionSettingsStatuses,
  ConnectionSettingsStatusSchema,
  type OpAMPConnectionSettings,
} from "../gen/opamp/v1/opamp_pb.js";
import { invalidHeaderReason } from "../transport/headers.js";
import { type ProxySettings, parseProxyUrl } from "../transport/proxy.js";
import { parseOfferedTls } from "../transport/tls.js";
import type { ConnectTarget } from "../transport/types.js";
import { WS_TLS_SUPPORTED } from "../transport/ws-transport.js";
import { sameBytes } from "../wire/bytes.js";
import { OpampError } from "../wire/errors.js";
import type { ClientHooks } from "./hooks.js";
import type { HeaderPair, StoredConnectionSettings, StoredProxySettings, StoredTlsSettings } from "./state-store.js";

/** Offered TLS settings are compared by value (they are plain data). */
function sameTls(a: StoredTlsSettings | undefined, b: StoredTlsSettings | undefined): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/** Proxies are compared by what the connection would use. */
function sameProxy(a: ProxySettings | undefined, b: ProxySettings | undefined): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

/** What the client can apply, from its options and platform. */
export interface SettingsSupport {
  /** The HTTP transport can apply TLS settings (`transport.tlsFetch` is set). */
  readonly httpTls: boolean;
  /** The `tls` options are set (they apply to every `https:` endpoint). */
  readonly tlsOptions: boolean;
  /** Proxies can be applied (`transport.proxyConnector` is set). */
  readonly proxyConnector: boolean;
  /** The options' proxy: what applies while no offer set one. */
  readonly proxy: ProxySettings | undefined;
  /** The environment's proxy for an endpoint (the connector's), used when `proxy` is unset. */
  readonly environmentProxy: ((endpoint: string) => ProxySettings | undefined) | undefined;
}

/** The proxy for `endpoint` when no offer sets one: the options', else the environment's. */
function baseProxy(support: SettingsSupport, endpoint: string): ProxySettings | undefined {
  return support.proxy ?? support.environmentProxy?.(endpoint);
}

/**
 * The proxy `settings` connect through: an offered one (none for an offered empty URL),
 * else the options' `base`.
 */
export function proxyOf(
  settings: StoredConnectionSettings,
  base: ProxySettings | undefined,
): ProxySettings | undefined {
  const offered = settings.proxy;
  if (offered === undefined) return base;
  if (offered.url === "") return undefined;
  const connectHeaders: Record<string, string> = {};
  for (const header of offered.connectHeaders) connectHeaders[header.name] = header.value;
  return { url: offered.url, connectHeaders };
}

/**
 * Why `settings` cannot be used by this client (a missing injected Node helper, or a
 * browser), or undefined when they can. The same check guards offers (reported FAILED)
 * and the committed settings loaded at start (`start()` rejects).
 */
export function settingsProblem(settings: StoredConnectionSettings, support: SettingsSupport): string | undefined {
  const kind = kindOf(settings.endpoint);
  const proxied = proxyOf(settings, baseProxy(support, settings.endpoint)) !== undefined;
  if (proxied && kind === "ws" && !WS_TLS_SUPPORTED) return "a browser's WebSocket cannot be sent through a proxy";
  if (proxied && !support.proxyConnector) {
    return "a proxy needs transport.proxyConnector (Node: nodeProxyConnector from opamp-sdk/client/node)";
  }
  // Global fetch takes no TLS options; accepting would "verify" without using them. Through
  // a proxy the connector's fetch applies them.
  const tls =
    settings.certificate !== undefined ||
    settings.tls !== undefined ||
    (support.tlsOptions && settings.endpoint.startsWith("https:"));
  if (tls && kind === "http" && !proxied && !support.httpTls) {
    return "client certificates and TLS settings over HTTP need transport.tlsFetch (Node: nodeTlsFetch from opamp-sdk/client/node)";
  }
  if (settings.tls !== undefined && kind === "ws" && !WS_TLS_SUPPORTED) {
    return "TLS settings cannot be applied by a browser's WebSocket";
  }
  return undefined;
}

/**
 * Checks that the settings a client starts with (committed ones from the store, else the
 * options') can be used: committed TLS or proxy settings that this client cannot apply
 * would otherwise fail every attempt, for ever.
 * @throws OpampError `invalid_argument` naming what is missing.
 */
export function assertUsable(settings: StoredConnectionSettings, support: SettingsSupport): void {
  const problem = settingsProblem(settings, support);
  if (problem === undefined) return;
  throw new OpampError(
    "invalid_argument",
    settings.offerHash === undefined
      ? `cannot connect to ${settings.endpoint}: ${problem}`
      : `the committed connection settings in the state store (endpoint ${settings.endpoint}) cannot be used: ${problem}`,
  );
}

/** The first header that cannot be sent as it is, as a reason; undefined when all can. */
function badHeader(headers: readonly HeaderPair[]): string | undefined {
  for (const header of headers) {
    const reason = invalidHeaderReason(header.name, header.value);
    if (reason !== undefined) return reason;
  }
  return undefined;
}

/** Validates an offered ProxyConnectionSettings. @throws OpampError `invalid_argument`. */
function parseOfferedProxy(proxy: NonNullable<OpAMPConnectionSettings["proxy"]>): StoredProxySettings {
  const connectHeaders = (proxy.connectHeaders?.headers ?? []).map((header) => ({
    name: header.key,
    value: header.value,
  }));
  const bad = badHeader(connectHeaders);
  if (bad !== undefined) throw new OpampError("invalid_argument", `connect_headers: ${bad}`);
  // The spec asks for a non-empty URL; an empty one is read as "connect directly", the
  // only way an offer can turn a proxy off.
  if (proxy.url.trim() === "") return { url: "", connectHeaders: [] };
  return { url: parseProxyUrl(proxy.url, "proxy.url").href, connectHeaders };
}

/** What the manager needs from the client. */
export interface ConnectionSettingsContext {
  readonly hooks: ClientHooks;
  readonly signal: AbortSignal;
  setStatus(status: ConnectionSettingsStatus): void;
  persist(committed: StoredConnectionSettings, candidate: StoredConnectionSettings | undefined): Promise<void>;
  /** Sends agent_disconnect and connects again with {@link ConnectionSettingsManager.target}. */
  reconnect(): Promise<void>;
  /** The server changed the heartbeat interval. */
  heartbeatChanged(): void;
  error(error: OpampError): void;
  /** Settings were committed (event). */
  committed(settings: StoredConnectionSettings): void;
  /** What the client can apply. */
  readonly support: SettingsSupport;
}

function status(hash: Uint8Array, value: ConnectionSettingsStatuses, errorMessage = ""): ConnectionSettingsStatus {
  return create(ConnectionSettingsStatusSchema, { lastConnectionSettingsHash: hash, status: value, errorMessage });
}

function headersOf(settings: OpAMPConnectionSettings, current: readonly HeaderPair[]): readonly HeaderPair[] {
  // An offer's headers replace the whole set (e.g. a per-agent key replaces an
  // enrollment token); no headers in the offer keeps the current ones.
  if (settings.headers === undefined) return current;
  return settings.headers.headers.map((header) => ({ name: header.key, value: header.value }));
}

/**
 * The settings to start with: those the server gave and a connection verified earlier
 * (from the store), else the options' URL and headers.
 */
export function initialConnectionSettings(
  options: { readonly url: string; readonly headers: Readonly<Record<string, string>> },
  stored: StoredConnectionSettings | undefined,
): StoredConnectionSettings {
  if (stored !== undefined && kindOf(stored.endpoint) !== undefined) return stored;
  return { endpoint: options.url, headers: Object.entries(options.headers).map(([name, value]) => ({ name, value })) };
}

/** The transport an endpoint URL selects, or undefined when it is not a ws/http URL. */
export function kindOf(endpoint: string): "ws" | "http" | undefined {
  try {
    const protocol = new URL(endpoint).protocol;
    if (protocol === "ws:" || protocol === "wss:") return "ws";
    if (protocol === "http:" || protocol === "https:") return "http";
  } catch {
    // Not a URL.
  }
  return undefined;
}

/** Keeps committed and candidate OpAMP settings and runs the verify-or-roll-back flow. */
export class ConnectionSettingsManager {
  #committed: StoredConnectionSettings;
  #candidate: StoredConnectionSettings | undefined;
  #lastOfferHash: Uint8Array | undefined;
  #pendingHash: Uint8Array | undefined;
  /** Private key of the last CSR sent; the certificate issued for it comes without one. */
  #csrKey: Uint8Array | undefined;

  constructor(
    private readonly ctx: ConnectionSettingsContext,
    committed: StoredConnectionSettings,
    candidate: StoredConnectionSettings | undefined,
  ) {
    this.#committed = committed;
    this.#candidate = candidate;
    if (candidate?.offerHash !== undefined) this.#pendingHash = candidate.offerHash;
  }

  /**
   * Reports the committed settings' offer as APPLIED at start and remembers its hash, so
   * a restarted agent tells the server which settings it runs with (the server MUST
   * resend connection_settings when the reported hash differs) and ignores a re-offer of
   * the same hash instead of reconnecting to verify it again.
   */
  restore(): void {
    const hash = this.#committed.offerHash;
    if (hash === undefined || this.#candidate !== undefined) return;
    this.#lastOfferHash = hash;
    this.ctx.setStatus(status(hash, ConnectionSettingsStatuses.ConnectionSettingsStatuses_APPLIED));
  }

  /** The settings the next attempt uses: the candidate while it is being verified. */
  get active(): StoredConnectionSettings {
    return this.#candidate ?? this.#committed;
  }

  /** True while a candidate waits for a successful connection. */
  get verifying(): boolean {
    return this.#candidate !== undefined;
  }

  /** Where and how the transport connects next. */
  target(): ConnectTarget {
    const active = this.active;
    const headers: Record<string, string> = {};
    for (const header of active.headers) headers[header.name] = header.value;
    const cert = active.certificate;
    const offered = active.tls;
    const proxy = proxyOf(active, baseProxy(this.ctx.support, active.endpoint));
    return {
      url: active.endpoint,
      headers,
      ...(cert === undefined && offered === undefined
        ? {}
        : {
            tls: {
              ...(cert !== undefined && cert.cert.length > 0 ? { cert: cert.cert } : {}),
              ...(cert !== undefined && cert.privateKey.length > 0 ? { key: cert.privateKey } : {}),
              ...(cert !== undefined && cert.caCert.length > 0 ? { ca: cert.caCert } : {}),
              ...(offered === undefined ? {} : { offered }),
            },
          }),
      ...(proxy === undefined ? {} : { proxy }),
    };
  }

  /**
   * Remembers the private key of a CSR just sent. spec: CSR flow — the server answers with
   * `certificate.cert` and no `private_key`; the offered certificate is paired with this key.
   */
  expectCertificate(privateKey: Uint8Array): void {
    this.#csrKey = privateKey.slice();
  }

  /** Heartbeat interval offered by the server, in ms, or undefined when none was offered. */
  heartbeatIntervalMs(): number | undefined {
    const seconds = this.active.heartbeatIntervalSeconds;
    return seconds === undefined ? undefined : seconds * 1000;
  }

  /** The connection with the active settings succeeded. */
  async connected(): Promise<void> {
    const candidate = this.#candidate;
    if (candidate === undefined) return;
    this.#committed = candidate;
    this.#candidate = undefined;
    await this.#persist();
    const hash = this.#pendingHash ?? candidate.offerHash ?? new Uint8Array(0);
    this.#pendingHash = undefined;
    this.ctx.setStatus(status(hash, ConnectionSettingsStatuses.ConnectionSettingsStatuses_APPLIED));
    this.ctx.committed(candidate);
  }

  /** The connection with the active settings failed: a candidate is rolled back. */
  async failed(error: OpampError): Promise<boolean> {
    const candidate = this.#candidate;
    if (candidate === undefined) return false;
    this.#candidate = undefined;
    await this.#persist();
    const hash = this.#pendingHash ?? candidate.offerHash ?? new Uint8Array(0);
    this.#pendingHash = undefined;
    this.ctx.setStatus(
      status(
        hash,
        ConnectionSettingsStatuses.ConnectionSettingsStatuses_FAILED,
        `new settings failed: ${error.message}`,
      ),
    );
    return true;
  }

  /** Handles a ConnectionSettingsOffers; an offer with the hash last handled is ignored. */
  async offer(offers: ConnectionSettingsOffers, acceptsHeartbeat: boolean): Promise<void> {
    if (this.#lastOfferHash !== undefined && sameBytes(offers.hash, this.#lastOfferHash)) return;
    this.#lastOfferHash = offers.hash;
    const hash = offers.hash;
    const failures: string[] = [];
    let reconnect = false;
    const opamp = offers.opamp;
    if (opamp !== undefined) {
      const hook = this.ctx.hooks.onOpampConnectionSettings;
      if (acceptsHeartbeat && hook === undefined) this.#applyHeartbeat(opamp);
      if (hook !== undefined) {
        let accepted: boolean | undefined;
        try {
          accepted = (await hook({ settings: opamp, hash, signal: this.ctx.signal })) ?? undefined;
        } catch (cause) {
          const error = OpampError.from(cause, "hook_failed");
          this.ctx.error(error);
          accepted = false;
          failures.push(error.message);
        }
        if (this.ctx.signal.aborted) return;
        if (accepted === false) {
          if (failures.length === 0) failures.push("OpAMP connection settings refused by the agent");
        } else {
          reconnect = this.#makeCandidate(opamp, hash, acceptsHeartbeat, failures);
        }
      }
    }
    const telemetry = this.ctx.hooks.onTelemetryConnectionSettings;
    const hasTelemetry =
      offers.ownMetrics !== undefined ||
      offers.ownTraces !== undefined ||
      offers.ownLogs !== undefined ||
      Object.keys(offers.otherConnections).length > 0;
    if (hasTelemetry && telemetry !== undefined) {
      try {
        await telemetry({
          ...(offers.ownMetrics === undefined ? {} : { ownMetrics: offers.ownMetrics }),
          ...(offers.ownTraces === undefined ? {} : { ownTraces: offers.ownTraces }),
          ...(offers.ownLogs === undefined ? {} : { ownLogs: offers.ownLogs }),
          otherConnections: offers.otherConnections,
          hash,
          signal: this.ctx.signal,
        });
      } catch (cause) {
        const error = OpampError.from(cause, "hook_failed");
        this.ctx.error(error);
        failures.push(error.message);
      }
      if (this.ctx.signal.aborted) return;
    }
    if (failures.length > 0) {
      this.ctx.setStatus(
        status(hash, ConnectionSettingsStatuses.ConnectionSettingsStatuses_FAILED, failures.join("; ")),
      );
      return;
    }
    if (reconnect) {
      this.#pendingHash = hash;
      this.ctx.setStatus(status(hash, ConnectionSettingsStatuses.ConnectionSettingsStatuses_APPLYING));
      await this.#persist();
      await this.ctx.reconnect();
      return;
    }
    this.ctx.setStatus(status(hash, ConnectionSettingsStatuses.ConnectionSettingsStatuses_APPLIED));
  }

  #applyHeartbeat(opamp: OpAMPConnectionSettings): void {
    const seconds = Number(opamp.heartbeatIntervalSeconds);
    if (seconds === this.#committed.heartbeatIntervalSeconds) return;
    // spec: heartbeat_interval_seconds applies without reconnecting; 0 disables WS heartbeats.
    this.#committed = { ...this.#committed, heartbeatIntervalSeconds: seconds };
    void this.#persist();
    this.ctx.heartbeatChanged();
  }

  /** Builds the candidate; returns true when a reconnect is needed to verify it. */
  #makeCandidate(
    opamp: OpAMPConnectionSettings,
    hash: Uint8Array,
    acceptsHeartbeat: boolean,
    failures: string[],
  ): boolean {
    const current = this.#committed;
    const endpoint = opamp.destinationEndpoint === "" ? current.endpoint : opamp.destinationEndpoint;
    const kind = kindOf(endpoint);
    if (kind === undefined) {
      failures.push(`destination_endpoint ${JSON.stringify(endpoint)} is not a ws/http URL`);
      return false;
    }
    const certificate = opamp.certificate;
    let tls: StoredTlsSettings | undefined;
    if (opamp.tls !== undefined) {
      try {
        tls = parseOfferedTls(opamp.tls);
      } catch (cause) {
        failures.push(`invalid TLS settings: ${cause instanceof Error ? cause.message : String(cause)}`);
        return false;
      }
    } else {
      // No TLS in the offer keeps the current TLS settings for the same endpoint.
      tls = endpoint === current.endpoint ? current.tls : undefined;
    }
    let proxy: StoredProxySettings | undefined;
    if (opamp.proxy !== undefined) {
      try {
        proxy = parseOfferedProxy(opamp.proxy);
      } catch (cause) {
        failures.push(`invalid proxy settings: ${cause instanceof Error ? cause.message : String(cause)}`);
        return false;
      }
    } else {
      // spec: an unset part keeps what the agent has. The proxy belongs to the agent's
      // network rather than to one server, so it is kept across endpoints.
      proxy = current.proxy;
    }
    const headers = headersOf(opamp, current.headers);
    // Refused before any reconnect: a value with CR/LF would split the upgrade or POST.
    const bad = badHeader(headers);
    if (bad !== undefined) {
      failures.push(`invalid headers: ${bad}`);
      return false;
    }
    const seconds = acceptsHeartbeat ? Number(opamp.heartbeatIntervalSeconds) : current.heartbeatIntervalSeconds;
    const candidate: StoredConnectionSettings = {
      endpoint,
      headers,
      offerHash: hash,
      ...(seconds === undefined ? {} : { heartbeatIntervalSeconds: seconds }),
      ...(tls === undefined ? {} : { tls }),
      ...(proxy === undefined ? {} : { proxy }),
      ...(certificate === undefined
        ? {}
        : {
            certificate: {
              cert: certificate.cert,
              privateKey:
                certificate.privateKey.length > 0 ? certificate.privateKey : (this.#csrKey ?? new Uint8Array(0)),
              caCert: certificate.caCert,
            },
          }),
    };
    const problem = settingsProblem(candidate, this.ctx.support);
    if (problem !== undefined) {
      failures.push(problem);
      return false;
    }
    const sameHeaders =
      headers.length === current.headers.length &&
      headers.every((h, i) => h.name === current.headers[i]?.name && h.value === current.headers[i]?.value);
    if (
      endpoint === current.endpoint &&
      sameHeaders &&
      certificate === undefined &&
      current.certificate === undefined &&
      sameTls(tls, current.tls) &&
      sameProxy(
        proxyOf(candidate, baseProxy(this.ctx.support, candidate.endpoint)),
        proxyOf(current, baseProxy(this.ctx.support, current.endpoint)),
      )
    ) {
      // Nothing about the connection changes; only the heartbeat may have.
      this.#committed = { ...candidate, offerHash: hash };
      void this.#persist();
      this.ctx.heartbeatChanged();
      return false;
    }
    this.#candidate = candidate;
    return true;
  }

  #persist(): Promise<void> {
    return this.ctx
      .persist(this.#committed, this.#candidate)
      .catch((cause: unknown) => this.ctx.error(OpampError.from(cause, "storage_failed")));
  }
}
