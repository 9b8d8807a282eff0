/** Both client state stores against the exported contract, plus the file store's crash safety. */
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as vitest from "vitest";
import { afterAll, describe, expect, it } from "vitest";
import { FileClientStateStore } from "../../../src/client/file-state-store.js";
import { MemoryClientStateStore } from "../../../src/client/state-store.js";
import { clientStateStoreContract } from "../../../src/testing/client-state-store-contract.js";

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "opamp-client-state-"));
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

clientStateStoreContract(vitest, "memory", async () => new MemoryClientStateStore());
clientStateStoreContract(
  vitest,
  "file",
  async () => new FileClientStateStore(join(await tempDir(), "nested", "state.json")),
  async (store) => new FileClientStateStore((store as FileClientStateStore).path),
);

describe("FileClientStateStore crash safety", () => {
  it("keeps the old state when a write died before its rename, and leaves no temp file after a save", async () => {
    const dir = await tempDir();
    const path = join(dir, "state.json");
    const store = new FileClientStateStore(path);
    await store.save({ instanceUid: new Uint8Array(16).fill(7) });
    // A crash mid-write leaves a half-written temp file next to the real one.
    await writeFile(`${path}.deadbeef.tmp`, '{"version":1,"state":{"instanceUid":{"$by');
    expect((await store.load())?.instanceUid?.[0]).toBe(7);
    await store.save({ instanceUid: new Uint8Array(16).fill(8) });
    expect((await store.load())?.instanceUid?.[0]).toBe(8);
    const files = await readdir(dir);
    expect(files.filter((f) => f.endsWith(".tmp") && f !== "state.json.deadbeef.tmp")).toEqual([]);
  });

  it("removes the temporary files that interrupted writes left, and only those, when loading", async () => {
    const dir = await tempDir();
    const path = join(dir, "state.json");
    await new FileClientStateStore(path).save({ instanceUid: new Uint8Array(16).fill(3) });
    const leftovers = ["state.json.0123456789ab.tmp", "state.json.ffffffffffff.tmp"];
    const others = ["state.json.backup.tmp", "other.json.0123456789ab.tmp", "state.json.0123456789AB.tmp", "notes.txt"];
    for (const name of [...leftovers, ...others]) await writeFile(join(dir, name), "{");
    expect((await new FileClientStateStore(path).load())?.instanceUid?.[0]).toBe(3);
    expect((await readdir(dir)).sort()).toEqual(["state.json", ...others].sort());
  });

  it("loads nothing, and fails nothing, when the directory does not exist yet", async () => {
    const path = join(await tempDir(), "missing", "state.json");
    await expect(new FileClientStateStore(path).load()).resolves.toBeUndefined();
  });

  it("reports a corrupt file as storage_failed instead of starting over silently", async () => {
    const path = join(await tempDir(), "state.json");
    await writeFile(path, "not json");
    await expect(new FileClientStateStore(path).load()).rejects.toMatchObject({ code: "storage_failed" });
  });
});
