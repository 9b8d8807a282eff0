#!/usr/bin/env node
// Ends what a CI run left behind. .ci/run marks its environment with OPAMP_CI_RUN=<id>;
// every process the tests started inherits it, unless a test gave its child a new
// environment. A survivor (a Collector whose supervisor was killed, a server a crashed
// test never stopped) would hold the CI's output pipe open and keep the run from ending,
// so each one is named on stderr and killed. This script, and the shells that run it,
// are spared. Linux only (reads /proc); elsewhere it does nothing.
//   node scripts/ci-reap.mjs            kill the survivors of this run
import { readdirSync, readFileSync } from "node:fs";

const marker = process.env.OPAMP_CI_RUN;
if (marker === undefined || marker === "") process.exit(0);
const needle = Buffer.from(`OPAMP_CI_RUN=${marker}\0`);

/** This process and its ancestors: the CI's own shells. */
const spared = new Set();
for (let pid = process.pid; pid > 1; ) {
  spared.add(pid);
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    pid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    break;
  }
}

let pids = [];
try {
  pids = readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
} catch {
  process.exit(0);
}
let killed = 0;
for (const pid of pids) {
  if (spared.has(pid)) continue;
  let environ;
  try {
    environ = readFileSync(`/proc/${pid}/environ`);
  } catch {
    continue;
  }
  if (!environ.includes(needle)) continue;
  let command = "";
  try {
    command = readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim();
  } catch {}
  try {
    process.kill(pid, "SIGKILL");
    killed += 1;
    process.stderr.write(`ci-reap: killed ${pid} left over by the run: ${command.slice(0, 200)}\n`);
  } catch {}
}
if (killed === 0) process.stderr.write("ci-reap: nothing left over\n");
