/** FilePackageStore: install, replace, list, remove, and never a byte outside its root. */
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FilePackageStore } from "../../../src/client/file-package-store.js";
import type { PackageInstall } from "../../../src/client/package-store.js";

/** Every path under `dir`, relative to it, files and directories alike. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { recursive: true })) out.push(String(entry));
  return out.sort();
}

function pkg(name: string, content: number[], hash = 1): PackageInstall {
  return {
    name,
    type: "addon",
    version: `1.${hash}`,
    hash: new Uint8Array([hash]),
    contentHash: new Uint8Array([hash, hash]),
    content: new Uint8Array(content),
    signal: new AbortController().signal,
  };
}

describe("FilePackageStore", () => {
  let base = "";
  let root = "";
  beforeEach(async () => {
    base = await mkdtemp(join(tmpdir(), "opamp-packages-"));
    root = join(base, "store");
  });
  afterEach(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it("installs, replaces, lists and removes packages", async () => {
    const store = new FilePackageStore(root);
    expect(await store.list()).toEqual([]);
    await store.install(pkg("agent", [1, 2, 3]));
    await store.install(pkg("addon", [9]));
    await store.install(pkg("agent", [4, 5], 2));
    const listed = await new FilePackageStore(root).list();
    expect(listed.map((p) => [p.name, p.version, [...p.hash]])).toEqual([
      ["addon", "1.1", [1]],
      ["agent", "1.2", [2]],
    ]);
    expect(new Uint8Array(await readFile(store.contentPath("agent")))).toEqual(new Uint8Array([4, 5]));
    await store.remove("agent");
    expect((await store.list()).map((p) => p.name)).toEqual(["addon"]);
    expect(await readdir(root)).toEqual(["addon"]);
  });

  it("keeps names with slashes, percent signs and a leading dot in one entry directly under the root", async () => {
    const store = new FilePackageStore(root);
    for (const name of ["vendor/agent", "100%", ".dotted"]) await store.install(pkg(name, [1]));
    expect((await store.list()).map((p) => p.name).sort()).toEqual([".dotted", "100%", "vendor/agent"]);
    expect((await readdir(root)).sort()).toEqual(["%2Edotted", "100%25", "vendor%2Fagent"]);
  });

  it.each([
    "../escaped",
    "../../etc/cron.d/evil",
    "/tmp/absolute",
    "ok/../../escaped",
    "..",
    "back\\slash",
    "nul\u0000byte",
    "",
  ])("refuses %j with invalid_argument and writes nothing anywhere", async (name) => {
    const store = new FilePackageStore(root);
    await store.install(pkg("good", [1]));
    const before = await tree(base);
    await expect(store.install(pkg(name, [6, 6, 6]))).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(store.remove(name)).rejects.toMatchObject({ code: "invalid_argument" });
    expect(() => store.contentPath(name)).toThrow(expect.objectContaining({ code: "invalid_argument" }));
    expect(await tree(base)).toEqual(before);
  });

  it("replaces a symlink planted at a package's place instead of writing through it", async () => {
    const outside = join(base, "outside");
    await mkdir(outside);
    await writeFile(join(outside, "content"), "precious");
    await mkdir(root, { recursive: true });
    await symlink(outside, join(root, "agent"));
    await new FilePackageStore(root).install(pkg("agent", [7]));
    expect(await readFile(join(outside, "content"), "utf8")).toBe("precious");
    expect(await readdir(outside)).toEqual(["content"]);
    expect(new Uint8Array(await readFile(join(root, "agent", "content")))).toEqual(new Uint8Array([7]));
  });

  it("clears what an interrupted install left, and skips entries that are not its own", async () => {
    await mkdir(join(root, ".0123456789ab.new"), { recursive: true });
    await writeFile(join(root, ".0123456789ab.new", "content"), "half");
    await mkdir(join(root, "stranger"));
    await writeFile(join(root, "stranger", "package.json"), "not json");
    await mkdir(join(root, "impostor"));
    await writeFile(
      join(root, "impostor", "package.json"),
      JSON.stringify({ version: 1, name: "../x", type: "addon", packageVersion: "1", hash: "", contentHash: "" }),
    );
    expect(await new FilePackageStore(root).list()).toEqual([]);
    expect((await readdir(root)).sort()).toEqual(["impostor", "stranger"]);
  });

  it("does not move a package into place once the install was aborted", async () => {
    const abort = new AbortController();
    abort.abort();
    const store = new FilePackageStore(root);
    await expect(store.install({ ...pkg("agent", [1]), signal: abort.signal })).rejects.toMatchObject({
      code: "aborted",
    });
    expect(await readdir(root)).toEqual([]);
  });
});
