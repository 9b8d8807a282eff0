/**
 * Where packages offered by the server end up. The client downloads and verifies; a
 * PackageStore installs, lists and removes. Supervisors implement it on disk.
 */

/** A package the agent has. */
export interface InstalledPackage {
  /** The package's name, as the server offers it (its key in PackagesAvailable). */
  readonly name: string;
  /** "top-level" is the agent itself; "addon" anything else. */
  readonly type: "top-level" | "addon";
  /** The version the server gave for it. */
  readonly version: string;
  /** The server's package hash (PackageAvailable.hash) this install came from. */
  readonly hash: Uint8Array;
  /** SHA-256 of the installed file (DownloadableFile.content_hash). */
  readonly contentHash: Uint8Array;
}

/** A verified download ready to install. */
export interface PackageInstall extends InstalledPackage {
  /** The downloaded file, already checked against its content hash and, when signed, its signature. */
  readonly content: Uint8Array;
  /** Fires when the client stops or a newer offer supersedes this one; stop work then. */
  readonly signal: AbortSignal;
}

/**
 * The installer interface. Calls for one client never overlap. A rejection marks the
 * package InstallFailed with the error's message.
 */
export interface PackageStore {
  /** Every package currently installed. */
  list(): Promise<readonly InstalledPackage[]>;
  /** Installs or replaces a package. */
  install(pkg: PackageInstall): Promise<void>;
  /** Removes a package the server no longer offers. */
  remove(name: string, signal: AbortSignal): Promise<void>;
}

/** A PackageStore that keeps packages in memory; for tests and examples. */
export class MemoryPackageStore implements PackageStore {
  readonly #packages = new Map<string, InstalledPackage & { readonly content: Uint8Array }>();

  /** {@inheritDoc PackageStore.list} */
  async list(): Promise<readonly InstalledPackage[]> {
    return [...this.#packages.values()].map(({ content: _content, ...rest }) => rest);
  }

  /** {@inheritDoc PackageStore.install} */
  async install(pkg: PackageInstall): Promise<void> {
    const { signal: _signal, ...rest } = pkg;
    this.#packages.set(pkg.name, { ...rest, content: pkg.content.slice() });
  }

  /** {@inheritDoc PackageStore.remove} */
  async remove(name: string): Promise<void> {
    this.#packages.delete(name);
  }

  /** The installed bytes of a package, or undefined. */
  content(name: string): Uint8Array | undefined {
    return this.#packages.get(name)?.content.slice();
  }
}
