/**
 * Reads of the same kind asked for in one turn of the event loop go to the database as one
 * query (`WHERE instance_uid = ANY($1)`): a reconnect storm loads thousands of agents at
 * once, and one round trip each would queue them behind the pool.
 */
export class ReadBatch<V> {
  #keys = new Map<string, { resolve(value: V | undefined): void; reject(error: unknown): void }[]>();
  #scheduled = false;

  constructor(
    private readonly maxBatch: number,
    private readonly load: (keys: readonly string[]) => Promise<ReadonlyMap<string, V>>,
  ) {}

  /** The value for `key`, or undefined when there is none. */
  get(key: string): Promise<V | undefined> {
    return new Promise((resolve, reject) => {
      let waiting = this.#keys.get(key);
      if (waiting === undefined) {
        waiting = [];
        this.#keys.set(key, waiting);
      }
      waiting.push({ resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#run());
      }
    });
  }

  #run(): void {
    const all = this.#keys;
    this.#keys = new Map();
    this.#scheduled = false;
    const keys = [...all.keys()];
    for (let i = 0; i < keys.length; i += this.maxBatch) {
      const chunk = keys.slice(i, i + this.maxBatch);
      this.load(chunk).then(
        (found) => {
          for (const key of chunk) for (const w of all.get(key)!) w.resolve(found.get(key));
        },
        (error: unknown) => {
          for (const key of chunk) for (const w of all.get(key)!) w.reject(error);
        },
      );
    }
  }
}
