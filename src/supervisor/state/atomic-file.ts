/**
 * Crash-safe file writes: a temporary file in the same directory, fsync'ed, renamed over
 * the target, then the directory fsync'ed. A kill -9 or a power cut at any point leaves
 * either the old content or the new one, never a mix or an empty file.
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { OpampError } from "../../wire/errors.js";

/** Writes `data` to `path` atomically (mode 0600 unless given). @throws OpampError `storage_failed`. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const directory = dirname(path);
  const temp = join(directory, `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    await mkdir(directory, { recursive: true, mode: 0o700 });
    const handle = await open(temp, "w", mode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
    await syncDirectory(directory);
  } catch (cause) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw new OpampError("storage_failed", `cannot write ${path}: ${(cause as Error).message}`, { cause });
  }
}

/** Makes a rename durable; directories cannot be opened everywhere (Windows), which is fine. */
export async function syncDirectory(directory: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(directory, "r");
    await handle.sync();
  } catch {
    // The rename itself is atomic; only its durability across a power cut is weaker here.
  } finally {
    await handle?.close();
  }
}

/** Reads a file, or undefined when it does not exist. @throws OpampError `storage_failed` for other errors. */
export async function readFileIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new OpampError("storage_failed", `cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
}
