/**
 * The primary's side of a node:cluster deployment: it holds the bus (which replica holds
 * which agent, the relay of messages between replicas) and, for workers that use
 * `ClusterServerStore`, the shared store. Workers reach it over their IPC channels.
 */
import type { ServerStore, StoredAgent, StoredDelivery, StoredDesired } from "../../server/store.js";
import { OpampError } from "../../wire/errors.js";
import { InMemoryServerStore } from "../memory-server-store.js";
import {
  Batcher,
  type ClusterPort,
  type ClusterSerialization,
  isFrame,
  type PrimaryItem,
  packBytes,
  type RequestItem,
  unpackBytes,
} from "./ipc.js";

/** Options of {@link ClusterHub}. */
export interface ClusterHubOptions {
  /**
   * The store the workers' `ClusterServerStore`s read and write. Default a new
   * `InMemoryServerStore` with its default bounds: the fleet's state then lives as long as
   * the primary, and survives the loss of any worker.
   */
  readonly store?: ServerStore;
}

/** Options of {@link ClusterHub.attach}. */
export interface ClusterAttachOptions {
  /** How the channel serializes messages; the worker's side must say the same. Default `"advanced"`. */
  readonly serialization?: ClusterSerialization;
}

interface Member {
  readonly replicaId: string;
  readonly link: Link;
  /** Distinguishes a member from a later one that joined with the same id. */
  readonly token: number;
}

interface Link {
  readonly port: ClusterPort;
  readonly serialization: ClusterSerialization;
  readonly out: Batcher<PrimaryItem>;
  readonly members: Set<Member>;
  detached: boolean;
}

type Handler = (link: Link, args: readonly unknown[]) => unknown;

/**
 * The primary's hub. Attach each worker's channel (`startCluster` does this for you); the
 * workers' `ClusterServerBus` and `ClusterServerStore` then act on it. When a worker's
 * channel is detached (it died or stopped), its replicas leave the bus at once: their
 * agents reconnect to the other workers without waiting for a timeout.
 *
 * Requests are carried out in the order each worker sent them; a store that rejects gives
 * its error code (or `storage_failed`) to the worker.
 */
export class ClusterHub {
  /** The store held for the workers. */
  readonly store: ServerStore;
  readonly #members = new Map<string, Member>();
  readonly #holders = new Map<string, Member>();
  readonly #links = new Set<Link>();
  #nextToken = 1;
  readonly #handlers: Record<string, Handler>;

  constructor(options: ClusterHubOptions = {}) {
    this.store = options.store ?? new InMemoryServerStore();
    this.#handlers = {
      join: (link, [replicaId]) => this.#join(link, str(replicaId, "replica id")),
      send: (link, [token, to, payload]) => this.#send(this.#member(link, token), str(to, "replica id"), payload),
      claim: (link, [token, uids]) => this.#claim(this.#member(link, token), strings(uids)),
      release: (link, [token, uids]) => this.#release(this.#member(link, token), strings(uids)),
      locate: (link, [token, uid]) => {
        this.#member(link, token);
        return this.#holders.get(str(uid, "instance UID"))?.replicaId;
      },
      leave: (link, [token]) => {
        const member = [...link.members].find((m) => m.token === token);
        if (member !== undefined) this.#drop(member);
      },
      getAgent: async (link, [uid]) => {
        const agent = await this.store.getAgent(str(uid, "instance UID"));
        return agent === undefined ? undefined : packAgent(agent, link.serialization);
      },
      putAgent: (_link, [agent]) => this.store.putAgent(unpackAgent(agent)),
      deleteAgent: (_link, [uid]) => this.store.deleteAgent(str(uid, "instance UID")),
      getDesired: async (link, [uid]) => {
        const desired = await this.store.getDesired(str(uid, "instance UID"));
        return desired === undefined ? undefined : packDesired(desired, link.serialization);
      },
      putDesired: (_link, [uid, desired]) => this.store.putDesired(str(uid, "instance UID"), unpackDesired(desired)),
      appendDelivery: (_link, [uid, kind, hash, event]) =>
        this.store.appendDelivery(
          str(uid, "instance UID"),
          kind as StoredDelivery["kind"],
          unpackBytes(hash, "a delivery hash"),
          event as StoredDelivery["history"][number],
        ),
      listDeliveries: async (link, [uid]) => {
        const list = await this.store.listDeliveries(str(uid, "instance UID"));
        return list.map((d) => ({ ...d, hash: packBytes(d.hash, link.serialization) }));
      },
    };
  }

  /** Replica ids joined through any attached channel. */
  get replicas(): readonly string[] {
    return [...this.#members.keys()];
  }

  /**
   * Serves the worker at the other end of `port` until the returned function is called
   * (call it when the worker exits). Messages on the channel that are not opamp-sdk's are
   * left alone.
   */
  attach(port: ClusterPort, options: ClusterAttachOptions = {}): () => void {
    const serialization = options.serialization ?? "advanced";
    const link: Link = {
      port,
      serialization,
      members: new Set(),
      detached: false,
      out: new Batcher<PrimaryItem>(
        () => (link.detached ? undefined : port),
        // The worker is gone; its exit detaches it.
        () => undefined,
      ),
    };
    const listener = (message: unknown) => {
      if (isFrame(message)) for (const item of message.items) void this.#handle(link, item as RequestItem);
    };
    port.on("message", listener);
    this.#links.add(link);
    return () => {
      if (link.detached) return;
      link.detached = true;
      port.off("message", listener);
      this.#links.delete(link);
      for (const member of [...link.members]) this.#drop(member);
    };
  }

  async #handle(link: Link, item: RequestItem): Promise<void> {
    // Own properties only: "constructor" and the like are not requests.
    const handler =
      typeof item?.op === "string" && Object.hasOwn(this.#handlers, item.op) ? this.#handlers[item.op] : undefined;
    let answer: PrimaryItem;
    try {
      if (handler === undefined || !Array.isArray(item.args)) {
        throw new OpampError("malformed_message", `an unknown cluster request ${String(item?.op)}`);
      }
      const value = await handler(link, item.args);
      answer = value === undefined ? { re: item.id, ok: true } : { re: item.id, ok: true, value };
    } catch (e) {
      const error = OpampError.from(e, "storage_failed");
      answer = { re: item.id, ok: false, code: error.code, message: error.message };
    }
    if (item?.id !== 0 && !link.detached) link.out.push(answer);
  }

  #member(link: Link, token: unknown): Member {
    for (const m of link.members) if (m.token === token) return m;
    throw new OpampError("not_running", "this replica left the bus (or another joined with its id)");
  }

  #join(link: Link, replicaId: string): number {
    if (replicaId === "") throw new OpampError("invalid_argument", "a replica id is a non-empty string");
    const old = this.#members.get(replicaId);
    if (old !== undefined) this.#drop(old);
    const member: Member = { replicaId, link, token: this.#nextToken++ };
    this.#members.set(replicaId, member);
    link.members.add(member);
    return member.token;
  }

  #send(from: Member, to: string, payload: unknown): void {
    const target = this.#members.get(to);
    if (target === undefined) return;
    const bytes = unpackBytes(payload, "a bus message");
    target.link.out.push({
      deliver: to,
      from: from.replicaId,
      payload: packBytes(bytes, target.link.serialization),
    });
  }

  #claim(member: Member, uids: readonly string[]): [string, string][] {
    const moved: [string, string][] = [];
    for (const uid of uids) {
      const previous = this.#holders.get(uid);
      if (previous !== undefined && previous !== member) moved.push([uid, previous.replicaId]);
      this.#holders.set(uid, member);
    }
    return moved;
  }

  #release(member: Member, uids: readonly string[]): void {
    for (const uid of uids) if (this.#holders.get(uid) === member) this.#holders.delete(uid);
  }

  #drop(member: Member): void {
    member.link.members.delete(member);
    if (this.#members.get(member.replicaId) === member) this.#members.delete(member.replicaId);
    for (const [uid, holder] of this.#holders) if (holder === member) this.#holders.delete(uid);
  }
}

function str(value: unknown, what: string): string {
  if (typeof value !== "string") throw new OpampError("malformed_message", `a cluster request without a ${what}`);
  return value;
}

function strings(value: unknown): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw new OpampError("malformed_message", "a cluster request without its instance UIDs");
  }
  return value;
}

const DESIRED_FIELDS = [
  "remoteConfig",
  "packagesAvailable",
  "connectionSettings",
  "sentConnectionSettingsHash",
] as const;

/** StoredAgent as it crosses the channel: `state` whole, never `stateFields`. */
export function packAgent(agent: StoredAgent, serialization: ClusterSerialization): unknown {
  const packed: Record<string, unknown> = {
    instanceUid: agent.instanceUid,
    lastSeen: agent.lastSeen,
    state: packBytes(agent.state, serialization),
  };
  if (agent.boundPrincipal !== undefined) packed.boundPrincipal = agent.boundPrincipal;
  return packed;
}

export function unpackAgent(value: unknown): StoredAgent {
  const v = (value ?? {}) as Record<string, unknown>;
  if (typeof v.instanceUid !== "string" || typeof v.lastSeen !== "number") {
    throw new OpampError("malformed_message", "a stored agent without its instance UID or last-seen time");
  }
  const agent = { instanceUid: v.instanceUid, lastSeen: v.lastSeen, state: unpackBytes(v.state, "an agent's state") };
  return typeof v.boundPrincipal === "string" ? { ...agent, boundPrincipal: v.boundPrincipal } : agent;
}

export function packDesired(desired: StoredDesired, serialization: ClusterSerialization): unknown {
  const packed: Record<string, unknown> = {};
  for (const field of DESIRED_FIELDS) {
    const bytes = desired[field];
    if (bytes !== undefined) packed[field] = packBytes(bytes, serialization);
  }
  return packed;
}

export function unpackDesired(value: unknown): StoredDesired {
  const v = (value ?? {}) as Record<string, unknown>;
  const desired: { -readonly [K in keyof StoredDesired]: StoredDesired[K] } = {};
  for (const field of DESIRED_FIELDS) {
    if (v[field] !== undefined) desired[field] = unpackBytes(v[field], `desired ${field}`);
  }
  return desired;
}
