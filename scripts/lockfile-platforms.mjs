#!/usr/bin/env node
// Completes package-lock.json with the platform-specific optional packages (biome, buf,
// rollup, esbuild… ship one native package per os/cpu) that the registry mirror of the
// machine running `npm install` did not serve. npm leaves such packages out of the lock,
// and `npm ci` then refuses the lock as "out of sync" on every machine.
//
// Each missing entry gets its version (from the parent's optionalDependencies) and the
// os/cpu/libc its name declares, so npm skips it on other platforms without fetching it,
// exactly as it would with a lock written against the full registry.
//
//   npm install <something> && node scripts/lockfile-platforms.mjs && npm ci --dry-run
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

const OS = ["android", "darwin", "freebsd", "linux", "netbsd", "openbsd", "openharmony", "sunos", "win32", "aix"];
const CPU = [
  ["arm64", "arm64"],
  ["aarch64", "arm64"],
  ["x64", "x64"],
  ["ia32", "ia32"],
  ["armv7", "arm"],
  ["arm", "arm"],
  ["loong64", "loong64"],
  ["ppc64", "ppc64"],
  ["riscv64", "riscv64"],
  ["s390x", "s390x"],
  ["mips64el", "mips64el"],
];

/** What a platform package's name says about where it runs, or undefined if it says nothing. */
export function platformOf(name) {
  const parts = name.split("/").pop().split("-");
  const os = OS.find((o) => parts.includes(o));
  const cpu = CPU.find(([token]) => parts.some((p) => p === token || p.startsWith(token)))?.[1];
  if (os === undefined || cpu === undefined) return undefined;
  const libc = parts.some((p) => p.startsWith("musl"))
    ? "musl"
    : os === "linux" && parts.some((p) => p.startsWith("gnu"))
      ? "glibc"
      : undefined;
  return { os: [os === "openharmony" ? "openharmony" : os], cpu: [cpu], ...(libc ? { libc: [libc] } : {}) };
}

const lockPath = resolve(process.argv[2] ?? join(import.meta.dirname, "..", "package-lock.json"));
const lock = JSON.parse(readFileSync(lockPath, "utf8"));
const packages = lock.packages;
let added = 0;
for (const [path, entry] of Object.entries(packages)) {
  for (const [dep, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const nested = `${path ? `${path}/` : ""}node_modules/${dep}`;
    if (packages[nested] !== undefined || packages[`node_modules/${dep}`] !== undefined) continue;
    const platform = platformOf(dep);
    if (platform === undefined) {
      console.warn(`left out ${dep}: its name names no os/cpu`);
      continue;
    }
    packages[`node_modules/${dep}`] = {
      version,
      ...(entry.dev ? { dev: true } : {}),
      optional: true,
      ...platform,
    };
    added++;
  }
}
const sorted = Object.fromEntries(
  Object.entries(packages).sort(([a], [b]) => (a === "" ? -1 : b === "" ? 1 : a.localeCompare(b))),
);
lock.packages = sorted;
writeFileSync(lockPath, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`package-lock.json: added ${added} platform package entr${added === 1 ? "y" : "ies"}`);
