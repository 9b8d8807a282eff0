// The conformance kit's client checks against the OpenTelemetry Java OpAMP client
// (io.opentelemetry.contrib:opentelemetry-opamp-client from Maven Central), plain HTTP,
// through test/conformance/java/OpampAgent.java run by the JDK's source launcher. Maven
// resolves the classpath once into .tmp. Without java and mvn, or when Maven Central is
// unreachable, the test is skipped with a warning. (Its WebSocket transport is not in the
// matrix: see docs/interop.md.)

import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { startClientChecks } from "../../src/testing/conformance/index.js";
import { REPO_ROOT } from "../interop/go-harness.js";
import { JAVA_CLIENT_HTTP } from "./deviations.js";
import { deviationNotes, expectConformance, type GoProcess, startProcess, writeMatrixEntry } from "./peers.js";

/** The version in test/conformance/java/pom.xml; bump both together with the deviations. */
const JAVA_CLIENT_VERSION = "1.53.0-alpha";
const JAVA_DIR = fileURLToPath(new URL("./java/", import.meta.url));
const CLASSPATH_FILE = join(REPO_ROOT, ".tmp", `java-opamp-${JAVA_CLIENT_VERSION}.classpath`);

/** Resolves the client's classpath once; returns it, or why it could not. */
function resolveClasspath(): { classpath: string } | { why: string } {
  if (spawnSync("java", ["-version"], { timeout: 30_000 }).status !== 0) return { why: "no java on PATH" };
  if (!existsSync(CLASSPATH_FILE)) {
    const mvn = spawnSync(
      "mvn",
      ["-q", "-f", join(JAVA_DIR, "pom.xml"), "dependency:build-classpath", `-Dmdep.outputFile=${CLASSPATH_FILE}`],
      { encoding: "utf8", timeout: 600_000 },
    );
    if (mvn.status !== 0) return { why: `mvn could not resolve the client: ${mvn.error?.message ?? mvn.stdout}` };
  }
  return { classpath: readFileSync(CLASSPATH_FILE, "utf8").trim() };
}

const resolved = resolveClasspath();
if ("why" in resolved) console.warn(`SKIPPED the Java OpAMP client conformance run: ${resolved.why}`);

describe.skipIf("why" in resolved)("conformance: OpenTelemetry Java OpAMP client", () => {
  it("passes the client checks over http, apart from its recorded deviations", { timeout: 240_000 }, async () => {
    const classpath = "classpath" in resolved ? resolved.classpath : "";
    const session = await startClientChecks({ connectTimeoutMs: 60_000, pollWaitMs: 15_000 });
    let agent: GoProcess | undefined;
    try {
      // A 5 s poll: the client has no heartbeat capability and takes no interval from the server.
      agent = await startProcess("java", ["-cp", classpath, join(JAVA_DIR, "OpampAgent.java"), session.httpUrl, "5"]);
      await session.scriptDone;
      expect(await agent.stop()).toBe(0);
      const report = await session.finish({ disconnectTimeoutMs: 3_000 });
      await writeMatrixEntry({
        implementation: "opentelemetry-opamp-client (Java)",
        version: JAVA_CLIENT_VERSION,
        ours: false,
        role: "client",
        transport: "http",
        deviations: deviationNotes(JAVA_CLIENT_HTTP),
        report,
      });
      expectConformance(report, JAVA_CLIENT_HTTP);
    } finally {
      await agent?.stop();
      await session.close();
    }
  });
});
