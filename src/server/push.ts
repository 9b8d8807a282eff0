/**
 * Push APIs: what the application sends to one agent or a selection. Each checks the
 * agent's capabilities first (spec: Capability negotiation — never send what the agent
 * cannot take) and builds the sub-message once for the whole selection.
 */
import { clone, create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import {
  type AgentConfigMap,
  AgentConfigMapSchema,
  AgentRemoteConfigSchema,
  ConnectionSettingsOffersSchema,
  CustomMessageSchema,
  PackagesAvailableSchema,
} from "../gen/opamp/v1/opamp_pb.js";
import { sameBytes } from "../wire/bytes.js";
import {
  AgentCapability,
  configMap,
  configMapHash,
  hasBit,
  instanceUidFromString,
  instanceUidToString,
  isInstanceUid,
  newInstanceUid,
  OpampError,
  ServerCapability,
  ServerToAgentFlag,
} from "../wire/index.js";
import type { AgentRecord, DesiredItem, DesiredKind } from "./agent-record.js";
import type { ServerCore } from "./core.js";
import { desiredItem, reportedStep, storedDesired } from "./delivery.js";
import { makePart, type Part } from "./outbound.js";
import type { ForwardedRequest } from "./replicas.js";
import { deliver, reportedHash } from "./reply.js";
import { type ConnectionSettingsInput, normalizeSettingsInput } from "./settings-offer.js";
import type { AgentTarget, ForwardedPush, PushResult } from "./types.js";

/** A remote config: an AgentConfigMap, or files by name as accepted by `configMap()`. */
export type RemoteConfigInput =
  | AgentConfigMap
  | Readonly<
      Record<
        string,
        | string
        | Uint8Array
        | {
            /** The file's content; a string is sent as UTF-8. */
            body: string | Uint8Array;
            /** Its MIME type, e.g. `text/yaml`. Default "". */
            contentType?: string;
          }
      >
    >;

/** Packages to offer; `allPackagesHash` is computed (SHA-256) when left out. */
export type PackagesInput = MessageInitShape<typeof PackagesAvailableSchema>;
/** A custom message; the agent must list `capability` in its custom capabilities. */
export type CustomMessageInput = {
  /** The custom capability (reverse-FQDN name) the message belongs to. */
  readonly capability: string;
  /** The message type within that capability. */
  readonly type: string;
  /** The payload, as the capability defines it. Default empty. */
  readonly data?: Uint8Array;
};

function missing(record: AgentRecord, what: string): OpampError {
  return new OpampError("capability_missing", `agent ${record.id} does not advertise ${what}`);
}

/** The agents a target names, and whether it named one UID (then failures throw). */
interface Resolved {
  readonly records: AgentRecord[];
  readonly single: boolean;
}

/** The canonical UID string of a single-agent target. */
function targetId(target: string | Uint8Array): string {
  if (typeof target === "string") return instanceUidToString(instanceUidFromString(target));
  if (isInstanceUid(target)) return instanceUidToString(target);
  throw new OpampError("invalid_instance_uid", "target must be a UID string, 16 bytes or a predicate");
}

/** The records a target names. A single UID that is not connected throws `unknown_agent`. */
function resolve(core: ServerCore, target: AgentTarget): Resolved {
  if (typeof target === "function") {
    const records: AgentRecord[] = [];
    for (const record of core.agents.values()) if (target(record)) records.push(record);
    return { records, single: false };
  }
  const id = targetId(target);
  const record = core.agents.get(id);
  if (record === undefined) throw new OpampError("unknown_agent", `agent ${id} is not connected`);
  return { records: [record], single: true };
}

/**
 * Runs `act` on every targeted agent that passes `check`. For a single UID a failed check
 * or action throws; for a predicate it is reported in `skipped`.
 */
function each(
  core: ServerCore,
  target: AgentTarget | Resolved,
  check: (record: AgentRecord) => OpampError | undefined,
  act: (record: AgentRecord) => void,
): PushResult {
  const { records, single } = isResolved(target) ? target : resolve(core, target);
  const sent: AgentRecord[] = [];
  const skipped: { agent: AgentRecord; error: OpampError }[] = [];
  for (const record of records) {
    let error = check(record);
    if (error === undefined) {
      try {
        act(record);
        sent.push(record);
        continue;
      } catch (e) {
        error = OpampError.from(e);
      }
    }
    if (single) throw error;
    skipped.push({ agent: record, error });
  }
  return { sent, skipped, forwarded: NONE };
}

const NONE: readonly ForwardedPush[] = Object.freeze([]);

/**
 * With replicas: the UID of a single-agent target that is not connected here, whose push
 * goes to the replica holding it. Undefined for a local agent, a predicate, or no bus.
 */
function remoteId(core: ServerCore, target: AgentTarget): string | undefined {
  if (core.replicas === undefined || typeof target === "function") return undefined;
  const id = targetId(target);
  return core.agents.has(id) ? undefined : id;
}

/** The result of a push carried out by another replica; `done` never goes unhandled. */
function forwardedResult(id: string, done: Promise<void>): PushResult {
  done.catch(() => undefined);
  return { sent: [], skipped: [], forwarded: [{ id, done }] };
}

/** A desired-state push forwarded to the replica holding the agent, awaited (it throws as a local push would). */
async function forwardDesired(core: ServerCore, id: string, request: ForwardedRequest): Promise<PushResult> {
  await core.replicas!.forward(id, request);
  return forwardedResult(id, Promise.resolve());
}

function requireServerCapability(core: ServerCore, bit: bigint, name: string): void {
  if (!hasBit(core.options.capabilities, bit)) {
    throw new OpampError("capability_missing", `the server does not advertise ${name} (see options.capabilities)`);
  }
}

async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", new Uint8Array(bytes)));
}

/** Room a message needs besides a pushed item: header byte, instance_uid, flags, capabilities. */
const REPLY_OVERHEAD_BYTES = 64;

function isResolved(target: AgentTarget | Resolved): target is Resolved {
  return typeof target === "object" && !isInstanceUid(target) && "records" in target;
}

/** Refuses an item no message can carry. */
function checkCarriable(core: ServerCore, kind: DesiredKind, item: DesiredItem): void {
  // It would be stored as desired, re-offered with every reply and refused every time:
  // refuse it once, before any agent is given it.
  if (item.part.bytes.length + REPLY_OVERHEAD_BYTES > core.options.maxMessageBytes) {
    throw new OpampError(
      "message_too_large",
      `the ${kind} is ${item.part.bytes.length} bytes encoded; messages are limited to ${core.options.maxMessageBytes}`,
      { details: { limit: core.options.maxMessageBytes } },
    );
  }
}

/**
 * Stores a desired item for each agent and sends it to WebSocket agents now. `item` may
 * differ by agent (a settings offer whose endpoint is each agent's own); every one of them
 * must have passed {@link checkCarriable}.
 */
function pushDesired(
  core: ServerCore,
  target: AgentTarget | Resolved,
  kind: DesiredKind,
  item: DesiredItem | ((record: AgentRecord) => DesiredItem),
  check: (record: AgentRecord) => OpampError | undefined,
): Promise<PushResult> {
  if (typeof item !== "function") checkCarriable(core, kind, item);
  const now = core.options.clock.now();
  const writes: Promise<void>[] = [];
  const result = each(core, target, check, (record) => {
    const mine = typeof item === "function" ? item(record) : item;
    record.desired[kind] = mine;
    // Pushed again with what this session already carried: not sent twice.
    if (!sameBytes(record.offered[kind], mine.hash)) record.offered[kind] = undefined;
    if (
      record.offered[kind] === undefined &&
      record.channel !== undefined &&
      !sameBytes(reportedHash(record, kind), mine.hash) &&
      !core.paused(record, kind)
    ) {
      deliver(core.options, record, [mine.part]);
      core.offered(record, kind, mine.hash);
    }
    // HTTP agents get it with their next poll: the reply includes desired items not yet offered.
    const id = record.id;
    const desired = storedDesired(record);
    const deliveryKind = kind === "packagesAvailable" ? "packages" : kind;
    // Pushed again while the agent reports holding it (an application reconciling after a
    // restart): nothing goes out, and the delivery records what the agent reports, so its
    // history does not end with an "offered" that never reached the agent.
    const status = (sameBytes(reportedHash(record, kind), mine.hash) && reportedStep(record, kind)) || "offered";
    // Both writes are made now, in this order: the agent may answer (APPLYING) before a
    // slow store has finished the first, and its step must come after `offered`.
    writes.push(
      core.persist(async () => {
        await Promise.all([
          core.store.putDesired(id, desired),
          core.store.appendDelivery(id, deliveryKind, mine.hash, { status, at: now }),
        ]);
      }),
    );
  });
  // Resolve once the desired state is stored, so it survives a restart right after.
  return Promise.all(writes).then(() => result);
}

/**
 * A remote config hashed and encoded once, for pushing to many agents over time (for
 * example to each agent as it connects) without redoing the work. Get one from
 * `OpAMPServer.prepareRemoteConfig`.
 */
export class PreparedRemoteConfig {
  /** The config's `configMapHash`. */
  readonly hash: Uint8Array;
  /** The files. */
  readonly config: AgentConfigMap;

  /** @internal Use `OpAMPServer.prepareRemoteConfig`. */
  constructor(config: AgentConfigMap, hash: Uint8Array) {
    this.config = config;
    this.hash = hash;
  }
}

const preparedItems = new WeakMap<PreparedRemoteConfig, DesiredItem>();

/** Hashes and encodes a remote config once. */
export async function prepareRemoteConfig(input: RemoteConfigInput): Promise<PreparedRemoteConfig> {
  const config = "$typeName" in input ? (input as AgentConfigMap) : configMap(input as Record<string, string>);
  const hash = await configMapHash(config);
  const bytes = toBinary(AgentRemoteConfigSchema, create(AgentRemoteConfigSchema, { config, configHash: hash }));
  const prepared = new PreparedRemoteConfig(config, hash);
  preparedItems.set(prepared, desiredItem("remoteConfig", bytes, hash));
  return prepared;
}

/**
 * Sets the remote config the targeted agents should run. The hash is computed once with
 * `configMapHash`. Agents that later report another hash get it again. With a
 * {@link PreparedRemoteConfig} the agents' desired state is set before this returns, so a
 * call made from an event listener rides in the reply being built.
 */
export async function setRemoteConfig(
  core: ServerCore,
  target: AgentTarget,
  input: RemoteConfigInput | PreparedRemoteConfig,
): Promise<PushResult & { readonly hash: Uint8Array }> {
  requireServerCapability(core, ServerCapability.OffersRemoteConfig, "OffersRemoteConfig");
  // No await before pushDesired for a prepared config: the assignment must be synchronous.
  const prepared = input instanceof PreparedRemoteConfig ? input : await prepareRemoteConfig(input);
  const item = preparedItems.get(prepared);
  if (item === undefined) throw new OpampError("invalid_argument", "use OpAMPServer.prepareRemoteConfig()");
  const remote = remoteId(core, target);
  if (remote !== undefined) {
    const forwarded = await forwardDesired(core, remote, { op: "remoteConfig", data: item.messageBytes });
    return { ...forwarded, hash: prepared.hash };
  }
  const result = await pushDesired(core, target, "remoteConfig", item, (r) =>
    hasBit(r.capabilities, AgentCapability.AcceptsRemoteConfig) ? undefined : missing(r, "AcceptsRemoteConfig"),
  );
  return { ...result, hash: prepared.hash };
}

/** Offers packages (spec: all_packages_hash MUST be set; computed when not given). */
export async function offerPackages(core: ServerCore, target: AgentTarget, input: PackagesInput): Promise<PushResult> {
  requireServerCapability(core, ServerCapability.OffersPackages, "OffersPackages");
  const msg = create(PackagesAvailableSchema, input);
  if (msg.allPackagesHash.length === 0) {
    const sorted = create(PackagesAvailableSchema, {
      packages: Object.fromEntries(Object.entries(msg.packages).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
    });
    msg.allPackagesHash = await sha256(toBinary(PackagesAvailableSchema, sorted));
  }
  const item = desiredItem("packagesAvailable", toBinary(PackagesAvailableSchema, msg), msg.allPackagesHash);
  const remote = remoteId(core, target);
  if (remote !== undefined) return forwardDesired(core, remote, { op: "packages", data: item.messageBytes });
  return pushDesired(core, target, "packagesAvailable", item, (r) =>
    hasBit(r.capabilities, AgentCapability.AcceptsPackages) ? undefined : missing(r, "AcceptsPackages"),
  );
}

/**
 * Offers connection settings; each part offered needs its own agent capability. An OpAMP
 * part without `destinationEndpoint` gets, for each agent, the endpoint that agent connected
 * to (spec: the destination is required; the agent would refuse an empty one), and without
 * `heartbeatIntervalSeconds` the server's interval for agents that report heartbeats.
 *
 * An agent without ReportsConnectionSettingsStatus is taken to hold the last settings it was
 * sent: an offer with the same hash does not go to it again (see `reportedHash`).
 *
 * @throws OpampError `invalid_argument` for malformed headers (see `normalizeHeaders`).
 */
export async function offerConnectionSettings(
  core: ServerCore,
  target: AgentTarget,
  input: ConnectionSettingsInput,
): Promise<PushResult> {
  requireServerCapability(core, ServerCapability.OffersConnectionSettings, "OffersConnectionSettings");
  const msg = create(ConnectionSettingsOffersSchema, normalizeSettingsInput(input));
  const remote = remoteId(core, target);
  if (remote !== undefined) {
    // The endpoint and heartbeat left out are filled in there, for the agent as it connected there.
    const data = toBinary(ConnectionSettingsOffersSchema, msg);
    return forwardDesired(core, remote, { op: "connectionSettings", data });
  }
  const resolved = resolve(core, target);
  // What an OpAMP part leaves out is filled in for each agent: the endpoint it came to, and
  // for an agent that reports heartbeats the server's interval (0 would turn its heartbeats
  // off, spec: Heartbeats; opamp-go's HTTP client refuses 0 and keeps its old settings).
  const opamp = msg.opamp;
  const fillEndpoint = opamp !== undefined && opamp.destinationEndpoint === "";
  const fillHeartbeat = opamp !== undefined && opamp.heartbeatIntervalSeconds === 0n;
  const serverHeartbeat = BigInt(core.options.heartbeatIntervalSeconds);
  const variant = (r: AgentRecord): [string, bigint] => [
    fillEndpoint ? r.endpoint : "",
    fillHeartbeat && hasBit(r.capabilities, AgentCapability.ReportsHeartbeat) ? serverHeartbeat : 0n,
  ];
  // One item per variant: agents that came to one URL share the encoded offer.
  const items = new Map<string, DesiredItem>();
  for (const record of resolved.records) {
    const [endpoint, heartbeat] = variant(record);
    const key = `${heartbeat} ${endpoint}`;
    if (items.has(key)) continue;
    const offer = fillEndpoint || heartbeat !== 0n ? clone(ConnectionSettingsOffersSchema, msg) : msg;
    if (fillEndpoint) offer.opamp!.destinationEndpoint = endpoint;
    if (heartbeat !== 0n) offer.opamp!.heartbeatIntervalSeconds = heartbeat;
    if (offer.hash.length === 0) offer.hash = await sha256(toBinary(ConnectionSettingsOffersSchema, offer));
    const item = desiredItem("connectionSettings", toBinary(ConnectionSettingsOffersSchema, offer), offer.hash);
    checkCarriable(core, "connectionSettings", item);
    items.set(key, item);
  }
  const needs: [boolean, bigint, string][] = [
    [msg.opamp !== undefined, AgentCapability.AcceptsOpAMPConnectionSettings, "AcceptsOpAMPConnectionSettings"],
    [msg.ownMetrics !== undefined, AgentCapability.ReportsOwnMetrics, "ReportsOwnMetrics"],
    [msg.ownTraces !== undefined, AgentCapability.ReportsOwnTraces, "ReportsOwnTraces"],
    [msg.ownLogs !== undefined, AgentCapability.ReportsOwnLogs, "ReportsOwnLogs"],
    [
      Object.keys(msg.otherConnections).length > 0,
      AgentCapability.AcceptsOtherConnectionSettings,
      "AcceptsOtherConnectionSettings",
    ],
  ];
  const itemFor = (r: AgentRecord) => {
    const [endpoint, heartbeat] = variant(r);
    return items.get(`${heartbeat} ${endpoint}`)!;
  };
  return pushDesired(core, resolved, "connectionSettings", itemFor, (r) => {
    for (const [offered, bit, name] of needs) if (offered && !hasBit(r.capabilities, bit)) return missing(r, name);
    return undefined;
  });
}

const RESTART_PART: Part = makePart("command", new Uint8Array(0)); // CommandType Restart = 0: presence is the command

/** Asks agents to restart (spec: only to agents with AcceptsRestartCommand). */
export function sendRestart(core: ServerCore, target: AgentTarget): PushResult {
  const remote = remoteId(core, target);
  if (remote !== undefined) return forwardedResult(remote, core.replicas!.forward(remote, { op: "restart" }));
  return each(
    core,
    target,
    (r) =>
      hasBit(r.capabilities, AgentCapability.AcceptsRestartCommand) ? undefined : missing(r, "AcceptsRestartCommand"),
    (r) => deliver(core.options, r, [RESTART_PART]),
  );
}

/** Sends a custom message; HTTP agents get one queued message per poll. */
export function sendCustomMessage(core: ServerCore, target: AgentTarget, input: CustomMessageInput): PushResult {
  const remote = remoteId(core, target);
  if (remote !== undefined) {
    const request = {
      op: "custom",
      capability: input.capability,
      type: input.type,
      data: input.data ?? new Uint8Array(0),
    } as const;
    return forwardedResult(remote, core.replicas!.forward(remote, request));
  }
  const bytes = toBinary(
    CustomMessageSchema,
    create(CustomMessageSchema, {
      capability: input.capability,
      type: input.type,
      data: input.data ?? new Uint8Array(0),
    }),
  );
  const part = makePart("customMessage", bytes);
  return each(
    core,
    target,
    (r) =>
      r.customCapabilities?.capabilities.includes(input.capability)
        ? undefined
        : missing(r, `custom capability "${input.capability}"`),
    (r) => deliver(core.options, r, [part]),
  );
}

/** Sets ReportFullState for the targeted agents. Needs no capability. */
export function requestFullState(core: ServerCore, target: AgentTarget): PushResult {
  const remote = remoteId(core, target);
  if (remote !== undefined) return forwardedResult(remote, core.replicas!.forward(remote, { op: "fullState" }));
  return each(
    core,
    target,
    () => undefined,
    (r) => deliver(core.options, r, [], ServerToAgentFlag.ReportFullState),
  );
}

/**
 * Gives one agent a new instance UID (default a new UUIDv7). The agent is re-keyed at
 * once; messages still carrying the old UID are routed to it until it uses the new one.
 */
export function assignInstanceUid(core: ServerCore, target: string | Uint8Array, uid?: Uint8Array): Uint8Array {
  const next = uid ?? newInstanceUid();
  if (!isInstanceUid(next)) throw new OpampError("invalid_instance_uid", "a new instance UID must be 16 bytes");
  if (core.agents.has(instanceUidToString(next))) {
    throw new OpampError("invalid_argument", "that instance UID is already in use by a connected agent");
  }
  const { records } = resolve(core, target);
  const record = records[0]!;
  // Addressed to the UID the agent still uses (spec: instance_uid names the agent): a
  // gateway routes by it, and the new one means nothing to anyone yet.
  const current = record.instanceUid;
  const part = core.rekey(record, next);
  deliver(core.options, record, [part], 0n, current);
  core.emit("agentUpdated", record, ["instanceUid"]);
  return next;
}

/**
 * Carries out a push another replica forwarded for an agent connected here (see
 * replicas.ts), as if it had been made here.
 *
 * @throws OpampError `unknown_agent` when the agent is not connected here (any more), or
 *   what the push itself throws.
 */
export async function carryOutForwarded(core: ServerCore, id: string, request: ForwardedRequest): Promise<void> {
  const local = () => {
    // Checked right before each push, so that none is forwarded on again.
    if (!core.agents.has(id)) throw new OpampError("unknown_agent", `agent ${id} is not connected here`);
  };
  switch (request.op) {
    case "remoteConfig": {
      const config = fromBinary(AgentRemoteConfigSchema, request.data).config ?? create(AgentConfigMapSchema);
      const prepared = await prepareRemoteConfig(config);
      local();
      await setRemoteConfig(core, id, prepared);
      return;
    }
    case "packages":
      local();
      await offerPackages(core, id, fromBinary(PackagesAvailableSchema, request.data));
      return;
    case "connectionSettings":
      local();
      await offerConnectionSettings(
        core,
        id,
        fromBinary(ConnectionSettingsOffersSchema, request.data) as unknown as ConnectionSettingsInput,
      );
      return;
    case "restart":
      local();
      sendRestart(core, id);
      return;
    case "custom":
      local();
      sendCustomMessage(core, id, { capability: request.capability, type: request.type, data: request.data });
      return;
    case "fullState":
      local();
      requestFullState(core, id);
      return;
  }
}
