/**
 * Builds the client's feature handlers (remote config, packages, connection settings)
 * and wires each to the core, the store and the events. Kept apart from the public class
 * so that each stays small.
 */

import { AgentCapability, hasBit } from "../wire/capabilities.js";
import type { OpampError } from "../wire/errors.js";
import { ConnectionSettingsManager, initialConnectionSettings, type SettingsSupport } from "./connection-settings.js";
import type { ClientCore } from "./core.js";
import type { OpAMPClientEvents } from "./events.js";
import type { ResolvedClientOptions } from "./options.js";
import { PackageSyncer } from "./package-syncer.js";
import { RemoteConfigHandler } from "./remote-config.js";
import type { ClientStateChange } from "./state-persister.js";
import type { ClientState } from "./state-store.js";

/** What the handlers need from the client. */
export interface PartsDeps {
  readonly options: ResolvedClientOptions;
  readonly core: ClientCore;
  readonly signal: AbortSignal;
  /** The state loaded at start. */
  readonly stored: ClientState;
  persist(change: ClientStateChange): Promise<void>;
  emit<E extends keyof OpAMPClientEvents>(event: E, ...args: OpAMPClientEvents[E]): void;
  /** Re-reads the effective config; `alongWith` runs in the same tick as its update. */
  refreshEffectiveConfig(alongWith: () => void): Promise<void>;
  /** Reconnects with the active settings (no-op unless running). */
  reconnect(): Promise<void>;
  /** The heartbeat interval changed. */
  heartbeatChanged(): void;
}

/** The feature handlers of one started client. */
export interface ClientParts {
  readonly settings: ConnectionSettingsManager;
  readonly remoteConfig: RemoteConfigHandler | undefined;
  readonly packages: PackageSyncer | undefined;
}

/** What connection settings this client can apply, from its options. */
export function settingsSupport(options: ResolvedClientOptions): SettingsSupport {
  return {
    httpTls: options.tlsFetch !== undefined,
    tlsOptions: Object.values(options.tls).some((value) => value !== undefined),
    proxyConnector: options.proxyConnector !== undefined,
    proxy: options.proxy,
    environmentProxy:
      options.proxyConnector?.fromEnvironment === undefined
        ? undefined
        : (endpoint) => options.proxyConnector?.fromEnvironment?.(endpoint),
  };
}

/** Creates the handlers and restores their persisted state. */
export async function createClientParts(deps: PartsDeps): Promise<ClientParts> {
  const { options, core, signal, stored } = deps;
  const error = (e: OpampError) => deps.emit("error", e);
  const settings = new ConnectionSettingsManager(
    {
      hooks: options.hooks,
      signal,
      setStatus: (status) => {
        // spec: reported only with ReportsConnectionSettingsStatus.
        if (!hasBit(core.capabilities, AgentCapability.ReportsConnectionSettingsStatus)) return;
        core.set("connectionSettingsStatus", status);
        deps.emit("connectionSettingsStatus", status);
      },
      persist: (connectionSettings, candidateConnectionSettings) =>
        deps.persist({ connectionSettings, candidateConnectionSettings }),
      reconnect: () => deps.reconnect(),
      heartbeatChanged: () => deps.heartbeatChanged(),
      error,
      committed: (committed) => deps.emit("connectionSettings", committed),
      support: settingsSupport(options),
    },
    initialConnectionSettings(options, stored.connectionSettings),
    stored.candidateConnectionSettings,
  );
  settings.restore();
  let remoteConfig: RemoteConfigHandler | undefined;
  const hook = options.hooks.onRemoteConfig;
  if (hook !== undefined) {
    remoteConfig = new RemoteConfigHandler({
      hook,
      signal,
      setStatus: (status) => {
        core.set("remoteConfigStatus", status);
        deps.emit("remoteConfigStatus", status);
      },
      persist: (outcome) => deps.persist({ remoteConfig: outcome }),
      refreshEffectiveConfig: (alongWith) => deps.refreshEffectiveConfig(alongWith),
      error,
    });
    remoteConfig.restore(stored.remoteConfig);
  }
  let packages: PackageSyncer | undefined;
  if (options.packageStore !== undefined) {
    packages = new PackageSyncer({
      store: options.packageStore,
      fetch: options.fetch,
      maxPackageBytes: options.maxPackageBytes,
      connectTimeoutMs: options.downloadConnectTimeoutMs,
      idleTimeoutMs: options.downloadIdleTimeoutMs,
      totalTimeoutMs: options.downloadTimeoutMs,
      clock: options.clock,
      signal,
      verifySignature: options.hooks.verifyPackageSignature,
      setStatuses: (statuses) => {
        core.set("packageStatuses", statuses);
        deps.emit("packageStatuses", statuses);
      },
      persistAllPackagesHash: (allPackagesHash) => deps.persist({ allPackagesHash }),
      error,
    });
    await packages.restore(stored.allPackagesHash);
  }
  return { settings, remoteConfig, packages };
}
