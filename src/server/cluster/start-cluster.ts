/**
 * N OpAMPServer worker processes on one port with node:cluster: the primary accepts the
 * connections and hands them to the workers, holds the bus (and by default the fleet's
 * store), restarts a worker that dies, and stops them all.
 */
import cluster, { type Worker } from "node:cluster";
import { availableParallelism } from "node:os";
import { EventEmitter } from "eventemitter3";
import { ClusterHub } from "../../storage/cluster/cluster-hub.js";
import { ClusterServerBus } from "../../storage/cluster/cluster-server-bus.js";
import { ClusterServerStore } from "../../storage/cluster/cluster-server-store.js";
import { OpampError } from "../../wire/errors.js";
import type { ServerStore } from "../store.js";

/** Default time `stop()` gives the workers to stop their servers before they are killed: 15 s. */
export const DEFAULT_CLUSTER_STOP_TIMEOUT_MS = 15_000;
/** Default time each worker's `setup` may take at start before `startCluster` fails: 60 s. */
export const DEFAULT_CLUSTER_START_TIMEOUT_MS = 60_000;
/** Default longest wait before a worker that keeps dying is started again: 30 s. */
export const DEFAULT_CLUSTER_MAX_RESTART_DELAY_MS = 30_000;

/** The lifecycle tag of startCluster's own messages (the bus and store use another). */
const LIFE = "opamp-sdk/cluster-life";
type Life =
  | { tag: typeof LIFE; t: "ready" }
  | { tag: typeof LIFE; t: "failed"; message: string }
  | { tag: typeof LIFE; t: "stop" };

function isLife(message: unknown): message is Life {
  return typeof message === "object" && message !== null && (message as { tag?: unknown }).tag === LIFE;
}

/** What a worker's `setup` returns: something to stop (an OpAMPServer is one). */
export interface ClusterService {
  /** Called in the worker when the cluster stops; resolves once the service has stopped. */
  stop(): Promise<void>;
}

/** What `setup` gets in each worker. */
export interface ClusterWorkerContext {
  /** The cluster's bus: give it to the OpAMPServer (`bus`). */
  readonly bus: ClusterServerBus;
  /**
   * The store held by the primary (`ClusterServerStore`). Give it to the OpAMPServer
   * (`store`) unless the workers share a database store of their own (PostgreSQL).
   */
  readonly store: ClusterServerStore;
  /** A replica id unique in the cluster (`worker-<id>`): give it to the OpAMPServer (`replicaId`). */
  readonly replicaId: string;
  /** node:cluster's id of this worker (1, 2, …; a restarted worker gets a new one). */
  readonly workerId: number;
}

/** Options of {@link startCluster}. */
export interface StartClusterOptions<S extends ClusterService = ClusterService> {
  /** Worker processes. Default `os.availableParallelism()`. */
  readonly workers?: number;
  /**
   * Runs in each worker (never in the primary): build and start the server, listening on
   * the cluster's port, and return it. A throw or rejection fails the worker (at start,
   * `startCluster` rejects with `hook_failed`).
   */
  setup(context: ClusterWorkerContext): Promise<S> | S;
  /**
   * The store the primary holds for the workers' `ClusterServerStore`. Default a new
   * `InMemoryServerStore`: the fleet's state lives as long as the primary.
   */
  readonly store?: ServerStore;
  /** Time each worker's `setup` may take at start. Default {@link DEFAULT_CLUSTER_START_TIMEOUT_MS}. */
  readonly startTimeoutMs?: number;
  /** Time `stop()` waits for each worker before killing it. Default {@link DEFAULT_CLUSTER_STOP_TIMEOUT_MS}. */
  readonly stopTimeoutMs?: number;
  /**
   * A worker that dies is replaced at once; while workers keep dying with none becoming
   * ready in between, each further replacement waits 250 ms, then twice as long each time,
   * up to this. Default {@link DEFAULT_CLUSTER_MAX_RESTART_DELAY_MS}.
   */
  readonly maxRestartDelayMs?: number;
}

/** A worker process as the primary sees it. */
export interface ClusterWorkerInfo {
  /** node:cluster's worker id. */
  readonly id: number;
  /** Its process id; undefined before the process has started. */
  readonly pid: number | undefined;
  /** The replica id its server joins the bus with. */
  readonly replicaId: string;
}

/** Events of {@link ClusterPrimary}. */
export interface ClusterEvents {
  /** A worker's `setup` finished: its server is serving. */
  workerReady: [worker: ClusterWorkerInfo];
  /** A worker exited (not asked to by `stop()`); it is replaced unless the cluster is stopping. */
  workerExit: [worker: ClusterWorkerInfo, code: number | null, signal: string | null];
  /** A replaced worker's `setup` failed (`hook_failed`); it is started again after a delay. */
  error: [error: OpampError];
}

/** The primary's handle on a running cluster. */
export class ClusterPrimary extends EventEmitter<ClusterEvents> {
  /** Tells the primary's handle from a worker's (`startCluster` returns either). */
  readonly role = "primary" as const;
  /** The bus and store the primary holds for the workers. */
  readonly hub: ClusterHub;
  readonly #options: ResolvedOptions;
  readonly #live = new Map<Worker, { info: ClusterWorkerInfo; detach(): void }>();
  readonly #restartTimers = new Set<ReturnType<typeof setTimeout>>();
  #failuresInRow = 0;
  #stopping: Promise<void> | undefined;

  /** @internal */
  constructor(hub: ClusterHub, options: ResolvedOptions) {
    super();
    this.hub = hub;
    this.#options = options;
  }

  /** The workers alive now. */
  get workers(): readonly ClusterWorkerInfo[] {
    return [...this.#live.values()].map((w) => w.info);
  }

  /**
   * Stops the cluster: no more restarts; each worker stops its server (`stop()`), and one
   * that has not exited within `stopTimeoutMs` is killed. Resolves once every worker has
   * exited. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    for (const t of this.#restartTimers) clearTimeout(t);
    this.#restartTimers.clear();
    await Promise.all(
      [...this.#live.keys()].map(
        (worker) =>
          new Promise<void>((resolve) => {
            if (worker.isDead()) return resolve();
            const kill = setTimeout(() => worker.process.kill("SIGKILL"), this.#options.stopTimeoutMs);
            worker.once("exit", () => {
              clearTimeout(kill);
              resolve();
            });
            try {
              worker.send({ tag: LIFE, t: "stop" } satisfies Life);
            } catch {
              worker.process.kill("SIGKILL");
            }
          }),
      ),
    );
  }

  /**
   * Adds a worker (how a dead one is replaced, and how to grow a running cluster). Resolves
   * once its `setup` has finished; rejects with `hook_failed` when it failed or the worker
   * exited first, `timeout` after `startTimeoutMs` (the worker is then killed). A worker
   * that dies later is replaced like the others.
   */
  fork(): Promise<ClusterWorkerInfo> {
    const worker = cluster.fork();
    const info: ClusterWorkerInfo = { id: worker.id, pid: worker.process.pid, replicaId: `worker-${worker.id}` };
    const entry = { info, detach: this.hub.attach(worker) };
    this.#live.set(worker, entry);
    return new Promise<ClusterWorkerInfo>((resolve, reject) => {
      let settled = false;
      const settle = (error?: OpampError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        worker.off("message", onLife);
        if (error === undefined) resolve(info);
        else reject(error);
      };
      const timer = setTimeout(() => {
        settle(new OpampError("timeout", `worker ${info.id} was not ready within ${this.#options.startTimeoutMs} ms`));
        worker.process.kill("SIGKILL");
      }, this.#options.startTimeoutMs);
      const onLife = (message: unknown) => {
        if (!isLife(message)) return;
        if (message.t === "ready") {
          this.#failuresInRow = 0;
          settle();
          this.emit("workerReady", info);
        } else if (message.t === "failed") {
          settle(new OpampError("hook_failed", `the setup of worker ${info.id} failed: ${message.message}`));
        }
      };
      worker.on("message", onLife);
      worker.once("exit", (code, signal) => {
        entry.detach();
        this.#live.delete(worker);
        settle(new OpampError("hook_failed", `worker ${info.id} exited (${signal ?? code}) before it was ready`));
        if (this.#stopping !== undefined) return;
        this.emit("workerExit", info, code, signal);
        this.#restart();
      });
    });
  }

  #restart(): void {
    const failures = this.#failuresInRow++;
    const delay = failures === 0 ? 0 : Math.min(this.#options.maxRestartDelayMs, 250 * 2 ** (failures - 1));
    const timer = setTimeout(() => {
      this.#restartTimers.delete(timer);
      if (this.#stopping !== undefined) return;
      this.fork().catch((e: unknown) => this.emit("error", OpampError.from(e, "hook_failed")));
    }, delay);
    this.#restartTimers.add(timer);
  }
}

/** The handle a worker gets back: its own service. */
export interface ClusterWorker<S extends ClusterService = ClusterService> {
  /** Tells a worker's handle from the primary's (`startCluster` returns either). */
  readonly role: "worker";
  /** What `setup` returned. */
  readonly service: S;
  /** The replica id this worker's server joined the bus with (`worker-<id>`). */
  readonly replicaId: string;
  /** node:cluster's id of this worker. */
  readonly workerId: number;
}

interface ResolvedOptions {
  readonly workers: number;
  readonly startTimeoutMs: number;
  readonly stopTimeoutMs: number;
  readonly maxRestartDelayMs: number;
}

function positiveInt(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new OpampError("invalid_argument", `startCluster: ${name} must be a positive integer`);
  }
  return value;
}

/**
 * Runs the calling script as a cluster of OpAMPServer workers on one port. Call it at the
 * top of the script: in the primary it forks `workers` copies of the script and resolves
 * with a {@link ClusterPrimary} once every worker's `setup` has finished; in each worker it
 * runs `setup` with the cluster's bus and store and resolves with a {@link ClusterWorker}.
 * Workers listening on the same port share it (node:cluster hands each new connection to
 * one worker, round-robin); an agent connected to any worker can be pushed to from any
 * other, and its state and desired state live in the primary's store (or your database),
 * so a worker that dies loses nothing: its agents reconnect to the others.
 *
 * Sets node:cluster's `serialization` to `"advanced"` (other `cluster.setupPrimary`
 * settings are kept).
 *
 * @example
 * ```ts
 * const node = await startCluster({
 *   workers: 4,
 *   async setup({ bus, store, replicaId }) {
 *     const server = new OpAMPServer({ bus, store, replicaId, hooks: { authenticate } });
 *     await server.listen({ port: 4320 });
 *     return server;
 *   },
 * });
 * if (node.role === "primary") process.once("SIGTERM", () => void node.stop());
 * ```
 *
 * @throws OpampError (as a rejection) `invalid_argument` for a bad option; in the primary
 *   `hook_failed` when a worker's `setup` fails or it exits before it is ready, `timeout`
 *   when one is not ready within `startTimeoutMs` (the started workers are stopped first).
 *   In a worker whose `setup` fails, the error is reported to the primary and the worker
 *   exits with code 1.
 */
export async function startCluster<S extends ClusterService>(
  options: StartClusterOptions<S>,
): Promise<ClusterPrimary | ClusterWorker<S>> {
  if (typeof options?.setup !== "function") {
    throw new OpampError("invalid_argument", "startCluster: setup must be a function");
  }
  const resolved: ResolvedOptions = {
    workers: positiveInt(options.workers, availableParallelism(), "workers"),
    startTimeoutMs: positiveInt(options.startTimeoutMs, DEFAULT_CLUSTER_START_TIMEOUT_MS, "startTimeoutMs"),
    stopTimeoutMs: positiveInt(options.stopTimeoutMs, DEFAULT_CLUSTER_STOP_TIMEOUT_MS, "stopTimeoutMs"),
    maxRestartDelayMs: positiveInt(
      options.maxRestartDelayMs,
      DEFAULT_CLUSTER_MAX_RESTART_DELAY_MS,
      "maxRestartDelayMs",
    ),
  };
  return cluster.isPrimary ? startPrimary(options, resolved) : startWorker(options);
}

async function startPrimary(options: StartClusterOptions, resolved: ResolvedOptions): Promise<ClusterPrimary> {
  cluster.setupPrimary({ serialization: "advanced" });
  const hub = new ClusterHub(options.store === undefined ? {} : { store: options.store });
  const primary = new ClusterPrimary(hub, resolved);
  const started = await Promise.allSettled(Array.from({ length: resolved.workers }, () => primary.fork()));
  const failed = started.find((r) => r.status === "rejected");
  if (failed !== undefined) {
    await primary.stop();
    throw failed.reason;
  }
  return primary;
}

async function startWorker<S extends ClusterService>(options: StartClusterOptions<S>): Promise<ClusterWorker<S>> {
  const self = cluster.worker;
  if (self === undefined) throw new OpampError("internal", "a node:cluster worker without cluster.worker");
  const replicaId = `worker-${self.id}`;
  let service: S;
  try {
    service = await options.setup({
      bus: new ClusterServerBus(),
      store: new ClusterServerStore(),
      replicaId,
      workerId: self.id,
    });
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    process.send?.({ tag: LIFE, t: "failed", message } satisfies Life, undefined, undefined, () => process.exit(1));
    throw OpampError.from(e, "hook_failed");
  }
  const onLife = (message: unknown) => {
    if (!isLife(message) || message.t !== "stop") return;
    process.off("message", onLife);
    service.stop().then(
      () => process.disconnect?.(),
      () => process.exit(1),
    );
  };
  process.on("message", onLife);
  process.send?.({ tag: LIFE, t: "ready" } satisfies Life);
  return { role: "worker", service, replicaId, workerId: self.id };
}
