/**
 * The storage seam of the server. A store keeps what must outlive a process: agents' last
 * known state, what the server wants each agent to run, and the history of deliveries.
 * Messages are stored as protobuf bytes so a durable store never needs to know the schema.
 */

/** An agent's last known state. */
export interface StoredAgent {
  /** Canonical UUID string of the instance UID. */
  readonly instanceUid: string;
  /**
   * The reconstructed full state as a binary `AgentToServer`: every compressible field
   * last reported, plus `capabilities` and `sequence_num`.
   */
  readonly state: Uint8Array;
  /**
   * The same state in pieces, when the writer has them: binary `AgentToServer` fields
   * whose concatenation is `state`. {@link OpAMPServer} always gives them, and then
   * builds `state` only when a store reads it. The pieces are shared with the server
   * (and, for a common effective config, with other agents' states) and never modified: a
   * store in the same process can keep them as they are instead of copying the state. A
   * store that ignores this field loses nothing. Never present in what `getAgent` returns.
   */
  readonly stateFields?: readonly Uint8Array[];
  /** Clock time (ms) of the agent's latest message. */
  readonly lastSeen: number;
  /**
   * Key of the principal the instance UID is bound to (see `hooks.principalKey`). A store
   * that drops it lets the next principal after a restart take the UID.
   */
  readonly boundPrincipal?: string;
}

/** What the server wants an agent to have. Each field is the binary of the named message. */
export interface StoredDesired {
  /** Binary `AgentRemoteConfig` (config + hash). */
  readonly remoteConfig?: Uint8Array;
  /** Binary `PackagesAvailable`. */
  readonly packagesAvailable?: Uint8Array;
  /** Binary `ConnectionSettingsOffers`. */
  readonly connectionSettings?: Uint8Array;
  /**
   * Hash of the connection settings last sent to an agent that cannot report
   * connection-settings status (no ReportsConnectionSettingsStatus). The server takes such
   * an agent to hold the last offer it was sent and never sends that hash to it again, also
   * after a restart of the server: a store that drops this field lets a restarted server
   * offer the settings once more.
   */
  readonly sentConnectionSettingsHash?: Uint8Array;
}

/** What is being delivered. */
export type DeliveryKind = "remoteConfig" | "packages" | "connectionSettings";

/**
 * Where a delivery stands: offered by the server, then what the agent reported. A push of
 * what the agent already reports holding records that report's status, not "offered".
 */
export type DeliveryStatus = "offered" | "applying" | "applied" | "failed";

/** One step in a delivery's history. */
export interface DeliveryEvent {
  /** Where the delivery stood from this moment. */
  readonly status: DeliveryStatus;
  /** Clock time (ms). */
  readonly at: number;
  /** The agent's error text, with `failed`. */
  readonly errorMessage?: string;
}

/** A delivery of one hash of one kind to one agent, with its status history (oldest first). */
export interface StoredDelivery {
  /** The agent's UID, canonical lower-case UUID string. */
  readonly instanceUid: string;
  /** What was delivered. */
  readonly kind: DeliveryKind;
  /** Hash of what was delivered (remote config, packages or settings offer). */
  readonly hash: Uint8Array;
  /** Its status changes, oldest first. */
  readonly history: readonly DeliveryEvent[];
}

/**
 * Storage for {@link OpAMPServer}. Every method may reject; the server turns a rejection
 * into an `error` event with code `storage_failed` and carries on with its in-memory view.
 * Implementations must return data equal to what was written (bytes compared by value) and
 * may return the same or copied arrays. Prove an implementation with `serverStoreContract`
 * from `opamp-sdk/testing`.
 */
export interface ServerStore {
  /** The agent's last known state, or undefined if never written or deleted. */
  getAgent(instanceUid: string): Promise<StoredAgent | undefined>;
  /** Writes (replaces) the agent's state. */
  putAgent(agent: StoredAgent): Promise<void>;
  /** Forgets the agent's state, desired state and deliveries. Unknown UIDs are ignored. */
  deleteAgent(instanceUid: string): Promise<void>;
  /** What the server wants the agent to have; undefined when nothing was set. */
  getDesired(instanceUid: string): Promise<StoredDesired | undefined>;
  /** Replaces the desired state of the agent. */
  putDesired(instanceUid: string, desired: StoredDesired): Promise<void>;
  /**
   * Appends a step to the delivery (instanceUid, kind, hash), creating it when new.
   * Appending the same status as the latest step is allowed and recorded.
   */
  appendDelivery(instanceUid: string, kind: DeliveryKind, hash: Uint8Array, event: DeliveryEvent): Promise<void>;
  /** The agent's deliveries, oldest first, each with its history oldest first. */
  listDeliveries(instanceUid: string): Promise<readonly StoredDelivery[]>;
}
