// Shared plumbing for the tests that run opamp-go through the harness in ./go
// (one binary, `opamp-interop <subcommand>`). Every interop test file uses
// describeWithGo + buildHarness + runHarness, so Go-less machines skip them the
// same way and CI fails the same way.

import { spawn, spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "vitest";

/** Directory of the Go module (test/interop/go). */
export const HARNESS_DIR = fileURLToPath(new URL("./go/", import.meta.url));

/** Repository root, for tools such as node_modules/.bin/buf. */
export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** A cold `go build` downloads opamp-go and compiles protobuf: allow for it. */
export const BUILD_TIMEOUT_MS = 240_000;

/** Default limit for one harness run. */
export const RUN_TIMEOUT_MS = 60_000;

let goChecked: boolean | undefined;

/** True when a working `go` command is on PATH (checked once per process). */
export function goAvailable(): boolean {
  if (goChecked === undefined) {
    const r = spawnSync("go", ["version"], { encoding: "utf8", timeout: 30_000 });
    goChecked = r.status === 0;
  }
  return goChecked;
}

/** True when the CI environment variable asks for CI behaviour (any value but "", "0", "false"). */
export function inCI(): boolean {
  const ci = process.env["CI"];
  return ci !== undefined && ci !== "" && ci !== "0" && ci.toLowerCase() !== "false";
}

/**
 * `describe` for tests that need Go. Without `go` on PATH the suite is skipped
 * with a warning, except in CI (see {@link inCI}), where a failing test takes its
 * place: interop must not silently vanish from CI.
 */
export function describeWithGo(name: string, body: () => void): void {
  const available = goAvailable();
  if (!available) {
    const why = `${name}: the Go toolchain ("go" on PATH, Go >= 1.24) is needed to build test/interop/go`;
    if (inCI()) {
      describe(name, () => {
        it("has the Go toolchain", () => {
          throw new Error(`${why}; CI is set, so this fails instead of skipping. Install Go and re-run.`);
        });
      });
      return;
    }
    console.warn(`SKIPPED ${why}. Install Go to run it (in CI this fails instead).`);
  }
  describe.skipIf(!available)(name, body);
}

/** What a finished process left behind. */
export interface RunResult {
  /** Exit code; null when killed by a signal (e.g. the timeout). */
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  /** Kill the process after this long (default {@link RUN_TIMEOUT_MS}). */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/**
 * Runs a command to completion and collects its output. Never rejects because
 * of the exit code (tests assert on it); rejects only when it cannot start.
 */
export function runCommand(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
      timeout: opts.timeoutMs ?? RUN_TIMEOUT_MS,
      killSignal: "SIGKILL",
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding("utf8").on("data", (s: string) => {
      stderr += s;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

let built: Promise<string> | undefined;

/**
 * Builds `opamp-interop` into a fresh temporary directory once per process and
 * resolves to the binary's path. Rejects with go's output when the build fails.
 */
export function buildHarness(): Promise<string> {
  built ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), "opamp-interop-bin-"));
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
    const bin = join(dir, process.platform === "win32" ? "opamp-interop.exe" : "opamp-interop");
    const r = await runCommand("go", ["build", "-o", bin, "."], { cwd: HARNESS_DIR, timeoutMs: BUILD_TIMEOUT_MS });
    if (r.code !== 0) {
      throw new Error(`go build in ${HARNESS_DIR} failed (exit ${r.code}):\n${r.stderr}${r.stdout}`);
    }
    return bin;
  })();
  return built;
}

/** Runs `opamp-interop ...args` (building it first if needed). */
export async function runHarness(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const bin = await buildHarness();
  return runCommand(bin, args, opts);
}
