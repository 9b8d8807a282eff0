/**
 * The default {@link ServerStore}: plain maps in the process. Nothing survives a restart of
 * the process, but the same instance can be shared by two servers in one process.
 */
import { createHash } from "node:crypto";
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

/** An agent's state as its top-level protobuf fields, large ones shared between agents. */
interface HeldAgent {
  readonly instanceUid: string;
  readonly lastSeen: number;
  readonly fields: readonly Uint8Array[];
  readonly boundPrincipal: string | undefined;
}

/**
 * In-memory {@link ServerStore}. Agent states given as `stateFields` are kept as those
 * pieces (the writer does not change them); states given only as bytes are copied in, large
 * fields shared between agents holding equal ones. Desired state and hashes are kept by reference, so a caller
 * must not change those bytes after writing them (the server never does). Deliveries per agent are capped
 * at `maxDeliveriesPerAgent` (oldest dropped first, default 100).
 */
export class InMemoryServerStore implements ServerStore {
  readonly #agents = new Map<string, HeldAgent>();
  /** Large fields (typically the same effective config on many agents) by content. */
  readonly #shared = new Interner<Uint8Array>();
  /** The large field shared last (one held strongly). */
  #lastShared: Uint8Array | undefined;
  readonly #desired = new Map<string, StoredDesired>();
  readonly #deliveries = new Map<string, MutableDelivery[]>();
  readonly #maxDeliveries: number;

  constructor(options?: { readonly maxDeliveriesPerAgent?: number }) {
    this.#maxDeliveries = options?.maxDeliveriesPerAgent ?? 100;
  }

  async getAgent(instanceUid: string): Promise<StoredAgent | undefined> {
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
    const pieces = agent.stateFields;
    const fields = pieces !== undefined ? [...pieces] : this.#fieldsOf(agent);
    this.#agents.set(agent.instanceUid, {
      instanceUid: agent.instanceUid,
      lastSeen: agent.lastSeen,
      fields,
      boundPrincipal: agent.boundPrincipal,
    });
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
    this.#agents.delete(instanceUid);
    this.#desired.delete(instanceUid);
    this.#deliveries.delete(instanceUid);
  }

  async getDesired(instanceUid: string): Promise<StoredDesired | undefined> {
    return this.#desired.get(instanceUid);
  }

  async putDesired(instanceUid: string, desired: StoredDesired): Promise<void> {
    this.#desired.set(instanceUid, { ...desired });
  }

  async appendDelivery(instanceUid: string, kind: DeliveryKind, hash: Uint8Array, event: DeliveryEvent): Promise<void> {
    let list = this.#deliveries.get(instanceUid);
    if (list === undefined) {
      list = [];
      this.#deliveries.set(instanceUid, list);
    }
    let delivery = list.find((d) => d.kind === kind && sameBytes(d.hash, hash));
    if (delivery === undefined) {
      delivery = { instanceUid, kind, hash, history: [] };
      list.push(delivery);
      if (list.length > this.#maxDeliveries) list.shift();
    }
    delivery.history.push({ ...event });
  }

  async listDeliveries(instanceUid: string): Promise<readonly StoredDelivery[]> {
    const list = this.#deliveries.get(instanceUid) ?? [];
    return list.map((d) => ({ ...d, history: [...d.history] }));
  }
}
