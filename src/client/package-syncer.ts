/**
 * Packages offered by the server: compared by hash at all three levels, downloaded with
 * progress under connect, idle and total deadlines, SHA-256 checked, signature checked by
 * a hook, installed through a PackageStore; packages no longer offered are removed. A
 * newer offer cancels the download of an older one, so one stuck URL cannot hold back
 * what the server offers next.
 */
// spec: Packages
import { create } from "@bufbuild/protobuf";
import {
  type DownloadableFile,
  type PackageAvailable,
  PackageDownloadDetailsSchema,
  type PackageStatus,
  PackageStatusEnum,
  type PackageStatuses,
  PackageStatusesSchema,
  PackageStatusSchema,
  type PackagesAvailable,
  PackageType,
} from "../gen/opamp/v1/opamp_pb.js";
import type { Clock } from "../internal/clock.js";
import { sameBytes } from "../wire/bytes.js";
import { OpampError } from "../wire/errors.js";
import { callHook } from "./call-hook.js";
import type { ClientHooks } from "./hooks.js";
import { DEFAULT_DOWNLOAD_PROGRESS_INTERVAL_MS } from "./options.js";
import { childAbort, downloadPackage } from "./package-download.js";
import type { InstalledPackage, PackageStore } from "./package-store.js";
import { unsafeNameReason } from "./safe-name.js";

/** What the syncer needs from the client. */
export interface PackageSyncerContext {
  readonly store: PackageStore;
  readonly fetch: typeof globalThis.fetch | undefined;
  readonly maxPackageBytes: number;
  /** Until the response headers of a download. */
  readonly connectTimeoutMs: number;
  /** Longest gap between two body chunks. */
  readonly idleTimeoutMs: number;
  /** Whole download, headers to last byte. */
  readonly totalTimeoutMs: number;
  readonly clock: Clock;
  readonly signal: AbortSignal;
  readonly verifySignature: ClientHooks["verifyPackageSignature"];
  setStatuses(statuses: PackageStatuses): void;
  persistAllPackagesHash(hash: Uint8Array): Promise<void>;
  error(error: OpampError): void;
}

async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
}

/** Runs one sync at a time; a newer offer supersedes one not yet started. */
export class PackageSyncer {
  readonly #statuses = new Map<string, PackageStatus>();
  #installedAllHash: Uint8Array | undefined;
  /** The all_packages_hash of the last offer whose sync ran to its end (installed or not). */
  #triedAllHash: Uint8Array | undefined;
  #serverAllHash: Uint8Array = new Uint8Array(0);
  #generalError = "";
  #latest: PackagesAvailable | undefined;
  /** The sync running now and what cancels it when a newer offer arrives. */
  #running: { readonly offer: PackagesAvailable; readonly abort: AbortController } | undefined;
  #chain: Promise<void> = Promise.resolve();

  constructor(private readonly ctx: PackageSyncerContext) {}

  /** Reports what the store holds and remembers the last fully installed offer. */
  async restore(allPackagesHash: Uint8Array | undefined): Promise<void> {
    this.#installedAllHash = allPackagesHash;
    if (allPackagesHash !== undefined) this.#serverAllHash = allPackagesHash;
    for (const pkg of await this.ctx.store.list()) {
      this.#statuses.set(
        pkg.name,
        this.#status(pkg.name, pkg, undefined, PackageStatusEnum.PackageStatusEnum_Installed),
      );
    }
    this.#publish();
  }

  /** Settles when every accepted offer was processed. */
  idle(): Promise<void> {
    return this.#chain;
  }

  /**
   * Takes an offer. An all_packages_hash equal to the last one installed, queued or
   * already tried in this process is a no-op: a server that repeats an offer whose
   * install failed must not make the agent download again on every answer (each retry
   * changes the statuses, which makes the server answer again: a loop). A failed offer is
   * retried after a restart or when the server offers a new hash. A new offer cancels the
   * sync in progress (its download; an install already begun finishes), which the new one
   * replaces: what it offers is what the server wants now.
   */
  offer(available: PackagesAvailable): void {
    if (sameBytes(available.allPackagesHash, this.#installedAllHash)) return;
    if (sameBytes(available.allPackagesHash, this.#triedAllHash)) return;
    if (this.#latest !== undefined && sameBytes(available.allPackagesHash, this.#latest.allPackagesHash)) return;
    this.#latest = available;
    const running = this.#running;
    if (running !== undefined && running.offer !== available) {
      running.abort.abort(new OpampError("aborted", "superseded by a newer package offer"));
    }
    this.#chain = this.#chain
      .then(() => this.#sync(available))
      .catch((cause: unknown) => {
        if (!this.ctx.signal.aborted) this.ctx.error(OpampError.from(cause, "internal"));
      });
  }

  #status(
    name: string,
    has: InstalledPackage | undefined,
    offered: PackageAvailable | undefined,
    status: PackageStatusEnum,
    errorMessage = "",
  ): PackageStatus {
    return create(PackageStatusSchema, {
      name,
      agentHasVersion: has?.version ?? "",
      agentHasHash: has?.hash ?? new Uint8Array(0),
      serverOfferedVersion: offered?.version ?? "",
      serverOfferedHash: offered?.hash ?? new Uint8Array(0),
      status,
      errorMessage,
    });
  }

  #publish(): void {
    if (this.ctx.signal.aborted) return;
    const packages: Record<string, PackageStatus> = {};
    for (const [name, status] of [...this.#statuses].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      packages[name] = status;
    }
    this.ctx.setStatuses(
      create(PackageStatusesSchema, {
        packages,
        serverProvidedAllPackagesHash: this.#serverAllHash,
        errorMessage: this.#generalError,
      }),
    );
  }

  async #sync(available: PackagesAvailable): Promise<void> {
    if (this.#latest !== available || this.ctx.signal.aborted) return;
    const { controller, release } = childAbort(this.ctx.signal);
    this.#running = { offer: available, abort: controller };
    try {
      await this.#syncWith(available, controller.signal);
    } finally {
      release();
      if (this.#running?.abort === controller) this.#running = undefined;
    }
  }

  /** One sync; `signal` aborts when the client stops or a newer offer supersedes this one. */
  async #syncWith(available: PackagesAvailable, signal: AbortSignal): Promise<void> {
    const { store } = this.ctx;
    this.#serverAllHash = available.allPackagesHash;
    this.#generalError = "";
    let installed: Map<string, InstalledPackage>;
    try {
      installed = new Map((await store.list()).map((pkg) => [pkg.name, pkg]));
    } catch (cause) {
      this.#generalError = `listing installed packages failed: ${OpampError.from(cause).message}`;
      this.#publish();
      return;
    }
    // A package neither installed nor offered any more (its download failed, or was cut
    // short by this newer offer) is no longer reported.
    for (const name of [...this.#statuses.keys()]) {
      if (!installed.has(name) && available.packages[name] === undefined) this.#statuses.delete(name);
    }
    let allInstalled = true;
    // spec: packages the agent has that the server no longer offers SHOULD be deleted.
    for (const name of installed.keys()) {
      if (available.packages[name] !== undefined) continue;
      try {
        await store.remove(name, this.ctx.signal);
        this.#statuses.delete(name);
      } catch (cause) {
        allInstalled = false;
        const error = OpampError.from(cause, "storage_failed");
        this.#statuses.set(
          name,
          this.#status(
            name,
            installed.get(name),
            undefined,
            PackageStatusEnum.PackageStatusEnum_InstallFailed,
            `removal failed: ${error.message}`,
          ),
        );
      }
      if (signal.aborted) return;
    }
    this.#publish();
    for (const [name, offered] of Object.entries(available.packages).sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (signal.aborted) return;
      const ok = await this.#syncOne(name, offered, installed.get(name), signal);
      // Superseded: the newer sync reports every package it offers; nothing is published here.
      if (signal.aborted) return;
      allInstalled &&= ok;
      this.#publish();
    }
    if (signal.aborted) return;
    if (this.#latest === available) this.#latest = undefined;
    this.#triedAllHash = available.allPackagesHash;
    if (allInstalled) {
      this.#installedAllHash = available.allPackagesHash;
      await this.ctx.persistAllPackagesHash(available.allPackagesHash);
    }
  }

  async #syncOne(
    name: string,
    offered: PackageAvailable,
    has: InstalledPackage | undefined,
    signal: AbortSignal,
  ): Promise<boolean> {
    const set = (status: PackageStatusEnum, message = "", pkg = has) => {
      this.#statuses.set(name, this.#status(name, pkg, offered, status, message));
    };
    if (has !== undefined && sameBytes(has.hash, offered.hash)) {
      set(PackageStatusEnum.PackageStatusEnum_Installed);
      return true;
    }
    // A name like "../../bin/sh" must never reach a PackageStore, which may well use it as
    // a path; nor is anything downloaded for it.
    const unsafe = unsafeNameReason(name);
    if (unsafe !== undefined) {
      const error = new OpampError("invalid_argument", `package name ${JSON.stringify(name)} ${unsafe}; not installed`);
      set(PackageStatusEnum.PackageStatusEnum_InstallFailed, error.message);
      return false;
    }
    const file = offered.file;
    if (file === undefined) {
      set(PackageStatusEnum.PackageStatusEnum_InstallFailed, "the offer has no file");
      return false;
    }
    if (has !== undefined && file.contentHash.length > 0 && sameBytes(has.contentHash, file.contentHash)) {
      // spec: same file content ⇒ nothing to download.
      set(PackageStatusEnum.PackageStatusEnum_Installed);
      return true;
    }
    try {
      set(PackageStatusEnum.PackageStatusEnum_Downloading);
      this.#publish();
      const content = await this.#download(
        name,
        file,
        (status) => {
          this.#statuses.set(name, status);
          this.#publish();
        },
        offered,
        has,
        signal,
      );
      if (file.contentHash.length > 0 && !sameBytes(await sha256(content), file.contentHash)) {
        throw new OpampError("verification_failed", "content SHA-256 does not match content_hash; not installed");
      }
      if (file.signature.length > 0) await this.#verifySignature(name, file, content);
      set(PackageStatusEnum.PackageStatusEnum_Installing);
      this.#publish();
      const pkg: InstalledPackage = {
        name,
        type: offered.type === PackageType.PackageType_Addon ? "addon" : "top-level",
        version: offered.version,
        hash: offered.hash,
        contentHash: file.contentHash,
      };
      await this.ctx.store.install({ ...pkg, content, signal: this.ctx.signal });
      set(PackageStatusEnum.PackageStatusEnum_Installed, "", pkg);
      return true;
    } catch (cause) {
      if (signal.aborted) {
        // Superseded (or stopped): nothing failed and the agent still has what it had; the
        // newer sync reports this package again if it still offers it.
        if (has === undefined) this.#statuses.delete(name);
        else
          this.#statuses.set(name, this.#status(name, has, undefined, PackageStatusEnum.PackageStatusEnum_Installed));
        return false;
      }
      const error = OpampError.from(cause, "storage_failed");
      set(PackageStatusEnum.PackageStatusEnum_InstallFailed, error.message);
      return false;
    }
  }

  /** @throws OpampError `verification_failed` when refused or unverifiable; `hook_failed` when the hook throws. */
  async #verifySignature(name: string, file: DownloadableFile, content: Uint8Array): Promise<void> {
    const verify = this.ctx.verifySignature;
    if (verify === undefined) {
      throw new OpampError("verification_failed", "package is signed but no verifyPackageSignature hook is set");
    }
    let ok: boolean;
    try {
      ok = await callHook(verify, { name, file, content, signature: file.signature, signal: this.ctx.signal });
    } catch (cause) {
      const error = OpampError.from(cause, "hook_failed");
      if (!this.ctx.signal.aborted) this.ctx.error(error);
      throw error;
    }
    if (ok !== true) throw new OpampError("verification_failed", "signature refused");
  }

  /** Downloads within the deadlines, reporting Downloading progress at most once per interval. */
  #download(
    name: string,
    file: DownloadableFile,
    progress: (status: PackageStatus) => void,
    offered: PackageAvailable,
    has: InstalledPackage | undefined,
    signal: AbortSignal,
  ): Promise<Uint8Array> {
    const clock = this.ctx.clock;
    const started = clock.now();
    let lastReport = started;
    return downloadPackage({
      name,
      file,
      fetch: this.ctx.fetch,
      clock,
      maxBytes: this.ctx.maxPackageBytes,
      connectTimeoutMs: this.ctx.connectTimeoutMs,
      idleTimeoutMs: this.ctx.idleTimeoutMs,
      totalTimeoutMs: this.ctx.totalTimeoutMs,
      signal,
      onChunk: (received, total) => {
        const now = clock.now();
        if (now - lastReport < DEFAULT_DOWNLOAD_PROGRESS_INTERVAL_MS) return;
        lastReport = now;
        const status = this.#status(name, has, offered, PackageStatusEnum.PackageStatusEnum_Downloading);
        status.downloadDetails = create(PackageDownloadDetailsSchema, {
          downloadPercent: total > 0 ? (received / total) * 100 : 0,
          downloadBytesPerSecond: received / Math.max(0.001, (now - started) / 1000),
        });
        progress(status);
      },
    });
  }
}
