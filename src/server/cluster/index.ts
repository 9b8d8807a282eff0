/**
 * `opamp-sdk/server/cluster`: several OpAMPServer processes on one port and one machine
 * with node:cluster, sharing their agents through a bus and a store held by the primary.
 * Node only.
 *
 * @module
 */
export { type ClusterAttachOptions, ClusterHub, type ClusterHubOptions } from "../../storage/cluster/cluster-hub.js";
export { type ClusterChannelOptions, ClusterServerBus } from "../../storage/cluster/cluster-server-bus.js";
export { ClusterServerStore } from "../../storage/cluster/cluster-server-store.js";
export {
  type ClusterPort,
  type ClusterSerialization,
  DEFAULT_CLUSTER_REQUEST_TIMEOUT_MS,
} from "../../storage/cluster/ipc.js";
export {
  type ClusterEvents,
  ClusterPrimary,
  type ClusterService,
  type ClusterWorker,
  type ClusterWorkerContext,
  type ClusterWorkerInfo,
  DEFAULT_CLUSTER_MAX_RESTART_DELAY_MS,
  DEFAULT_CLUSTER_START_TIMEOUT_MS,
  DEFAULT_CLUSTER_STOP_TIMEOUT_MS,
  type StartClusterOptions,
  startCluster,
} from "./start-cluster.js";
