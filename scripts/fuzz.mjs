#!/usr/bin/env node
// The fuzzing suite's long mode (issue 16): the same tests as in `npm test` (test/fuzz),
// with many more inputs. Prints the seed; pass it back to repeat a run input for input.
//
//   npm run fuzz                              1 000 000 inputs, a new seed
//   npm run fuzz -- --inputs 200000 --seed 42
//   FUZZ_INPUTS=… FUZZ_SEED=… npm run fuzz    the same through the environment
//
// Summaries land in .tmp/fuzz-server.json and .tmp/fuzz-client.json.
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    inputs: { type: "string", default: process.env.FUZZ_INPUTS || "1000000" },
    seed: { type: "string", default: process.env.FUZZ_SEED || String((Date.now() ^ (process.pid << 16)) >>> 0) },
  },
});
for (const [name, value] of Object.entries(values)) {
  if (!/^\d+$/.test(value)) {
    console.error(`--${name} must be a non-negative integer, got "${value}"`);
    process.exit(2);
  }
}
console.log(`fuzzing: FUZZ_INPUTS=${values.inputs} FUZZ_SEED=${values.seed}`);
const result = spawnSync("npx", ["vitest", "run", "test/fuzz", "--reporter=default"], {
  cwd: resolve(import.meta.dirname, ".."),
  stdio: "inherit",
  env: { ...process.env, FUZZ_INPUTS: values.inputs, FUZZ_SEED: values.seed },
});
console.log(`fuzzing: FUZZ_INPUTS=${values.inputs} FUZZ_SEED=${values.seed} (repeat with the same values)`);
process.exit(result.status ?? 1);
