/**
 * One-shot Collector commands the supervisor runs: the feature-gate probe
 * (`<collector> featuregate`) and config validation (`<collector> validate`).
 */
import { execFile } from "node:child_process";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../state/atomic-file.js";

/** The gate that lets the Collector start with no pipeline. */
export const ALLOW_NO_PIPELINES_GATE = "service.AllowNoPipelines";

function run(
  executable: string,
  args: readonly string[],
  timeoutMs: number,
  env: Readonly<Record<string, string>>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      executable,
      [...args],
      { timeout: timeoutMs, killSignal: "SIGKILL", env: { ...process.env, ...env }, maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : null;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

/** Whether `<executable> featuregate` lists service.AllowNoPipelines (false when it cannot tell). */
export async function probeAllowNoPipelines(
  executable: string,
  env: Readonly<Record<string, string>>,
): Promise<boolean> {
  const result = await run(executable, ["featuregate"], 5_000, env);
  if (result.code !== 0) return false;
  return result.stdout.split("\n").some((line) => line.split(/\s/)[0] === ALLOW_NO_PIPELINES_GATE);
}

/**
 * Runs `<executable> validate --config <tmp>` on a composed config (10 s limit).
 * Resolves undefined when valid, else the Collector's error output.
 */
export async function validateCollectorConfig(
  executable: string,
  directory: string,
  content: string,
  extraArgs: readonly string[],
  env: Readonly<Record<string, string>>,
): Promise<string | undefined> {
  const temp = join(directory, `validate-config-${process.pid}-${Date.now()}.yaml`);
  await writeFileAtomic(temp, content);
  try {
    const result = await run(executable, ["validate", "--config", temp, ...extraArgs], 10_000, env);
    if (result.code === 0) return undefined;
    const output = `${result.stderr}\n${result.stdout}`.trim();
    return output === "" ? `validation exited with code ${String(result.code)}` : output.slice(-4096);
  } finally {
    await rm(temp, { force: true });
  }
}
