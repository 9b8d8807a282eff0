/**
 * A ClientStateStore in one JSON file (Node only). Writes go to a temporary file in the
 * same directory, are fsync'ed, then renamed over the old file and the directory is
 * fsync'ed: a crash at any point leaves either the old or the new state, never a mix.
 * Temporary files a crash left behind are removed by the next `load()`.
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { OpampError } from "../wire/errors.js";
import type { ClientState, ClientStateStore } from "./state-store.js";

/** Version of the file layout, written into every file. */
const FORMAT_VERSION = 1;
/** Random part of a temporary file's name: `<state file>.<12 hex digits>.tmp`. */
const TEMP_SUFFIX = /^\.[0-9a-f]{12}\.tmp$/;

function encodeValue(value: unknown): unknown {
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value).toString("base64") };
  if (Array.isArray(value)) return value.map(encodeValue);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, encodeValue(v)]));
  }
  return value;
}

function decodeValue(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(decodeValue);
  if (value !== null && typeof value === "object") {
    const record = value as Record<string, unknown>;
    if (typeof record.$bytes === "string" && Object.keys(record).length === 1) {
      return new Uint8Array(Buffer.from(record.$bytes, "base64"));
    }
    return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, decodeValue(v)]));
  }
  return value;
}

/** Stores {@link ClientState} as JSON at `path`; the directory is created if missing. */
export class FileClientStateStore implements ClientStateStore {
  /** @param path - the state file, e.g. `/var/lib/my-agent/opamp-state.json` */
  constructor(readonly path: string) {}

  /**
   * Returns the last saved state, or undefined when nothing was saved yet. First removes the temporary files of writes that a crash (kill -9, power loss)
   * interrupted; only names this store makes (`<file>.<12 hex>.tmp`) are touched.
   * @throws OpampError `storage_failed` when the file exists but cannot be read or parsed.
   */
  async load(): Promise<ClientState | undefined> {
    await this.#removeLeftovers();
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new OpampError("storage_failed", `cannot read ${this.path}`, { cause });
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (cause) {
      throw new OpampError("storage_failed", `${this.path} is not valid JSON`, { cause });
    }
    const file = parsed as { version?: unknown; state?: unknown };
    if (file.version !== FORMAT_VERSION || typeof file.state !== "object" || file.state === null) {
      throw new OpampError("storage_failed", `${this.path} has an unknown format`);
    }
    return decodeValue(file.state) as ClientState;
  }

  /** Best effort: a leftover that cannot be removed is harmless, and must not fail start(). */
  async #removeLeftovers(): Promise<void> {
    const directory = dirname(this.path);
    const base = basename(this.path);
    let names: string[];
    try {
      names = await readdir(directory);
    } catch {
      return;
    }
    const leftovers = names.filter((name) => name.startsWith(base) && TEMP_SUFFIX.test(name.slice(base.length)));
    await Promise.all(leftovers.map((name) => rm(join(directory, name), { force: true }).catch(() => undefined)));
  }

  /**
   * {@inheritDoc ClientStateStore.save}
   * @throws OpampError `storage_failed` when the file cannot be written.
   */
  async save(state: ClientState): Promise<void> {
    const directory = dirname(this.path);
    const temp = `${this.path}.${randomBytes(6).toString("hex")}.tmp`;
    const text = JSON.stringify({ version: FORMAT_VERSION, state: encodeValue(state) });
    try {
      await mkdir(directory, { recursive: true });
      const handle = await open(temp, "w", 0o600);
      try {
        await handle.writeFile(text, "utf8");
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, this.path);
      await syncDirectory(directory);
    } catch (cause) {
      await rm(temp, { force: true }).catch(() => undefined);
      throw new OpampError("storage_failed", `cannot write ${this.path}`, { cause });
    }
  }
}

/** Makes a rename durable; some platforms (Windows) cannot open directories, which is fine. */
export async function syncDirectory(directory: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(directory, "r");
    await handle.sync();
  } catch {
    // Directory fsync is not supported everywhere; the rename itself is still atomic.
  } finally {
    await handle?.close();
  }
}
