#!/usr/bin/env node
// Checks the published shape of the package, as a user would meet it:
//  1. `npm pack` the built package;
//  2. @arethetypeswrong/cli on the tarball, default profile (types resolve for import and
//     require under node10, node16 and bundler resolution); every subpath of the exports map
//     has its typesVersions fallback for node10;
//  3. a scratch project installs the tarball, then `import` and `require` every subpath
//     of the exports map and checks that each exposes at least one named export, and the
//     same names both ways;
//  4. the release: `.changeset/config.json` gives an access npm accepts for this name (an
//     unscoped package is always public), and `npm publish --dry-run` of the tarball with
//     that access succeeds; every relative link of the README and of the shipped docs
//     points to a file in the tarball (the registry page and node_modules readers follow them);
//  5. in that project, errors of the CJS build are recognised by the ESM build's
//     isOpampError() (instanceof cannot: two classes), and class names survive bundling.
// Run after `npm run build`.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, posix, resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const subpaths = Object.keys(pkg.exports).filter((p) => p !== "./package.json");
const work = mkdtempSync(join(tmpdir(), "opamp-sdk-pack-"));
const run = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

let failures = 0;
function check(ok, label) {
  console.log(`${ok ? "ok  " : "FAIL"} ${label}`);
  if (!ok) failures++;
}

try {
  const packed = JSON.parse(run("npm", ["pack", "--json", "--pack-destination", work], root));
  const tarball = join(work, packed[0].filename);
  const files = packed[0].files.map((f) => f.path);
  for (const sub of subpaths.filter((p) => p !== ".")) {
    const fallback = pkg.typesVersions?.["*"]?.[sub.slice(2)]?.[0];
    check(fallback === pkg.exports[sub].require.types, `typesVersions maps ${sub} to ${fallback}`);
  }
  check(!files.some((f) => f.startsWith("src/") || f.startsWith("test/")), "tarball holds no sources or tests");
  for (const sub of subpaths) {
    const target = pkg.exports[sub];
    for (const cond of ["import", "require"]) {
      for (const kind of ["types", "default"]) {
        const file = target[cond][kind].replace(/^\.\//, "");
        check(files.includes(file), `tarball has ${file} (${sub} ${cond} ${kind})`);
      }
    }
  }

  const links = [];
  for (const doc of files.filter((f) => f === "README.md" || /^docs\/[^/]+\.md$/.test(f))) {
    const text = readFileSync(join(root, doc), "utf8");
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:|^#/.test(target)) continue;
      const file = posix.normalize(posix.join(posix.dirname(doc), target.replace(/#.*$/, "")));
      if (!files.includes(file)) links.push(`${doc} -> ${target}`);
    }
  }
  check(
    links.length === 0,
    `README and shipped docs link only to shipped files${links.length ? `: ${links.join(", ")}` : ""}`,
  );

  const changesets = JSON.parse(readFileSync(join(root, ".changeset/config.json"), "utf8"));
  const scoped = pkg.name.startsWith("@");
  check(
    changesets.access === "public" || (scoped && changesets.access === "restricted"),
    `.changeset/config.json access "${changesets.access}" is publishable for ${scoped ? "a scoped" : "an unscoped"} package`,
  );
  try {
    const dry = execFileSync(
      "npm",
      // --loglevel: under `npm run --silent` the inherited silent level would hide the result line.
      ["publish", "--dry-run", "--ignore-scripts", "--loglevel=notice", "--access", changesets.access, tarball],
      { cwd: work, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
    );
    check(/opamp-sdk@/.test(dry), `npm publish --dry-run (${changesets.access} access): ok`);
  } catch (e) {
    console.log(String(e.stdout ?? ""), String(e.stderr ?? ""));
    check(false, "npm publish --dry-run failed");
  }

  try {
    // attw's default profile: node10 (through typesVersions), node16 from CJS and ESM, bundler.
    const out = run(join(root, "node_modules/.bin/attw"), [tarball, "--format", "ascii"], root);
    console.log(out.trim());
    check(true, "attw: no problems (node10, node16 and bundler resolution)");
  } catch (e) {
    console.log(String(e.stdout ?? ""), String(e.stderr ?? ""));
    check(false, "attw reported problems");
  }

  const scratch = join(work, "scratch");
  mkdirSync(scratch);
  writeFileSync(join(scratch, "package.json"), JSON.stringify({ name: "scratch", private: true, version: "0.0.0" }));
  // --engine-strict: what an application installs must run on every Node the package claims.
  run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", "--engine-strict", tarball], scratch);
  for (const sub of subpaths) {
    const spec = sub === "." ? pkg.name : `${pkg.name}/${sub.slice(2)}`;
    const esm = run(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `const m = await import(${JSON.stringify(spec)}); console.log(Object.keys(m).sort().join(","));`,
      ],
      scratch,
    ).trim();
    // Every exported class and function carries its own name (the build keeps no names
    // by itself: a class that names itself inside its body would be renamed `_Name`).
    const renamed = run(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `const m = await import(${JSON.stringify(spec)});
         const bad = Object.entries(m).filter(([k, v]) => typeof v === "function" && v.name !== k);
         console.log(bad.map(([k, v]) => k + " is named " + v.name).join("; "));`,
      ],
      scratch,
    ).trim();
    check(renamed === "", `every function exported by ${spec} keeps its name${renamed && `: ${renamed}`}`);
    const cjs = run(
      process.execPath,
      [
        "-e",
        `const m = require(${JSON.stringify(spec)}); console.log(Object.keys(m).filter(k => k !== "__esModule").sort().join(","));`,
      ],
      scratch,
    ).trim();
    check(esm.length > 0, `import ${spec} -> ${esm.split(",").length} names`);
    check(cjs.length > 0, `require ${spec} -> ${cjs.split(",").length} names`);
    check(esm === cjs, `import and require of ${spec} expose the same names`);
  }

  const crossBuild = JSON.parse(
    run(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `import { createRequire } from "node:module";
         import { OpampError, isOpampError } from "opamp-sdk";
         import { OpAMPServer } from "opamp-sdk/server";
         import { OpAMPClient } from "opamp-sdk/client";
         const cjs = createRequire(import.meta.url)("opamp-sdk");
         const error = new cjs.OpampError("timeout", "from the CJS build");
         console.log(JSON.stringify({
           instanceOf: error instanceof OpampError,
           branded: isOpampError(error),
           cjsBranded: cjs.isOpampError(new OpampError("timeout", "from the ESM build")),
           names: [OpampError.name, cjs.OpampError.name, OpAMPServer.name, OpAMPClient.name],
           stack: error.stack.split("\\n")[0],
         }));`,
      ],
      scratch,
    ),
  );
  check(
    crossBuild.instanceOf === false && crossBuild.branded === true && crossBuild.cjsBranded === true,
    `isOpampError() recognises errors across the ESM and CJS builds (instanceof: ${crossBuild.instanceOf})`,
  );
  check(
    crossBuild.names.join() === "OpampError,OpampError,OpAMPServer,OpAMPClient",
    `class names kept in the build: ${crossBuild.names.join(", ")}`,
  );
  check(
    crossBuild.stack.startsWith("OpampError: from the CJS build"),
    `stack trace names the class: ${crossBuild.stack}`,
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}

console.log(failures === 0 ? "package shape: ok" : `package shape: ${failures} problem(s)`);
process.exit(failures === 0 ? 0 : 1);
