/**
 * The typed event emitter of the client and the server. Browser-safe (no `node:events`),
 * yet shaped like Node's EventEmitter, so `once(emitter, "connect")` and
 * `on(emitter, "message")` from `node:events` accept it.
 *
 * Events observe and must not be able to break their emitter: a listener that throws, or
 * an async listener whose promise rejects, is handed to the owner's `listenerFailed`
 * (which reports it as an `error` event) instead of unwinding into a socket callback or
 * going unhandled. An `error` event without a listener goes to `unhandledError` (a
 * warning through the logger) instead of being thrown or dropped.
 *
 * Listener lists are copied on change, never on emit: an emit with no listener costs a
 * map lookup, and one with listeners allocates nothing.
 */

/** Event name → listener arguments. */
export type EventArgsMap<T> = { [K in keyof T]: unknown[] };

/** A listener of event `E` of map `T`; it may be async (a rejection is reported). Its result is otherwise ignored. */
export type EventListener<T extends EventArgsMap<T>, E extends keyof T> = (...args: T[E]) => unknown;

/** What the owner of an emitter decides. */
export interface EmitterPolicy {
  /** A listener of `event` threw or rejected with `cause`. */
  listenerFailed(cause: unknown, event: string | symbol): void;
  /** `error` was emitted with no listener. */
  unhandledError(error: unknown): void;
  /** More listeners than `setMaxListeners()` allows were added for `event`. */
  tooManyListeners?(event: string | symbol, count: number): void;
}

interface Entry {
  readonly fn: (...args: never[]) => unknown;
  readonly once: boolean;
}

/**
 * A typed EventEmitter with listener isolation. Subclasses pass their policy to the
 * constructor. Method contracts are those of Node's EventEmitter.
 */
export class TypedEmitter<T extends EventArgsMap<T>> {
  readonly #listeners = new Map<string | symbol, readonly Entry[]>();
  readonly #policy: EmitterPolicy;
  #maxListeners = 0;

  constructor(policy: EmitterPolicy) {
    this.#policy = policy;
  }

  #add(event: keyof T & (string | symbol), fn: Entry["fn"], once: boolean, prepend: boolean): this {
    if (typeof fn !== "function") {
      throw new TypeError(`the listener of ${String(event)} must be a function, got ${typeof fn}`);
    }
    const entry: Entry = { fn, once };
    const list = this.#listeners.get(event) ?? [];
    const next = prepend ? [entry, ...list] : [...list, entry];
    this.#listeners.set(event, next);
    if (this.#maxListeners > 0 && next.length === this.#maxListeners + 1) {
      this.#policy.tooManyListeners?.(event, next.length);
    }
    return this;
  }

  /** Adds a listener (Node: `addListener`). A throwing or rejecting listener is reported as `error`. */
  on<E extends keyof T & (string | symbol)>(event: E, listener: EventListener<T, E>): this {
    return this.#add(event, listener as Entry["fn"], false, false);
  }

  /** Same as `on()`. */
  addListener<E extends keyof T & (string | symbol)>(event: E, listener: EventListener<T, E>): this {
    return this.#add(event, listener as Entry["fn"], false, false);
  }

  /** Adds a listener called at most once. */
  once<E extends keyof T & (string | symbol)>(event: E, listener: EventListener<T, E>): this {
    return this.#add(event, listener as Entry["fn"], true, false);
  }

  /** Adds a listener before the others. */
  prependListener<E extends keyof T & (string | symbol)>(event: E, listener: EventListener<T, E>): this {
    return this.#add(event, listener as Entry["fn"], false, true);
  }

  /** Adds a once-listener before the others. */
  prependOnceListener<E extends keyof T & (string | symbol)>(event: E, listener: EventListener<T, E>): this {
    return this.#add(event, listener as Entry["fn"], true, true);
  }

  /** Removes the most recently added registration of `listener` for `event`. */
  off<E extends keyof T & (string | symbol)>(event: E, listener: EventListener<T, E>): this {
    const list = this.#listeners.get(event);
    if (list === undefined) return this;
    const fn = listener as Entry["fn"];
    for (let i = list.length - 1; i >= 0; i--) {
      if (list[i]?.fn !== fn) continue;
      this.#remove(event, list, i);
      break;
    }
    return this;
  }

  /** Same as `off()`. */
  removeListener<E extends keyof T & (string | symbol)>(event: E, listener: EventListener<T, E>): this {
    return this.off(event, listener);
  }

  /** Removes every listener of `event`, or of every event. */
  removeAllListeners(event?: keyof T & (string | symbol)): this {
    if (event === undefined) this.#listeners.clear();
    else this.#listeners.delete(event);
    return this;
  }

  #remove(event: string | symbol, list: readonly Entry[], index: number): void {
    if (list.length === 1) this.#listeners.delete(event);
    else this.#listeners.set(event, [...list.slice(0, index), ...list.slice(index + 1)]);
  }

  /**
   * Past `n` listeners for one event the owner is told (a warning through its logger), as
   * Node warns of a likely leak. 0 (the default) means no limit.
   */
  setMaxListeners(n: number): this {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`setMaxListeners takes an integer >= 0, got ${n}`);
    this.#maxListeners = n;
    return this;
  }

  /** The limit set by `setMaxListeners()` (0: none). */
  getMaxListeners(): number {
    return this.#maxListeners;
  }

  /** The listeners of `event`, in call order (a copy). */
  listeners<E extends keyof T & (string | symbol)>(event: E): EventListener<T, E>[] {
    return (this.#listeners.get(event) ?? []).map((entry) => entry.fn as EventListener<T, E>);
  }

  /** Same as `listeners()` (once-listeners are not wrapped here). */
  rawListeners<E extends keyof T & (string | symbol)>(event: E): EventListener<T, E>[] {
    return this.listeners(event);
  }

  /** How many listeners `event` has (those equal to `listener` only, when given). */
  listenerCount<E extends keyof T & (string | symbol)>(event: E, listener?: EventListener<T, E>): number {
    const list = this.#listeners.get(event);
    if (list === undefined) return 0;
    if (listener === undefined) return list.length;
    return list.filter((entry) => entry.fn === listener).length;
  }

  /** The events that have listeners. */
  eventNames(): (keyof T & (string | symbol))[] {
    return [...this.#listeners.keys()] as (keyof T & (string | symbol))[];
  }

  /**
   * Calls the listeners of `event` in order with `args`. A listener that throws does not
   * stop the others; it and a rejected promise are reported through the owner's policy.
   * Returns whether there were listeners. An `error` with none goes to the policy's
   * `unhandledError` (the emitter never throws it).
   */
  emit<E extends keyof T & (string | symbol)>(event: E, ...args: T[E]): boolean {
    const list = this.#listeners.get(event);
    if (list === undefined) {
      if (event === "error") this.#policy.unhandledError(args[0]);
      return false;
    }
    for (let i = 0; i < list.length; i++) {
      const entry = list[i]!;
      if (entry.once) {
        const current = this.#listeners.get(event);
        const at = current?.indexOf(entry) ?? -1;
        // Already removed (by off(), or by an emit from an earlier listener): not called.
        if (current === undefined || at === -1) continue;
        this.#remove(event, current, at);
      }
      try {
        const result = (entry.fn as (...a: unknown[]) => unknown)(...args);
        if (result !== undefined && typeof (result as { then?: unknown }).then === "function") {
          (result as PromiseLike<unknown>).then(undefined, (cause: unknown) =>
            this.#policy.listenerFailed(cause, event),
          );
        }
      } catch (cause) {
        this.#policy.listenerFailed(cause, event);
      }
    }
    return true;
  }
}
