#!/usr/bin/env node
// The long modes of the standing reliability suites (issue 16; docs/reliability.md):
//   npm run soak     2,000 agents churning for 10 minutes (test/reliability/soak.test.ts)
//   npm run faults   kill -9 during a fan-out to 10,000 agents (test/reliability/faults.test.ts)
// Both print their seed and figures; OPAMP_SOAK_SEED replays a run. Extra arguments go to
// vitest. The CI runs (2 minutes, 2,000 agents) are part of `npm test`.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const suites = { soak: "test/reliability/soak.test.ts", faults: "test/reliability/faults.test.ts" };
const [name, ...rest] = process.argv.slice(2);
const file = suites[name];
if (file === undefined) {
  console.error(`usage: node scripts/reliability.mjs <${Object.keys(suites).join("|")}> [vitest arguments]`);
  process.exit(2);
}
// vitest's own command line (its package exports no path to it; its bin names it).
const manifest = createRequire(import.meta.url).resolve("vitest/package.json");
const vitest = join(dirname(manifest), JSON.parse(readFileSync(manifest, "utf8")).bin.vitest);
const child = spawn(process.execPath, [vitest, "run", file, ...rest], {
  stdio: "inherit",
  env: { ...process.env, OPAMP_RELIABILITY_LONG: "1" },
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
