/**
 * What the reliability suites' processes agree on without talking: the seeded PRNG, which
 * group (config) an agent belongs to, the config of a group at a version, and how the Go
 * fleet (`opamp-bench soak`) describes agent `index`.
 */

/** A deterministic PRNG (mulberry32): the same seed gives the same schedule. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in [min, max] drawn from `random`. */
export function between(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}

/** A seed for a run: OPAMP_SOAK_SEED when set (to replay a run), else a fresh one. */
export function runSeed(): number {
  const given = process.env["OPAMP_SOAK_SEED"];
  if (given !== undefined && given !== "") {
    const seed = Number(given);
    if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff) {
      throw new Error(`OPAMP_SOAK_SEED must be an integer in [0, 2^32): ${given}`);
    }
    return seed;
  }
  return Math.floor(Math.random() * 0xffffffff);
}

/** The group of an agent: its UID's last byte modulo the number of groups. */
export function groupOf(uid: string, groups: number): number {
  return Number.parseInt(uid.slice(-2), 16) % groups;
}

/** The YAML body of group `group`'s config at `version`, `bytes` long. */
export function configBody(group: number, version: number, bytes: number): string {
  let text = `# soak config: group ${group}, version ${version}\nreceivers:\n  otlp:\n    protocols:\n      grpc: {}\n`;
  for (let i = 0; text.length < bytes; i++) {
    text += `  attributes/g${group}v${version}r${i}:\n    actions: [{ key: rule.${i}, value: v${version}, action: upsert }]\n`;
  }
  return text.slice(0, bytes);
}

/** The `service.instance.id` the Go fleet gives agent `index` (bench/go/messages.go). */
export function instanceIdOf(index: number): string {
  return `0192d1a4-${(index % 0xffff).toString(16).padStart(4, "0")}-7c3e-9f1a-${index.toString(16).padStart(12, "0")}`;
}

/** Canonical UUID string of 32 hex digits. */
export function uuidOf(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
