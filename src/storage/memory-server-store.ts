/**
 * The default {@link ServerStore}: plain maps in the process. Nothing survives a restart of
 * the process, but the same instance can be shared by two servers in one process.
 */
import { createHash } from "node:crypto";
import { type Clock, systemClock } from "../internal/clock.js";
import { Interner, splitFields } from "../server/shared-state.js";
import type {
  DeliveryEvent,
  DeliveryKind,
  ServerStore,
  StoredAgent,
  StoredDelivery,
  StoredDesired,
} from "../server/store.js";
import { concatBytes, sameBytes } from "../wire/bytes.js";
import { OpampError } from "../wire/errors.js";

interface MutableDelivery {
  readonly instanceUid: string;
  readonly kind: DeliveryKind;
  readonly hash: Uint8Array;
  readonly history: DeliveryEvent[];
}

/** Fields at least this long are held once for every agent whose state contains them. */
const SHARED_FIELD_BYTES = 1024;

/**
 * AgentToServer.agent_description: never shared. Its identifying attributes make it unique
 * to the agent, so hashing and interning it (a SHA-256, a WeakRef and a finalizer whenever
 * it is written new) only costs time and memory.
 */
const AGENT_DESCRIPTION_FIELD = 3;

/** What one held agent costs besides its state bytes (map entries, objects), in bytes. */
const AGENT_OVERHEAD_BYTES = 256;
/** What one delivery event costs besides its hash and error message, in bytes. */
const EVENT_OVERHEAD_BYTES = 64;

/** Default most agents an {@link InMemoryServerStore} holds: 1 000 000. */
export const DEFAULT_STORE_MAX_AGENTS = 1_000_000;
/** Default most bytes of agents' state and deliveries an {@link InMemoryServerStore} holds: 1 GiB. */
export const DEFAULT_STORE_MAX_BYTES = 1024 * 1024 * 1024;
/** Default time after which an {@link InMemoryServerStore} forgets an agent not written since: 24 h. */
export const DEFAULT_STORE_AGENT_TTL_MS = 24 * 60 * 60 * 1000;
/** Default deliveries an {@link InMemoryServerStore} keeps per agent (oldest dropped first). */
export const DEFAULT_STORE_MAX_DELIVERIES_PER_AGENT = 100;

/** Options of {@link InMemoryServerStore}; each bound has a default. */
export interface InMemoryServerStoreOptions {
  /** Deliveries kept per agent, oldest dropped first. Default {@link DEFAULT_STORE_MAX_DELIVERIES_PER_AGENT}. */
  readonly maxDeliveriesPerAgent?: number;
  /**
   * Agents (instance UIDs with a state or deliveries) held at most; past it the agent
   * written least recently is forgotten. Default {@link DEFAULT_STORE_MAX_AGENTS}.
   */
  readonly maxAgents?: number;
  /**
   * Bytes of agents' states and deliveries held at most (a state piece shared by several
   * agents counts once, plus a fixed overhead per agent and per delivery event); past it
   * the agent written least recently is forgotten. Default {@link DEFAULT_STORE_MAX_BYTES}.
   */
  readonly maxBytes?: number;
  /**
   * An agent whose state and deliveries were not written for this long is forgotten.
   * Default {@link DEFAULT_STORE_AGENT_TTL_MS}.
   */
  readonly agentTtlMs?: number;
  /** Time source for `agentTtlMs`. Default the system clock. */
  readonly clock?: Clock;
}

/** An agent's state as its top-level protobuf fields, large ones shared between agents. */
interface HeldAgent {
  readonly instanceUid: string;
  readonly lastSeen: number;
  readonly fields: readonly Uint8Array[];
  readonly boundPrincipal: string | undefined;
}

/**
 * In-memory {@link ServerStore}. Agent states given as `stateFields` are kept as those
 * pieces (the writer does not change them); states given only as bytes are copied in,
 * large fields shared between agents holding equal ones. Desired state and hashes are
 * kept by reference, so a caller must not change those bytes after writing them (the
 * server never does).
 *
 * Bounded, since agents can make it hold what they report: an agent is forgotten (its
 * state and deliveries, as `deleteAgent` would, but not its desired state) once it was not
 * written for `agentTtlMs`, or, least recently written first, while more than `maxAgents`
 * agents or `maxBytes` bytes are held. A forgotten agent that comes back is unknown to the
 * server, which asks it for its full state. Desired state is what the application decided
 * and is kept until `deleteAgent`; writing an empty desired state holds nothing. Nothing
 * survives a restart of the process; one instance may serve two servers in one process.
 * No timer: expired agents are dropped as the store is written and read.
 *
 * @throws OpampError `invalid_argument` (constructor) for a bound that is not a positive integer.
 */
export class InMemoryServerStore implements ServerStore {
  readonly #agents = new Map<string, HeldAgent>();
  /** Large fields (typically the same effective config on many agents) by content. */
  readonly #shared = new Interner<Uint8Array>();
  /** The large field shared last (one held strongly). */
  #lastShared: Uint8Array | undefined;
  readonly #desired = new Map<string, StoredDesired>();
  readonly #deliveries = new Map<string, MutableDelivery[]>();
  /** Each agent's last write. */
  readonly #written = new Map<string, WriteMark>();
  /**
   * Writes, least recent first (the eviction order); a mark no longer in `#written` for its
   * agent is stale and skipped. Not a delete and re-insert in `#written`: a Map keeps the
   * slots of deleted keys until it grows again, and walking it from the start then passes
   * over every one of them — at fleet scale a scan of thousands of slots per write.
   */
  #order: WriteMark[] = [];
  /** Index of the first mark of `#order` not yet passed. */
  #head = 0;
  /** Bytes each agent holds on its own (unshared state pieces, deliveries, overhead). */
  readonly #ownBytes = new Map<string, number>();
  /** Holders of each large state piece: a piece costs its bytes once, however many hold it. */
  readonly #pieceHolders = new Map<Uint8Array, number>();
  #bytes = 0;
  readonly #maxDeliveries: number;
  readonly #maxAgents: number;
  readonly #maxBytes: number;
  readonly #ttlMs: number;
  readonly #clock: Clock;

  constructor(options: InMemoryServerStoreOptions = {}) {
    this.#maxDeliveries = bound(
      options.maxDeliveriesPerAgent,
      DEFAULT_STORE_MAX_DELIVERIES_PER_AGENT,
      "maxDeliveriesPerAgent",
    );
    this.#maxAgents = bound(options.maxAgents, DEFAULT_STORE_MAX_AGENTS, "maxAgents");
    this.#maxBytes = bound(options.maxBytes, DEFAULT_STORE_MAX_BYTES, "maxBytes");
    this.#ttlMs = bound(options.agentTtlMs, DEFAULT_STORE_AGENT_TTL_MS, "agentTtlMs");
    this.#clock = options.clock ?? systemClock;
  }

  /** Agents held (with a state or deliveries). */
  get agentCount(): number {
    return this.#written.size;
  }

  /** Bytes held for agents' states and deliveries, as counted against `maxBytes`. */
  get heldBytes(): number {
    return this.#bytes;
  }

  async getAgent(instanceUid: string): Promise<StoredAgent | undefined> {
    if (this.#expired(instanceUid)) return undefined;
    const held = this.#agents.get(instanceUid);
    if (held === undefined) return undefined;
    const fields = held.fields;
    const state = fields.length === 1 ? fields[0]! : concatBytes(fields);
    const agent = { instanceUid: held.instanceUid, lastSeen: held.lastSeen, state };
    return held.boundPrincipal === undefined ? agent : { ...agent, boundPrincipal: held.boundPrincipal };
  }

  /**
   * Keeps the state as its top-level fields. Given `stateFields` (what OpAMPServer writes),
   * it keeps those pieces as they are: no copy, and no work beyond the write itself; the
   * server already shares the effective config between agents. Given only `state`, a large
   * field equal to one another agent holds (the same effective config) is kept once; work
   * is then one pass over the bytes and, for a large field that changed, one SHA-256.
   */
  async putAgent(agent: StoredAgent): Promise<void> {
    this.#expired(agent.instanceUid);
    const pieces = agent.stateFields;
    const fields = pieces !== undefined ? [...pieces] : this.#fieldsOf(agent);
    const id = agent.instanceUid;
    this.#releaseState(this.#agents.get(id));
    const held = { instanceUid: id, lastSeen: agent.lastSeen, fields, boundPrincipal: agent.boundPrincipal };
    this.#agents.set(id, held);
    this.#holdState(held);
    this.#touch(id);
  }

  #fieldsOf(agent: StoredAgent): Uint8Array[] {
    const previous = this.#agents.get(agent.instanceUid)?.fields;
    const split = splitFields(agent.state);
    let fields: Uint8Array[];
    if (split === undefined) {
      fields = [new Uint8Array(agent.state)];
    } else {
      // Runs of small fields go together into one array (one allocation, not one per
      // field); field order is kept so the bytes read back are the bytes written.
      fields = [];
      let run: Uint8Array[] = [];
      const endRun = () => {
        if (run.length > 0) fields.push(concatBytes(run));
        run = [];
      };
      for (const { field, bytes } of split) {
        if (bytes.length < SHARED_FIELD_BYTES || field === AGENT_DESCRIPTION_FIELD) {
          run.push(bytes);
          continue;
        }
        endRun();
        const before = previous?.[fields.length];
        if (before !== undefined && Buffer.compare(before, bytes) === 0) {
          fields.push(before);
          continue;
        }
        // After a fan-out every agent stores the same new config: try the last one first.
        const last = this.#lastShared;
        if (last !== undefined && last.length === bytes.length && Buffer.compare(last, bytes) === 0) {
          fields.push(last);
          continue;
        }
        const key = createHash("sha256").update(bytes).digest("base64");
        let shared = this.#shared.get(key);
        if (shared === undefined) {
          shared = new Uint8Array(bytes);
          this.#shared.set(key, shared);
        }
        this.#lastShared = shared;
        fields.push(shared);
      }
      endRun();
    }
    return fields;
  }

  async deleteAgent(instanceUid: string): Promise<void> {
    this.#forget(instanceUid);
    this.#desired.delete(instanceUid);
  }

  async getDesired(instanceUid: string): Promise<StoredDesired | undefined> {
    return this.#desired.get(instanceUid);
  }

  async putDesired(instanceUid: string, desired: StoredDesired): Promise<void> {
    const kept = { ...desired };
    // Nothing desired is held as nothing (the server writes that when it moves an agent).
    if (
      kept.remoteConfig === undefined &&
      kept.packagesAvailable === undefined &&
      kept.connectionSettings === undefined
    ) {
      this.#desired.delete(instanceUid);
    } else {
      this.#desired.set(instanceUid, kept);
    }
  }

  async appendDelivery(instanceUid: string, kind: DeliveryKind, hash: Uint8Array, event: DeliveryEvent): Promise<void> {
    this.#expired(instanceUid);
    let list = this.#deliveries.get(instanceUid);
    if (list === undefined) {
      list = [];
      this.#deliveries.set(instanceUid, list);
    }
    let delivery = list.find((d) => d.kind === kind && sameBytes(d.hash, hash));
    if (delivery === undefined) {
      delivery = { instanceUid, kind, hash, history: [] };
      list.push(delivery);
      this.#addOwn(instanceUid, hash.length);
      if (list.length > this.#maxDeliveries) this.#addOwn(instanceUid, -deliveryBytes(list.shift()!));
    }
    const step = { ...event };
    delivery.history.push(step);
    this.#addOwn(instanceUid, eventBytes(step));
    this.#touch(instanceUid);
  }

  async listDeliveries(instanceUid: string): Promise<readonly StoredDelivery[]> {
    if (this.#expired(instanceUid)) return [];
    const list = this.#deliveries.get(instanceUid) ?? [];
    return list.map((d) => ({ ...d, history: [...d.history] }));
  }

  /** Marks the agent written now (last in the eviction order) and applies the bounds. */
  #touch(instanceUid: string): void {
    if (!this.#written.has(instanceUid)) this.#addOwn(instanceUid, AGENT_OVERHEAD_BYTES);
    const now = this.#clock.now();
    const mark: WriteMark = { id: instanceUid, at: now };
    this.#written.set(instanceUid, mark);
    this.#order.push(mark);
    const expiry = now - this.#ttlMs;
    const order = this.#order;
    while (this.#head < order.length) {
      const oldest = order[this.#head]!;
      if (this.#written.get(oldest.id) !== oldest) {
        this.#head++; // stale: written again since
        continue;
      }
      // The agent just written stays, even alone over the bounds: its state is what the server has.
      if (oldest === mark) break;
      if (this.#written.size <= this.#maxAgents && this.#bytes <= this.#maxBytes && oldest.at > expiry) break;
      this.#forget(oldest.id);
      this.#head++;
    }
    // Passed marks are dropped once they are most of the array, and stale marks once they
    // outnumber the agents (an agent that is never written again holds the head): each
    // at most after as many writes as it drops, so amortised O(1) per write.
    if (this.#head > 1024 && this.#head * 2 > order.length) {
      this.#order = order.slice(this.#head);
      this.#head = 0;
    } else if (order.length - this.#head > 2 * this.#written.size + 1024) {
      this.#order = order.slice(this.#head).filter((m) => this.#written.get(m.id) === m);
      this.#head = 0;
    }
  }

  /** True (and the agent forgotten) when it was not written within `agentTtlMs`. */
  #expired(instanceUid: string): boolean {
    const at = this.#written.get(instanceUid)?.at;
    if (at === undefined || at > this.#clock.now() - this.#ttlMs) return false;
    this.#forget(instanceUid);
    return true;
  }

  /** Drops the agent's state and deliveries (not its desired state). */
  #forget(instanceUid: string): void {
    this.#releaseState(this.#agents.get(instanceUid));
    this.#agents.delete(instanceUid);
    this.#deliveries.delete(instanceUid);
    this.#written.delete(instanceUid);
    this.#bytes -= this.#ownBytes.get(instanceUid) ?? 0;
    this.#ownBytes.delete(instanceUid);
  }

  #addOwn(instanceUid: string, bytes: number): void {
    this.#ownBytes.set(instanceUid, (this.#ownBytes.get(instanceUid) ?? 0) + bytes);
    this.#bytes += bytes;
  }

  #holdState(held: HeldAgent): void {
    for (const piece of held.fields) {
      if (piece.length < SHARED_FIELD_BYTES) {
        this.#addOwn(held.instanceUid, piece.length);
        continue;
      }
      const holders = this.#pieceHolders.get(piece) ?? 0;
      if (holders === 0) this.#bytes += piece.length;
      this.#pieceHolders.set(piece, holders + 1);
    }
  }

  #releaseState(held: HeldAgent | undefined): void {
    if (held === undefined) return;
    for (const piece of held.fields) {
      if (piece.length < SHARED_FIELD_BYTES) {
        this.#addOwn(held.instanceUid, -piece.length);
        continue;
      }
      const holders = (this.#pieceHolders.get(piece) ?? 1) - 1;
      if (holders > 0) {
        this.#pieceHolders.set(piece, holders);
      } else {
        this.#pieceHolders.delete(piece);
        this.#bytes -= piece.length;
      }
    }
  }
}

function eventBytes(event: DeliveryEvent): number {
  return EVENT_OVERHEAD_BYTES + (event.errorMessage?.length ?? 0) * 2;
}

function deliveryBytes(delivery: MutableDelivery): number {
  let bytes = delivery.hash.length;
  for (const event of delivery.history) bytes += eventBytes(event);
  return bytes;
}

function bound(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new OpampError("invalid_argument", `InMemoryServerStore: ${name} must be a positive integer`);
  }
  return value;
}

/** One write of an agent, in the store's eviction order. */
interface WriteMark {
  readonly id: string;
  readonly at: number;
}
