#!/usr/bin/env node
// Builds the real OpenTelemetry Collector stack that the field-interop tests, the
// supervisor's e2e tests and agent-api's e2e tests run against:
//
//   - the Collector's own `opampsupervisor` (contrib cmd/opampsupervisor);
//   - a minimal Collector made with the Collector builder, holding otlpreceiver,
//     batchprocessor, debugexporter and contrib's opampextension, with the confmap file
//     and env providers.
//
// Both come from the Go module proxy at pinned versions. The binaries are cached in
// .cache/collector-stack/v<version>/ (git-ignored; OPAMP_COLLECTOR_STACK_DIR overrides it)
// with a stamp of the recipe, so a second run returns at once. Concurrent runs (several
// test workers) wait on one lock and build once.
//
//   node scripts/collector-stack.mjs           build if needed, print {"supervisor", "collector", ...} as JSON
//   node scripts/collector-stack.mjs --check   exit 0 when built, 1 when not (builds nothing)
//
// `go install …/opampsupervisor@v0.149.0` refuses, because the module's go.mod has replace
// directives pointing into the contrib repository. So the module is fetched with
// `go mod download -json`, copied, its replace directives dropped, and built with
// GOFLAGS=-mod=mod (the proxy then supplies every contrib module at its required version).

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, cp, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const root = resolve(import.meta.dirname, "..");

/** Release of the Collector modules (core and contrib move together). */
export const COLLECTOR_VERSION = "0.149.0";
/** The stable confmap providers released with it. */
const CONFMAP_VERSION = "1.55.0";

const SUPERVISOR_MODULE = "github.com/open-telemetry/opentelemetry-collector-contrib/cmd/opampsupervisor";
const BUILDER_MODULE = "go.opentelemetry.io/collector/cmd/builder";

const BUILDER_MANIFEST = `dist:
  name: otelcol-opamp
  description: Minimal OpenTelemetry Collector with the OpAMP extension (opamp-sdk field interop)
  output_path: ./otelcol
  version: ${COLLECTOR_VERSION}
receivers:
  - gomod: go.opentelemetry.io/collector/receiver/otlpreceiver v${COLLECTOR_VERSION}
processors:
  - gomod: go.opentelemetry.io/collector/processor/batchprocessor v${COLLECTOR_VERSION}
exporters:
  - gomod: go.opentelemetry.io/collector/exporter/debugexporter v${COLLECTOR_VERSION}
extensions:
  - gomod: github.com/open-telemetry/opentelemetry-collector-contrib/extension/opampextension v${COLLECTOR_VERSION}
providers:
  - gomod: go.opentelemetry.io/collector/confmap/provider/fileprovider v${CONFMAP_VERSION}
  - gomod: go.opentelemetry.io/collector/confmap/provider/envprovider v${CONFMAP_VERSION}
`;

/** Changes whenever what is built changes, so a stale cache is rebuilt. */
const RECIPE = createHash("sha256")
  .update(`${SUPERVISOR_MODULE}@v${COLLECTOR_VERSION}\n${BUILDER_MODULE}@v${COLLECTOR_VERSION}\n${BUILDER_MANIFEST}`)
  .digest("hex")
  .slice(0, 16);

const cacheDir =
  process.env.OPAMP_COLLECTOR_STACK_DIR ?? join(root, ".cache", "collector-stack", `v${COLLECTOR_VERSION}`);
const exe = process.platform === "win32" ? ".exe" : "";
const paths = {
  version: COLLECTOR_VERSION,
  supervisor: join(cacheDir, `opampsupervisor${exe}`),
  collector: join(cacheDir, `otelcol-opamp${exe}`),
};
const stampFile = join(cacheDir, "recipe");

async function exists(path) {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function built() {
  if (!(await exists(paths.supervisor)) || !(await exists(paths.collector))) return false;
  try {
    return (await readFile(stampFile, "utf8")).trim() === RECIPE;
  } catch {
    return false;
  }
}

/** Runs a command, streaming its output to stderr; resolves with stdout, rejects on a non-zero exit. */
function run(cmd, args, options = {}) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (s) => {
      stdout += s;
      if (!options.quiet) process.stderr.write(s);
    });
    child.stderr.setEncoding("utf8").on("data", (s) => process.stderr.write(s));
    child.on("error", reject);
    child.on("close", (code) => {
      if (code === 0) resolvePromise(stdout);
      else reject(new Error(`${cmd} ${args.join(" ")} exited with ${code}`));
    });
  });
}

/** GOFLAGS with `extra` added to what the environment already sets. */
function goflags(extra) {
  return [process.env.GOFLAGS ?? "", extra].filter((s) => s !== "").join(" ");
}

async function buildSupervisor(work) {
  const info = JSON.parse(
    await run("go", ["mod", "download", "-json", `${SUPERVISOR_MODULE}@v${COLLECTOR_VERSION}`], { quiet: true }),
  );
  const src = join(work, "opampsupervisor");
  await cp(info.Dir, src, { recursive: true });
  await run("chmod", ["-R", "u+w", src]);
  const mod = JSON.parse(await run("go", ["mod", "edit", "-json"], { cwd: src, quiet: true }));
  const drops = (mod.Replace ?? []).map((r) => `-dropreplace=${r.Old.Path}${r.Old.Version ? `@${r.Old.Version}` : ""}`);
  if (drops.length > 0) await run("go", ["mod", "edit", ...drops], { cwd: src });
  const out = `${paths.supervisor}.tmp`;
  await run("go", ["build", "-trimpath", "-o", out, "."], {
    cwd: src,
    env: { GOFLAGS: goflags("-mod=mod"), CGO_ENABLED: "0" },
  });
  await rename(out, paths.supervisor);
}

async function buildCollector(work) {
  const bin = join(work, "bin");
  await run("go", ["install", `${BUILDER_MODULE}@v${COLLECTOR_VERSION}`], { env: { GOBIN: bin } });
  await writeFile(join(work, "builder.yaml"), BUILDER_MANIFEST);
  await run(join(bin, `builder${exe}`), ["--config", "builder.yaml"], { cwd: work, env: { CGO_ENABLED: "0" } });
  const out = `${paths.collector}.tmp`;
  await cp(join(work, "otelcol", `otelcol-opamp${exe}`), out);
  await chmod(out, 0o755);
  await rename(out, paths.collector);
}

/** A directory lock: only one process builds; the others wait for it and reuse the result. */
async function withLock(body) {
  const lock = `${cacheDir}.lock`;
  await mkdir(join(cacheDir, ".."), { recursive: true });
  const started = Date.now();
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch (e) {
      if (e.code !== "EEXIST") throw e;
      // A lock older than the longest build is left by a killed run.
      const age = Date.now() - (await stat(lock).catch(() => ({ mtimeMs: Date.now() }))).mtimeMs;
      if (age > 20 * 60_000) {
        await rm(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() - started > 25 * 60_000) throw new Error(`timed out waiting for ${lock}`);
      await sleep(1000);
    }
  }
  try {
    return await body();
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

async function main() {
  if (process.argv.includes("--check")) {
    process.exit((await built()) ? 0 : 1);
  }
  if (!(await built())) {
    await withLock(async () => {
      if (await built()) return; // another process built it while we waited
      await mkdir(cacheDir, { recursive: true });
      const work = await mkdtemp(join(tmpdir(), "collector-stack-"));
      try {
        const started = Date.now();
        process.stderr.write(`collector-stack: building opampsupervisor v${COLLECTOR_VERSION}\n`);
        await buildSupervisor(work);
        process.stderr.write(`collector-stack: building otelcol-opamp v${COLLECTOR_VERSION} (Collector builder)\n`);
        await buildCollector(work);
        await writeFile(stampFile, `${RECIPE}\n`);
        process.stderr.write(
          `collector-stack: built in ${Math.round((Date.now() - started) / 1000)} s into ${cacheDir}\n`,
        );
      } finally {
        await rm(work, { recursive: true, force: true });
      }
    });
  }
  process.stdout.write(`${JSON.stringify(paths)}\n`);
}

main().catch((e) => {
  process.stderr.write(`collector-stack: ${e.message}\n`);
  process.exit(1);
});
