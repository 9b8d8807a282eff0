#!/usr/bin/env node
// Live memory per agent, apart from the heap V8 keeps committed: an OpAMPServer from dist/
// in this process, N agents of the Go load generator (bench/go/bin/opamp-bench, built by
// bench/run.mjs), then RSS, V8 heap and ArrayBuffer memory before and after a forced full GC.
// A diagnostic, not a benchmark: no pinning, no repeats, no opamp-go side.
//
//   node --expose-gc bench/ts/gc-probe.mjs [agents=5000] [port=4399]
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

if (typeof global.gc !== "function") {
  console.error("run with node --expose-gc");
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));
const { OpAMPServer } = await import(join(here, "../../dist/server/index.js"));
const agents = Number(process.argv[2] ?? 5000);
const port = Number(process.argv[3] ?? 4399);
const server = new OpAMPServer({ allowAnonymous: true, path: "/v1/opamp" });
await server.listen({ port, host: "127.0.0.1" });

const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))[1]) * 1024;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const sample = (label) => {
  const m = process.memoryUsage();
  const mb = (bytes) => (bytes / 1e6).toFixed(1);
  console.log(
    `${label}: RSS ${mb(rss())} MB, V8 heap used ${mb(m.heapUsed)} MB, ArrayBuffers ${mb(m.arrayBuffers)} MB`,
  );
  return rss();
};

global.gc();
const base = sample("before");
const load = spawn(
  join(here, "../go/bin/opamp-bench"),
  [
    "load",
    "-agents",
    String(agents),
    "-url",
    `ws://127.0.0.1:${port}/v1/opamp`,
    "-duration",
    "300s",
    "-stop-on-stdin-eof",
  ],
  { stdio: ["pipe", "pipe", "inherit"] },
);
let synced = 0;
load.stdout.on("data", (chunk) => {
  for (const line of String(chunk).split("\n")) {
    try {
      synced = Math.max(synced, JSON.parse(line).synced ?? 0);
    } catch {
      // not a progress line
    }
  }
});
while (server.agents.size < agents || synced < agents) await sleep(200);
await sleep(3000);
const settled = sample("all synced, 3 s later");
global.gc();
await sleep(500);
global.gc();
const collected = sample("after a full GC");
const perAgent = (value) => Math.round((value - base) / agents);
console.log(`RSS per agent: ${perAgent(settled)} B, after a full GC ${perAgent(collected)} B`);
load.stdin.end();
load.kill();
await server.stop();
process.exit(0);
