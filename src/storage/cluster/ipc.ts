/**
 * The IPC framing shared by the cluster's primary (the hub) and its workers: requests from
 * a worker, answers and relayed bus messages from the primary. What is sent within one
 * turn of the event loop travels together (a batch, up to MAX_BATCH_ITEMS): a connect storm
 * of 10,000 agents makes 10,000 claims, and one `process.send` each would cost more than
 * the claims.
 */
import { type Clock, systemClock, type TimerHandle } from "../../internal/clock.js";
import { isOpampErrorCode, OpampError } from "../../wire/errors.js";

/**
 * One end of an IPC channel: `process` in a worker, a `cluster.Worker` (or a
 * `ChildProcess`) in the primary. Messages other than opamp-sdk's own are ignored, so the
 * channel stays free for the application's messages.
 */
export interface ClusterPort {
  /** Sends one message to the other end (a worker's `process.send`, or a `Worker`'s `send`). */
  send(message: unknown): unknown;
  /** Listens to the messages from the other end. */
  on(event: "message", listener: (message: unknown) => void): unknown;
  /** Stops listening. */
  off(event: "message", listener: (message: unknown) => void): unknown;
}

/**
 * How the channel serializes messages. `"advanced"` (structured clone; what `startCluster`
 * sets up) carries bytes as they are; `"json"` (Node's default for `cluster.fork`) needs
 * them as base64, about a third larger and slower.
 */
export type ClusterSerialization = "advanced" | "json";

/** Default time a worker waits for the primary to answer a bus or store request: 10 s. */
export const DEFAULT_CLUSTER_REQUEST_TIMEOUT_MS = 10_000;

/** The tag that marks opamp-sdk's messages on a channel the application may share. */
export const TAG = "opamp-sdk/cluster";

/** A request from a worker. `id` 0: no answer wanted. */
export interface RequestItem {
  readonly id: number;
  readonly op: string;
  readonly args: readonly unknown[];
}

/** What the primary sends back: an answer, or a bus message for one of the worker's replicas. */
export type PrimaryItem =
  | { readonly re: number; readonly ok: true; readonly value?: unknown }
  | { readonly re: number; readonly ok: false; readonly code: string; readonly message: string }
  | { readonly deliver: string; readonly from: string; readonly payload: unknown };

/** One IPC message: a batch of items. */
export interface Frame<T> {
  readonly tag: typeof TAG;
  readonly items: readonly T[];
}

export function isFrame(message: unknown): message is Frame<unknown> {
  return (
    typeof message === "object" &&
    message !== null &&
    (message as { tag?: unknown }).tag === TAG &&
    Array.isArray((message as { items?: unknown }).items)
  );
}

/** Bytes as the channel can carry them. */
export function packBytes(bytes: Uint8Array, serialization: ClusterSerialization): unknown {
  if (serialization === "advanced") return bytes;
  return { b64: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64") };
}

/**
 * Bytes as they arrived.
 *
 * @throws OpampError `malformed_message` when the value is not bytes in either form (a
 *   `"json"` channel carrying bytes packed for `"advanced"` arrives as a plain object).
 */
export function unpackBytes(value: unknown, what: string): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (typeof value === "object" && value !== null && typeof (value as { b64?: unknown }).b64 === "string") {
    return new Uint8Array(Buffer.from((value as { b64: string }).b64, "base64"));
  }
  throw new OpampError(
    "malformed_message",
    `${what} did not arrive as bytes over the cluster's IPC channel: both sides must use the same serialization (startCluster uses "advanced")`,
  );
}

/**
 * Most items in one IPC message. A sweep writes the state of every changed agent in one
 * turn: at 19,000 agents of ~10 KB each, one message would be ~190 MB to serialize at
 * once, in the sender's and the receiver's memory both.
 */
export const MAX_BATCH_ITEMS = 256;

/**
 * Collects items and sends them as one frame at the end of the current turn, or at once
 * when {@link MAX_BATCH_ITEMS} are waiting.
 */
export class Batcher<T> {
  #items: T[] = [];
  #scheduled = false;

  constructor(
    private readonly port: () => ClusterPort | undefined,
    private readonly onSendError: (error: unknown) => void,
  ) {}

  push(item: T): void {
    this.#items.push(item);
    if (this.#items.length >= MAX_BATCH_ITEMS) {
      this.flush();
      return;
    }
    if (this.#scheduled) return;
    this.#scheduled = true;
    // setImmediate, not a microtask: the claims of every agent whose socket was readable in
    // this turn go together.
    setImmediate(() => {
      this.#scheduled = false;
      this.flush();
    });
  }

  flush(): void {
    if (this.#items.length === 0) return;
    const items = this.#items;
    this.#items = [];
    const port = this.port();
    if (port === undefined) return;
    try {
      port.send({ tag: TAG, items } satisfies Frame<T>);
    } catch (e) {
      // A channel closed under us (the primary or the worker is going away).
      this.onSendError(e);
    }
  }
}

interface Pending {
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: OpampError) => void;
  readonly timer: TimerHandle;
}

/** Options of a worker's side of the channel. */
export interface IpcClientOptions {
  readonly serialization?: ClusterSerialization;
  readonly requestTimeoutMs?: number;
  readonly clock?: Clock;
}

/** Handles bus messages for the replicas joined through this worker. */
export type DeliveryHandler = (replicaId: string, from: string, payload: Uint8Array) => void;

/**
 * A worker's side of the channel: requests to the primary and their answers, shared by
 * every cluster bus and store of the process (one listener, one id space per port).
 */
export class IpcClient {
  readonly serialization: ClusterSerialization;
  readonly #timeoutMs: number;
  readonly #clock: Clock;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  readonly #batcher: Batcher<RequestItem>;
  readonly #deliveries = new Set<DeliveryHandler>();
  #closed: OpampError | undefined;
  readonly #listener = (message: unknown) => this.#receive(message);
  readonly #onDisconnect = () => this.close(new OpampError("storage_failed", "the cluster's primary went away"));

  constructor(
    private readonly port: ClusterPort,
    options: IpcClientOptions,
  ) {
    this.serialization = options.serialization ?? "advanced";
    this.#timeoutMs = options.requestTimeoutMs ?? DEFAULT_CLUSTER_REQUEST_TIMEOUT_MS;
    this.#clock = options.clock ?? systemClock;
    this.#batcher = new Batcher(
      () => (this.#closed === undefined ? this.port : undefined),
      (e) => this.close(OpampError.from(e, "storage_failed")),
    );
    port.on("message", this.#listener);
    const emitter = port as { once?: (event: string, fn: () => void) => unknown };
    if (typeof emitter.once === "function") emitter.once("disconnect", this.#onDisconnect);
  }

  /**
   * Sends a request and resolves with the primary's answer.
   *
   * @throws OpampError (as a rejection) `timeout` after `requestTimeoutMs`, the primary's
   *   error code, or `storage_failed` when the channel is closed.
   */
  request(op: string, args: readonly unknown[]): Promise<unknown> {
    if (this.#closed !== undefined) return Promise.reject(this.#closed);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = this.#clock.setTimeout(() => {
        this.#pending.delete(id);
        reject(new OpampError("timeout", `the cluster's primary did not answer ${op} within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
      this.#batcher.push({ id, op, args });
    });
  }

  /** Sends a request whose answer nobody waits for (in order with the others). */
  post(op: string, args: readonly unknown[]): void {
    if (this.#closed !== undefined) throw this.#closed;
    this.#batcher.push({ id: 0, op, args });
  }

  onDelivery(handler: DeliveryHandler): () => void {
    this.#deliveries.add(handler);
    return () => this.#deliveries.delete(handler);
  }

  /** Fails what is waiting and stops listening. */
  close(reason: OpampError): void {
    if (this.#closed !== undefined) return;
    this.#batcher.flush();
    this.#closed = reason;
    this.port.off("message", this.#listener);
    const emitter = this.port as { off?: (event: string, fn: () => void) => unknown };
    if (typeof emitter.off === "function") emitter.off("disconnect", this.#onDisconnect);
    for (const [id, p] of this.#pending) {
      this.#clock.clearTimeout(p.timer);
      this.#pending.delete(id);
      p.reject(reason);
    }
  }

  #receive(message: unknown): void {
    if (!isFrame(message)) return;
    for (const raw of message.items) {
      const item = raw as PrimaryItem;
      if ("deliver" in item) {
        let payload: Uint8Array;
        try {
          payload = unpackBytes(item.payload, "a bus message");
        } catch {
          continue; // unreadable: dropped, as a bus drops what it cannot carry
        }
        for (const handler of this.#deliveries) handler(item.deliver, item.from, payload);
        continue;
      }
      const pending = this.#pending.get(item.re);
      if (pending === undefined) continue; // timed out already
      this.#pending.delete(item.re);
      this.#clock.clearTimeout(pending.timer);
      if (item.ok) pending.resolve(item.value);
      else pending.reject(new OpampError(isOpampErrorCode(item.code) ? item.code : "internal", item.message));
    }
  }
}

const clients = new WeakMap<ClusterPort, IpcClient>();

/**
 * The worker's one {@link IpcClient} for `port`.
 *
 * @throws OpampError `invalid_argument` when the port already has a client with another serialization.
 */
export function ipcClientFor(port: ClusterPort, options: IpcClientOptions): IpcClient {
  const existing = clients.get(port);
  if (existing !== undefined) {
    const wanted = options.serialization ?? "advanced";
    if (existing.serialization !== wanted) {
      throw new OpampError(
        "invalid_argument",
        `this IPC channel is already used with serialization "${existing.serialization}", not "${wanted}"`,
      );
    }
    return existing;
  }
  const client = new IpcClient(port, options);
  clients.set(port, client);
  return client;
}

/** The worker's own channel to the primary. */
export function processPort(): ClusterPort {
  if (typeof process.send !== "function") {
    throw new OpampError(
      "invalid_argument",
      "this process has no IPC channel to a primary: run it as a node:cluster worker (or give `port`)",
    );
  }
  return process as unknown as ClusterPort;
}
