/**
 * The in-process {@link ServerBus}: servers of one process that share one instance (and one
 * store) behave as replicas. Meant for tests and for several servers in one process; across
 * processes use `PostgresServerBus` from `opamp-sdk/storage/postgres`.
 */
import type { BusMember, BusMessageHandler, ServerBus } from "../server/bus.js";
import { OpampError } from "../wire/errors.js";

interface Member {
  readonly onMessage: BusMessageHandler;
  /** Messages waiting to be delivered, in order. */
  readonly inbox: { from: string; payload: Uint8Array }[];
  delivering: boolean;
  left: boolean;
}

/**
 * In-memory {@link ServerBus}. Messages are delivered asynchronously (never inside `send`),
 * copied, in order per sender and receiver, as a network bus would.
 */
export class InMemoryServerBus implements ServerBus {
  readonly #members = new Map<string, Member>();
  readonly #holders = new Map<string, string>();

  /** Ids of the replicas joined and not left. */
  get replicas(): readonly string[] {
    return [...this.#members.keys()];
  }

  async join(replicaId: string, onMessage: BusMessageHandler): Promise<BusMember> {
    if (typeof replicaId !== "string" || replicaId === "") {
      throw new OpampError("invalid_argument", "a replica id is a non-empty string");
    }
    const old = this.#members.get(replicaId);
    if (old !== undefined) this.#drop(replicaId, old);
    const member: Member = { onMessage, inbox: [], delivering: false, left: false };
    this.#members.set(replicaId, member);
    const check = () => {
      if (member.left) throw new OpampError("not_running", `replica ${replicaId} left the bus`);
    };
    return {
      replicaId,
      send: async (to, payload) => {
        check();
        const target = this.#members.get(to);
        if (target === undefined || target.left) return;
        target.inbox.push({ from: replicaId, payload: Uint8Array.from(payload) });
        this.#deliver(target);
      },
      claim: async (uids) => {
        check();
        const moved = new Map<string, string>();
        for (const uid of uids) {
          const previous = this.#holders.get(uid);
          if (previous !== undefined && previous !== replicaId && this.#members.has(previous)) moved.set(uid, previous);
          this.#holders.set(uid, replicaId);
        }
        return moved;
      },
      release: async (uids) => {
        check();
        for (const uid of uids) if (this.#holders.get(uid) === replicaId) this.#holders.delete(uid);
      },
      locate: async (uid) => {
        check();
        const holder = this.#holders.get(uid);
        return holder !== undefined && this.#members.has(holder) ? holder : undefined;
      },
      leave: async () => {
        if (this.#members.get(replicaId) === member) this.#drop(replicaId, member);
        member.left = true;
      },
    };
  }

  #drop(replicaId: string, member: Member): void {
    member.left = true;
    member.inbox.length = 0;
    this.#members.delete(replicaId);
    for (const [uid, holder] of this.#holders) if (holder === replicaId) this.#holders.delete(uid);
  }

  #deliver(member: Member): void {
    if (member.delivering) return;
    member.delivering = true;
    setImmediate(() => {
      member.delivering = false;
      while (member.inbox.length > 0 && !member.left) {
        const next = member.inbox.shift()!;
        try {
          member.onMessage(next.from, next.payload);
        } catch {
          // A handler that throws must not stop delivery to the others; the server never throws here.
        }
      }
    });
  }
}
