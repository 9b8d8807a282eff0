// The opamp-supervisor CLI (dist/cli/supervisor.js): --check, a config error with its path
// and exit code 1, a usage error with exit code 2.
import { spawnSync } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { cleanup, REPO, tempDir } from "./helpers.js";

afterEach(cleanup);

const cli = (args: string[]) =>
  spawnSync(process.execPath, [join(REPO, "dist/cli/supervisor.js"), ...args], { encoding: "utf8", timeout: 30_000 });

describe("opamp-supervisor", () => {
  it("validates a config with --check, and names the path of a bad setting", async () => {
    const dir = await tempDir();
    const good = join(dir, "good.yaml");
    await writeFile(
      good,
      `server: { endpoint: "ws://127.0.0.1:1/v1/opamp", headers: { Authorization: "Bearer \${OPAMP_SDK_TEST_UNSET_TOKEN}" } }\nagent: { executable: ${process.execPath} }\nstorage: { directory: ${dir}/state }\n`,
    );
    const ok = cli(["--config", good, "--check"]);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/config is valid/);
    expect(ok.stdout).toMatch(/environment variable OPAMP_SDK_TEST_UNSET_TOKEN is not set/);
    const bad = join(dir, "bad.yaml");
    await writeFile(
      bad,
      `server: { endpoint: "ws://127.0.0.1:1/v1/opamp" }\nagent: { executable: ${process.execPath}, restart: { jitter: 2 } }\n`,
    );
    const refused = cli(["--config", bad, "--check"]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/bad\.yaml: agent\.restart\.jitter: must be a number between 0 and 1, got 2/);
    const usage = cli([]);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/usage: opamp-supervisor --config supervisor.yaml/);
  });
});
