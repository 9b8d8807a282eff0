/**
 * One downstream agent connection as the gateway core sees it, whatever its transport:
 * the upstream it is assigned to, the instance UIDs it spoke for, and its queue of
 * messages waiting for that upstream.
 */
import type { GoHeaders } from "../wire/gateway-protocol.js";
import type { GatewayAgent } from "./events.js";
import type { UpstreamConnection } from "./upstream-connection.js";

/** What the gateway knows of one instance UID a link spoke for. */
export interface UidEntry {
  /** Canonical string. */
  readonly id: string;
  readonly bytes: Uint8Array;
  /** `sequence_num` of its latest message (a synthesised goodbye continues it). */
  seq: bigint;
  /** Tied (extension `attach`) to the link's request on its current upstream. */
  attached: boolean;
  /** A message for it went out on the current upstream (the server knows it there). */
  forwarded: boolean;
  /** Attached by the downstream gateway itself (a chained gateway): its messages pass as they are. */
  relayed: boolean;
  /** A server message was delivered to it (the custom capabilities were injected then). */
  delivered: boolean;
  /** The agent sent its own agent_disconnect. */
  goodbye: boolean;
}

/** A fresh entry for a UID a link speaks for (`bytes` copied: the frame it came in goes). */
export function newEntry(id: string, bytes: Uint8Array): UidEntry {
  return {
    id,
    bytes: Uint8Array.from(bytes),
    seq: 0n,
    attached: false,
    forwarded: false,
    relayed: false,
    delivered: false,
    goodbye: false,
  };
}

/** One message waiting for the upstream. */
export interface QueuedFrame {
  /** The whole WebSocket message (header byte + protobuf), as the agent sent it. */
  readonly bytes: Uint8Array;
  /** performance.now() at receipt, for the latency metric. */
  readonly receivedAt: number;
  /** The UID it speaks for; undefined for a chained gateway's control message. */
  readonly entry: UidEntry | undefined;
}

/**
 * Why an agent connection ended (the `agentDisconnected` event): `closed` by the agent;
 * `refused` (authentication, the server, or too many UIDs on one connection);
 * `slow_consumer` (its unsent bytes passed `limits.maxBufferedBytesPerAgent`);
 * `upstream_unavailable` (the upstream connection a chained gateway used was lost);
 * `timeout` (handshake, the server's auth answer, or HTTP silence); `protocol_error` (a text,
 * malformed or oversized message); `stopped` (the gateway stopped).
 */
export type LinkCloseReason =
  | "closed"
  | "refused"
  | "slow_consumer"
  | "upstream_unavailable"
  | "timeout"
  | "protocol_error"
  | "stopped";

/** A small FIFO with O(1) push and shift. */
export class Fifo<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head > 64 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  peek(): T | undefined {
    return this.#items[this.#head];
  }

  clear(): void {
    this.#items = [];
    this.#head = 0;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = this.#head; i < this.#items.length; i++) yield this.#items[i] as T;
  }
}

let nextLinkId = 1;

/** The transport-specific half of a link (a WebSocket, an HTTP session, a relayed socket). */
export abstract class AgentLink {
  readonly id = nextLinkId++;
  abstract readonly transport: "websocket" | "http";
  /** The pool member it is assigned to; undefined while it waits for one. */
  upstream: UpstreamConnection | undefined;
  /** Delegated auth: the accepted request (`request_uid`) on the current upstream. */
  requestUid: string | undefined;
  /** `pending` until authenticated; `moving` between upstreams; `closed` at the end. */
  state: "pending" | "ready" | "moving" | "closed" = "pending";
  readonly uids = new Map<string, UidEntry>();
  /** Former UIDs still routed here after the server gave the agent a new one. */
  readonly aliases = new Set<string>();
  readonly queue = new Fifo<QueuedFrame>();
  queuedBytes = 0;
  /** In its upstream's ready list. */
  scheduled = false;
  /** The downstream connection is a gateway (it relayed a `connect`). */
  relaysGateway = false;
  /** Request UIDs of the `connect`s it relayed, whose answers go back to it. */
  readonly relayedRequests = new Set<string>();

  constructor(
    /**
     * The request's headers and address, kept to authenticate again after a move (an HTTP
     * agent's are those of its latest poll).
     */
    public auth: { readonly headers: GoHeaders; readonly remoteAddress: string },
    /** The agent's address as node saw it. */
    readonly remoteAddress: string | undefined,
  ) {}

  /** A snapshot for events. */
  view(): GatewayAgent {
    return {
      id: this.id,
      transport: this.transport,
      remoteAddress: this.remoteAddress,
      instanceUids: [...this.uids.keys()],
      upstream: this.upstream?.id,
    };
  }

  /** Hands one server → agent message (a whole WebSocket message) to the agent. */
  abstract deliver(frame: Uint8Array, receivedAt: number): void;
  /**
   * Ends the agent's connection: WebSocket close `code`, or `status` for an HTTP agent's
   * waiting poll. The core then forgets the link.
   */
  abstract close(code: number, reason: string, status: number, why: LinkCloseReason): void;
  /** Stop reading the agent (its queue is full). */
  abstract pauseReading(): void;
  /** Read the agent again. */
  abstract resumeReading(): void;
  /** True while reading is paused. */
  abstract readonly paused: boolean;
  /** The agent was moved to another upstream: ask it for its full state. */
  abstract requestFullState(): void;
}
