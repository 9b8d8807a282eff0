/**
 * A PackageStore on disk (Node only): each package in its own directory under a root,
 * `<root>/<name>/content` and `<root>/<name>/package.json`. The client already refuses
 * unsafe names; this store checks again and never writes outside its root.
 */
import { randomBytes } from "node:crypto";
import { lstat, mkdir, open, readdir, readFile, rename, rm } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { OpampError } from "../wire/errors.js";
import { syncDirectory } from "./file-state-store.js";
import type { InstalledPackage, PackageInstall, PackageStore } from "./package-store.js";
import { assertSafeName } from "./safe-name.js";

/** File layout version, written into every `package.json`. */
const FORMAT_VERSION = 1;
/** Our own temporary entries start with a dot; a package's directory never does. */
const TEMP_PREFIX = ".";

interface Metadata {
  readonly version: typeof FORMAT_VERSION;
  readonly name: string;
  readonly type: InstalledPackage["type"];
  readonly packageVersion: string;
  readonly hash: string;
  readonly contentHash: string;
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");
const unb64 = (text: string) => new Uint8Array(Buffer.from(text, "base64"));

function parseMetadata(text: string): InstalledPackage | undefined {
  let meta: Partial<Metadata>;
  try {
    meta = JSON.parse(text) as Partial<Metadata>;
  } catch {
    return undefined;
  }
  if (
    meta.version !== FORMAT_VERSION ||
    typeof meta.name !== "string" ||
    (meta.type !== "addon" && meta.type !== "top-level") ||
    typeof meta.packageVersion !== "string" ||
    typeof meta.hash !== "string" ||
    typeof meta.contentHash !== "string"
  ) {
    return undefined;
  }
  return {
    name: meta.name,
    type: meta.type,
    version: meta.packageVersion,
    hash: unb64(meta.hash),
    contentHash: unb64(meta.contentHash),
  };
}

async function writeDurably(path: string, data: string | Uint8Array): Promise<void> {
  const handle = await open(path, "w", 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Installs packages as files under `root` (created when missing). A package is replaced
 * whole: the new one is written beside the old and renamed into place, so a crash leaves
 * the old or the new package, and `list()` clears what an interrupted install left.
 *
 * Names are checked with the client's rules (no `..`, absolute path, backslash, NUL or
 * other control character) and then encoded into one directory name directly under
 * `root` (`/` and `%` are percent-encoded), so no name can reach outside it.
 */
export class FilePackageStore implements PackageStore {
  readonly #root: string;

  /** @param root - the directory that holds the packages, e.g. `/var/lib/my-agent/packages` */
  constructor(root: string) {
    this.#root = resolve(root);
  }

  /** The absolute root directory. */
  get root(): string {
    return this.#root;
  }

  /**
   * The installed file of `name` (whether or not it is installed).
   * @throws OpampError `invalid_argument` for an unsafe name.
   */
  contentPath(name: string): string {
    return join(this.#directoryOf(name), "content");
  }

  /**
   * Every package currently installed. Entries without readable metadata are skipped (installed again when offered).
   * @throws OpampError `storage_failed` when the root cannot be read.
   */
  async list(): Promise<readonly InstalledPackage[]> {
    let entries: string[];
    try {
      entries = await readdir(this.#root);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw new OpampError("storage_failed", `cannot read ${this.#root}`, { cause });
    }
    const packages: InstalledPackage[] = [];
    for (const entry of entries.sort()) {
      if (entry.startsWith(TEMP_PREFIX)) {
        // What an install interrupted by a crash left behind.
        await rm(join(this.#root, entry), { recursive: true, force: true }).catch(() => undefined);
        continue;
      }
      const text = await readFile(join(this.#root, entry, "package.json"), "utf8").catch(() => undefined);
      const pkg = text === undefined ? undefined : parseMetadata(text);
      // The directory must be the one its recorded name maps to; anything else is not ours.
      if (pkg !== undefined && this.#entryOf(pkg.name) === entry) packages.push(pkg);
    }
    return packages;
  }

  /**
   * {@inheritDoc PackageStore.install}
   * @throws OpampError `invalid_argument` for an unsafe name; `storage_failed` when a
   *   write fails (the previous version, if any, stays installed); `aborted` when `signal`
   *   aborts before the package is moved into place.
   */
  async install(pkg: PackageInstall): Promise<void> {
    const target = this.#directoryOf(pkg.name);
    const staging = join(this.#root, `${TEMP_PREFIX}${randomBytes(6).toString("hex")}.new`);
    const meta: Metadata = {
      version: FORMAT_VERSION,
      name: pkg.name,
      type: pkg.type,
      packageVersion: pkg.version,
      hash: b64(pkg.hash),
      contentHash: b64(pkg.contentHash),
    };
    try {
      await mkdir(staging, { recursive: true, mode: 0o700 });
      await writeDurably(join(staging, "content"), pkg.content);
      await writeDurably(join(staging, "package.json"), JSON.stringify(meta));
      if (pkg.signal.aborted) throw OpampError.from(pkg.signal.reason, "aborted");
      await this.#replace(target, staging);
    } catch (cause) {
      await rm(staging, { recursive: true, force: true }).catch(() => undefined);
      if (cause instanceof OpampError) throw cause;
      throw new OpampError("storage_failed", `cannot install package ${JSON.stringify(pkg.name)}`, { cause });
    }
  }

  /**
   * {@inheritDoc PackageStore.remove}
   * @throws OpampError `invalid_argument` for an unsafe name; `storage_failed` when it
   *   cannot be removed.
   */
  async remove(name: string): Promise<void> {
    const target = this.#directoryOf(name);
    try {
      await rm(target, { recursive: true, force: true });
    } catch (cause) {
      throw new OpampError("storage_failed", `cannot remove package ${JSON.stringify(name)}`, { cause });
    }
  }

  /** Moves `staging` to `target`; an old version is moved aside first, then deleted. */
  async #replace(target: string, staging: string): Promise<void> {
    const old = join(this.#root, `${TEMP_PREFIX}${randomBytes(6).toString("hex")}.old`);
    // lstat, not stat: a symlink planted at the target is moved aside itself, never followed.
    const existing = await lstat(target).catch(() => undefined);
    if (existing !== undefined) await rename(target, old);
    await rename(staging, target);
    await syncDirectory(this.#root);
    if (existing !== undefined) await rm(old, { recursive: true, force: true }).catch(() => undefined);
  }

  /** The one directory entry `name` maps to (no separator, no leading dot, never `.`/`..`). */
  #entryOf(name: string): string {
    return encodeURIComponent(name).replace(/^\./, "%2E");
  }

  /** @throws OpampError `invalid_argument` for an unsafe name or one that would leave the root. */
  #directoryOf(name: string): string {
    assertSafeName(name, "package name");
    const target = join(this.#root, this.#entryOf(name));
    // Defence in depth: whatever the encoding, the result is a direct child of the root.
    if (dirname(target) !== this.#root) {
      throw new OpampError("invalid_argument", `package name ${JSON.stringify(name)} leaves the store's root`);
    }
    return target;
  }
}
