import { type AgentToServer, ServerErrorResponseType } from "../gen/opamp/v1/opamp_pb.js";
import type { TimerHandle } from "../internal/clock.js";
import { concatBytes, sameBytes } from "../wire/bytes.js";
import {
  AgentCapability,
  AgentToServerFlag,
  hasBit,
  instanceUidToString,
  isInstanceUid,
  newInstanceUid,
  OpampError,
  ServerToAgentFlag,
} from "../wire/index.js";
import { AgentRecord, type DesiredKind, needsFullState, type PushChannel } from "./agent-record.js";
import { type AuthLimits, PendingAuthentications } from "./auth.js";
import { AuthThrottle } from "./auth-throttle.js";
import { answerCertificateRequest } from "./certificate-request.js";
import { type LoadedRecord, loadRecord, recordDeliveryStatus, restoreDesired, storedDesired } from "./delivery.js";
import { mergeReport, newStateTables, type StateTables } from "./merge-report.js";
import type { ResolvedServerOptions } from "./options.js";
import { baseReply, encodeWithParts, type Part } from "./outbound.js";
import { ReconnectGuard } from "./reconnect-guard.js";
import type { Replicas } from "./replicas.js";
import {
  DESIRED_KINDS,
  deliver,
  errorReply,
  identificationPart,
  type OfferTracker,
  ReplyBuilder,
  reofferOnNewStatus,
  reportedHash,
} from "./reply.js";
import type { ServerStore, StoredAgent, StoredDesired } from "./store.js";
import { ServerTelemetry } from "./telemetry.js";
import type {
  AgentPart,
  AgentTransport,
  AuthRequest,
  DisconnectReason,
  GatewayInfo,
  ServerEventArgs,
  ServerEventSink,
} from "./types.js";

/** What an adapter tells the core about the connection a message came on. */
export interface CoreConnection {
  readonly transport: AgentTransport;
  readonly principal: unknown;
  readonly remoteAddress: string | undefined;
  /** The WebSocket, for pushes; undefined for HTTP. */
  readonly channel: PushChannel | undefined;
  /** The OpAMP URL the agent used (sent back as the heartbeat offer's destination). */
  readonly endpoint: string;
  /** The gateway connection that relays the agent, when one does (see gateway-channel.ts). */
  readonly gateway?: GatewayInfo | undefined;
}

/** Distinct endpoint strings kept for sharing between agents (see {@link ServerCore.endpoint}). */
const MAX_INTERNED_ENDPOINTS = 64;

/** The core. One per OpAMPServer. */
export class ServerCore implements OfferTracker {
  /** Connected agents by canonical UID string. */
  readonly agents = new Map<string, AgentRecord>();
  readonly #aliases = new Map<string, AgentRecord>();
  /** HTTP agents in order of last message, oldest first, for the liveness sweep. */
  readonly #httpAgents = new Map<string, AgentRecord>();
  readonly #loading = new Map<string, Promise<LoadedRecord>>();
  /** Agents whose state changed since it was last written; flushed by the sweep. */
  readonly #dirty = new Set<AgentRecord>();
  /** Effective configs and available components, each distinct one held once for this server's agents. */
  readonly tables: StateTables;
  readonly #replies: ReplyBuilder;
  readonly #guard: ReconnectGuard;
  readonly #endpoints = new Map<string, string>();
  readonly #writes = new Set<Promise<void>>();
  /** `authenticate` calls still waiting on the hook; stopping settles them at once. */
  readonly authentications = new PendingAuthentications();
  readonly #authThrottle: AuthThrottle;
  /** The replica side, when a bus is configured (see replicas.ts). */
  replicas: Replicas | undefined;
  /** Diagnostics channels and metrics (see telemetry.ts). */
  readonly telemetry = new ServerTelemetry();
  #sweepTimer: TimerHandle | undefined;
  #running = false;
  #accepting = false;

  constructor(
    readonly options: ResolvedServerOptions,
    readonly store: ServerStore,
    readonly events: ServerEventSink,
  ) {
    this.#replies = new ReplyBuilder(options, this);
    this.#guard = new ReconnectGuard(options.maxReconnectsPerWindow, options.reconnectWindowMs, options.clock);
    this.#authThrottle = new AuthThrottle(options.maxAuthFailures, options.authFailureWindowMs, options.clock);
    this.tables = newStateTables(options.maxComponentCacheBytes);
  }

  /** What `authenticate()` needs for one request: its deadline, `stop()`, and the throttle. */
  authLimits(request: AuthRequest): AuthLimits {
    let key: string | undefined;
    try {
      key = this.options.authThrottleKey(request);
    } catch (e) {
      // Counted by nothing rather than failing the request: throttling is a safeguard.
      this.reportError(new OpampError("hook_failed", "authThrottleKey threw", { cause: e }));
    }
    return {
      clock: this.options.clock,
      timeoutMs: this.options.handshakeTimeoutMs,
      pending: this.authentications,
      throttle: { throttle: this.#authThrottle, key },
      onRefused: (status) => {
        this.telemetry.authRefused(status);
        this.options.logger.debug({ status, remoteAddress: request.remoteAddress }, "authentication refused");
      },
      onThrottled: (throttled) =>
        this.reportError(
          new OpampError(
            "limit_exceeded",
            `${throttled} was refused ${this.options.maxAuthFailures} times within ` +
              `${this.options.authFailureWindowMs} ms: its requests get 429 until the window has passed`,
            { details: { limit: this.options.maxAuthFailures } },
          ),
        ),
    };
  }

  /**
   * A desired item went out to the agent. Connection settings sent to an agent that cannot
   * report their status are recorded as held by it (and stored, so a restarted server does
   * not send them again); the agent's sessions are watched for a reconnect loop.
   */
  offered(record: AgentRecord, kind: DesiredKind, hash: Uint8Array): void {
    record.offered[kind] = hash;
    if (kind !== "connectionSettings") return;
    this.#guard.offered(record.id);
    if (hasBit(record.capabilities, AgentCapability.ReportsConnectionSettingsStatus)) return;
    if (sameBytes(record.sentSettingsHash, hash)) return;
    record.sentSettingsHash = hash;
    const id = record.id;
    const desired = storedDesired(record);
    this.persist(() => this.store.putDesired(id, desired));
  }

  /** True while connection settings must not go to the agent: it looks caught in a reconnect loop. */
  paused(record: AgentRecord, kind: DesiredKind): boolean {
    return kind === "connectionSettings" && this.#guard.paused(record.id);
  }

  /** The one shared string equal to `endpoint` (agents of a server use a handful). */
  #intern(endpoint: string): string {
    const known = this.#endpoints.get(endpoint);
    if (known !== undefined) return known;
    if (this.#endpoints.size < MAX_INTERNED_ENDPOINTS) this.#endpoints.set(endpoint, endpoint);
    return endpoint;
  }

  /** Starts the liveness sweep. */
  start(): void {
    this.#running = true;
    this.#accepting = true;
    this.#scheduleSweep();
  }

  /** True between start() and the end of stop(): events may fire. */
  get running(): boolean {
    return this.#running;
  }

  /** True between start() and the beginning of stop(): new requests and connections are taken. */
  get accepting(): boolean {
    return this.#accepting;
  }

  /**
   * First step of stopping: refuse new work, and end the handshakes still waiting on
   * `authenticate` (they answer 503 + Retry-After now, not at their timeout); agents that
   * leave now leave as `server_stopped`.
   */
  beginStop(): void {
    this.#accepting = false;
    this.authentications.abortAll();
  }

  /** Emits `error` unless stopped; an error nobody listens to is logged as a warning, never thrown. */
  reportError(error: unknown, code: OpampError["code"] = "internal"): void {
    if (this.#running) this.events.emit("error", OpampError.from(error, code));
  }

  /**
   * Runs a store write, keeping its promise until it settles (stop() waits for it). The
   * returned promise never rejects: a failure is reported on `error` as `storage_failed`.
   */
  persist(write: () => Promise<void>): Promise<void> {
    const p = write()
      .catch((e) => this.reportError(e, "storage_failed"))
      .finally(() => this.#writes.delete(p));
    this.#writes.add(p);
    return p;
  }

  /**
   * Handles one AgentToServer and returns the encoded ServerToAgent (with the 0x00 header
   * for WebSocket). Never throws for agent mistakes: those become error_response replies.
   * `raw` is the binary the message was decoded from, when the adapter has it (saves
   * encoding the agent's state again when it is stored); `wireBytes` the size it had on the
   * wire (for diagnostics).
   *
   * @throws OpampError `unauthenticated` when `authorizeMessage` refuses the message.
   */
  async handleMessage(
    conn: CoreConnection,
    message: AgentToServer,
    raw?: Uint8Array,
    wireBytes: number = raw?.length ?? 0,
  ): Promise<Uint8Array> {
    const ws = conn.transport === "websocket";
    if (!isInstanceUid(message.instanceUid)) {
      this.telemetry.received(conn.transport, wireBytes, "", message);
      // spec: BadRequest for a malformed message; the agent should not retry it.
      return errorReply(message.instanceUid, ServerErrorResponseType.ServerErrorResponseType_BadRequest, ws, {
        message: "instance_uid must be 16 bytes",
      });
    }
    const id = instanceUidToString(message.instanceUid);
    this.telemetry.received(conn.transport, wireBytes, id, message);
    let record = this.agents.get(id) ?? this.#aliases.get(id);
    let known = record !== undefined;
    if (record === undefined) {
      const loaded = await this.#load(id, message.instanceUid, conn.transport);
      record = loaded.record;
      known = loaded.known;
    }
    // Each UID is bound to the principal that first spoke for it (an await only when
    // another principal speaks for a bound UID).
    const key = this.#principalKey(conn);
    let rebound: string | undefined;
    if (record.boundPrincipal === undefined) rebound = key;
    else if (key !== record.boundPrincipal) rebound = await this.#rebind(record, key, conn, message);
    const authorize = this.options.authorizeMessage;
    if (authorize !== undefined) {
      let ok: boolean;
      try {
        ok = await authorize({
          message,
          principal: conn.principal,
          transport: conn.transport,
          boundPrincipal: rebound ?? record.boundPrincipal,
          ...(conn.gateway === undefined ? {} : { gateway: conn.gateway }),
        });
      } catch (e) {
        throw new OpampError("hook_failed", "authorizeMessage threw", { cause: e });
      }
      if (!ok) throw new OpampError("unauthenticated", "message refused by authorizeMessage");
    }
    // An HTTP agent that takes new credentials (an enrolled key in place of the fleet token)
    // keeps its session: "principal" in the changes tells the app.
    const principalMoved = rebound !== undefined && record.boundPrincipal !== undefined;
    if (rebound !== undefined) {
      // Stored at once, not with the next sweep: after a crash the UID must still be bound.
      record.boundPrincipal = rebound;
      this.#dirty.add(record);
    }
    // Decided after the load: a message of the same agent that raced this one (an HTTP
    // retry, a second connection) may have brought it online meanwhile.
    const online = this.agents.get(record.id) === record;
    known ||= online;
    if (record.previousId !== undefined && id === record.id) {
      // The agent now uses the UID we assigned; the old one is no longer routed.
      this.#aliases.delete(record.previousId);
      record.previousId = undefined;
      record.identification = undefined;
    }
    const channel = conn.channel;
    if (channel?.closed) {
      // The connection went away while the agent's state was loading: nothing to answer.
      return new Uint8Array(0);
    }
    if (
      channel !== undefined &&
      record.channel !== channel &&
      channel.agents.size >= this.options.maxAgentsPerConnection
    ) {
      return errorReply(message.instanceUid, ServerErrorResponseType.ServerErrorResponseType_Unavailable, ws, {
        message: `more than ${this.options.maxAgentsPerConnection} agents on one connection`,
        retryAfterMs: this.options.retryAfterMs,
      });
    }

    if (
      this.options.duplicateUid === "reassign" &&
      channel !== undefined &&
      record.previousChannel === channel &&
      record.channel !== undefined &&
      record.channel !== channel &&
      !record.channel.closed
    ) {
      // The UID moved to another live connection and the old one still speaks for it: two
      // instances share the UID (a cloned VM). spec: the server SHOULD give one a new UID.
      return encodeWithParts(baseReply(message.instanceUid), [identificationPart(newInstanceUid())], ws);
    }

    // Merged first: a message that would take the agent's state over its budget is refused
    // before it changes anything, the connection's agents included.
    const merged = mergeReport(record, message, this.tables, {
      raw,
      // Scoped by the principal's key: one tenant's agents share cached components even when
      // `authenticate` returns a new principal object for every request.
      principal: key ?? conn.principal,
      maxStateBytes: this.options.maxAgentStateBytes,
    });
    if (merged.refusedStateBytes !== undefined) {
      const limit = this.options.maxAgentStateBytes;
      this.reportError(
        new OpampError(
          "limit_exceeded",
          `message from ${id} refused: the agent's state would be ${merged.refusedStateBytes} bytes, over the limit of ${limit}`,
          { details: { limit } },
        ),
      );
      // spec: BadRequest, the agent should not retry the message; its old state stays.
      return errorReply(message.instanceUid, ServerErrorResponseType.ServerErrorResponseType_BadRequest, ws, {
        message: `agent state over the limit of ${limit} bytes`,
      });
    }

    // A new session: the agent (re)connected, or restarted its sequence numbers (an HTTP
    // agent has no connection to tell by). The guard watches for a reconnect loop.
    const newSession =
      !online || record.channel !== channel || (message.sequenceNum === 0n && message.agentDescription !== undefined);
    if (newSession && this.#guard.sessionStarted(record.id)) {
      this.reportError(
        new OpampError(
          "limit_exceeded",
          `agent ${record.id} started more than ${this.options.maxReconnectsPerWindow} sessions within ` +
            `${this.options.reconnectWindowMs} ms after it was sent connection settings: it looks caught in a ` +
            "reconnect loop, so connection settings are no longer offered to it until it is quiet for that long",
          { details: { limit: this.options.maxReconnectsPerWindow, instanceUid: record.id } },
        ),
      );
    }
    record.endpoint = this.#intern(conn.endpoint);
    const changes: AgentPart[] = [];
    if (!online) {
      record.resetSession();
      this.agents.set(record.id, record);
      this.replicas?.claimed(record.id);
    } else {
      if (record.channel !== channel) changes.push("connection");
      if (principalMoved) changes.push("principal");
    }
    // Duplicate-UID policy: the newest connection wins; the old one keeps its other agents.
    if (record.channel !== channel) {
      record.channel?.agents.delete(record);
      // Only the "reassign" policy looks at the previous channel; otherwise keeping it would
      // hold a closed socket for as long as the agent stays.
      record.previousChannel = this.options.duplicateUid === "reassign" ? record.channel : undefined;
      record.channel = channel;
      channel?.agents.add(record);
      if (channel !== undefined) record.resetSession();
    }

    let flags = needsFullState(known, record.sequenceNum, message) ? ServerToAgentFlag.ReportFullState : 0n;
    // A full report (a restarted agent, or one answering ReportFullState) restarts the offers.
    if (message.agentDescription !== undefined) for (const k of DESIRED_KINDS) record.offered[k] = undefined;

    changes.push(...merged.changes);
    if (merged.needComponents) flags |= ServerToAgentFlag.ReportAvailableComponents;
    record.sequenceNum = message.sequenceNum;
    record.lastSeen = this.options.clock.now();
    if (!online) {
      this.telemetry.connected(record, conn.transport);
      this.options.logger.debug(
        { instanceUid: record.id, transport: conn.transport, remoteAddress: conn.remoteAddress },
        "agent connected",
      );
    } else if (record.transport !== conn.transport) this.telemetry.moved(record.transport, conn.transport);
    record.transport = conn.transport;
    record.principal = conn.principal;
    record.remoteAddress = conn.remoteAddress;
    if (conn.transport === "http") {
      this.#httpAgents.delete(record.id);
      this.#httpAgents.set(record.id, record);
    } else {
      this.#httpAgents.delete(record.id);
    }
    recordDeliveryStatus(this, record, merged.changes);
    reofferOnNewStatus(record, merged.changes);

    const parts: Part[] = [];
    if (hasBit(message.flags, AgentToServerFlag.RequestInstanceUid)) {
      const part = await this.#assignRequestedUid(record, message);
      if (part !== undefined) {
        parts.push(part);
        changes.push("instanceUid");
      }
    }
    let refused: OpampError | undefined;
    if (message.connectionSettingsRequest !== undefined) {
      try {
        const part = await answerCertificateRequest(this, record, message, conn.endpoint, conn.principal);
        if (part !== undefined) parts.push(part);
      } catch (e) {
        refused = OpampError.from(e);
      }
    }
    // Events before the reply is built: a push a listener makes synchronously (a prepared
    // config, a restart, a full-state request…) rides in this very reply.
    record.replying = true;
    try {
      if (!online) this.emit("agentConnected", record);
      else if (changes.length > 0) this.emit("agentUpdated", record, changes);
      this.emit("message", record, message);
    } finally {
      record.replying = false;
    }
    // Written in batches by the sweep, so a chatty agent costs one store write per sweep.
    // With replicas, an HTTP agent's next poll may go to another replica, which reads the
    // agent from the store: its state (sequence number included) is written after each
    // message instead.
    if (this.replicas !== undefined && conn.transport === "http") this.#saveAgent(record);
    else if (!online || changes.length > 0) this.#dirty.add(record);

    if (refused !== undefined) {
      // spec: a failed CSR is answered with BadRequest, and an error reply carries nothing
      // else: what the reply would have carried stays due for the next one.
      return errorReply(message.instanceUid, ServerErrorResponseType.ServerErrorResponseType_BadRequest, ws, {
        message: refused.message,
      });
    }
    const reply = baseReply(message.instanceUid);
    this.#replies.fill(record, reply, parts, conn, flags);
    let bytes = encodeWithParts(reply, parts, ws);
    if (bytes.length > this.options.maxMessageBytes) {
      // spec: the server MUST NOT send an oversized message; answer with the small fields only.
      this.reportError(
        new OpampError("message_too_large", `reply to ${record.id} is ${bytes.length} bytes`, {
          details: { limit: this.options.maxMessageBytes },
        }),
      );
      bytes = encodeWithParts(reply, [], ws);
    }
    if (rebound !== undefined && this.#dirty.has(record)) this.#saveAgent(record);
    if (message.agentDisconnect !== undefined) this.disconnect(record, "agent_disconnect");
    return bytes;
  }

  /** The principal key of a connection, computed once per WebSocket. */
  readonly #principalKeys = new WeakMap<CoreConnection, string | undefined>();

  #principalKey(conn: CoreConnection): string | undefined {
    if (conn.channel !== undefined && this.#principalKeys.has(conn)) return this.#principalKeys.get(conn);
    let key: string | undefined;
    try {
      key = this.options.principalKey(conn.principal);
    } catch (e) {
      throw new OpampError("hook_failed", "principalKey threw", { cause: e });
    }
    if (key !== undefined && typeof key !== "string") {
      throw new OpampError("hook_failed", "principalKey must return a string or undefined");
    }
    if (conn.channel !== undefined) this.#principalKeys.set(conn, key);
    return key;
  }

  /**
   * Another principal speaks for a bound UID: `allowRebind` decides. Returns the key to bind
   * the UID to.
   *
   * @throws OpampError `unauthenticated` (reported on `error` too) when the hook is absent,
   *   refuses, or the new principal has no key.
   */
  async #rebind(
    record: AgentRecord,
    key: string | undefined,
    conn: CoreConnection,
    message: AgentToServer,
  ): Promise<string> {
    const bound = record.boundPrincipal!;
    const hook = this.options.allowRebind;
    let allowed = false;
    if (hook !== undefined) {
      try {
        allowed = await hook({
          instanceUid: record.id,
          boundPrincipal: bound,
          principalKey: key,
          principal: conn.principal,
          message,
          transport: conn.transport,
        });
      } catch (e) {
        throw new OpampError("hook_failed", "allowRebind threw", { cause: e });
      }
    }
    if (allowed && key !== undefined) return key;
    const error = new OpampError(
      "unauthenticated",
      `instance UID ${record.id} belongs to another principal: message refused`,
      { details: { instanceUid: record.id } },
    );
    this.reportError(error);
    throw error;
  }

  #load(id: string, uid: Uint8Array, transport: AgentTransport): Promise<LoadedRecord> {
    let pending = this.#loading.get(id);
    if (pending === undefined) {
      const record = new AgentRecord(id, uid, transport, this.options.clock.now());
      pending = loadRecord(this, record, this.tables);
      this.#loading.set(id, pending);
      pending.finally(() => this.#loading.delete(id)).catch(() => undefined);
    }
    return pending;
  }

  async #assignRequestedUid(record: AgentRecord, message: AgentToServer): Promise<Part | undefined> {
    // Asked again before switching (e.g. an HTTP retry): repeat the same answer.
    if (record.previousId !== undefined) return record.identification;
    let uid: Uint8Array;
    try {
      uid = this.options.newInstanceUid ? await this.options.newInstanceUid({ message }) : newInstanceUid();
    } catch (e) {
      this.reportError(new OpampError("hook_failed", "newInstanceUid threw", { cause: e }));
      return undefined;
    }
    if (!isInstanceUid(uid)) {
      this.reportError(new OpampError("invalid_instance_uid", "newInstanceUid must return 16 bytes"));
      return undefined;
    }
    const taken = this.agents.get(instanceUidToString(uid)) ?? this.#aliases.get(instanceUidToString(uid));
    if (taken !== undefined && taken !== record) {
      // Handing it out would merge two agents into one record.
      this.reportError(new OpampError("invalid_argument", "newInstanceUid returned the UID of a connected agent"));
      return undefined;
    }
    return this.rekey(record, uid);
  }

  /** Moves a record to a new UID and returns the agentIdentification part announcing it. */
  rekey(record: AgentRecord, uid: Uint8Array): Part {
    const oldId = record.id;
    const newId = instanceUidToString(uid);
    const identification = identificationPart(uid);
    record.identification = identification;
    this.agents.delete(oldId);
    const polling = this.#httpAgents.delete(oldId);
    record.previousId = oldId;
    record.id = newId;
    record.instanceUid = Uint8Array.from(uid);
    this.agents.set(newId, record);
    this.#aliases.set(oldId, record);
    this.replicas?.released(oldId);
    this.replicas?.claimed(newId);
    // Still watched for silence under its new UID: an HTTP agent that never polls again
    // would otherwise stay connected for ever.
    if (polling) this.#httpAgents.set(newId, record);
    const desired = storedDesired(record);
    const entry = storedAgent(newId, record);
    // After any write of the old UID still in flight, or it would bring the old UID back.
    this.#writeInOrder(record, async () => {
      await this.store.deleteAgent(oldId);
      await this.store.putAgent(entry);
      await this.store.putDesired(newId, desired);
    });
    return identification;
  }

  /**
   * Reads the agent's desired state from the store again and takes up what changed: an
   * agent that moved here from another replica may have been given something there after
   * this replica loaded it. Changed items go out as if pushed here.
   */
  async refreshDesired(id: string): Promise<void> {
    let desired: StoredDesired | undefined;
    try {
      desired = await this.store.getDesired(id);
    } catch (e) {
      this.reportError(e, "storage_failed");
      return;
    }
    const record = this.agents.get(id);
    if (desired === undefined || record === undefined) return;
    const before = { ...record.desired };
    restoreDesired(record, desired);
    for (const kind of DESIRED_KINDS) {
      const item = record.desired[kind];
      if (item === undefined || sameBytes(before[kind]?.messageBytes, item.messageBytes)) continue;
      record.offered[kind] = undefined;
      if (
        record.channel === undefined ||
        sameBytes(reportedHash(record, kind), item.hash) ||
        this.paused(record, kind)
      ) {
        continue; // an HTTP agent gets it with its next poll
      }
      try {
        deliver(this.options, record, [item.part]);
        this.offered(record, kind, item.hash);
      } catch (e) {
        this.reportError(e);
      }
    }
  }

  /** Forgets the agent's association and emits agentDisconnected. */
  disconnect(record: AgentRecord, reason: DisconnectReason): void {
    if (this.agents.get(record.id) !== record) return;
    this.agents.delete(record.id);
    if (record.previousId !== undefined) this.#aliases.delete(record.previousId);
    this.#httpAgents.delete(record.id);
    record.channel?.agents.delete(record);
    record.channel = undefined;
    record.previousChannel = undefined;
    if (reason === "moved") {
      // Another replica holds the agent now and writes its state: a write from here could
      // only put an older state back.
      this.#dirty.delete(record);
    } else {
      this.replicas?.released(record.id);
      // No message since the last write (same sequence_num, nothing dirty): the store has it.
      if (this.#dirty.has(record) || record.savedSequenceNum !== record.sequenceNum) this.#saveAgent(record);
    }
    this.telemetry.disconnected(record, record.transport, reason);
    this.options.logger.debug({ instanceUid: record.id, reason }, "agent disconnected");
    this.emit("agentDisconnected", record, reason);
  }

  /** A WebSocket closed: every agent it carried is gone (spec: forget all associations). */
  channelClosed(channel: PushChannel): void {
    const reason: DisconnectReason = this.#accepting ? "connection_closed" : "server_stopped";
    for (const record of [...channel.agents]) this.disconnect(record, reason);
  }

  /** Writes the agent's full state now, after any write of it still in flight (keeps order). */
  #saveAgent(record: AgentRecord): void {
    this.#dirty.delete(record);
    // A snapshot: the pieces are immutable, a later change packs new ones.
    const entry = storedAgent(record.id, record);
    record.savedSequenceNum = record.sequenceNum;
    this.#writeInOrder(record, () => this.store.putAgent(entry));
  }

  /** Runs a store write of the agent after its writes still in flight. */
  #writeInOrder(record: AgentRecord, write: () => Promise<void>): void {
    const previous = record.saving ?? Promise.resolve();
    const next = previous.then(write);
    record.saving = next.catch(() => undefined);
    this.persist(() => next);
  }

  /** Resolves once the store writes in flight now have settled (later ones are not waited for). */
  writesSettled(): Promise<void> {
    return Promise.allSettled([...this.#writes]).then(() => undefined);
  }

  /** Writes every agent whose state changed since its last write. */
  flush(): void {
    for (const record of [...this.#dirty]) this.#saveAgent(record);
  }

  #scheduleSweep(): void {
    if (!this.#running) return;
    this.#sweepTimer = this.options.clock.setTimeout(() => {
      // A timer callback: a throw here would end the process, and the sweep must go on.
      try {
        this.sweep();
        this.flush();
      } catch (e) {
        this.reportError(e);
      }
      this.#scheduleSweep();
    }, this.options.sweepIntervalMs);
  }

  /** Disconnects HTTP agents silent for longer than their heartbeat window. O(expired agents). */
  sweep(): void {
    const deadline = this.options.clock.now() - this.options.httpAgentTimeoutMs;
    for (const record of this.#httpAgents.values()) {
      if (record.lastSeen > deadline) break;
      this.disconnect(record, "heartbeat_timeout");
    }
  }

  /**
   * Emits unless stopped. The server's emitter isolates listeners: one that throws or
   * rejects is reported on `error` and cannot break the exchange for this or other agents.
   */
  emit<E extends keyof ServerEventArgs>(event: E, ...args: ServerEventArgs[E]): void {
    if (!this.#running) return;
    this.events.emit(event, ...args);
  }

  /**
   * Stops: every connected agent is reported gone (`server_stopped`), the sweep ends, and
   * pending store writes are awaited. After it resolves no event fires.
   */
  async stop(): Promise<void> {
    if (this.#sweepTimer !== undefined) this.options.clock.clearTimeout(this.#sweepTimer);
    this.#sweepTimer = undefined;
    this.beginStop();
    for (const record of [...this.agents.values()]) this.disconnect(record, "server_stopped");
    this.flush();
    // Store failures of the last writes are still reported; nothing fires after this.
    await Promise.allSettled([...this.#writes]);
    this.#running = false;
  }
}

/**
 * What the server writes for an agent: the state in pieces (no copy), the whole `state`
 * concatenated only if the store reads it (an own getter, so spreading the object keeps it).
 */
function storedAgent(instanceUid: string, record: AgentRecord): StoredAgent {
  const stateFields = record.stateFields();
  let state: Uint8Array | undefined;
  return {
    instanceUid,
    lastSeen: record.lastSeen,
    ...(record.boundPrincipal === undefined ? {} : { boundPrincipal: record.boundPrincipal }),
    stateFields,
    get state() {
      state ??= concatBytes(stateFields);
      return state;
    },
  };
}
