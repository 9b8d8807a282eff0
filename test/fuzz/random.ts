/**
 * A small seeded PRNG for the fuzzers: every input is made from its own stream, derived
 * from the run's seed and the input's index, so any one input can be made again alone.
 */

/** splitmix32: spreads a 32-bit seed over the PRNG's state. */
function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** sfc32 (Small Fast Counting), seeded through splitmix32. Deterministic; not for secrets. */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number, stream = 0) {
    const mix = splitmix32((seed ^ Math.imul(stream + 1, 0x27d4eb2d)) >>> 0);
    this.#a = mix();
    this.#b = mix();
    this.#c = mix();
    this.#d = mix();
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t;
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.u32() / 0x1_0000_0000) * n);
  }

  /** A uniform integer in [min, max]. */
  range(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }

  /** One of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }

  /** A uint64, often at the edges (0, 1, 2^63, 2^64-1). */
  u64(): bigint {
    switch (this.int(6)) {
      case 0:
        return 0n;
      case 1:
        return 1n;
      case 2:
        return 2n ** 64n - 1n;
      case 3:
        return 2n ** 63n;
      default:
        return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
    }
  }

  /** A short string: ASCII, multi-byte, empty, or long. */
  string(max = 24): string {
    switch (this.int(8)) {
      case 0:
        return "";
      case 1:
        return "é€𝄞".repeat(this.range(1, 4));
      case 2:
        return "x".repeat(this.range(100, 600));
      default: {
        let s = "";
        const n = this.range(1, max);
        for (let i = 0; i < n; i++) s += String.fromCharCode(0x61 + this.int(26));
        return s;
      }
    }
  }
}

/** The run's seed: `FUZZ_SEED` when set, else a new one (printed so that a run can be repeated). */
export function runSeed(): number {
  const given = process.env["FUZZ_SEED"];
  if (given !== undefined && given !== "") {
    const seed = Number(given);
    if (!Number.isSafeInteger(seed) || seed < 0)
      throw new Error(`FUZZ_SEED must be a non-negative integer, got ${given}`);
    return seed >>> 0;
  }
  return (Date.now() ^ (process.pid << 16)) >>> 0;
}

/** Inputs for this run: `FUZZ_INPUTS` (the long mode sets it), else `fallback`. */
export function runInputs(fallback: number): number {
  const given = process.env["FUZZ_INPUTS"];
  if (given === undefined || given === "") return fallback;
  const n = Number(given);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`FUZZ_INPUTS must be a positive integer, got ${given}`);
  return n;
}
