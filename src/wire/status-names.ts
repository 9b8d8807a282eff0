/**
 * The protocol's status enums as words: `"applied"` rather than
 * `RemoteConfigStatuses.RemoteConfigStatuses_APPLIED` (1). What the server's agent view
 * shows, and what these helpers turn any status into.
 */
import { ConnectionSettingsStatuses, PackageStatusEnum, RemoteConfigStatuses } from "../gen/opamp/v1/opamp_pb.js";

/** A remote config status (spec: RemoteConfigStatuses) in words. */
export type RemoteConfigStatusName = "unset" | "applied" | "applying" | "failed";
/** A connection settings status (spec: ConnectionSettingsStatuses) in words. */
export type ConnectionSettingsStatusName = RemoteConfigStatusName;
/** A package status (spec: PackageStatusEnum) in words. */
export type PackageStatusName = "installed" | "install_pending" | "installing" | "install_failed" | "downloading";

const APPLY_NAMES: readonly RemoteConfigStatusName[] = ["unset", "applied", "applying", "failed"];
const PACKAGE_NAMES: readonly PackageStatusName[] = [
  "installed",
  "install_pending",
  "installing",
  "install_failed",
  "downloading",
];

/** `"applied"` for `RemoteConfigStatuses_APPLIED`, …; a value the proto does not define reads `"unset"`. */
export function remoteConfigStatusName(status: RemoteConfigStatuses): RemoteConfigStatusName {
  return APPLY_NAMES[status] ?? "unset";
}

/** `"applied"` for `ConnectionSettingsStatuses_APPLIED`, …; an unknown value reads `"unset"`. */
export function connectionSettingsStatusName(status: ConnectionSettingsStatuses): ConnectionSettingsStatusName {
  return APPLY_NAMES[status] ?? "unset";
}

/**
 * `"installed"`, `"install_pending"`, `"installing"`, `"install_failed"` or
 * `"downloading"`; an unknown value (a newer peer) reads `"install_pending"`.
 */
export function packageStatusName(status: PackageStatusEnum): PackageStatusName {
  return PACKAGE_NAMES[status] ?? "install_pending";
}

// Keep the tables in step with the generated enums.
void [
  RemoteConfigStatuses.RemoteConfigStatuses_FAILED satisfies 3,
  ConnectionSettingsStatuses.ConnectionSettingsStatuses_FAILED satisfies 3,
  PackageStatusEnum.PackageStatusEnum_Downloading satisfies 4,
];
