/**
 * Agent packages on disk: the OpAMP client downloads a top-level package, checks its
 * SHA-256 and (through {@link PackageInstaller.verifySignature}) its ed25519 signature;
 * this store then writes it into a versioned directory, switches the agent to it,
 * restarts the agent on it and, when the new agent does not become healthy, switches
 * back and restarts the previous one. The switch is one atomic write of `state.json`, so
 * a kill -9 anywhere leaves either the old agent or the new one selected, never neither.
 *
 * Layout: `packages/<name>/<version>-<sha256[:12]>/<agent_binary>` and `packages/state.json`.
 */

import type { KeyObject } from "node:crypto";
import { chmod, mkdir, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { PackageSignatureCheck } from "../../client/hooks.js";
import type { InstalledPackage, PackageInstall, PackageStore } from "../../client/package-store.js";
import { OpampError } from "../../wire/errors.js";
import type { PackageConfig } from "../config/supervisor-config.js";
import { readFileIfExists, writeFileAtomic } from "../state/atomic-file.js";
import { parseEd25519PublicKey, sha256Hex, verifyEd25519 } from "./signature.js";
import { extractFromTarGz } from "./tar.js";

/** One installed agent package, as kept in state.json. */
export interface InstalledAgentPackage {
  readonly name: string;
  readonly version: string;
  /** PackageAvailable.hash, hex. */
  readonly hash: string;
  /** SHA-256 of the downloaded file, hex. */
  readonly contentHash: string;
  /** Absolute path of the agent executable inside the version directory. */
  readonly executable: string;
}

interface PackagesState {
  readonly current?: InstalledAgentPackage;
  readonly previous?: InstalledAgentPackage;
}

/** How the supervisor runs a new executable: resolve when healthy, reject with the reason otherwise. */
export type ActivateExecutable = (executable: string | undefined) => Promise<void>;

function safeSegment(text: string): string {
  const cleaned = text.replace(/[^A-Za-z0-9._-]/g, "_").replace(/^\.+/, "_");
  return cleaned === "" ? "_" : cleaned.slice(0, 100);
}

/** The supervisor's {@link PackageStore}. */
export class PackageInstaller implements PackageStore {
  readonly #key: KeyObject | undefined;
  /** SHA-256 (hex) of contents whose signature was verified in this process. */
  readonly #verified = new Set<string>();
  #state: PackagesState = {};

  /**
   * @param directory - `<storage>/packages`
   * @param activate - restarts the agent on an executable (undefined = the configured one) and waits until healthy
   */
  constructor(
    private readonly directory: string,
    private readonly config: PackageConfig,
    private readonly activate: ActivateExecutable,
  ) {
    this.#key = config.publicKey === undefined ? undefined : parseEd25519PublicKey(config.publicKey);
  }

  get #statePath(): string {
    return join(this.directory, "state.json");
  }

  /** Loads state.json; a selected package whose executable is gone is dropped. */
  async load(): Promise<void> {
    const bytes = await readFileIfExists(this.#statePath);
    if (bytes === undefined) return;
    try {
      this.#state = JSON.parse(bytes.toString("utf8")) as PackagesState;
    } catch {
      this.#state = {};
    }
    const current = this.#state.current;
    if (current !== undefined && !(await exists(current.executable))) this.#state = {};
  }

  /** The executable of the selected package; undefined = the configured `agent.executable`. */
  get executable(): string | undefined {
    return this.#state.current?.executable;
  }

  /** The selected package. */
  get current(): InstalledAgentPackage | undefined {
    return this.#state.current;
  }

  /** The `verifyPackageSignature` hook: ed25519 over the downloaded bytes. */
  async verifySignature(check: PackageSignatureCheck): Promise<boolean> {
    if (this.#key === undefined) {
      throw new OpampError(
        "verification_failed",
        `package ${check.name} is signed but agent.package.public_key is not set, so the signature cannot be checked`,
      );
    }
    const ok = verifyEd25519(this.#key, check.content, check.signature);
    if (ok) this.#verified.add(sha256Hex(check.content));
    return ok;
  }

  /** {@inheritDoc PackageStore.list} */
  async list(): Promise<readonly InstalledPackage[]> {
    const current = this.#state.current;
    if (current === undefined) return [];
    return [
      {
        name: current.name,
        type: "top-level",
        version: current.version,
        hash: new Uint8Array(Buffer.from(current.hash, "hex")),
        contentHash: new Uint8Array(Buffer.from(current.contentHash, "hex")),
      },
    ];
  }

  /**
   * {@inheritDoc PackageStore.install}
   * @throws OpampError `verification_failed` (no content hash, unsigned while a signature
   *   is required, addon package, archive without the binary), `storage_failed`, or
   *   `agent_failed` when the new agent did not become healthy (the previous one runs again).
   */
  async install(pkg: PackageInstall): Promise<void> {
    if (pkg.type !== "top-level") {
      throw new OpampError("verification_failed", `package ${pkg.name}: only the top-level agent package is installed`);
    }
    if (pkg.contentHash.length === 0) {
      throw new OpampError(
        "verification_failed",
        `package ${pkg.name}: the offer has no content_hash; only packages that can be checked are installed`,
      );
    }
    const contentHash = sha256Hex(pkg.content);
    if (this.config.requireSignature && !this.#verified.has(contentHash)) {
      throw new OpampError(
        "verification_failed",
        `package ${pkg.name}: not signed, and agent.package requires a signature`,
      );
    }
    const binary =
      this.config.archive === "tar.gz"
        ? extractFromTarGz(pkg.content, this.config.agentBinary, this.config.maxBytes)
        : pkg.content;
    const versionDir = join(
      this.directory,
      safeSegment(pkg.name),
      `${safeSegment(pkg.version || "unversioned")}-${contentHash.slice(0, 12)}`,
    );
    const executable = join(versionDir, this.config.agentBinary);
    try {
      await mkdir(versionDir, { recursive: true, mode: 0o700 });
      await writeFileAtomic(executable, binary, 0o700);
      await chmod(executable, 0o700);
    } catch (cause) {
      throw OpampError.from(cause, "storage_failed");
    }
    const installed: InstalledAgentPackage = {
      name: pkg.name,
      version: pkg.version,
      hash: Buffer.from(pkg.hash).toString("hex"),
      contentHash,
      executable,
    };
    const before = this.#state;
    await this.#select({ current: installed, ...(before.current === undefined ? {} : { previous: before.current }) });
    try {
      await this.activate(executable);
    } catch (cause) {
      // spec: a package that does not work is reported InstallFailed; the previous agent runs again.
      await this.#select(before);
      const reason = OpampError.from(cause, "agent_failed").message;
      let restored = "the previous agent runs again";
      try {
        await this.activate(before.current?.executable);
      } catch (again) {
        restored = `and the previous agent did not come back either: ${OpampError.from(again).message}`;
      }
      await rm(versionDir, { recursive: true, force: true }).catch(() => undefined);
      throw new OpampError("agent_failed", `package ${pkg.name} ${pkg.version}: ${reason}; rolled back, ${restored}`, {
        cause,
      });
    }
    await this.#prune();
  }

  /** {@inheritDoc PackageStore.remove} — the agent goes back to the configured executable. */
  async remove(name: string): Promise<void> {
    if (this.#state.current?.name !== name) return;
    await this.#select({});
    await this.activate(undefined);
    await this.#prune();
  }

  async #select(state: PackagesState): Promise<void> {
    await writeFileAtomic(this.#statePath, JSON.stringify(state));
    this.#state = state;
  }

  /** Deletes version directories beyond `keep_versions` (never the selected ones). */
  async #prune(): Promise<void> {
    const keep = new Set(
      [this.#state.current, this.#state.previous]
        .filter((p): p is InstalledAgentPackage => p !== undefined)
        .slice(0, this.config.keepVersions)
        .map((p) => join(p.executable, "..")),
    );
    for (const name of await readdir(this.directory).catch(() => [] as string[])) {
      const packageDir = join(this.directory, name);
      if (
        name === "state.json" ||
        !(await stat(packageDir).then(
          (s) => s.isDirectory(),
          () => false,
        ))
      )
        continue;
      for (const version of await readdir(packageDir).catch(() => [] as string[])) {
        const dir = join(packageDir, version);
        if (!keep.has(dir)) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      }
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
