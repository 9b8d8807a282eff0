// scripts/interop-matrix.mjs: conformance results in, docs/interop.md out.

import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import type { ConformanceReport } from "../../src/testing/conformance/index.js";
import { REPO_ROOT, runCommand } from "../interop/go-harness.js";
import type { MatrixEntry } from "./peers.js";

const SCRIPT = join(REPO_ROOT, "scripts", "interop-matrix.mjs");
const dirs: string[] = [];

afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

function report(results: ConformanceReport["results"]): ConformanceReport {
  return {
    kind: "client",
    target: "http://127.0.0.1:1/v1/opamp",
    startedAt: "2026-11-22T01:00:00.000Z",
    durationMs: 1,
    results,
    summary: { pass: 0, fail: 0, not_applicable: 0 },
  };
}

const check = { title: "T", specSection: "Spec §1", durationMs: 1 } as const;

async function inputDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "interop-matrix-"));
  dirs.push(dir);
  const entries: MatrixEntry[] = [
    {
      implementation: "opamp-sdk",
      version: "workspace",
      ours: true,
      role: "client",
      transport: "ws",
      deviations: [],
      report: report([
        { ...check, id: "client.a", transport: "ws", status: "pass" },
        { ...check, id: "client.b", transport: "ws", status: "pass" },
      ]),
    },
    {
      implementation: "peer",
      version: "1.0",
      ours: false,
      role: "client",
      transport: "http",
      deviations: [{ id: "client.b", transport: "http", note: "peer ignores b" }],
      report: report([
        { ...check, id: "client.a", transport: "http", status: "not_applicable", reason: "no capability" },
        { ...check, id: "client.b", transport: "http", status: "fail", evidence: "b came after 12 ms" },
      ]),
    },
  ];
  for (const [i, e] of entries.entries()) await writeFile(join(dir, `${i}.json`), JSON.stringify(e));
  await mkdir(join(dir, "pairwise"));
  await writeFile(
    join(dir, "pairwise", "p.json"),
    JSON.stringify({
      client: { implementation: "peer", version: "1.0" },
      server: { implementation: "opamp-sdk", version: "workspace" },
      transport: "http",
      stages: [
        { stage: "connect", status: "pass", evidence: "ok" },
        { stage: "disconnect", status: "fail", evidence: "no agent_disconnect" },
      ],
      deviations: [{ stage: "disconnect", note: "peer sends none" }],
    }),
  );
  return dir;
}

it("renders implementation × transport × check, deviations as theirs, and pairwise stages", async () => {
  const dir = await inputDir();
  const out = join(dir, "interop.md");
  const r = await runCommand(process.execPath, [SCRIPT, "--in", dir, "--out", out]);
  expect(r.code, r.stderr).toBe(0);
  const md = await readFile(out, "utf8");
  expect(md).toContain("| Check | Spec section | opamp-sdk workspace · WS | peer 1.0 · HTTP |");
  expect(md).toMatch(/\| `client\.a` \| Spec §1 \| ✅ pass \| ➖ n\/a \[1\] \|/);
  expect(md).toMatch(/\| `client\.b` \| Spec §1 \| ✅ pass \| ⚠️ deviation \(theirs\) \[2\] \|/);
  expect(md).toContain("[2] peer http: peer ignores b");
  expect(md).toContain("- **peer 1.0** (client, HTTP) — `client.b`: peer ignores b. Evidence: “b came after 12 ms”.");
  expect(md).toContain("opamp-sdk's own implementations passed every applicable check.");
  expect(md).toMatch(/\| peer 1\.0 \| opamp-sdk workspace \| HTTP \| ✅ \| ⚠️ peer \[1\] \|/);
});

it("--check passes on an up-to-date file whatever the timings, and fails on a stale one", async () => {
  const dir = await inputDir();
  const out = join(dir, "interop.md");
  expect((await runCommand(process.execPath, [SCRIPT, "--in", dir, "--out", out])).code).toBe(0);
  const md = await readFile(out, "utf8");
  await writeFile(out, md.replace("b came after 12 ms", "b came after 15 ms"));
  expect((await runCommand(process.execPath, [SCRIPT, "--in", dir, "--out", out, "--check"])).code).toBe(0);
  await writeFile(out, md.replace("⚠️ deviation (theirs) [2]", "✅ pass"));
  const stale = await runCommand(process.execPath, [SCRIPT, "--in", dir, "--out", out, "--check"]);
  expect(stale.code).toBe(1);
  expect(stale.stderr).toContain("out of date");
});

it("fails clearly without results", async () => {
  const dir = await mkdtemp(join(tmpdir(), "interop-matrix-empty-"));
  dirs.push(dir);
  const r = await runCommand(process.execPath, [SCRIPT, "--in", dir, "--out", join(dir, "x.md")]);
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain("run `npx vitest run test/conformance` first");
});
