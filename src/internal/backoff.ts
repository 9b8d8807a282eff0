/**
 * Retry timing shared by the client transports: exponential backoff with full jitter,
 * and parsing of `Retry-After`. No timers here; callers wait through a Clock.
 */

/**
 * The longest delay a timer can be given: Node (and browsers) store the delay in a signed
 * 32-bit integer and fire a larger one after 1 ms, so an unclamped huge delay would turn a
 * wait into a tight loop.
 */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/**
 * `ms` bounded to [0, `max`]; NaN (an unparsable or absent number) counts as 0. Every delay
 * that comes from a peer (Retry-After, RetryInfo, a heartbeat interval) goes through this
 * before it reaches a timer.
 */
export function clampDelay(ms: number, max: number): number {
  if (Number.isNaN(ms) || ms <= 0) return 0;
  return Math.min(ms, max, MAX_TIMER_DELAY_MS);
}

/** How retries are spaced. */
export interface BackoffPolicy {
  /** Upper bound of the first delay, in milliseconds. */
  readonly initialDelayMs: number;
  /** Largest upper bound any delay may have, in milliseconds. */
  readonly maxDelayMs: number;
  /** Growth of the upper bound per failed attempt. */
  readonly multiplier: number;
}

/**
 * Exponential backoff with full jitter: attempt n waits a uniformly random time in
 * [0, min(max, initial * multiplier^n)). Full jitter spreads a fleet that lost its server
 * at the same moment over the whole window instead of reconnecting in waves.
 */
export class Backoff {
  #attempt = 0;

  constructor(
    private readonly policy: BackoffPolicy,
    private readonly random: () => number = Math.random,
  ) {}

  /** Failed attempts since the last {@link Backoff.reset}. */
  get attempt(): number {
    return this.#attempt;
  }

  /** The delay before the next attempt; counts one more failed attempt. */
  next(): number {
    const ceiling = Math.min(
      this.policy.maxDelayMs,
      this.policy.initialDelayMs * this.policy.multiplier ** this.#attempt,
    );
    this.#attempt += 1;
    return Math.floor(this.random() * ceiling);
  }

  /** Starts over after a success. */
  reset(): void {
    this.#attempt = 0;
  }
}

/**
 * Parses an HTTP `Retry-After` value (RFC 9110 §10.2.3): delta-seconds or an HTTP-date.
 * Returns milliseconds to wait, within [0, `maxMs`] (a server asking for longer, say
 * 401 digits or the year 9999, gets `maxMs`), or undefined when absent or unparsable.
 */
export function parseRetryAfter(
  value: string | null | undefined,
  nowMs: number,
  maxMs: number = MAX_TIMER_DELAY_MS,
): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (text === "") return undefined;
  // Number() of hundreds of digits is Infinity (or loses precision): clamp, never overflow.
  if (/^\d+$/.test(text)) return clampDelay(Number(text) * 1000, maxMs);
  // An HTTP-date always names the day or month; this keeps Date.parse from reading "-5" as a year.
  if (!/[a-z]{3}/i.test(text)) return undefined;
  const when = Date.parse(text);
  if (Number.isNaN(when)) return undefined;
  return clampDelay(when - nowMs, maxMs);
}
