/**
 * A Clock driven by hand, for tests of anything that waits (heartbeats, backoff, polls).
 * Time moves only when {@link ManualClock.advance} is called; due timers then run in
 * order, including timers they schedule that fall within the advanced span.
 */
import type { Clock, TimerHandle } from "../internal/clock.js";

interface ManualTimer {
  readonly id: number;
  readonly due: number;
  readonly fn: () => void;
}

/** A fake {@link Clock} for tests. */
export class ManualClock implements Clock {
  #now: number;
  #nextId = 1;
  #timers: ManualTimer[] = [];

  /** @param start - the initial epoch time in ms; default the real current time */
  constructor(start: number = Date.now()) {
    this.#now = start;
  }

  /** {@inheritDoc Clock.now} */
  now(): number {
    return this.#now;
  }

  /** {@inheritDoc Clock.setTimeout} */
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.#nextId++;
    this.#timers.push({ id, due: this.#now + Math.max(0, ms), fn });
    return id as unknown as TimerHandle;
  }

  /** {@inheritDoc Clock.clearTimeout} */
  clearTimeout(handle: TimerHandle): void {
    this.#timers = this.#timers.filter((timer) => timer.id !== (handle as unknown as number));
  }

  /** Delays (from now) of the timers waiting, soonest first. */
  pending(): number[] {
    return this.#timers.map((timer) => timer.due - this.#now).sort((a, b) => a - b);
  }

  /** Moves time forward by `ms`, running every timer that falls due, in order. */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      const next = this.#timers.reduce<ManualTimer | undefined>(
        (soonest, timer) =>
          timer.due <= target && (soonest === undefined || timer.due < soonest.due) ? timer : soonest,
        undefined,
      );
      if (next === undefined) break;
      this.#timers = this.#timers.filter((timer) => timer !== next);
      this.#now = Math.max(this.#now, next.due);
      next.fn();
    }
    this.#now = target;
  }

  /** Moves time to the soonest timer and runs it; returns false when none is waiting. */
  runNext(): boolean {
    const delays = this.pending();
    const first = delays[0];
    if (first === undefined) return false;
    this.advance(first);
    return true;
  }
}
