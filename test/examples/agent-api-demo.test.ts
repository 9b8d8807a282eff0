// npm run demo:agent-api, as a user runs it (against dist/, which npm test builds first).
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";

it("npm run demo:agent-api: four simulated agents enroll and every delivery reaches applied, through a rollout and a rollback", {
  timeout: 90_000,
}, () => {
  const demo = fileURLToPath(new URL("../../examples/agent-api/demo.mjs", import.meta.url));
  const run = spawnSync(process.execPath, [demo], { encoding: "utf8", timeout: 80_000 });
  expect(run.stderr).toBe("");
  expect(run.status).toBe(0);
  expect(run.stdout).toMatch(/4 agents enrolled \(2 over WebSocket, 2 over HTTP\) and applied revision 1/);
  expect(run.stdout.match(/^ {2}edge-\d +r1 +applied /gm)).toHaveLength(8);
  expect(run.stdout).toMatch(/revision 2 rolled out: every delivery applied/);
  expect(run.stdout).toMatch(/rolled back to revision 1: every delivery applied/);
});
