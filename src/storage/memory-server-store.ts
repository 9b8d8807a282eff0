/**
 * The default {@link ServerStore}: plain maps in the process. Nothing survives a restart of
 * the process, but the same instance can be shared by two servers in one process.
 */
import type {
  DeliveryEvent,
  DeliveryKind,
  ServerStore,
  StoredAgent,
  StoredDelivery,
  StoredDesired,
} from "../server/store.js";

interface MutableDelivery {
  readonly instanceUid: string;
  readonly kind: DeliveryKind;
  readonly hash: Uint8Array;
  readonly history: DeliveryEvent[];
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * In-memory {@link ServerStore}. Stored arrays are kept by reference, so a caller must not
 * change bytes after writing them (the server never does). Deliveries per agent are capped
 * at `maxDeliveriesPerAgent` (oldest dropped first, default 100).
 */
export class InMemoryServerStore implements ServerStore {
  readonly #agents = new Map<string, StoredAgent>();
  readonly #desired = new Map<string, StoredDesired>();
  readonly #deliveries = new Map<string, MutableDelivery[]>();
  readonly #maxDeliveries: number;

  constructor(options?: { readonly maxDeliveriesPerAgent?: number }) {
    this.#maxDeliveries = options?.maxDeliveriesPerAgent ?? 100;
  }

  async getAgent(instanceUid: string): Promise<StoredAgent | undefined> {
    return this.#agents.get(instanceUid);
  }

  async putAgent(agent: StoredAgent): Promise<void> {
    this.#agents.set(agent.instanceUid, { ...agent });
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
