/**
 * Keeps the client's persisted state in memory and writes it through a ClientStateStore
 * one save at a time, in order, so a slow store never sees an older state after a newer.
 */
import type { ClientState, ClientStateStore } from "./state-store.js";

/** A change to {@link ClientState}; a field set to undefined is removed. */
export type ClientStateChange = { readonly [K in keyof ClientState]?: ClientState[K] | undefined };

/** Serialised writer of {@link ClientState}. */
export class StatePersister {
  #state: ClientState = {};
  #chain: Promise<void> = Promise.resolve();

  /**
   * @param store - where state goes
   * @param onError - receives a failed save (the next change tries again with the whole state)
   */
  constructor(
    private readonly store: ClientStateStore,
    private readonly onError: (cause: unknown) => void,
  ) {}

  /** The state as last changed (not necessarily saved yet). */
  get state(): ClientState {
    return this.#state;
  }

  /** Reads the store once at start. @throws whatever the store throws. */
  async load(): Promise<ClientState> {
    this.#state = (await this.store.load()) ?? {};
    return this.#state;
  }

  /** Applies `change` and queues a save; resolves when that save settled. */
  update(change: ClientStateChange): Promise<void> {
    const next: Record<string, unknown> = { ...this.#state };
    for (const [key, value] of Object.entries(change)) {
      if (value === undefined) delete next[key];
      else next[key] = value;
    }
    this.#state = next as ClientState;
    const snapshot = this.#state;
    this.#chain = this.#chain.then(() => this.store.save(snapshot)).catch(this.onError);
    return this.#chain;
  }

  /** Resolves when every queued save settled. */
  flush(): Promise<void> {
    return this.#chain;
  }
}
