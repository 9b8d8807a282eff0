/**
 * What an OpAMP client keeps across restarts, and the small interface that stores it.
 * Browser-safe: the in-memory store has no node: imports; the file store lives in
 * `file-state-store.ts`.
 */

/** A header name and value, in the order they are sent. */
export interface HeaderPair {
  /** Header name, as offered. */
  readonly name: string;
  /** Header value. */
  readonly value: string;
}

/** OpAMP connection settings the client connects with (spec: OpAMPConnectionSettings). */
export interface StoredConnectionSettings {
  /** `ws:`, `wss:`, `http:` or `https:` URL of the OpAMP server. */
  readonly endpoint: string;
  /** Headers added to every request or upgrade (e.g. `Authorization`). */
  readonly headers: readonly HeaderPair[];
  /** Heartbeat interval offered by the server, in seconds (0 disables WS heartbeats). */
  readonly heartbeatIntervalSeconds?: number;
  /** Hash of the ConnectionSettingsOffers these came from; absent for the options' settings. */
  readonly offerHash?: Uint8Array;
  /** PEM client certificate, private key and CA from a certificate offer (Node only). */
  readonly certificate?: {
    /** The client certificate (PEM). */
    readonly cert: Uint8Array;
    /** Its private key (PEM). */
    readonly privateKey: Uint8Array;
    /** The CA (PEM) the server's certificate must chain to; empty when the offer had none. */
    readonly caCert: Uint8Array;
  };
  /** TLS settings from an offer (spec: TLSConnectionSettings; Node only). Absent in older states: defaults. */
  readonly tls?: StoredTlsSettings;
  /**
   * Proxy from an offer (spec: ProxyConnectionSettings; Node only). Absent: the
   * `transport.proxy` option applies (also for states saved before it existed).
   */
  readonly proxy?: StoredProxySettings;
}

/** An offered ProxyConnectionSettings, validated. */
export interface StoredProxySettings {
  /**
   * Normalised `http://` or `https://` proxy URL (credentials included, as offered), or
   * `""` for "connect directly" (an offer with an empty URL turns a proxy off).
   */
  readonly url: string;
  /** Headers for the CONNECT request, in the order offered. */
  readonly connectHeaders: readonly HeaderPair[];
}

/** Offered TLSConnectionSettings, validated; versions in Node's spelling ("TLSv1.2"). */
export interface StoredTlsSettings {
  /** PEM CAs trusted for the server certificate (`ca_pem_contents`). */
  readonly caPem?: string;
  /** Keep the system CA pool trusted next to {@link StoredTlsSettings.caPem}. */
  readonly includeSystemCa?: boolean;
  /** Do not verify the server certificate. */
  readonly insecureSkipVerify?: boolean;
  /** Lowest TLS version accepted (`min_version`); absent: Node's default. */
  readonly minVersion?: "TLSv1" | "TLSv1.1" | "TLSv1.2" | "TLSv1.3";
  /** Highest TLS version offered (`max_version`); absent: Node's default. */
  readonly maxVersion?: "TLSv1" | "TLSv1.1" | "TLSv1.2" | "TLSv1.3";
  /** IANA cipher suite names, as offered. */
  readonly cipherSuites?: readonly string[];
}

/** The remote config outcome last reported, so a restart does not re-apply it. */
export interface StoredRemoteConfigStatus {
  /** Hash of the remote config the status is about. */
  readonly hash: Uint8Array;
  /** Where applying it stood when last reported. */
  readonly status: "applying" | "applied" | "failed";
  /** Why it failed; "" otherwise. */
  readonly errorMessage: string;
}

/**
 * Everything the client persists. Every field is optional: a missing one means "never
 * set". Stores must round-trip each field exactly (bytes as bytes).
 */
export interface ClientState {
  /** The 16-byte instance UID in use. */
  readonly instanceUid?: Uint8Array;
  /** Remote config status last reported. */
  readonly remoteConfig?: StoredRemoteConfigStatus;
  /** Connection settings verified by a successful connection. */
  readonly connectionSettings?: StoredConnectionSettings;
  /** Connection settings accepted but not yet verified (retried after a crash). */
  readonly candidateConnectionSettings?: StoredConnectionSettings;
  /** The last `all_packages_hash` whose packages were all installed. */
  readonly allPackagesHash?: Uint8Array;
}

/**
 * Where a client keeps {@link ClientState}. `load` is called once at `start()`; `save`
 * after each change with the whole state. Implementations must make `save` atomic (a
 * crash never leaves a half-written state) and may reject with any error; the client
 * reports it as `storage_failed`. Prove an implementation with
 * `clientStateStoreContract` from `opamp-sdk/testing`.
 */
export interface ClientStateStore {
  /** Returns the last saved state, or undefined when nothing was saved yet. */
  load(): Promise<ClientState | undefined>;
  /** Replaces the saved state. */
  save(state: ClientState): Promise<void>;
}

/** Copies bytes so a store never shares buffers with its caller. */
function cloneState(state: ClientState): ClientState {
  return structuredClone(state);
}

/**
 * The default store: keeps state in memory for the life of the object. A new process
 * starts with nothing, so the client generates a new instance UID each time.
 */
export class MemoryClientStateStore implements ClientStateStore {
  #state: ClientState | undefined;

  /** @param initial - state to start with, e.g. a UID provisioned by an installer */
  constructor(initial?: ClientState) {
    this.#state = initial === undefined ? undefined : cloneState(initial);
  }

  /** {@inheritDoc ClientStateStore.load} */
  async load(): Promise<ClientState | undefined> {
    return this.#state === undefined ? undefined : cloneState(this.#state);
  }

  /** {@inheritDoc ClientStateStore.save} */
  async save(state: ClientState): Promise<void> {
    this.#state = cloneState(state);
  }
}
