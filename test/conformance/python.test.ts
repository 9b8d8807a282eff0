// The conformance kit's client checks against the OpenTelemetry Python OpAMP client
// (opentelemetry-opamp-client from PyPI, HTTP only), through test/conformance/python.
// The package is installed into a virtualenv under .tmp on first use. Without python3, or
// when the install fails (no network), the test is skipped with a warning.

import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { startClientChecks } from "../../src/testing/conformance/index.js";
import { REPO_ROOT } from "../interop/go-harness.js";
import { PYTHON_CLIENT_HTTP } from "./deviations.js";
import { deviationNotes, expectConformance, type GoProcess, startProcess, writeMatrixEntry } from "./peers.js";

/** The version checked; bump it together with the recorded deviations. */
const PYTHON_CLIENT_VERSION = "0.5b0";
const VENV = join(REPO_ROOT, ".tmp", `py-opamp-${PYTHON_CLIENT_VERSION}`);
const PYTHON = join(VENV, "bin", "python");
const AGENT = fileURLToPath(new URL("./python/opamp_agent.py", import.meta.url));

/** Creates the virtualenv with the client once; returns why it could not, or undefined. */
function ensurePythonClient(): string | undefined {
  const probe = () =>
    existsSync(PYTHON) &&
    spawnSync(PYTHON, ["-c", "import opentelemetry._opamp.agent"], { timeout: 30_000 }).status === 0;
  if (probe()) return undefined;
  const venv = spawnSync("python3", ["-m", "venv", VENV], { encoding: "utf8", timeout: 120_000 });
  if (venv.status !== 0) return `python3 -m venv failed: ${venv.error?.message ?? venv.stderr}`;
  const pip = spawnSync(
    join(VENV, "bin", "pip"),
    ["install", "--quiet", "--timeout", "15", "--retries", "1", `opentelemetry-opamp-client==${PYTHON_CLIENT_VERSION}`],
    { encoding: "utf8", timeout: 300_000 },
  );
  if (pip.status !== 0) return `pip install opentelemetry-opamp-client failed: ${pip.error?.message ?? pip.stderr}`;
  return probe() ? undefined : "the installed client cannot be imported";
}

const unavailable = ensurePythonClient();
if (unavailable !== undefined) console.warn(`SKIPPED the Python OpAMP client conformance run: ${unavailable}`);

describe.skipIf(unavailable !== undefined)("conformance: OpenTelemetry Python OpAMP client", () => {
  it("passes the client checks over http, apart from its recorded deviations", { timeout: 180_000 }, async () => {
    const session = await startClientChecks({ connectTimeoutMs: 30_000, pollWaitMs: 15_000 });
    let agent: GoProcess | undefined;
    try {
      // Its own 5 s interval: the client has no way to take the server's.
      agent = await startProcess(PYTHON, [AGENT, session.httpUrl, "5"]);
      await session.scriptDone;
      expect(await agent.stop()).toBe(0);
      const report = await session.finish({ disconnectTimeoutMs: 3_000 });
      await writeMatrixEntry({
        implementation: "opentelemetry-opamp-client (Python)",
        version: PYTHON_CLIENT_VERSION,
        ours: false,
        role: "client",
        transport: "http",
        deviations: deviationNotes(PYTHON_CLIENT_HTTP),
        report,
      });
      expectConformance(report, PYTHON_CLIENT_HTTP);
    } finally {
      await agent?.stop();
      await session.close();
    }
  });
});
