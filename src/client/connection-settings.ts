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
import { parseOfferedTls } from "../transport/tls.js";
import type { ConnectTarget } from "../transport/types.js";
import { WS_TLS_SUPPORTED } from "../transport/ws-transport.js";
import { sameBytes } from "../wire/bytes.js";
import { OpampError } from "../wire/errors.js";
import type { ClientHooks } from "./hooks.js";
import type { HeaderPair, StoredConnectionSettings, StoredTlsSettings } from "./state-store.js";

/** Offered TLS settings are compared by value (they are plain data). */
function sameTls(a: StoredTlsSettings | undefined, b: StoredTlsSettings | undefined): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
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
  /** The HTTP transport can apply TLS settings (`transport.tlsFetch` is set). */
  readonly httpTls?: boolean;
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
    if (cert === undefined && offered === undefined) return { url: active.endpoint, headers };
    return {
      url: active.endpoint,
      headers,
      tls: {
        ...(cert !== undefined && cert.cert.length > 0 ? { cert: cert.cert } : {}),
        ...(cert !== undefined && cert.privateKey.length > 0 ? { key: cert.privateKey } : {}),
        ...(cert !== undefined && cert.caCert.length > 0 ? { ca: cert.caCert } : {}),
        ...(offered === undefined ? {} : { offered }),
      },
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
          accepted = await hook({ settings: opamp, hash, signal: this.ctx.signal });
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
    if ((certificate !== undefined || tls !== undefined) && kind === "http" && this.ctx.httpTls !== true) {
      // Global fetch takes no TLS options; accepting would "verify" without using them.
      failures.push(
        "client certificates and TLS settings over HTTP need transport.tlsFetch (Node: nodeTlsFetch from opamp-sdk/client/node)",
      );
      return false;
    }
    if (opamp.tls !== undefined && kind === "ws" && !WS_TLS_SUPPORTED) {
      failures.push("TLS settings cannot be applied by a browser's WebSocket");
      return false;
    }
    const headers = headersOf(opamp, current.headers);
    const seconds = acceptsHeartbeat ? Number(opamp.heartbeatIntervalSeconds) : current.heartbeatIntervalSeconds;
    const candidate: StoredConnectionSettings = {
      endpoint,
      headers,
      offerHash: hash,
      ...(seconds === undefined ? {} : { heartbeatIntervalSeconds: seconds }),
      ...(tls === undefined ? {} : { tls }),
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
    const sameHeaders =
      headers.length === current.headers.length &&
      headers.every((h, i) => h.name === current.headers[i]?.name && h.value === current.headers[i]?.value);
    if (
      endpoint === current.endpoint &&
      sameHeaders &&
      certificate === undefined &&
      current.certificate === undefined &&
      sameTls(tls, current.tls)
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
