/**
 * The supervisor's storage directory. File names and formats follow the Collector's
 * supervisor where it has the same file (so a state directory can move between the two):
 * `persistent_state.yaml`, `effective.yaml`, `agent.log`, `last_recv_remote_config.dat`,
 * `last_working_remote_config.dat`, `last_recv_own_telemetry_config.dat`. opamp-sdk adds
 * `opamp_client.json` (the OpAMP client's state: the agent key from an accepted
 * connection-settings offer, the package hash), `agent.pid`, `supervisor.pid` and
 * `packages/`. Every write is atomic (see atomic-file.ts).
 */

import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { parse, stringify } from "yaml";
import { FileClientStateStore } from "../../client/file-state-store.js";
import type { ClientState } from "../../client/state-store.js";
import {
  type AgentRemoteConfig,
  AgentRemoteConfigSchema,
  type ConnectionSettingsOffers,
  ConnectionSettingsOffersSchema,
} from "../../gen/opamp/v1/opamp_pb.js";
import { OpampError } from "../../wire/errors.js";
import { instanceUidFromString, instanceUidToString } from "../../wire/uid.js";
import { readFileIfExists, writeFileAtomic } from "./atomic-file.js";

/** RemoteConfigStatuses numbers, as the Collector's supervisor writes them in persistent_state.yaml. */
const STATUS_NUMBER = { applied: 1, applying: 2, failed: 3 } as const;

/** What persistent_state.yaml holds. */
export interface PersistentState {
  /** The agent's 16-byte instance UID; undefined before the first run. */
  readonly instanceUid: Uint8Array | undefined;
  /** Hash of the `server:` block the committed connection settings were made under. */
  readonly serverConfigHash: string | undefined;
}

/** Paths and typed reads/writes of one storage directory. */
export class StateDirectory {
  /** @param directory - absolute path (`storage.directory`) */
  constructor(readonly directory: string) {}

  /** The effective config the agent runs with. */
  get effectiveConfigPath(): string {
    return join(this.directory, "effective.yaml");
  }
  /** The agent's output (when not passed through), rotated. */
  get agentLogPath(): string {
    return join(this.directory, "agent.log");
  }
  /** Pid and start time of the running agent (found by the orphan sweep after a kill -9). */
  get agentPidPath(): string {
    return join(this.directory, "agent.pid");
  }
  /** Pid of the supervisor holding the directory. */
  get supervisorPidPath(): string {
    return join(this.directory, "supervisor.pid");
  }
  /** Installed agent packages and their `state.json`. */
  get packagesDirectory(): string {
    return join(this.directory, "packages");
  }
  /** The OpAMP client's state (UID, last config outcome, committed connection settings). */
  get clientStatePath(): string {
    return join(this.directory, "opamp_client.json");
  }
  /** The OpAMP client's store, inside this directory. */
  clientStore(): FileClientStateStore {
    return new FileClientStateStore(this.clientStatePath);
  }

  /** Creates the directory (0700). @throws OpampError `storage_failed`. */
  async create(): Promise<void> {
    try {
      await mkdir(this.directory, { recursive: true, mode: 0o700 });
    } catch (cause) {
      throw new OpampError("storage_failed", `cannot create ${this.directory}: ${(cause as Error).message}`, { cause });
    }
  }

  /**
   * Reads persistent_state.yaml; a missing file, or absent or unreadable fields, come back
   * undefined.
   * @throws OpampError `storage_failed` when the file is not valid YAML.
   */
  async readPersistentState(): Promise<
    PersistentState & {
      /** The last remote config status reported (`last_remote_config_status`), when recorded. */
      readonly remoteConfig?: ClientState["remoteConfig"];
    }
  > {
    const bytes = await readFileIfExists(join(this.directory, "persistent_state.yaml"));
    if (bytes === undefined) return { instanceUid: undefined, serverConfigHash: undefined };
    let doc: Record<string, unknown>;
    try {
      doc = (parse(bytes.toString("utf8")) ?? {}) as Record<string, unknown>;
    } catch (cause) {
      throw new OpampError("storage_failed", `persistent_state.yaml is not valid YAML: ${(cause as Error).message}`);
    }
    let instanceUid: Uint8Array | undefined;
    if (typeof doc["instance_id"] === "string") {
      try {
        instanceUid = instanceUidFromString(doc["instance_id"]);
      } catch {
        instanceUid = undefined;
      }
    }
    const status = doc["last_remote_config_status"] as Record<string, unknown> | undefined;
    const name = Object.entries(STATUS_NUMBER).find(([, n]) => n === status?.["status"])?.[0];
    const hash = typeof status?.["last_remote_config_hash"] === "string" ? status["last_remote_config_hash"] : "";
    return {
      instanceUid,
      serverConfigHash: typeof doc["opamp_sdk_server_hash"] === "string" ? doc["opamp_sdk_server_hash"] : undefined,
      ...(name === undefined || hash === ""
        ? {}
        : {
            remoteConfig: {
              hash: new Uint8Array(Buffer.from(hash, "hex")),
              status: name as "applied" | "applying" | "failed",
              errorMessage: typeof status?.["error_message"] === "string" ? status["error_message"] : "",
            },
          }),
    };
  }

  /** Writes persistent_state.yaml (atomically). */
  async writePersistentState(
    state: PersistentState & { readonly remoteConfig?: ClientState["remoteConfig"] | undefined },
  ): Promise<void> {
    const doc: Record<string, unknown> = {};
    if (state.instanceUid !== undefined) doc["instance_id"] = instanceUidToString(state.instanceUid);
    if (state.remoteConfig !== undefined) {
      doc["last_remote_config_status"] = {
        status: STATUS_NUMBER[state.remoteConfig.status],
        last_remote_config_hash: Buffer.from(state.remoteConfig.hash).toString("hex"),
        error_message: state.remoteConfig.errorMessage,
      };
    }
    if (state.serverConfigHash !== undefined) doc["opamp_sdk_server_hash"] = state.serverConfigHash;
    await writeFileAtomic(join(this.directory, "persistent_state.yaml"), stringify(doc));
  }

  /** Reads a remote config saved with {@link StateDirectory.writeRemoteConfig}; undefined if absent or corrupt. */
  async readRemoteConfig(which: "last_recv" | "last_working"): Promise<AgentRemoteConfig | undefined> {
    const bytes = await readFileIfExists(join(this.directory, `${which}_remote_config.dat`));
    if (bytes === undefined) return undefined;
    try {
      return fromBinary(AgentRemoteConfigSchema, bytes);
    } catch {
      // A file we wrote atomically cannot be half-written; a foreign one is ignored, not fatal.
      return undefined;
    }
  }

  /** Saves a remote config (protobuf, as the Collector's supervisor). */
  async writeRemoteConfig(which: "last_recv" | "last_working", config: AgentRemoteConfig): Promise<void> {
    await writeFileAtomic(
      join(this.directory, `${which}_remote_config.dat`),
      toBinary(AgentRemoteConfigSchema, config),
    );
  }

  /** The last own-telemetry settings offered; undefined if none. */
  async readOwnTelemetry(): Promise<ConnectionSettingsOffers | undefined> {
    const bytes = await readFileIfExists(join(this.directory, "last_recv_own_telemetry_config.dat"));
    if (bytes === undefined) return undefined;
    try {
      return fromBinary(ConnectionSettingsOffersSchema, bytes);
    } catch {
      return undefined;
    }
  }

  /** Saves the own-telemetry settings offered. */
  async writeOwnTelemetry(offers: ConnectionSettingsOffers): Promise<void> {
    await writeFileAtomic(
      join(this.directory, "last_recv_own_telemetry_config.dat"),
      toBinary(ConnectionSettingsOffersSchema, offers),
    );
  }

  /** Reads a pid file; undefined if absent or not a number. */
  async readPid(path: string): Promise<number | undefined> {
    const bytes = await readFileIfExists(path);
    const pid = bytes === undefined ? Number.NaN : Number.parseInt(bytes.toString("utf8").trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  }

  /** Writes a pid file atomically. */
  async writePid(path: string, pid: number): Promise<void> {
    await writeFileAtomic(path, `${pid}\n`);
  }

  /** Removes a file if it exists. */
  async remove(path: string): Promise<void> {
    await rm(path, { force: true });
  }
}
