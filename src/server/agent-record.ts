/**
 * The server's record of one agent: its reconstructed full state (spec: Status Compression)
 * plus what the server wants it to have and what is waiting for its next HTTP poll.
 */
import { clone, create, type DescMessage, equals, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
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
import { concatBytes } from "../wire/bytes.js";
import type { Part, PartKind } from "./outbound.js";
import {
  detachConnectionSettingsStatus,
  detachPackageStatuses,
  detachRemoteConfigStatus,
  encodedEffectiveConfig,
  encodeField,
  encodeStateHead,
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
  /**
   * Sends one WebSocket message: the header byte and an encoded ServerToAgent, whole or in
   * pieces whose concatenation is the message, each written as it is (see `encodePieces`);
   * false when the channel dropped it.
   */
  send(message: Uint8Array | readonly Uint8Array[]): boolean;
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
  remoteConfigStatus: RemoteConfigStatus | undefined;
  packageStatuses: PackageStatuses | undefined;
  customCapabilities: CustomCapabilities | undefined;
  availableComponents: AvailableComponents | undefined;
  connectionSettingsStatus: ConnectionSettingsStatus | undefined;
  transport: AgentTransport;
  principal: unknown;
  /** Key of the principal the UID is bound to (see `hooks.principalKey`). */
  boundPrincipal: string | undefined;
  remoteAddress: string | undefined;
  lastSeen: number;
  sequenceNum = 0n;
  /**
   * The OpAMP URL the agent's latest message came to (ws(s):// or http(s)://), for offers
   * that leave the destination out. Interned by the core: agents share a handful.
   */
  endpoint = "";
  /**
   * Hash of the connection settings last sent to the agent, kept when the agent cannot
   * report connection-settings status: it is then taken to hold them (see `reportedHash`).
   */
  sentSettingsHash: Uint8Array | undefined;

  /** WebSocket carrying the agent, if any. */
  channel: PushChannel | undefined;
  /** The WebSocket that carried the agent before its UID moved to `channel` (duplicate detection). */
  previousChannel: PushChannel | undefined;
  // The per-kind tables below keep every key (undefined when unset) and are never `delete`d
  // from: an object that loses a property drops to dictionary mode, several hundred bytes
  // more for each agent of the fleet.
  /** What the server wants the agent to have. */
  readonly desired: Record<DesiredKind, DesiredItem | undefined> = {
    remoteConfig: undefined,
    packagesAvailable: undefined,
    connectionSettings: undefined,
  };
  /** Hash of each desired item already offered since the agent (re)connected, to avoid resending. */
  readonly offered: Record<DesiredKind, Uint8Array | undefined> = {
    remoteConfig: undefined,
    packagesAvailable: undefined,
    connectionSettings: undefined,
  };
  /** One-shot parts waiting for the next HTTP poll (latest of each kind wins); made when first needed. */
  #pending: Map<PartKind, Part> | undefined;
  /** Custom messages waiting for the next HTTP polls, oldest first (events, so queued, not coalesced). */
  #pendingCustom: Part[] | undefined;
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
  readonly encoded: Record<StatePart, Uint8Array | undefined> = {
    agentDescription: undefined,
    health: undefined,
    effectiveConfig: undefined,
    remoteConfigStatus: undefined,
    packageStatuses: undefined,
    customCapabilities: undefined,
    availableComponents: undefined,
    connectionSettingsStatus: undefined,
  };
  /**
   * The parts' cached encodings, packed into one array per group of PART_GROUP (see
   * {@link AgentRecord.stateFields}): a status report repacks only the few status bytes,
   * not the description and health tree beside them.
   */
  readonly #blocks: (Uint8Array | undefined)[] = [undefined, undefined];
  /** Start and end of each part in its group's block, by index in SMALL_PARTS; -1 when not cached. */
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

  /**
   * Decoded from the held encoding on every read (the server itself never needs it
   * decoded): a description or health tree decoded into objects costs several times its
   * encoded size, for every agent of the fleet.
   */
  get agentDescription(): AgentDescription | undefined {
    return this.#decode("agentDescription");
  }

  /** Decoded on every read, like {@link AgentRecord.agentDescription}. */
  get health(): ComponentHealth | undefined {
    return this.#decode("health");
  }

  #decode<P extends EncodedOnlyPart>(part: P): MessageShape<(typeof PART_SCHEMA)[P]> | undefined {
    const bytes = this.encodedPart(part);
    // From a copy: decoded bytes fields are views into their input, and a caller changing
    // them must not change the record.
    return bytes === undefined ? undefined : fromBinary(PART_SCHEMA[part], fieldPayload(bytes).slice());
  }

  get desiredConfigHash(): Uint8Array | undefined {
    return this.desired.remoteConfig?.hash;
  }

  /** Forgets per-session facts so the next reply restates capabilities and desired items. */
  resetSession(): void {
    this.capabilitiesSent = false;
    this.offered.remoteConfig = undefined;
    this.offered.packagesAvailable = undefined;
    this.offered.connectionSettings = undefined;
  }

  /** Holds a one-shot part for the next poll or reply (replacing one of its kind). */
  holdPart(part: Part): void {
    this.#pending ??= new Map();
    this.#pending.set(part.kind, part);
  }

  /** The held one-shot parts, taken (none held afterwards). */
  takeHeldParts(): Part[] {
    const parts = this.#pending === undefined ? [] : [...this.#pending.values()];
    this.#pending = undefined;
    return parts;
  }

  /** Custom messages queued for HTTP polls. */
  get queuedCustomCount(): number {
    return this.#pendingCustom?.length ?? 0;
  }

  /** Queues a custom message for the next HTTP poll without one. */
  queueCustom(part: Part): void {
    this.#pendingCustom ??= [];
    this.#pendingCustom.push(part);
  }

  /** The oldest queued custom message, taken. */
  takeCustom(): Part | undefined {
    const part = this.#pendingCustom?.shift();
    if (this.#pendingCustom?.length === 0) this.#pendingCustom = undefined;
    return part;
  }

  /** The encoded field of `part`, encoded now if it changed since last time. */
  encodedPart(part: StatePart): Uint8Array | undefined {
    if (part === "effectiveConfig") {
      return this.sharedEffectiveConfig && encodedEffectiveConfig(this.sharedEffectiveConfig);
    }
    const pending = this.encoded[part];
    if (pending !== undefined) return pending;
    const cached = this.#cached(SMALL_PARTS.indexOf(part));
    if (cached !== undefined) return cached;
    if (isEncodedOnly(part)) return undefined;
    const value = this[part];
    if (value === undefined) return undefined;
    const bytes = encodeField(STATE_FIELD[part], toBinary(PART_SCHEMA[part], value as never));
    this.encoded[part] = bytes;
    this.packEncoded();
    return bytes;
  }

  /** Forgets the cached encoding of `part` (it changed). */
  forgetEncoded(part: StatePart): void {
    this.encoded[part] = undefined;
    if (part !== "effectiveConfig") this.#ranges[SMALL_PARTS.indexOf(part) * 2] = -1;
  }

  /** The packed encoding of the part at `index` in SMALL_PARTS, if cached. */
  #cached(index: number): Uint8Array | undefined {
    const start = this.#ranges[index * 2]!;
    const block = this.#blocks[PART_GROUP[index]!];
    return start >= 0 && block !== undefined ? block.subarray(start, this.#ranges[index * 2 + 1]) : undefined;
  }

  /**
   * Packs the cached encodings into one array per group, with offsets: an agent then costs
   * one allocation per group, not one object per part, and holds nothing of a received
   * message. Only a group with a part changed is packed again. Run after parts changed.
   */
  packEncoded(): void {
    for (let group = 0; group < this.#blocks.length; group++) {
      let changed = false;
      for (let index = 0; index < SMALL_PARTS.length; index++) {
        if (PART_GROUP[index] !== group) continue;
        const part = SMALL_PARTS[index]!;
        // A pending encoding, or a cached one that was forgotten: the group changes.
        if (this.encoded[part] !== undefined || (this.#ranges[index * 2]! < 0 && this.#ranges[index * 2 + 1]! >= 0)) {
          changed = true;
          break;
        }
      }
      if (!changed) continue;
      const chunks: [number, Uint8Array][] = [];
      let size = 0;
      for (let index = 0; index < SMALL_PARTS.length; index++) {
        if (PART_GROUP[index] !== group) continue;
        const bytes = this.encoded[SMALL_PARTS[index]!] ?? this.#cached(index);
        if (bytes === undefined) continue;
        chunks.push([index * 2, bytes]);
        size += bytes.length;
      }
      const block = new Uint8Array(size);
      let offset = 0;
      for (let index = 0; index < SMALL_PARTS.length; index++) {
        if (PART_GROUP[index] === group) this.#ranges[index * 2 + 1] = -1;
      }
      for (const [i, bytes] of chunks) {
        block.set(bytes, offset);
        this.#ranges[i] = offset;
        offset += bytes.length;
        this.#ranges[i + 1] = offset;
      }
      this.#blocks[group] = size > 0 ? block : undefined;
    }
    for (const part of SMALL_PARTS) this.encoded[part] = undefined;
  }

  /**
   * The reconstructed full state as binary AgentToServer fields, in pieces whose
   * concatenation is the state: the scalar fields, the packed parts (description, health
   * and the like; then the statuses) and the shared effective config. Nothing is copied: the pieces are the record's own immutable arrays
   * (a change packs a new block), so a store may keep them as they are.
   */
  stateFields(): Uint8Array[] {
    // Parts not encoded yet (changed without their received bytes) are encoded and packed.
    for (const part of SMALL_PARTS) this.encodedPart(part);
    if (SMALL_PARTS.some((part) => this.encoded[part] !== undefined)) this.packEncoded();
    const fields = [encodeStateHead(this.instanceUid, this.sequenceNum, this.capabilities)];
    for (const block of this.#blocks) if (block !== undefined) fields.push(block);
    const config = this.encodedPart("effectiveConfig");
    if (config !== undefined) fields.push(config);
    return fields;
  }

  /** The reconstructed full state as one binary AgentToServer. */
  fullStateBytes(): Uint8Array {
    return concatBytes(this.stateFields());
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

/** Parts held only as their encoding (see {@link AgentRecord.agentDescription}). */
type EncodedOnlyPart = "agentDescription" | "health";

function isEncodedOnly(part: StatePart): part is EncodedOnlyPart {
  return part === "agentDescription" || part === "health";
}

/** The payload of one encoded length-delimited field (its tag and length skipped). */
function fieldPayload(field: Uint8Array): Uint8Array {
  let offset = 0;
  while (field[offset]! >= 0x80) offset++; // tag
  offset++;
  while (field[offset]! >= 0x80) offset++; // length
  return field.subarray(offset + 1);
}

/** True when both hold the same bytes (native memcmp). */
function sameEncoding(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/**
 * The block each of SMALL_PARTS is packed in: 0 for what an agent reports seldom and at
 * length (description, health, components), 1 for the small statuses it reports after
 * every push.
 */
const PART_GROUP: readonly number[] = SMALL_PARTS.map((part) =>
  part === "remoteConfigStatus" || part === "packageStatuses" || part === "connectionSettingsStatus" ? 1 : 0,
);

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
  // The description and health are held only encoded: compared by their received bytes,
  // and decoded for a deep comparison only when the bytes differ (map entries may come in
  // another order).
  const encodedOnly = <P extends EncodedOnlyPart>(part: P, next: MessageShape<(typeof PART_SCHEMA)[P]> | undefined) => {
    if (next === undefined) return; // spec: left out = unchanged
    const schema = PART_SCHEMA[part] as DescMessage;
    const current = record.encodedPart(part);
    const received = fields?.get(STATE_FIELD[part]);
    if (current !== undefined) {
      if (received !== undefined ? sameEncoding(current, received) : false) return;
      if (equals(schema, fromBinary(schema, fieldPayload(current)), next)) return;
    }
    changed(part);
    // Not received as one field (absent raw bytes, or the field repeated): encoded here.
    if (received === undefined) record.encoded[part] = encodeField(STATE_FIELD[part], toBinary(schema, next));
  };
  encodedOnly("agentDescription", message.agentDescription);
  encodedOnly("health", message.health);
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
