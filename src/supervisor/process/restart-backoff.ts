/**
 * Crash-restart timing: exponential backoff with jitter and a cap, reset after a run that
 * lasted long enough. The Collector's supervisor waits a fixed 5 s whatever happens, so a
 * broken agent restarts 12 times a minute for ever; this one backs off to `maxDelayMs`.
 */
import type { RestartConfig } from "../config/supervisor-config.js";

/** Computes restart delays. Pure: the caller owns the timers. */
export class RestartBackoff {
  #attempt = 0;

  constructor(
    private readonly policy: RestartConfig,
    private readonly random: () => number = Math.random,
  ) {}

  /** Crashes counted since the last reset. */
  get attempt(): number {
    return this.#attempt;
  }

  /**
   * The delay before restarting an agent that ran for `ranForMs` and exited. A run of at
   * least `stableAfterMs` starts the sequence over. Attempt n waits
   * `ceiling × (1 − jitter × r)`, ceiling = min(max, initial × multiplier^n), r in [0, 1):
   * never more than the ceiling, never less than `(1 − jitter)` of it.
   */
  next(ranForMs: number): number {
    if (ranForMs >= this.policy.stableAfterMs) this.#attempt = 0;
    const { initialDelayMs, maxDelayMs, multiplier, jitter } = this.policy;
    const ceiling = Math.min(maxDelayMs, initialDelayMs * multiplier ** this.#attempt);
    this.#attempt += 1;
    return Math.round(ceiling * (1 - jitter * this.random()));
  }

  /** Starts over (a healthy restart, a new config). */
  reset(): void {
    this.#attempt = 0;
  }
}
