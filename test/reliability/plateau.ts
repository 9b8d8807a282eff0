/**
 * "Memory stays flat", made precise for the soak suite.
 *
 * A sample is the server process's `heapUsed` right after a forced full GC. The heap
 * depends on how many agents are online, so the promise compares like with like:
 *
 * - The first plateau is measured with the whole fleet online and settled (every agent
 *   APPLIED, the store's delivery history at its bound): it is the first run of `window`
 *   consecutive samples whose largest is within `spread` of their smallest
 *   (max ≤ min × (1 + spread)); its value is their mean.
 * - While agents churn (fewer of them online), no sample may exceed the plateau by more
 *   than `tolerance`.
 * - After the churn, with the whole fleet online and settled again, the plateau measured
 *   the same way must lie within `tolerance` of the first (|end / first − 1| ≤ tolerance).
 *
 * A leak grows with every session, so it shows as an end plateau above the first; memory
 * that only rises with load shows during the churn.
 */

export interface PlateauRule {
  /** Consecutive samples that make a plateau. */
  readonly window: number;
  /** Largest spread within a plateau, as a fraction of its smallest sample. */
  readonly spread: number;
  /** Largest distance from the first plateau, as a fraction of it. */
  readonly tolerance: number;
}

/** The soak's rule: 3 samples within 5 % make a plateau; later ones stay within 10 % of the first. */
export const SOAK_PLATEAU: PlateauRule = { window: 3, spread: 0.05, tolerance: 0.1 };

export interface Plateau {
  /** Index of the plateau's first sample. */
  readonly start: number;
  /** Mean of its samples (bytes). */
  readonly value: number;
}

/** The first plateau of `samples` under `rule`, or undefined. */
export function firstPlateau(samples: readonly number[], rule: PlateauRule = SOAK_PLATEAU): Plateau | undefined {
  for (let start = 0; start + rule.window <= samples.length; start++) {
    const run = samples.slice(start, start + rule.window);
    const min = Math.min(...run);
    const max = Math.max(...run);
    if (min > 0 && max <= min * (1 + rule.spread)) {
      return { start, value: run.reduce((a, b) => a + b, 0) / run.length };
    }
  }
  return undefined;
}

export interface SoakHeapVerdict {
  readonly first: Plateau | undefined;
  readonly end: Plateau | undefined;
  /** Largest churn sample divided by the first plateau. */
  readonly churnPeak: number | undefined;
  /** Smallest churn sample divided by the first plateau (shown, not judged). */
  readonly churnLow: number | undefined;
  /** End plateau divided by the first. */
  readonly endRatio: number | undefined;
  readonly flat: boolean;
}

/**
 * Judges the three phases of a soak: settled before, churning, settled after.
 */
export function judgeSoak(
  before: readonly number[],
  churn: readonly number[],
  after: readonly number[],
  rule: PlateauRule = SOAK_PLATEAU,
): SoakHeapVerdict {
  const first = firstPlateau(before, rule);
  const end = firstPlateau(after, rule);
  if (first === undefined)
    return { first, end, churnPeak: undefined, churnLow: undefined, endRatio: undefined, flat: false };
  const churnPeak = churn.length > 0 ? Math.max(...churn) / first.value : undefined;
  const churnLow = churn.length > 0 ? Math.min(...churn) / first.value : undefined;
  const endRatio = end === undefined ? undefined : end.value / first.value;
  const flat =
    end !== undefined &&
    endRatio !== undefined &&
    Math.abs(endRatio - 1) <= rule.tolerance &&
    (churnPeak === undefined || churnPeak <= 1 + rule.tolerance);
  return { first, end, churnPeak, churnLow, endRatio, flat };
}
