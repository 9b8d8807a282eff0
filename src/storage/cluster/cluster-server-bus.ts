/**
 * The {@link ServerBus} of a node:cluster worker: claims, look-ups and messages go over the
 * worker's IPC channel to the primary's {@link ClusterHub}, which holds the presence table
 * and relays messages to the other workers.
 */

import type { Clock } from "../../internal/clock.js";
import type { BusMember, BusMessageHandler, ServerBus } from "../../server/bus.js";
import { OpampError } from "../../wire/errors.js";
import {
  type ClusterPort,
  type ClusterSerialization,
  type IpcClient,
  ipcClientFor,
  packBytes,
  processPort,
} from "./ipc.js";

/** Options of {@link ClusterServerBus} and `ClusterServerStore`. */
export interface ClusterChannelOptions {
  /** The channel to the primary. Default `process` (a node:cluster worker's own channel). */
  readonly port?: ClusterPort;
  /**
   * How the channel serializes messages; must match the primary's (`cluster.setupPrimary`,
   * `ClusterHub.attach`). Default `"advanced"`, which `startCluster` sets up.
   */
  readonly serialization?: ClusterSerialization;
  /**
   * How long a request waits for the primary's answer before it fails with `timeout`.
   * Default `DEFAULT_CLUSTER_REQUEST_TIMEOUT_MS` (10 s). The first bus or store of a
   * process sets it for the channel.
   */
  readonly requestTimeoutMs?: number;
  /** Time source for the request timeout. Default the system clock. */
  readonly clock?: Clock;
}

/** Opens the process's client for the options, validating them. */
export function channelClient(options: ClusterChannelOptions): IpcClient {
  const timeout = options.requestTimeoutMs;
  if (timeout !== undefined && (!Number.isSafeInteger(timeout) || timeout <= 0)) {
    throw new OpampError("invalid_argument", "requestTimeoutMs must be a positive integer");
  }
  const serialization = options.serialization;
  if (serialization !== undefined && serialization !== "advanced" && serialization !== "json") {
    throw new OpampError("invalid_argument", 'serialization must be "advanced" or "json"');
  }
  return ipcClientFor(options.port ?? processPort(), options);
}

/**
 * {@link ServerBus} over a node:cluster worker's IPC channel; the primary runs a
 * `ClusterHub` (`startCluster` does both). Several servers of one worker may join it.
 * Messages from one replica to another arrive in the order they were sent; a worker that
 * dies leaves the bus at once (the primary sees its channel close).
 *
 * @throws OpampError `invalid_argument` (constructor) outside a worker without `port`, or
 *   for a bad option.
 */
export class ClusterServerBus implements ServerBus {
  readonly #client: IpcClient;

  constructor(options: ClusterChannelOptions = {}) {
    this.#client = channelClient(options);
  }

  async join(replicaId: string, onMessage: BusMessageHandler): Promise<BusMember> {
    if (typeof replicaId !== "string" || replicaId === "") {
      throw new OpampError("invalid_argument", "a replica id is a non-empty string");
    }
    const client = this.#client;
    // Listening before joining: a message sent to the replica right after the join lands.
    let token: number | undefined;
    let left = false;
    const stopListening = client.onDelivery((to, from, payload) => {
      if (to === replicaId && !left && token !== undefined) onMessage(from, payload);
    });
    try {
      token = (await client.request("join", [replicaId])) as number;
    } catch (e) {
      stopListening();
      throw OpampError.from(e, "storage_failed");
    }
    const check = () => {
      if (left) throw new OpampError("not_running", `replica ${replicaId} left the bus`);
    };
    return {
      replicaId,
      send: async (to, payload) => {
        check();
        client.post("send", [token, to, packBytes(payload, client.serialization)]);
      },
      claim: async (uids) => {
        check();
        const moved = (await client.request("claim", [token, [...uids]])) as [string, string][];
        return new Map(moved);
      },
      release: async (uids) => {
        check();
        await client.request("release", [token, [...uids]]);
      },
      locate: async (uid) => {
        check();
        return (await client.request("locate", [token, uid])) as string | undefined;
      },
      leave: async () => {
        if (left) return;
        left = true;
        stopListening();
        await client.request("leave", [token]).catch(() => undefined);
      },
    };
  }
}
