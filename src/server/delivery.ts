/**
 * Delivery bookkeeping: turning stored desired state back into shared parts, and recording
 * the status an agent reports for what it was given.
 */
import { fromBinary } from "@bufbuild/protobuf";
import {
  AgentRemoteConfigSchema,
  AgentToServerSchema,
  ConnectionSettingsOffersSchema,
  ConnectionSettingsStatuses,
  PackageStatusEnum,
  type PackageStatuses,
  PackagesAvailableSchema,
  RemoteConfigStatuses,
} from "../gen/opamp/v1/opamp_pb.js";
import { OpampError } from "../wire/errors.js";
import { AgentCapability, hasBit } from "../wire/index.js";
import type { AgentRecord, DesiredItem, DesiredKind } from "./agent-record.js";
import { mergeReport, type StateTables } from "./merge-report.js";
import { makePart } from "./outbound.js";
import type { DeliveryKind, DeliveryStatus, ServerStore, StoredDesired } from "./store.js";
import type { AgentPart } from "./types.js";

/** Builds a shared desired item from the encoded sub-message. */
export function desiredItem(kind: DesiredKind, messageBytes: Uint8Array, hash: Uint8Array): DesiredItem {
  return { hash, messageBytes, part: makePart(kind, messageBytes) };
}

/**
 * Fills a fresh record's desired state from the store (after a restart or reconnect).
 *
 * @throws Error when a stored item does not decode (the caller reports it).
 */
export function restoreDesired(record: AgentRecord, desired: StoredDesired): void {
  if (desired.remoteConfig !== undefined) {
    const msg = fromBinary(AgentRemoteConfigSchema, desired.remoteConfig);
    record.desired.remoteConfig = desiredItem("remoteConfig", desired.remoteConfig, msg.configHash);
  }
  if (desired.packagesAvailable !== undefined) {
    const msg = fromBinary(PackagesAvailableSchema, desired.packagesAvailable);
    record.desired.packagesAvailable = desiredItem("packagesAvailable", desired.packagesAvailable, msg.allPackagesHash);
  }
  if (desired.connectionSettings !== undefined) {
    const msg = fromBinary(ConnectionSettingsOffersSchema, desired.connectionSettings);
    record.desired.connectionSettings = desiredItem("connectionSettings", desired.connectionSettings, msg.hash);
  }
  record.sentSettingsHash = desired.sentConnectionSettingsHash;
}

/** The desired state of a record in store form. */
export function storedDesired(record: AgentRecord): StoredDesired {
  const out: { -readonly [K in keyof StoredDesired]: StoredDesired[K] } = {};
  if (record.desired.remoteConfig) out.remoteConfig = record.desired.remoteConfig.messageBytes;
  if (record.desired.packagesAvailable) out.packagesAvailable = record.desired.packagesAvailable.messageBytes;
  if (record.desired.connectionSettings) out.connectionSettings = record.desired.connectionSettings.messageBytes;
  if (record.sentSettingsHash) out.sentConnectionSettingsHash = record.sentSettingsHash;
  return out;
}

const CONFIG_STATUS: Partial<Record<RemoteConfigStatuses, DeliveryStatus>> = {
  [RemoteConfigStatuses.RemoteConfigStatuses_APPLYING]: "applying",
  [RemoteConfigStatuses.RemoteConfigStatuses_APPLIED]: "applied",
  [RemoteConfigStatuses.RemoteConfigStatuses_FAILED]: "failed",
};

const SETTINGS_STATUS: Partial<Record<ConnectionSettingsStatuses, DeliveryStatus>> = {
  [ConnectionSettingsStatuses.ConnectionSettingsStatuses_APPLYING]: "applying",
  [ConnectionSettingsStatuses.ConnectionSettingsStatuses_APPLIED]: "applied",
  [ConnectionSettingsStatuses.ConnectionSettingsStatuses_FAILED]: "failed",
};

/** One status of a whole package offer: failed if any failed, applying while any is in progress. */
function packagesStatus(statuses: PackageStatuses): DeliveryStatus {
  let status: DeliveryStatus = "applied";
  if (statuses.errorMessage !== "") return "failed";
  for (const p of Object.values(statuses.packages)) {
    if (p.status === PackageStatusEnum.PackageStatusEnum_InstallFailed) return "failed";
    if (p.status !== PackageStatusEnum.PackageStatusEnum_Installed) status = "applying";
  }
  return status;
}

/**
 * The delivery status the agent reports for what it holds of a desired kind, when it
 * reports one: what a push of the hash it already holds records instead of "offered"
 * (nothing is sent to it). An agent without ReportsConnectionSettingsStatus reports none.
 */
export function reportedStep(record: AgentRecord, kind: DesiredKind): DeliveryStatus | undefined {
  switch (kind) {
    case "remoteConfig":
      return record.remoteConfigStatus === undefined ? undefined : CONFIG_STATUS[record.remoteConfigStatus.status];
    case "packagesAvailable":
      return record.packageStatuses === undefined ? undefined : packagesStatus(record.packageStatuses);
    case "connectionSettings":
      return hasBit(record.capabilities, AgentCapability.ReportsConnectionSettingsStatus) &&
        record.connectionSettingsStatus !== undefined
        ? SETTINGS_STATUS[record.connectionSettingsStatus.status]
        : undefined;
  }
}

/** A record filled from the store, and whether the store knew the agent. */
export interface LoadedRecord {
  readonly record: AgentRecord;
  readonly known: boolean;
}

/**
 * Fills a fresh record with the agent's last known state and desired state from the
 * store. A store failure is reported and the agent is treated as unknown (it will be asked
 * for its full state). So is a stored state that does not decode, or that is over the
 * agent state budget: it is reported as `storage_failed` and ignored (the next write
 * replaces it); a stored desired state that does not decode is reported and left out.
 */
export async function loadRecord(
  host: {
    readonly store: ServerStore;
    readonly options: { readonly maxAgentStateBytes: number };
    reportError(error: unknown, code: "storage_failed"): void;
  },
  record: AgentRecord,
  tables: StateTables,
): Promise<LoadedRecord> {
  const [stored, desired] = await Promise.all([
    host.store.getAgent(record.id).catch((e) => host.reportError(e, "storage_failed")),
    host.store.getDesired(record.id).catch((e) => host.reportError(e, "storage_failed")),
  ]);
  let known = false;
  if (stored) {
    try {
      const state = fromBinary(AgentToServerSchema, stored.state);
      const merged = mergeReport(record, state, tables, {
        raw: stored.state,
        maxStateBytes: host.options.maxAgentStateBytes,
      });
      if (merged.refusedStateBytes !== undefined) {
        throw new Error(`it is ${merged.refusedStateBytes} bytes, over the agent state limit`);
      }
      record.sequenceNum = state.sequenceNum;
      record.boundPrincipal = stored.boundPrincipal;
      known = true;
    } catch (e) {
      // An unknown agent, then: it is asked for its full state, which replaces this one.
      host.reportError(
        new OpampError("storage_failed", `the stored state of ${record.id} cannot be used: ${errorText(e)}`, {
          cause: e,
        }),
        "storage_failed",
      );
    }
  }
  if (desired) {
    try {
      restoreDesired(record, desired);
    } catch (e) {
      host.reportError(
        new OpampError("storage_failed", `the stored desired state of ${record.id} cannot be decoded`, { cause: e }),
        "storage_failed",
      );
    }
  }
  return { record, known };
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** What the core offers delivery helpers. */
export interface DeliveryHost {
  readonly store: ServerStore;
  persist(write: () => Promise<void>): Promise<void>;
}

/**
 * Appends what the agent newly reported about a delivery (remote config, packages,
 * connection settings) to that delivery's history, keyed by the hash the agent names, at
 * the time of the agent's message (`record.lastSeen`).
 *
 * @param changed - the parts of the agent's state that this message changed.
 */
export function recordDeliveryStatus(host: DeliveryHost, record: AgentRecord, changed: readonly AgentPart[]): void {
  if (changed.length === 0) return;
  const now = record.lastSeen;
  const append = (kind: DeliveryKind, hash: Uint8Array, status: DeliveryStatus | undefined, errorMessage: string) => {
    if (hash.length === 0 || status === undefined) return;
    const event = errorMessage === "" ? { status, at: now } : { status, at: now, errorMessage };
    const id = record.id;
    host.persist(() => host.store.appendDelivery(id, kind, hash, event));
  };
  for (const part of changed) {
    if (part === "remoteConfigStatus" && record.remoteConfigStatus !== undefined) {
      const s = record.remoteConfigStatus;
      append("remoteConfig", s.lastRemoteConfigHash, CONFIG_STATUS[s.status], s.errorMessage);
    } else if (part === "connectionSettingsStatus" && record.connectionSettingsStatus !== undefined) {
      const s = record.connectionSettingsStatus;
      append("connectionSettings", s.lastConnectionSettingsHash, SETTINGS_STATUS[s.status], s.errorMessage);
    } else if (part === "packageStatuses" && record.packageStatuses !== undefined) {
      const s = record.packageStatuses;
      append("packages", s.serverProvidedAllPackagesHash, packagesStatus(s), s.errorMessage);
    }
  }
}
