/**
 * The replica seam of the server. Several OpAMPServer processes (replicas) sharing one
 * store also share a bus: it says which replica holds each connected agent, and carries
 * small messages between replicas, so that a push made on one replica reaches an agent
 * connected to another. Prove an implementation with `serverBusContract` from
 * `opamp-sdk/testing`.
 */

/** Called with every message another replica sent to this one, in the order it was sent. */
export type BusMessageHandler = (from: string, payload: Uint8Array) => void;

/**
 * A bus several replicas join. One bus object may be joined by several servers of one
 * process (as with the in-memory bus); a bus on a database is joined once per process.
 */
export interface ServerBus {
  /**
   * Joins as replica `replicaId` (unique among live replicas: joining with the id of a live
   * member takes its place, and its claims are dropped). `onMessage` gets what other
   * replicas send to this one until `leave()`.
   *
   * @throws OpampError (as a rejection) `storage_failed` when the bus cannot be reached.
   */
  join(replicaId: string, onMessage: BusMessageHandler): Promise<BusMember>;
}

/** One replica's membership of a {@link ServerBus}. Methods may reject (`storage_failed`). */
export interface BusMember {
  /** The replica id given to `join`. */
  readonly replicaId: string;
  /**
   * Sends `payload` to replica `to`. Best effort: it resolves once the bus took the message,
   * not when it was received; a message to a replica that is gone is dropped. Messages
   * from one member to another arrive in the order they were sent, whatever their size.
   */
  send(to: string, payload: Uint8Array): Promise<void>;
  /**
   * Records the agents as connected to this replica. Resolves with the agents another live
   * replica held until now, and which one (an agent that moved: it reconnected or polled
   * here).
   */
  claim(instanceUids: readonly string[]): Promise<ReadonlyMap<string, string>>;
  /** Forgets agents this replica holds; agents held by another replica are left alone. */
  release(instanceUids: readonly string[]): Promise<void>;
  /** The live replica holding the agent (this one included), or undefined. */
  locate(instanceUid: string): Promise<string | undefined>;
  /** Leaves: this replica's claims are dropped and nothing more is delivered. Idempotent. */
  leave(): Promise<void>;
}
