/**
 * The server's record of one agent: its reconstructed full state (spec: Status Compression)
 * plus what the server wants it to have and what is waiting for its next HTTP poll.
 */
import { clone, create, type DescMessage, equals, type MessageShape } from "@bufbuild/protobuf";
import {
  type AgentDescription,
  AgentDescriptionSchema,
  type AgentToServer,
  AgentToServerSchema,
  type AvailableComponents,
  AvailableComponentsSchema,
  type ComponentHealth,
  ComponentHealthSchema,
  type ConnectionSettingsStatus,
  ConnectionSettingsStatusSchema,
  type CustomCapabilities,
  CustomCapabilitiesSchema,
  type EffectiveConfig,
  EffectiveConfigSchema,
  type PackageStatuses,
  PackageStatusesSchema,
  type RemoteConfigStatus,
  RemoteConfigStatusSchema,
} from "../gen/opamp/v1/opamp_pb.js";
import type { Part, PartKind } from "./outbound.js";
import type { Agent, AgentPart, AgentTransport } from "./types.js";

/** A desired item (config, packages, settings) shared by every agent it was pushed to. */
export interface DesiredItem {
  /** The hash the agent reports back once it has the item. */
  readonly hash: Uint8Array;
  /** The sub-message, encoded once as a ServerToAgent field. */
  readonly part: Part;
  /** The sub-message bytes (what the store keeps). */
  readonly messageBytes: Uint8Array;
}

/** Desired state kinds, named after their ServerToAgent fields. */
export type DesiredKind = "remoteConfig" | "packagesAvailable" | "connectionSettings";

/** A live link the server can push to (a WebSocket); HTTP agents have none. */
export interface PushChannel {
  /** Sends one encoded ServerToAgent (without the WS header); false when the channel dropped it. */
  send(payload: Uint8Array): boolean;
  /** Agents currently associated with this channel. */
  readonly agents: Set<AgentRecord>;
  /** True once the link has closed; nothing may be associated with it any more. */
  readonly closed: boolean;
}

/** Mutable record behind the read-only {@link Agent} view. Internal to the server. */
export class AgentRecord implements Agent {
  id: string;
  instanceUid: Uint8Array;
  capabilities = 0n;
  agentDescription: AgentDescription | undefined;
  health: ComponentHealth | undefined;
  effectiveConfig: EffectiveConfig | undefined;
  remoteConfigStatus: RemoteConfigStatus | undefined;
  packageStatuses: PackageStatuses | undefined;
  customCapabilities: CustomCapabilities | undefined;
  availableComponents: AvailableComponents | undefined;
  connectionSettingsStatus: ConnectionSettingsStatus | undefined;
  transport: AgentTransport;
  principal: unknown;
  remoteAddress: string | undefined;
  lastSeen: number;
  sequenceNum = 0n;

  /** WebSocket carrying the agent, if any. */
  channel: PushChannel | undefined;
  /** The WebSocket that carried the agent before its UID moved to `channel` (duplicate detection). */
  previousChannel: PushChannel | undefined;
  /** What the server wants the agent to have. */
  readonly desired: { [K in DesiredKind]?: DesiredItem } = {};
  /** Hash of each desired item already offered since the agent (re)connected, to avoid resending. */
  readonly offered: { [K in DesiredKind]?: Uint8Array } = {};
  /** One-shot parts waiting for the next HTTP poll (latest of each kind wins). */
  readonly pending = new Map<PartKind, Part>();
  /** Custom messages waiting for the next HTTP polls, oldest first (events, so queued, not coalesced). */
  readonly pendingCustom: Part[] = [];
  /** ServerToAgent flags waiting for the next HTTP poll. */
  pendingFlags = 0n;
  /** Whether server capabilities went out since the agent (re)connected. */
  capabilitiesSent = false;
  /** Old UID string while the agent has not yet used a newly assigned one. */
  previousId: string | undefined;
  /** The agentIdentification part announcing the new UID, while `previousId` is set. */
  identification: Part | undefined;
  /** True while the reply to this agent's message is being built (pushes fold into it). */
  replying = false;
  /** The latest store write of this agent's state, so writes land in order. */
  saving: Promise<void> | undefined;

  constructor(id: string, instanceUid: Uint8Array, transport: AgentTransport, now: number) {
    this.id = id;
    // A copy: the decoded UID is a view into the whole received message, which must not be
    // kept alive for the agent's lifetime.
    this.instanceUid = Uint8Array.from(instanceUid);
    this.transport = transport;
    this.lastSeen = now;
  }

  get desiredConfigHash(): Uint8Array | undefined {
    return this.desired.remoteConfig?.hash;
  }

  /** Forgets per-session facts so the next reply restates capabilities and desired items. */
  resetSession(): void {
    this.capabilitiesSent = false;
    for (const key of Object.keys(this.offered) as DesiredKind[]) delete this.offered[key];
  }

  /** The reconstructed full state as an AgentToServer (what stores keep). */
  toFullState(): AgentToServer {
    return create(AgentToServerSchema, {
      instanceUid: this.instanceUid,
      sequenceNum: this.sequenceNum,
      capabilities: this.capabilities,
      agentDescription: this.agentDescription,
      health: this.health,
      effectiveConfig: this.effectiveConfig,
      remoteConfigStatus: this.remoteConfigStatus,
      packageStatuses: this.packageStatuses,
      customCapabilities: this.customCapabilities,
      availableComponents: this.availableComponents,
      connectionSettingsStatus: this.connectionSettingsStatus,
    });
  }
}

/** Result of merging one report into a record. */
export interface MergeResult {
  readonly changes: AgentPart[];
  /** The agent sent an available-components hash whose components the server does not know. */
  readonly needComponents: boolean;
}

function replaceIfChanged<D extends DescMessage>(
  schema: D,
  current: MessageShape<D> | undefined,
  next: MessageShape<D> | undefined,
): boolean {
  if (next === undefined) return false; // spec: left out = unchanged
  return current === undefined || !equals(schema, current, next);
}

/**
 * Merges the compressible fields present in `message` into `record` and reports which
 * parts changed. Small sub-messages are copied: decoded bytes are views into the whole
 * received buffer, which a 32-byte hash must not keep alive. The effective config is kept
 * as decoded (its bodies are most of that buffer anyway). Absent fields keep their last value (spec: Status Compression). Work is
 * proportional to the size of the message, not of the fleet.
 *
 * @param components - cache of available-components maps by hash (hex), shared across agents.
 */
export function mergeReport(
  record: AgentRecord,
  message: AgentToServer,
  components: Map<string, AvailableComponents>,
): MergeResult {
  const changes: AgentPart[] = [];
  if (message.capabilities !== 0n && message.capabilities !== record.capabilities) {
    // spec: capabilities MUST always be set; a poll carrying 0 is tolerated as "unchanged".
    record.capabilities = message.capabilities;
    changes.push("capabilities");
  }
  if (replaceIfChanged(AgentDescriptionSchema, record.agentDescription, message.agentDescription)) {
    record.agentDescription = clone(AgentDescriptionSchema, message.agentDescription!);
    changes.push("agentDescription");
  }
  if (replaceIfChanged(ComponentHealthSchema, record.health, message.health)) {
    record.health = clone(ComponentHealthSchema, message.health!);
    changes.push("health");
  }
  if (replaceIfChanged(EffectiveConfigSchema, record.effectiveConfig, message.effectiveConfig)) {
    record.effectiveConfig = message.effectiveConfig;
    changes.push("effectiveConfig");
  }
  if (replaceIfChanged(RemoteConfigStatusSchema, record.remoteConfigStatus, message.remoteConfigStatus)) {
    record.remoteConfigStatus = clone(RemoteConfigStatusSchema, message.remoteConfigStatus!);
    changes.push("remoteConfigStatus");
  }
  if (replaceIfChanged(PackageStatusesSchema, record.packageStatuses, message.packageStatuses)) {
    record.packageStatuses = clone(PackageStatusesSchema, message.packageStatuses!);
    changes.push("packageStatuses");
  }
  if (replaceIfChanged(CustomCapabilitiesSchema, record.customCapabilities, message.customCapabilities)) {
    record.customCapabilities = clone(CustomCapabilitiesSchema, message.customCapabilities!);
    changes.push("customCapabilities");
  }
  if (
    replaceIfChanged(ConnectionSettingsStatusSchema, record.connectionSettingsStatus, message.connectionSettingsStatus)
  ) {
    record.connectionSettingsStatus = clone(ConnectionSettingsStatusSchema, message.connectionSettingsStatus!);
    changes.push("connectionSettingsStatus");
  }
  let needComponents = false;
  const reported = message.availableComponents && clone(AvailableComponentsSchema, message.availableComponents);
  if (reported !== undefined) {
    const key = hex(reported.hash);
    let full: AvailableComponents = reported;
    if (Object.keys(reported.components).length > 0) {
      components.set(key, reported);
    } else {
      // spec: Available components — the first report carries only the hash.
      const cached = components.get(key);
      if (cached !== undefined) full = cached;
      else needComponents = reported.hash.length > 0;
    }
    if (replaceIfChanged(AvailableComponentsSchema, record.availableComponents, full)) {
      record.availableComponents = full;
      changes.push("availableComponents");
    }
  }
  return { changes, needComponents };
}

/** Lower-case hex of bytes, for map keys and logs. */
export function hex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/** True when two optional byte arrays hold the same bytes. */
export function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Whether the server must ask for the full state (spec: Status Compression): a known agent
 * whose `sequence_num` is not the previous one plus 1 (the view may be stale; a restarted
 * agent starting again at 0 with its description is fine), or an agent the server has no
 * state for sending a report without its description.
 */
export function needsFullState(known: boolean, lastSequenceNum: bigint, message: AgentToServer): boolean {
  const looksFull = message.agentDescription !== undefined;
  if (!known) return !looksFull;
  if (message.sequenceNum === lastSequenceNum + 1n) return false;
  return !(looksFull && message.sequenceNum === 0n);
}
