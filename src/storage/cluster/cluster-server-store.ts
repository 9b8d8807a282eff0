/**
 * The {@link ServerStore} of a node:cluster worker whose primary holds the fleet's state:
 * each call goes over the worker's IPC channel to the primary's `ClusterHub`, which runs
 * it on its store (by default an `InMemoryServerStore`). The state then outlives any
 * worker, as a database would, without a database.
 */
import type {
  DeliveryEvent,
  DeliveryKind,
  ServerStore,
  StoredAgent,
  StoredDelivery,
  StoredDesired,
} from "../../server/store.js";
import { packAgent, packDesired, unpackAgent, unpackDesired } from "./cluster-hub.js";
import { type ClusterChannelOptions, channelClient } from "./cluster-server-bus.js";
import { type IpcClient, packBytes, unpackBytes } from "./ipc.js";

/**
 * {@link ServerStore} held by the cluster's primary. Each write copies the agent's state
 * once over the channel; `stateFields` are not carried (the primary's store shares large
 * fields itself). A call fails with `timeout` when the primary does not answer within
 * `requestTimeoutMs`, and with `storage_failed` once the primary is gone.
 *
 * @throws OpampError `invalid_argument` (constructor) outside a worker without `port`, or
 *   for a bad option.
 */
export class ClusterServerStore implements ServerStore {
  readonly #client: IpcClient;

  constructor(options: ClusterChannelOptions = {}) {
    this.#client = channelClient(options);
  }

  async getAgent(instanceUid: string): Promise<StoredAgent | undefined> {
    const value = await this.#client.request("getAgent", [instanceUid]);
    return value === undefined ? undefined : unpackAgent(value);
  }

  async putAgent(agent: StoredAgent): Promise<void> {
    await this.#client.request("putAgent", [packAgent(agent, this.#client.serialization)]);
  }

  async deleteAgent(instanceUid: string): Promise<void> {
    await this.#client.request("deleteAgent", [instanceUid]);
  }

  async getDesired(instanceUid: string): Promise<StoredDesired | undefined> {
    const value = await this.#client.request("getDesired", [instanceUid]);
    return value === undefined ? undefined : unpackDesired(value);
  }

  async putDesired(instanceUid: string, desired: StoredDesired): Promise<void> {
    await this.#client.request("putDesired", [instanceUid, packDesired(desired, this.#client.serialization)]);
  }

  async appendDelivery(instanceUid: string, kind: DeliveryKind, hash: Uint8Array, event: DeliveryEvent): Promise<void> {
    const step: DeliveryEvent = { status: event.status, at: event.at };
    const withError = event.errorMessage === undefined ? step : { ...step, errorMessage: event.errorMessage };
    await this.#client.request("appendDelivery", [
      instanceUid,
      kind,
      packBytes(hash, this.#client.serialization),
      withError,
    ]);
  }

  async listDeliveries(instanceUid: string): Promise<readonly StoredDelivery[]> {
    const list = (await this.#client.request("listDeliveries", [instanceUid])) as StoredDelivery[];
    return list.map((d) => ({
      instanceUid: d.instanceUid,
      kind: d.kind,
      hash: unpackBytes(d.hash, "a delivery hash"),
      history: d.history,
    }));
  }
}
