/**
 * Remote config handling: one config applied at a time, a hash already handled never
 * applied again, APPLYING → APPLIED | FAILED reported with the hash.
 */
// spec: Configuration / Remote Configuration
import { create } from "@bufbuild/protobuf";
import {
  type AgentConfigMap,
  AgentConfigMapSchema,
  type AgentRemoteConfig,
  type RemoteConfigStatus,
  RemoteConfigStatuses,
  RemoteConfigStatusSchema,
} from "../gen/opamp/v1/opamp_pb.js";
import { sameBytes } from "../wire/bytes.js";
import { OpampError } from "../wire/errors.js";
import type { ClientHooks } from "./hooks.js";
import { unsafeNameReason } from "./safe-name.js";
import type { StoredRemoteConfigStatus } from "./state-store.js";

/** What the handler needs from the client. */
export interface RemoteConfigContext {
  readonly hook: NonNullable<ClientHooks["onRemoteConfig"]>;
  readonly signal: AbortSignal;
  /** Publishes a new status (core + event). */
  setStatus(status: RemoteConfigStatus): void;
  /** Persists a final outcome. */
  persist(status: StoredRemoteConfigStatus): Promise<void>;
  /** Re-reads the effective config; `alongWith` runs in the same tick as its update. */
  refreshEffectiveConfig(alongWith: () => void): Promise<void>;
  error(error: OpampError): void;
}

const STATUS_ENUM = {
  applying: RemoteConfigStatuses.RemoteConfigStatuses_APPLYING,
  applied: RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
  failed: RemoteConfigStatuses.RemoteConfigStatuses_FAILED,
} as const;

/** Converts a stored outcome to the wire message. */
export function remoteConfigStatusMessage(stored: StoredRemoteConfigStatus): RemoteConfigStatus {
  return create(RemoteConfigStatusSchema, {
    lastRemoteConfigHash: stored.hash,
    status: STATUS_ENUM[stored.status],
    errorMessage: stored.errorMessage,
  });
}

/** Serialises remote config offers through the application's hook. */
export class RemoteConfigHandler {
  #handledHash: Uint8Array | undefined;
  #latest: AgentRemoteConfig | undefined;
  /** The offer whose hook is running, if any. */
  #applying: AgentRemoteConfig | undefined;
  #chain: Promise<void> = Promise.resolve();

  constructor(private readonly ctx: RemoteConfigContext) {}

  /** Starts from a persisted outcome so a restart does not re-apply the same config. */
  restore(stored: StoredRemoteConfigStatus | undefined): void {
    // An "applying" left by a crash means the config may not be in effect: apply it again.
    if (stored === undefined || stored.status === "applying") return;
    this.#handledHash = stored.hash;
    this.ctx.setStatus(remoteConfigStatusMessage(stored));
  }

  /** Settles when every accepted offer has been handled. */
  idle(): Promise<void> {
    return this.#chain;
  }

  /** Takes an offer; a hash already handled or queued is ignored. */
  offer(remote: AgentRemoteConfig): void {
    if (sameBytes(remote.configHash, this.#latest?.configHash ?? this.#handledHash)) return;
    if (this.#latest !== undefined && sameBytes(remote.configHash, this.#handledHash)) {
      // Back to the config already applied (or being applied) before the queued newer one
      // started: the queued one is dropped and nothing is applied again.
      this.#latest = this.#applying;
      return;
    }
    this.#latest = remote;
    // A failure outside the hook (a store or listener bug) is reported, and must not
    // leave the chain rejected: every later offer would be skipped.
    this.#chain = this.#chain
      .then(() => this.#apply(remote))
      .catch((cause: unknown) => {
        if (!this.ctx.signal.aborted) this.ctx.error(OpampError.from(cause, "internal"));
      });
  }

  /**
   * File names are the server's choice and often become paths on the agent: a config with
   * one that would escape its directory is refused before the application sees it.
   */
  #refusal(config: AgentConfigMap, hash: Uint8Array): StoredRemoteConfigStatus | undefined {
    for (const name of Object.keys(config.configMap)) {
      const reason = unsafeNameReason(name, true);
      if (reason === undefined) continue;
      const error = new OpampError(
        "invalid_argument",
        `config file name ${JSON.stringify(name)} ${reason}; not applied`,
      );
      if (!this.ctx.signal.aborted) this.ctx.error(error);
      return { hash, status: "failed", errorMessage: error.message };
    }
    return undefined;
  }

  async #runHook(config: AgentConfigMap, hash: Uint8Array): Promise<StoredRemoteConfigStatus> {
    try {
      const result = await this.ctx.hook({ config, hash, signal: this.ctx.signal });
      return result?.status === "failed"
        ? { hash, status: "failed", errorMessage: result.errorMessage }
        : { hash, status: "applied", errorMessage: "" };
    } catch (cause) {
      const error = OpampError.from(cause, "hook_failed");
      if (!this.ctx.signal.aborted) this.ctx.error(error);
      return { hash, status: "failed", errorMessage: error.message };
    }
  }

  async #apply(remote: AgentRemoteConfig): Promise<void> {
    // A newer offer arrived while an older one was applied: skip straight to it.
    if (this.#latest !== remote || this.ctx.signal.aborted) return;
    const hash = remote.configHash;
    this.#handledHash = hash;
    this.#applying = remote;
    this.ctx.setStatus(remoteConfigStatusMessage({ hash, status: "applying", errorMessage: "" }));
    const config = remote.config ?? create(AgentConfigMapSchema);
    const outcome = this.#refusal(config, hash) ?? (await this.#runHook(config, hash));
    // Stopped while applying: the outcome is unknown, so nothing is recorded and the
    // config is applied again after a restart.
    this.#applying = undefined;
    if (this.ctx.signal.aborted) return;
    if (this.#latest === remote) this.#latest = undefined;
    const publish = () => {
      // Persisted even when stopping: the outcome happened and must not be re-applied.
      void this.ctx
        .persist(outcome)
        .catch((cause: unknown) => this.ctx.error(OpampError.from(cause, "storage_failed")));
      if (!this.ctx.signal.aborted) this.ctx.setStatus(remoteConfigStatusMessage(outcome));
    };
    // The new effective config goes in the same message as APPLIED (spec: typical sequence).
    if (outcome.status === "applied") await this.ctx.refreshEffectiveConfig(publish);
    else publish();
  }
}
