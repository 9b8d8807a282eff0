/**
 * Time as the SDK sees it. Everything that waits (heartbeats, backoff, handshake and
 * liveness deadlines) goes through a Clock so that tests can drive it with fake time.
 * The default reads the global timers at call time, so vitest's fake timers apply too.
 */
import { MAX_TIMER_DELAY_MS } from "./backoff.js";

/** A source of time and timers (the system's, or a test's manual one). */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Runs `fn` once after `ms` milliseconds; returns a handle for {@link Clock.clearTimeout}. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Cancels a timer; a handle that already fired or was cleared is ignored. */
  clearTimeout(handle: TimerHandle): void;
}

/** Opaque timer handle. */
export type TimerHandle =
  | {
      /** A brand that keeps other values from passing for a handle; never present at run time. */
      readonly __timer: unique symbol;
    }
  | ReturnType<typeof globalThis.setTimeout>;

/**
 * The real clock. Timers are not unref'd: a polling client between two polls holds no
 * socket, and its poll timer is what keeps an agent process alive. `stop()` clears them.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  // The last line of defence against a delay Node would fire after 1 ms (see
  // MAX_TIMER_DELAY_MS): callers clamp peer-given delays far lower already.
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, Math.min(ms, MAX_TIMER_DELAY_MS)),
  clearTimeout(handle) {
    globalThis.clearTimeout(handle as ReturnType<typeof globalThis.setTimeout>);
  },
};
