/**
 * Retry timing shared by the client transports: exponential backoff with full jitter,
 * and parsing of `Retry-After`. No timers here; callers wait through a Clock.
 */

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
 * Returns milliseconds to wait (never negative), or undefined when absent or unparsable.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (text === "") return undefined;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  // An HTTP-date always names the day or month; this keeps Date.parse from reading "-5" as a year.
  if (!/[a-z]{3}/i.test(text)) return undefined;
  const when = Date.parse(text);
  if (Number.isNaN(when)) return undefined;
  return Math.max(0, when - nowMs);
}
