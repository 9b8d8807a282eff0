/**
 * Building replies: what goes into each ServerToAgent besides the agent's UID — server
 * capabilities, flags, one-shots queued for HTTP agents, desired items the agent lacks —
 * and error replies.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import {
  ConnectionSettingsOffersSchema,
  type ServerErrorResponseType,
  type ServerToAgent,
  ServerToAgentSchema,
} from "../gen/opamp/v1/opamp_pb.js";
import { sameBytes } from "../wire/bytes.js";
import { AgentCapability, hasBit, OpampError } from "../wire/index.js";
import type { AgentRecord, DesiredKind } from "./agent-record.js";
import type { CoreConnection } from "./core.js";
import type { ResolvedServerOptions } from "./options.js";
import { baseReply, encodePieces, encodeWithParts, makePart, type Part } from "./outbound.js";
import type { AgentPart } from "./types.js";

/** The desired kinds, in the order they are added to a reply. */
export const DESIRED_KINDS: readonly DesiredKind[] = ["remoteConfig", "packagesAvailable", "connectionSettings"];

/** Agent capability bits that let a desired kind be sent (any one of them). */
const CAPABILITY_FOR: Readonly<Record<DesiredKind, bigint>> = {
  remoteConfig: AgentCapability.AcceptsRemoteConfig,
  packagesAvailable: AgentCapability.AcceptsPackages,
  connectionSettings:
    AgentCapability.AcceptsOpAMPConnectionSettings |
    AgentCapability.AcceptsOtherConnectionSettings |
    AgentCapability.ReportsOwnMetrics |
    AgentCapability.ReportsOwnTraces |
    AgentCapability.ReportsOwnLogs,
};

/** The status part in which the agent names the hash it has of each desired kind. */
const STATUS_PART: Readonly<Record<DesiredKind, AgentPart>> = {
  remoteConfig: "remoteConfigStatus",
  packagesAvailable: "packageStatuses",
  connectionSettings: "connectionSettingsStatus",
};

/**
 * A desired item goes out once per session, not with every reply. When the agent then
 * reports a new status naming another hash (it fell back, or lost what it was given), the
 * item is due again (spec: include remote_config / connection_settings / packages when
 * the reported hash differs).
 *
 * @param changed - the parts of the agent's state that the message changed.
 */
export function reofferOnNewStatus(record: AgentRecord, changed: readonly AgentPart[]): void {
  for (const kind of DESIRED_KINDS) {
    const item = record.desired[kind];
    if (item === undefined || record.offered[kind] === undefined || !changed.includes(STATUS_PART[kind])) continue;
    if (!sameBytes(reportedHash(record, kind), item.hash)) record.offered[kind] = undefined;
  }
}

/** What the reply builder tells and asks about the desired items it sends. */
export interface OfferTracker {
  /** A desired item of `kind` went out to the agent (in a reply or pushed). */
  offered(record: AgentRecord, kind: DesiredKind, hash: Uint8Array): void;
  /** True while items of `kind` must not be sent to the agent (see ReconnectGuard). */
  paused(record: AgentRecord, kind: DesiredKind): boolean;
}

/** Fills replies for one server; caches the heartbeat offer per endpoint. */
export class ReplyBuilder {
  readonly #heartbeatParts = new Map<string, Part>();

  constructor(
    readonly options: ResolvedServerOptions,
    readonly tracker: OfferTracker,
  ) {}

  /** Adds capabilities, flags, pending one-shots and desired items that need (re)sending. */
  fill(record: AgentRecord, reply: ServerToAgent, parts: Part[], conn: CoreConnection, flags: bigint): void {
    const http = conn.transport === "http";
    // spec: capabilities in the first ServerToAgent. HTTP has no session, so say it every time.
    if (!record.capabilitiesSent || http) {
      reply.capabilities = this.options.capabilities;
      if (this.options.customCapabilities.length > 0) {
        reply.customCapabilities = {
          $typeName: "opamp.proto.v1.CustomCapabilities",
          capabilities: [...this.options.customCapabilities],
        };
      }
      if (!record.capabilitiesSent) {
        const hb = this.#heartbeatPart(record, conn.endpoint);
        if (hb !== undefined) parts.push(hb);
      }
      record.capabilitiesSent = true;
    }
    // Held for HTTP polls, or folded in by listeners while this reply was being built.
    flags |= record.pendingFlags;
    record.pendingFlags = 0n;
    for (const part of record.takeHeldParts()) if (!parts.some((p) => p.kind === part.kind)) parts.push(part);
    if (http) {
      const custom = record.takeCustom();
      if (custom !== undefined) parts.push(custom);
    }
    for (const kind of DESIRED_KINDS) {
      if (parts.some((p) => p.kind === kind)) continue;
      const item = record.desired[kind];
      if (item === undefined || (record.capabilities & CAPABILITY_FOR[kind]) === 0n) continue;
      // spec: include the item when the agent's reported hash differs from ours.
      if (sameBytes(reportedHash(record, kind), item.hash) || sameBytes(record.offered[kind], item.hash)) continue;
      if (this.tracker.paused(record, kind)) continue;
      parts.push(item.part);
      this.tracker.offered(record, kind, item.hash);
    }
    reply.flags = flags;
  }

  /**
   * The heartbeat interval rides in an OpAMP connection settings offer. Agents that accept
   * such offers would treat it as new settings, so it goes only to agents that report
   * heartbeats without accepting settings (opamp-go applies the interval in that case).
   */
  #heartbeatPart(record: AgentRecord, endpoint: string): Part | undefined {
    if (!this.options.advertiseHeartbeat) return undefined;
    if (!hasBit(record.capabilities, AgentCapability.ReportsHeartbeat)) return undefined;
    if (hasBit(record.capabilities, AgentCapability.AcceptsOpAMPConnectionSettings)) return undefined;
    if (record.desired.connectionSettings !== undefined) return undefined;
    let part = this.#heartbeatParts.get(endpoint);
    if (part === undefined) {
      const seconds = BigInt(this.options.heartbeatIntervalSeconds);
      const offers = create(ConnectionSettingsOffersSchema, {
        hash: new TextEncoder().encode(`heartbeat:${seconds}`),
        opamp: { destinationEndpoint: endpoint, heartbeatIntervalSeconds: seconds },
      });
      part = makePart("connectionSettings", toBinary(ConnectionSettingsOffersSchema, offers));
      if (this.#heartbeatParts.size < 64) this.#heartbeatParts.set(endpoint, part);
    }
    return part;
  }
}

/** An error reply: only instance_uid and error_response (spec: error excludes lower fields). */
export function errorReply(
  instanceUid: Uint8Array,
  type: ServerErrorResponseType,
  ws: boolean,
  info: { message: string; retryAfterMs?: number },
): Uint8Array {
  const reply = create(ServerToAgentSchema, {
    instanceUid,
    errorResponse: {
      type,
      errorMessage: info.message,
      Details:
        info.retryAfterMs === undefined
          ? { case: undefined }
          : { case: "retryInfo", value: { retryAfterNanoseconds: BigInt(info.retryAfterMs) * 1_000_000n } },
    },
  });
  return encodeWithParts(reply, [], ws);
}

/** The agentIdentification field announcing a new UID. */
export function identificationPart(uid: Uint8Array): Part {
  // AgentIdentification { bytes new_instance_uid = 1 }
  const bytes = new Uint8Array(2 + uid.length);
  bytes[0] = (1 << 3) | 2;
  bytes[1] = uid.length;
  bytes.set(uid, 2);
  return makePart("agentIdentification", bytes);
}

/**
 * The hash of a desired kind the agent holds, as far as the server can tell: what it last
 * reported. An agent without ReportsConnectionSettingsStatus cannot report which connection
 * settings it holds, so it is taken to hold the last ones it was sent. Applying OpAMP
 * settings means reconnecting with them: were they sent again on every connection, such an
 * agent would reconnect for ever (spec: the server resends only when the reported hash
 * differs; it has no report to go on here).
 */
export function reportedHash(record: AgentRecord, kind: DesiredKind): Uint8Array | undefined {
  switch (kind) {
    case "remoteConfig":
      return record.remoteConfigStatus?.lastRemoteConfigHash;
    case "packagesAvailable":
      // Not record.packageStatuses: that is decoded on every read, and this runs per reply.
      return record.reportedPackagesHash;
    case "connectionSettings":
      return hasBit(record.capabilities, AgentCapability.ReportsConnectionSettingsStatus)
        ? record.connectionSettingsStatus?.lastConnectionSettingsHash
        : record.sentSettingsHash;
  }
}

/**
 * Sends parts to one agent now (WebSocket) or queues them for its next poll (HTTP). While
 * a reply to the agent is being built (`record.replying`, i.e. from an event listener),
 * WebSocket parts and flags are folded into that reply too, except custom messages: they
 * are events and go out at once, in order.
 */
export function deliver(
  options: ResolvedServerOptions,
  record: AgentRecord,
  parts: readonly Part[],
  flags = 0n,
  /** The UID the message is addressed to; default the agent's (see assignInstanceUid). */
  addressedTo: Uint8Array = record.instanceUid,
): void {
  const channel = record.channel;
  if (channel !== undefined) {
    if (record.replying) {
      record.pendingFlags |= flags;
      for (const part of parts) if (part.kind !== "customMessage") record.holdPart(part);
      parts = parts.filter((part) => part.kind === "customMessage");
      if (parts.length === 0) return;
      flags = 0n;
    }
    const reply = baseReply(addressedTo);
    reply.flags = flags;
    if (!record.capabilitiesSent) {
      reply.capabilities = options.capabilities;
      record.capabilitiesSent = true;
    }
    const pieces = encodePieces(reply, parts);
    let length = 0;
    for (const piece of pieces) length += piece.length;
    if (length > options.maxMessageBytes) {
      throw new OpampError("message_too_large", `message to ${record.id} is ${length} bytes`, {
        details: { limit: options.maxMessageBytes },
      });
    }
    channel.send(pieces);
    return;
  }
  record.pendingFlags |= flags;
  for (const part of parts) {
    if (part.kind === "customMessage") {
      if (record.queuedCustomCount >= options.maxPendingCustomMessages) {
        throw new OpampError(
          "limit_exceeded",
          `${record.id} already has ${record.queuedCustomCount} custom messages queued`,
          {
            details: { limit: options.maxPendingCustomMessages },
          },
        );
      }
      record.queueCustom(part);
    } else {
      record.holdPart(part);
    }
  }
}
