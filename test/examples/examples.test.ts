// Runs the shipped examples as a user would (against the built package in dist/, which
// `npm test` builds first), so the README's main command cannot silently rot.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "../..");

function runNode(script: string, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [join(root, script)], { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", fail);
    child.on("close", (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

describe("examples", () => {
  it("the build the examples import exists (npm test builds it first)", () => {
    expect(existsSync(join(root, "dist/server/index.js"))).toBe(true);
    expect(existsSync(join(root, "dist/client/index.js"))).toBe(true);
  });

  it("npm run demo: a WebSocket agent and an HTTP agent both apply the pushed config", async () => {
    const { code, stdout, stderr } = await runNode("examples/demo.mjs", 25_000);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toMatch(/reports config APPLIED/);
    // The server's reconstructed view: both agents, both transports, config APPLIED.
    expect(stdout).toMatch(/ http\s+config APPLIED\s+effective collector\.yaml: "receivers:"/);
    expect(stdout).toMatch(/ websocket\s+config APPLIED\s+effective collector\.yaml: "receivers:"/);
    expect(stdout).toMatch(/disconnected \(agent_disconnect\)[\s\S]*disconnected \(agent_disconnect\)/);
    expect(stdout).toMatch(/done: config applied over http and websocket/);
  });

  it("examples/gateway.mjs: two agents behind a gateway, each authenticated by the server, apply a config", async () => {
    const { code, stdout, stderr } = await runNode("examples/gateway.mjs", 25_000);
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toMatch(/2 upstream connections open/);
    expect(stdout).toMatch(/server: team-a\/agent-1 connected \(via the gateway/);
    expect(stdout).toMatch(/server: team-a\/agent-2 connected \(via the gateway/);
    expect(stdout).toMatch(/agent-1 applies collector\.yaml/);
    expect(stdout).toMatch(/agent-2 applies collector\.yaml/);
    expect(stdout).toMatch(/server: team-a\/agent-1 reports config APPLIED/);
    expect(stdout).toMatch(/server: team-a\/agent-2 reports config APPLIED/);
    expect(stdout).toMatch(/gateway metrics: [1-9]\d* messages up, [1-9]\d* down, 2 upstream and 2 agent connections/);
    expect(stdout).toMatch(/done: two agents behind one gateway/);
  });
});
