/**
 * Events of {@link OpAMPClient}. Events observe; they never change what the client does.
 * None fires after `stop()` resolves.
 */
import type {
  ConnectionSettingsStatus,
  PackageStatuses,
  RemoteConfigStatus,
  ServerToAgent,
} from "../gen/opamp/v1/opamp_pb.js";
import type { ConnectionState } from "../transport/connection-state.js";
import type { OpampError } from "../wire/errors.js";
import type { StoredConnectionSettings } from "./state-store.js";

/** Event name → listener arguments. */
export interface OpAMPClientEvents {
  /** A connection is up: WS upgrade done, or an HTTP request answered after a failure or at start. */
  connect: [];
  /** An attempt failed before the connection was up (refused, 401, 503, network); a retry is scheduled. */
  connectFailed: [error: OpampError];
  /** An established connection was lost; a reconnect is scheduled. */
  disconnect: [error: OpampError];
  /** Every ServerToAgent received, before the client acts on it. */
  message: [message: ServerToAgent];
  /** A failure that does not stop the client: malformed message, server error response, hook or store failure. */
  error: [error: OpampError];
  /** Every connection state change, in order. */
  stateChange: [state: ConnectionState, previous: ConnectionState];
  /** The remote config status changed (APPLYING, APPLIED, FAILED). */
  remoteConfigStatus: [status: RemoteConfigStatus];
  /** The connection settings status changed. */
  connectionSettingsStatus: [status: ConnectionSettingsStatus];
  /** New OpAMP connection settings were verified and committed. */
  connectionSettings: [settings: StoredConnectionSettings];
  /** The package statuses changed. */
  packageStatuses: [statuses: PackageStatuses];
  /** The instance UID changed (server-assigned). */
  instanceUid: [uid: Uint8Array];
}
