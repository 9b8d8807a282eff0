/**
 * The server's record of one agent: its reconstructed full state (spec: Status Compression)
 * plus what the server wants it to have and what is waiting for its next HTTP poll.
 */
import { type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
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
import {
  type ConnectionSettingsStatusName,
  connectionSettingsStatusName,
  packageStatusName,
  type RemoteConfigStatusName,
  remoteConfigStatusName,
} from "../wire/status-names.js";
import type { Part, PartKind } from "./outbound.js";
import type { SharedComponents } from "./shared-components.js";
import {
  encodedEffectiveConfig,
  encodeField,
  encodeStateHead,
  type SharedEffectiveConfig,
  STATE_FIELD,
  type StatePart,
} from "./shared-state.js";
import type { Agent, AgentTransport, AppliedState, PackageState } from "./types.js";

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
  // The statuses without repeated fields are held decoded: their decoded size stays
  // within a small constant of their encoding (docs/memory.md).
  remoteConfigStatus: RemoteConfigStatus | undefined;
  customCapabilities: CustomCapabilities | undefined;
  connectionSettingsStatus: ConnectionSettingsStatus | undefined;
  /** `serverProvidedAllPackagesHash` of the package statuses (held encoded), read with every reply. */
  reportedPackagesHash: Uint8Array | undefined;
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
  /** The effective config, shared with every agent of the server reporting the same one. */
  sharedEffectiveConfig: SharedEffectiveConfig | undefined;
  /** The available components, shared with every agent of the server reporting the same ones. */
  sharedComponents: SharedComponents | undefined;
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

  /** Decoded on every read, like {@link AgentRecord.agentDescription}: a map decodes to many objects. */
  get packageStatuses(): PackageStatuses | undefined {
    return this.#decode("packageStatuses");
  }

  /** Decoded on every read from the set shared with other agents, like {@link AgentRecord.agentDescription}. */
  get availableComponents(): AvailableComponents | undefined {
    const shared = this.sharedComponents;
    return shared && fromBinary(AvailableComponentsSchema, fieldPayload(shared.encoded).slice());
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

  get remoteConfigState(): AppliedState<RemoteConfigStatusName> | undefined {
    const reported = this.remoteConfigStatus;
    return reported === undefined
      ? undefined
      : {
          status: remoteConfigStatusName(reported.status),
          hash: reported.lastRemoteConfigHash,
          errorMessage: reported.errorMessage,
        };
  }

  get connectionSettingsState(): AppliedState<ConnectionSettingsStatusName> | undefined {
    const reported = this.connectionSettingsStatus;
    return reported === undefined
      ? undefined
      : {
          status: connectionSettingsStatusName(reported.status),
          hash: reported.lastConnectionSettingsHash,
          errorMessage: reported.errorMessage,
        };
  }

  get packageStates(): Readonly<Record<string, PackageState>> | undefined {
    const reported = this.packageStatuses;
    if (reported === undefined) return undefined;
    const out: Record<string, PackageState> = {};
    for (const [name, one] of Object.entries(reported.packages)) {
      out[name] = {
        status: packageStatusName(one.status),
        agentHasVersion: one.agentHasVersion,
        serverOfferedVersion: one.serverOfferedVersion,
        errorMessage: one.errorMessage,
      };
    }
    return out;
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
    if (part === "availableComponents") return this.sharedComponents?.encoded;
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
    if (part !== "effectiveConfig" && part !== "availableComponents") {
      this.#ranges[SMALL_PARTS.indexOf(part) * 2] = -1;
    }
  }

  /**
   * Bytes of the encoded state (what {@link AgentRecord.stateFields} gives) if the parts in
   * `replacing` had the encoded sizes given there, the others keeping theirs, and the
   * capabilities were `capabilities`.
   */
  stateBytes(replacing: ReadonlyMap<StatePart, number> = new Map(), capabilities = this.capabilities): number {
    let total = encodeStateHead(this.instanceUid, this.sequenceNum, capabilities).length;
    for (const part of STATE_PARTS) total += replacing.get(part) ?? this.encodedPart(part)?.length ?? 0;
    return total;
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
   * and the like; then the statuses), the shared effective config and the shared available
   * components. Nothing is copied: the pieces are the record's own or the server's shared
   * immutable arrays (a change packs a new block), so a store may keep them as they are.
   */
  stateFields(): Uint8Array[] {
    // Parts not encoded yet (changed without their received bytes) are encoded and packed.
    for (const part of SMALL_PARTS) this.encodedPart(part);
    if (SMALL_PARTS.some((part) => this.encoded[part] !== undefined)) this.packEncoded();
    const fields = [encodeStateHead(this.instanceUid, this.sequenceNum, this.capabilities)];
    for (const block of this.#blocks) if (block !== undefined) fields.push(block);
    const config = this.encodedPart("effectiveConfig");
    if (config !== undefined) fields.push(config);
    const components = this.sharedComponents?.encoded;
    if (components !== undefined) fields.push(components);
    return fields;
  }

  /** The reconstructed full state as one binary AgentToServer. */
  fullStateBytes(): Uint8Array {
    return concatBytes(this.stateFields());
  }
}

/** Every part of the state, in the order the state's pieces hold them. */
const STATE_PARTS = Object.keys(STATE_FIELD) as readonly StatePart[];

/** Parts whose encoding the record packs (the effective config and components are shared instead). */
const SMALL_PARTS: readonly Exclude<StatePart, "effectiveConfig" | "availableComponents">[] = [
  "agentDescription",
  "health",
  "remoteConfigStatus",
  "packageStatuses",
  "customCapabilities",
  "connectionSettingsStatus",
];

/**
 * Parts held only as their encoding (see {@link AgentRecord.agentDescription}): trees and
 * maps, whose decoded form costs tens of times their encoding.
 */
export type EncodedOnlyPart = "agentDescription" | "health" | "packageStatuses";

function isEncodedOnly(part: StatePart): part is EncodedOnlyPart {
  return part === "agentDescription" || part === "health" || part === "packageStatuses";
}

/** The payload of one encoded length-delimited field (its tag and length skipped). */
export function fieldPayload(field: Uint8Array): Uint8Array {
  let offset = 0;
  while (field[offset]! >= 0x80) offset++; // tag
  offset++;
  while (field[offset]! >= 0x80) offset++; // length
  return field.subarray(offset + 1);
}

/**
 * The block each of SMALL_PARTS is packed in: 0 for what an agent reports seldom and at
 * length (description, health, custom capabilities), 1 for the statuses it reports after
 * every push.
 */
const PART_GROUP: readonly number[] = SMALL_PARTS.map((part) =>
  part === "remoteConfigStatus" || part === "packageStatuses" || part === "connectionSettingsStatus" ? 1 : 0,
);

/** The schema of each part the record packs. */
export const PART_SCHEMA = {
  agentDescription: AgentDescriptionSchema,
  health: ComponentHealthSchema,
  remoteConfigStatus: RemoteConfigStatusSchema,
  packageStatuses: PackageStatusesSchema,
  customCapabilities: CustomCapabilitiesSchema,
  connectionSettingsStatus: ConnectionSettingsStatusSchema,
} as const satisfies Record<(typeof SMALL_PARTS)[number], DescMessage>;

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
