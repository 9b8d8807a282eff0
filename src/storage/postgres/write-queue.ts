/**
 * Group commit for the PostgreSQL store. OpAMPServer writes agents one by one (a sweep
 * flushes thousands, a fan-out appends a delivery step per agent); a statement per write
 * would cost a round trip each. Writes queue here instead and go out in batches: one
 * transaction per batch, one statement per run of writes of the same kind. Batches run one
 * at a time, in the order the writes were made, so the writes of one agent land in order.
 */

/** One queued write and the promise its caller waits on. */
export interface QueuedWrite<W> {
  readonly write: W;
  /** The agent written, so reads of it can wait for it. */
  readonly instanceUid: string;
  resolve(): void;
  reject(error: unknown): void;
}

/**
 * Runs queued writes in batches of at most `maxBatch`. `run` writes one batch (one
 * transaction); when it rejects, the batch is retried write by write (`runOne`) so that
 * one bad write fails alone.
 */
export class WriteQueue<W> {
  readonly #queue: QueuedWrite<W>[] = [];
  /** The promise of the last write queued for each agent (reads wait for it). */
  readonly #lastWrite = new Map<string, Promise<void>>();
  #flushing = false;
  #idle: (() => void)[] = [];

  constructor(
    private readonly maxBatch: number,
    private readonly run: (batch: readonly W[]) => Promise<void>,
    private readonly runOne: (write: W) => Promise<void>,
  ) {}

  /** Queues a write; resolves once it is committed. */
  push(instanceUid: string, write: W): Promise<void> {
    const done = new Promise<void>((resolve, reject) => {
      this.#queue.push({ write, instanceUid, resolve, reject });
    });
    const settled = done.catch(() => undefined);
    this.#lastWrite.set(instanceUid, settled);
    void settled.then(() => {
      if (this.#lastWrite.get(instanceUid) === settled) this.#lastWrite.delete(instanceUid);
    });
    if (!this.#flushing) {
      this.#flushing = true;
      // Writes made in the same turn of the event loop join the same batch.
      setImmediate(() => void this.#drain());
    }
    return done;
  }

  /** Resolves once every write queued so far for the agent has settled. */
  settled(instanceUid: string): Promise<void> | undefined {
    return this.#lastWrite.get(instanceUid);
  }

  /** Resolves once the queue is empty. */
  idle(): Promise<void> {
    if (!this.#flushing) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Writes waiting, for tests and metrics. */
  get pending(): number {
    return this.#queue.length;
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.maxBatch);
      try {
        await this.run(batch.map((q) => q.write));
        for (const q of batch) q.resolve();
      } catch (batchError) {
        if (batch.length === 1) {
          batch[0]!.reject(batchError);
          continue;
        }
        // One bad write must not fail the others: retry them one by one, in order.
        for (const q of batch) {
          try {
            await this.runOne(q.write);
            q.resolve();
          } catch (e) {
            q.reject(e);
          }
        }
      }
    }
    this.#flushing = false;
    const waiting = this.#idle;
    this.#idle = [];
    for (const resolve of waiting) resolve();
  }
}
