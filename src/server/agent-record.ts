/**
 * The server's record of one agent: its reconstructed full state (spec: Status Compression)
 * plus what the server wants it to have and what is waiting for its next HTTP poll.
 */
import { clone, create, type DescMessage, equals, type MessageShape, toBinary } from "@bufbuild/protobuf";
import {
  type AgentDescription,
  AgentDescriptionSchema,
  type AgentToServer,
  type AvailableComponents,
  AvailableComponentsSchema,
  type ComponentHealth,
  ComponentHealthSchema,
  type ConnectionSettingsStatus,
  ConnectionSettingsStatusSchema,
  type CustomCapabilities,
  CustomCapabilitiesSchema,
  type EffectiveConfig,
  type PackageStatuses,
  PackageStatusesSchema,
  type RemoteConfigStatus,
  RemoteConfigStatusSchema,
} from "../gen/opamp/v1/opamp_pb.js";
import type { Part, PartKind } from "./outbound.js";
import {
  detachConnectionSettingsStatus,
  detachDescription,
  detachPackageStatuses,
  detachRemoteConfigStatus,
  type EncodableState,
  encodedEffectiveConfig,
  encodeField,
  encodeState,
  rawStateFields,
  type SharedEffectiveConfig,
  STATE_FIELD,
  type StatePart,
  shareEffectiveConfig,
} from "./shared-state.js";
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
export class AgentRecord implements Agent, EncodableState {
  id: string;
  instanceUid: Uint8Array;
  capabilities = 0n;
  agentDescription: AgentDescription | undefined;
  health: ComponentHealth | undefined;
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
  /** sequence_num of the agent's last state written to the store (undefined: never written). */
  savedSequenceNum: bigint | undefined;
  /** The effective config, shared with every agent reporting the same one. */
  sharedEffectiveConfig: SharedEffectiveConfig | undefined;
  /**
   * Encoded AgentToServer field of parts that changed and are not packed yet (views into
   * the received message until {@link AgentRecord.packEncoded} runs).
   */
  readonly encoded: { [K in StatePart]?: Uint8Array } = {};
  /** Every part's cached encoding, packed into one array (see {@link encodeState}). */
  #block: Uint8Array | undefined;
  /** Start and end in `#block` of each part, by index in SMALL_PARTS; -1 when not cached. */
  readonly #ranges: number[] = new Array<number>(SMALL_PARTS.length * 2).fill(-1);

  constructor(id: string, instanceUid: Uint8Array, transport: AgentTransport, now: number) {
    this.id = id;
    // A copy: the decoded UID is a view into the whole received message, which must not be
    // kept alive for the agent's lifetime.
    this.instanceUid = Uint8Array.from(instanceUid);
    this.transport = transport;
    this.lastSeen = now;
  }

  get effectiveConfig(): EffectiveConfig | undefined {
    return this.sharedEffectiveConfig?.message;
  }

  get desiredConfigHash(): Uint8Array | undefined {
    return this.desired.remoteConfig?.hash;
  }

  /** Forgets per-session facts so the next reply restates capabilities and desired items. */
  resetSession(): void {
    this.capabilitiesSent = false;
    for (const key of Object.keys(this.offered) as DesiredKind[]) delete this.offered[key];
  }

  /** The encoded field of `part`, encoded now if it changed since last time. */
  encodedPart(part: StatePart): Uint8Array | undefined {
    if (part === "effectiveConfig") {
      return this.sharedEffectiveConfig && encodedEffectiveConfig(this.sharedEffectiveConfig);
    }
    const value = this[part];
    if (value === undefined) return undefined;
    const pending = this.encoded[part];
    if (pending !== undefined) return pending;
    const i = SMALL_PARTS.indexOf(part) * 2;
    const start = this.#ranges[i]!;
    if (start >= 0 && this.#block !== undefined) return this.#block.subarray(start, this.#ranges[i + 1]);
    const bytes = encodeField(STATE_FIELD[part], toBinary(PART_SCHEMA[part], value as never));
    this.encoded[part] = bytes;
    this.packEncoded();
    return bytes;
  }

  /** Forgets the cached encoding of `part` (it changed). */
  forgetEncoded(part: StatePart): void {
    delete this.encoded[part];
    if (part !== "effectiveConfig") this.#ranges[SMALL_PARTS.indexOf(part) * 2] = -1;
  }

  /**
   * Packs the cached encodings into one array with offsets: an agent then costs one
   * allocation for them, not one object per part, and holds nothing of a received
   * message. Run after parts changed.
   */
  packEncoded(): void {
    const chunks: [number, Uint8Array][] = [];
    let size = 0;
    SMALL_PARTS.forEach((part, index) => {
      const i = index * 2;
      const bytes =
        this.encoded[part] ??
        (this.#ranges[i]! >= 0 ? this.#block?.subarray(this.#ranges[i], this.#ranges[i + 1]) : undefined);
      if (bytes === undefined) return;
      chunks.push([i, bytes]);
      size += bytes.length;
    });
    const block = new Uint8Array(size);
    let offset = 0;
    for (const [i, bytes] of chunks) {
      block.set(bytes, offset);
      this.#ranges[i] = offset;
      offset += bytes.length;
      this.#ranges[i + 1] = offset;
    }
    this.#block = block;
    for (const part of SMALL_PARTS) delete this.encoded[part];
  }

  /** The reconstructed full state as binary AgentToServer (what stores keep). */
  fullStateBytes(): Uint8Array {
    return encodeState(this);
  }
}

/** Parts whose encoding the record packs (the effective config is shared instead). */
const SMALL_PARTS: readonly Exclude<StatePart, "effectiveConfig">[] = [
  "agentDescription",
  "health",
  "remoteConfigStatus",
  "packageStatuses",
  "customCapabilities",
  "availableComponents",
  "connectionSettingsStatus",
];

const PART_SCHEMA = {
  agentDescription: AgentDescriptionSchema,
  health: ComponentHealthSchema,
  remoteConfigStatus: RemoteConfigStatusSchema,
  packageStatuses: PackageStatusesSchema,
  customCapabilities: CustomCapabilitiesSchema,
  availableComponents: AvailableComponentsSchema,
  connectionSettingsStatus: ConnectionSettingsStatusSchema,
} as const;

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
 * parts changed. Absent fields keep their last value (spec: Status Compression). Kept
 * parts are detached from the received buffer (its bytes fields are views into it), and
 * the effective config is shared between agents reporting the same one. Work is
 * proportional to the size of the message, not of the fleet.
 *
 * @param components - cache of available-components maps by hash (hex), shared across agents.
 * @param raw - the binary `message` was decoded from, when at hand: each changed part's
 *   encoding is then taken from it instead of being encoded again when the state is written.
 */
export function mergeReport(
  record: AgentRecord,
  message: AgentToServer,
  components: Map<string, AvailableComponents>,
  raw?: Uint8Array,
): MergeResult {
  // The received encoding of each part, kept so writing the state needs no toBinary.
  const fields = rawStateFields(raw);
  const changes: AgentPart[] = [];
  if (message.capabilities !== 0n && message.capabilities !== record.capabilities) {
    // spec: capabilities MUST always be set; a poll carrying 0 is tolerated as "unchanged".
    record.capabilities = message.capabilities;
    changes.push("capabilities");
  }
  const changed = (part: StatePart) => {
    const bytes = fields?.get(STATE_FIELD[part]);
    // A view for now: packEncoded() below copies it out of the received buffer.
    record.forgetEncoded(part);
    if (bytes !== undefined && part !== "effectiveConfig") record.encoded[part] = bytes;
    changes.push(part);
  };
  if (replaceIfChanged(AgentDescriptionSchema, record.agentDescription, message.agentDescription)) {
    record.agentDescription = detachDescription(message.agentDescription!);
    changed("agentDescription");
  }
  if (replaceIfChanged(ComponentHealthSchema, record.health, message.health)) {
    // ComponentHealth has no bytes fields: nothing in it points into the received buffer.
    record.health = has(message.health!) ? clone(ComponentHealthSchema, message.health!) : message.health;
    changed("health");
  }
  if (message.effectiveConfig !== undefined) {
    const shared = shareEffectiveConfig(message.effectiveConfig, fields?.get(STATE_FIELD.effectiveConfig));
    if (shared.key !== record.sharedEffectiveConfig?.key) {
      record.sharedEffectiveConfig = shared;
      changed("effectiveConfig");
    }
  }
  if (replaceIfChanged(RemoteConfigStatusSchema, record.remoteConfigStatus, message.remoteConfigStatus)) {
    record.remoteConfigStatus = detachRemoteConfigStatus(message.remoteConfigStatus!);
    changed("remoteConfigStatus");
  }
  if (replaceIfChanged(PackageStatusesSchema, record.packageStatuses, message.packageStatuses)) {
    record.packageStatuses = detachPackageStatuses(message.packageStatuses!);
    changed("packageStatuses");
  }
  if (replaceIfChanged(CustomCapabilitiesSchema, record.customCapabilities, message.customCapabilities)) {
    const caps = message.customCapabilities!;
    record.customCapabilities = has(caps) ? clone(CustomCapabilitiesSchema, caps) : caps;
    changed("customCapabilities");
  }
  if (
    replaceIfChanged(ConnectionSettingsStatusSchema, record.connectionSettingsStatus, message.connectionSettingsStatus)
  ) {
    record.connectionSettingsStatus = detachConnectionSettingsStatus(message.connectionSettingsStatus!);
    changed("connectionSettingsStatus");
  }
  let needComponents = false;
  const reported = message.availableComponents;
  if (reported !== undefined) {
    const key = hex(reported.hash);
    let full: AvailableComponents;
    if (Object.keys(reported.components).length > 0) {
      const cached = components.get(key);
      full =
        cached !== undefined && equals(AvailableComponentsSchema, cached, reported)
          ? cached
          : clone(AvailableComponentsSchema, reported);
      remember(components, key, full);
    } else {
      // spec: Available components — the first report carries only the hash.
      const cached = components.get(key);
      if (cached !== undefined) {
        full = cached;
        remember(components, key, cached);
      } else {
        full = create(AvailableComponentsSchema, { hash: new Uint8Array(reported.hash) });
        needComponents = reported.hash.length > 0;
      }
    }
    if (
      full !== record.availableComponents &&
      replaceIfChanged(AvailableComponentsSchema, record.availableComponents, full)
    ) {
      record.availableComponents = full;
      changed("availableComponents");
    }
  }
  if (changes.length > 0) record.packEncoded();
  return { changes, needComponents };
}

function has(message: object): boolean {
  const unknown = (message as { $unknown?: unknown[] }).$unknown;
  return unknown !== undefined && unknown.length > 0;
}

/**
 * Distinct available-components sets kept for agents that report only the hash. Agents of
 * one fleet share a handful; the bound keeps agents that each invent a hash from growing
 * the cache without end (the least recently used set is dropped, and asked for again).
 */
export const MAX_CACHED_COMPONENT_SETS = 1024;

function remember(cache: Map<string, AvailableComponents>, key: string, value: AvailableComponents): void {
  cache.delete(key); // re-inserted last: the map's order is least recently used first
  cache.set(key, value);
  if (cache.size > MAX_CACHED_COMPONENT_SETS) {
    const oldest = cache.keys().next().value;
    if (oldest !== undefined) cache.delete(oldest);
  }
}

/** Lower-case hex of bytes, for map keys and logs. */
export function hex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
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
