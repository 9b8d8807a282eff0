/** Backoff windows, jitter bounds and Retry-After parsing. */
import fc from "fast-check";
import { describe, expect, it, vi } from "vitest";
import { Backoff, clampDelay, MAX_TIMER_DELAY_MS, parseRetryAfter } from "../../../src/internal/backoff.js";
import { systemClock } from "../../../src/internal/clock.js";

describe("Backoff", () => {
  const policy = { initialDelayMs: 1_000, maxDelayMs: 60_000, multiplier: 2 };

  it("grows the window exponentially up to the cap and resets", () => {
    const backoff = new Backoff(policy, () => 0.999_999);
    const delays = Array.from({ length: 9 }, () => backoff.next());
    expect(delays).toEqual([999, 1999, 3999, 7999, 15999, 31999, 59999, 59999, 59999]);
    backoff.reset();
    expect(backoff.next()).toBe(999);
  });

  it("always waits within [0, window) (full jitter)", () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 0.999_999, noNaN: true }), fc.integer({ min: 0, max: 40 }), (r, n) => {
        const backoff = new Backoff(policy, () => r);
        for (let i = 0; i < n; i++) backoff.next();
        const delay = backoff.next();
        return delay >= 0 && delay < Math.min(60_000, 1_000 * 2 ** n);
      }),
    );
  });
});

describe("parseRetryAfter", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  it("reads delta-seconds", () => {
    expect(parseRetryAfter("120", now)).toBe(120_000);
    expect(parseRetryAfter(" 0 ", now)).toBe(0);
  });
  it("reads an HTTP date relative to now, never negative", () => {
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:01:30 GMT", now)).toBe(90_000);
    expect(parseRetryAfter("Wed, 31 Dec 2025 23:00:00 GMT", now)).toBe(0);
  });
  it("ignores absent or unparsable values", () => {
    expect(parseRetryAfter(null, now)).toBeUndefined();
    expect(parseRetryAfter("", now)).toBeUndefined();
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter("-5", now)).toBeUndefined();
  });
  it("bounds absurd values by the maximum given, and by what a timer can wait without one", () => {
    const max = 3_600_000;
    expect(parseRetryAfter("9".repeat(401), now, max)).toBe(max);
    expect(parseRetryAfter("3000000000", now, max)).toBe(max);
    expect(parseRetryAfter("Fri, 31 Dec 9999 23:59:59 GMT", now, max)).toBe(max);
    expect(parseRetryAfter("3599", now, max)).toBe(3_599_000);
    expect(parseRetryAfter("9".repeat(401), now)).toBe(MAX_TIMER_DELAY_MS);
    expect(parseRetryAfter("Fri, 31 Dec 9999 23:59:59 GMT", now)).toBe(MAX_TIMER_DELAY_MS);
  });
});

describe("clampDelay", () => {
  it("keeps a delay within [0, max] and within a timer's range", () => {
    expect(clampDelay(5, 10)).toBe(5);
    expect(clampDelay(11, 10)).toBe(10);
    expect(clampDelay(-1, 10)).toBe(0);
    expect(clampDelay(Number.NaN, 10)).toBe(0);
    expect(clampDelay(Number.POSITIVE_INFINITY, 10)).toBe(10);
    expect(clampDelay(1e22, Number.POSITIVE_INFINITY)).toBe(MAX_TIMER_DELAY_MS);
  });
});

describe("systemClock", () => {
  it("never hands Node a delay it would fire after 1 ms", () => {
    const spy = vi.spyOn(globalThis, "setTimeout");
    try {
      const handle = systemClock.setTimeout(() => undefined, 3_000_000_000_000);
      systemClock.clearTimeout(handle);
      expect(spy).toHaveBeenCalledTimes(1);
      expect(spy.mock.calls[0]?.[1]).toBe(MAX_TIMER_DELAY_MS);
    } finally {
      spy.mockRestore();
    }
  });
});
