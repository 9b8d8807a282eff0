/**
 * Slowing down credential guessing: an address (or whatever key the application picks) whose
 * requests the `authenticate` hook refused too often within a window gets 429 with
 * `Retry-After` until the window has passed, without the hook being asked. Other addresses
 * are not affected.
 */
import type { Clock } from "../internal/clock.js";

interface Window {
  /** Clock time of the first refusal counted in this window. */
  readonly start: number;
  /** Refusals counted in this window. */
  failures: number;
}

/** Keys tracked at once; the least recently refused goes first. */
const MAX_TRACKED = 10_000;

export class AuthThrottle {
  readonly #windows = new Map<string, Window>();

  /**
   * @param maxFailures - refusals allowed per window before the key is throttled; 0 turns
   *   throttling off.
   */
  constructor(
    readonly maxFailures: number,
    readonly windowMs: number,
    readonly clock: Clock,
  ) {}

  /** Milliseconds until `key` may be asked about again; 0 when it is not throttled. */
  retryAfterMs(key: string | undefined): number {
    if (this.maxFailures === 0 || key === undefined) return 0;
    const window = this.#windows.get(key);
    if (window === undefined) return 0;
    const left = window.start + this.windowMs - this.clock.now();
    if (left <= 0) {
      this.#windows.delete(key);
      return 0;
    }
    return window.failures >= this.maxFailures ? left : 0;
  }

  /**
   * The hook refused a request from `key` (401 or 403). Returns true when this refusal made
   * the key throttled.
   */
  refused(key: string | undefined): boolean {
    if (this.maxFailures === 0 || key === undefined) return false;
    const now = this.clock.now();
    let window = this.#windows.get(key);
    if (window === undefined || now - window.start >= this.windowMs) {
      window = { start: now, failures: 0 };
    }
    window.failures++;
    // Re-inserted last: the map's order is least recently refused first.
    this.#windows.delete(key);
    this.#windows.set(key, window);
    if (this.#windows.size > MAX_TRACKED) {
      const oldest = this.#windows.keys().next().value;
      if (oldest !== undefined) this.#windows.delete(oldest);
    }
    return window.failures === this.maxFailures;
  }
}
