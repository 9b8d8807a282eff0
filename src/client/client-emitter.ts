/**
 * The client's typed event emitter. Events observe and must not be able to break the
 * client: a listener that throws is reported as an `error` event instead of unwinding
 * into a socket callback or a transport's exchange (which would stop polling for good).
 */
import { EventEmitter } from "eventemitter3";
import { OpampError } from "../wire/errors.js";
import type { OpAMPClientEvents } from "./events.js";

/** A listener of event `E`. */
export type ClientListener<E extends keyof OpAMPClientEvents> = (...args: OpAMPClientEvents[E]) => void;

/** eventemitter3 with listener isolation and a final close. */
export class ClientEmitter {
  readonly #events = new EventEmitter<OpAMPClientEvents>();
  #closed = false;

  /** Adds a listener. */
  on<E extends keyof OpAMPClientEvents>(event: E, listener: ClientListener<E>): void {
    this.#events.on(event, listener as never);
  }

  /** Adds a listener called once. */
  once<E extends keyof OpAMPClientEvents>(event: E, listener: ClientListener<E>): void {
    this.#events.once(event, listener as never);
  }

  /** Removes a listener. */
  off<E extends keyof OpAMPClientEvents>(event: E, listener: ClientListener<E>): void {
    this.#events.off(event, listener as never);
  }

  /**
   * Calls the listeners of `event`; nothing after {@link ClientEmitter.close}. A listener
   * that throws becomes an `error` event with code `hook_failed`; an `error` listener that
   * throws has nowhere else to report to, so its exception is rethrown outside the
   * client, as an uncaught exception.
   */
  emit<E extends keyof OpAMPClientEvents>(event: E, ...args: OpAMPClientEvents[E]): void {
    if (this.#closed) return;
    try {
      (this.#events.emit as (name: string, ...rest: unknown[]) => boolean).call(this.#events, event, ...args);
    } catch (cause) {
      if (event === "error") {
        queueMicrotask(() => {
          throw cause;
        });
        return;
      }
      this.emit("error", OpampError.from(cause, "hook_failed"));
    }
  }

  /** Drops every listener; later emits are ignored. */
  close(): void {
    this.#closed = true;
    this.#events.removeAllListeners();
  }
}
