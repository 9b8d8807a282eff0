/** The soak's definition of a flat heap catches growth and tolerates noise. */
import { describe, expect, it } from "vitest";
import { firstPlateau, judgeSoak, SOAK_PLATEAU } from "./plateau.js";

const MB = 1024 * 1024;
const mb = (values: number[]) => values.map((v) => v * MB);

describe("heap plateau (soak)", () => {
  it("finds the first run of 3 samples within 5 % and takes their mean", () => {
    expect(firstPlateau(mb([40, 60, 80, 100, 103, 101, 104, 99]))).toEqual({
      start: 3,
      value: ((100 + 103 + 101) / 3) * MB,
    });
    expect(firstPlateau(mb([50, 60, 70, 80, 90, 100]), SOAK_PLATEAU)).toBeUndefined();
  });

  it("calls flat: churn below the plateau, and an end plateau within 10 % of the first", () => {
    const verdict = judgeSoak(mb([90, 100, 101, 100]), mb([80, 92, 108, 85]), mb([104, 109, 107, 108]));
    expect(verdict.first?.value).toBeCloseTo(((100 + 101 + 100) / 3) * MB);
    expect(verdict.end).toEqual({ start: 0, value: ((104 + 109 + 107) / 3) * MB });
    expect(verdict.churnPeak).toBeCloseTo(108 / (301 / 3));
    expect(verdict.flat).toBe(true);
  });

  it("catches a leak: the end plateau 15 % above the first", () => {
    const verdict = judgeSoak(mb([100, 101, 100]), mb([90, 95, 100, 105]), mb([115, 116, 115]));
    expect(verdict.endRatio).toBeGreaterThan(1.1);
    expect(verdict.flat).toBe(false);
  });

  it("catches growth under load: a churn sample 12 % above the plateau", () => {
    expect(judgeSoak(mb([100, 100, 100]), mb([95, 112, 96]), mb([100, 101, 100])).flat).toBe(false);
  });

  it("is not flat when either settled phase never reaches a plateau", () => {
    expect(judgeSoak(mb([50, 70, 90]), mb([80]), mb([100, 100, 100])).flat).toBe(false);
    expect(judgeSoak(mb([100, 100, 100]), mb([80]), mb([100, 120, 140, 160])).flat).toBe(false);
  });

  it("catches an end plateau far below the first (state lost, not kept)", () => {
    expect(judgeSoak(mb([100, 100, 100]), mb([80]), mb([85, 86, 85])).flat).toBe(false);
  });
});
