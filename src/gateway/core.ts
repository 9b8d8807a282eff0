/**
 * The gateway core: the upstream pool, the routing table and the per-agent queues. It
 * never listens and never sees a downstream socket; the downstream adapters (WebSocket,
 * HTTP polling) hand it agent messages as `AgentLink`s, and it hands server messages back.
 *
 * Agent → server: the agent's bytes go up as they came, in its own queue, taken in turn
 * with the other agents of the same upstream so that no agent waits behind another's
 * backlog. Server → agent: by `instance_uid`, following `new_instance_uid`.
 */

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { EventEmitter } from "eventemitter3";
import { type AgentToServer, CustomCapabilitiesSchema, type CustomMessage } from "../gen/opamp/v1/opamp_pb.js";
import { OpampError } from "../wire/errors.js";
import { decodeWsFrame, encodeWsFrame } from "../wire/frame.js";
import {
  agentControlFrame,
  decodeGatewayConnectResult,
  decodeGatewayRefused,
  encodeGatewayAttach,
  GATEWAY_ATTACH,
  GATEWAY_CAPABILITY,
  GATEWAY_CONNECT_RESULT,
  GATEWAY_EXTENSION_CAPABILITY,
  GATEWAY_REFUSED,
  type GatewayConnectResult,
} from "../wire/gateway-protocol.js";
import { instanceUidToString, isInstanceUid } from "../wire/uid.js";
import { ChainedGateways } from "./chain.js";
import type { GatewayEvents } from "./events.js";
import {
  agentDisconnectFrame,
  appendToFrame,
  badRequest,
  customCapabilitiesField,
  scanServerToAgent,
} from "./frames.js";
import { type AgentLink, newEntry, type QueuedFrame, type UidEntry } from "./link.js";
import type { GatewayMetrics } from "./metrics.js";
import type { ResolvedGatewayOptions } from "./options.js";
import { type AuthOutcome, type PoolMember, UpstreamPool } from "./pool.js";
import type { UpstreamConnection, UpstreamHandler } from "./upstream-connection.js";

/** Performance time in ms (the latency metric); the clock option is for timers, not this. */
function now(): number {
  return performance.now();
}

/** The gateway protocol's own capabilities, not injected into agents' messages. */
const PROTOCOL_CAPABILITIES = new Set([GATEWAY_CAPABILITY, GATEWAY_EXTENSION_CAPABILITY]);

/** The core of one OpAMPGateway run (made by start(), dropped by stop()). */
export class GatewayCore implements UpstreamHandler {
  readonly #pool: UpstreamPool;
  /** Server → agent routes by canonical UID. */
  readonly routes = new Map<string, AgentLink>();
  /** Every link the core knows, assigned or waiting. */
  readonly links = new Set<AgentLink>();
  /** Links whose upstream dropped while no other was open. */
  readonly #waiting = new Set<AgentLink>();
  /** Control messages of gateways chained below this one. */
  readonly #chained: ChainedGateways;
  #stopping = false;

  constructor(
    readonly options: ResolvedGatewayOptions,
    readonly events: EventEmitter<GatewayEvents>,
    readonly metrics: GatewayMetrics,
  ) {
    this.#pool = new UpstreamPool(options);
    this.#chained = new ChainedGateways(this);
  }

  // ── Pool ───────────────────────────────────────────────────────────────────────────

  /** Creates and starts the pool (not in pass-through mode, where each agent has its own). */
  startPool(): void {
    this.#pool.start(this);
  }

  /** The pool members, for inspection. */
  get pool(): readonly { readonly upstream: UpstreamConnection; readonly links: ReadonlySet<AgentLink> }[] {
    return this.#pool.members;
  }

  /**
   * Assigns a new link to the open upstream with the fewest links (it keeps it for its
   * life: affinity). False when no upstream is open.
   */
  assign(link: AgentLink): boolean {
    const member = this.#pool.pick();
    if (member === undefined) return false;
    this.#pool.assignTo(link, member);
    this.links.add(link);
    return true;
  }

  /** The link is gone: its assignment, routes and queue go with it (counts stay exact). */
  release(link: AgentLink): void {
    if (!this.links.delete(link)) return;
    if (link.upstream !== undefined) this.#pool.member(link.upstream)?.links.delete(link);
    this.#waiting.delete(link);
    link.state = "closed";
    for (const id of [...link.uids.keys(), ...link.aliases]) {
      if (this.routes.get(id) === link) this.routes.delete(id);
    }
    this.#chained.forget(link);
    link.queue.clear();
    link.queuedBytes = 0;
  }

  // ── Delegated authentication ───────────────────────────────────────────────────────

  /**
   * Sends a `connect` for the link's request on its upstream and waits for the answer,
   * at most `auth.timeoutMs`. The upgrade or poll waits meanwhile.
   */
  authenticate(link: AgentLink): Promise<AuthOutcome> {
    return this.#pool.authenticate(link);
  }

  /** The link is authenticated (or needs no authentication): its messages may flow. */
  ready(link: AgentLink, requestUid: string | undefined): void {
    link.requestUid = requestUid;
    link.state = "ready";
    this.#schedule(link);
  }

  // ── Agent → server ─────────────────────────────────────────────────────────────────

  /**
   * One message from an agent: `frame` is the whole WebSocket message (header + protobuf),
   * `message` its decoded form. Queued for the link's upstream as it is.
   */
  agentMessage(link: AgentLink, frame: Uint8Array, message: AgentToServer, receivedAt: number): void {
    if (link.state === "closed") return;
    if (message.instanceUid.length === 0 && isControl(message.customMessage)) {
      this.#chained.control(link, frame, message.customMessage, receivedAt);
      return;
    }
    if (!isInstanceUid(message.instanceUid)) {
      // As the server would: the agent should not resend it.
      link.deliver(encodeWsFrame(badRequest(message.instanceUid, "instance_uid must be 16 bytes")), receivedAt);
      return;
    }
    const id = instanceUidToString(message.instanceUid);
    let entry = link.uids.get(id);
    if (entry === undefined) {
      if (link.uids.size >= this.options.maxAgentsPerConnection) {
        this.events.emit(
          "error",
          new OpampError(
            "limit_exceeded",
            `agent connection from ${link.remoteAddress} spoke for more than ${this.options.maxAgentsPerConnection} instance UIDs`,
            { details: { limit: this.options.maxAgentsPerConnection, instanceUid: id } },
          ),
        );
        link.close(1008, "too many instance UIDs on one connection", 429, "refused");
        return;
      }
      entry = newEntry(id, message.instanceUid);
      link.uids.set(id, entry);
    }
    this.route(id, link);
    entry.seq = message.sequenceNum;
    if (message.agentDisconnect !== undefined) entry.goodbye = true;
    this.enqueue(link, { bytes: frame, receivedAt, entry });
  }

  /** Routes `id` to `link`; a UID that moved from another link is no longer that link's (newest wins). */
  route(id: string, link: AgentLink): void {
    const previous = this.routes.get(id);
    if (previous === link) return;
    if (previous !== undefined) previous.uids.delete(id);
    this.routes.set(id, link);
  }

  /** Queues a message for the link's upstream and pauses the agent when its queue is full. */
  enqueue(link: AgentLink, frame: QueuedFrame): void {
    link.queue.push(frame);
    link.queuedBytes += frame.bytes.length;
    if (link.queuedBytes > this.options.maxQueuedBytesPerAgent && !link.paused) link.pauseReading();
    this.#schedule(link);
  }

  #schedule(link: AgentLink): void {
    if (link.scheduled || link.state !== "ready" || link.queue.length === 0 || link.upstream === undefined) return;
    const member = this.#pool.member(link.upstream);
    if (member === undefined) return;
    link.scheduled = true;
    member.ready.push(link);
    this.#pump(member);
  }

  /**
   * Writes queued messages while the upstream socket takes them, one message per link in
   * turn. A link that needs its UID tied to its request gets the `attach` first.
   */
  #pump(member: PoolMember): void {
    const upstream = member.upstream;
    const limit = this.options.upstreamHighWaterBytes;
    while (upstream.open && member.ready.length > 0 && upstream.bufferedAmount < limit) {
      const link = member.ready.shift()!;
      link.scheduled = false;
      if (link.upstream !== upstream || link.state !== "ready") continue;
      const queued = link.queue.shift();
      if (queued === undefined) continue;
      link.queuedBytes -= queued.bytes.length;
      const entry = queued.entry;
      if (entry !== undefined) {
        if (member.extension && !entry.attached && link.requestUid !== undefined) {
          const attach = encodeGatewayAttach({ requestUid: link.requestUid, instanceUid: entry.id });
          upstream.send(agentControlFrame(GATEWAY_EXTENSION_CAPABILITY, GATEWAY_ATTACH, attach));
          entry.attached = true;
        }
        entry.forwarded = true;
      }
      upstream.send(queued.bytes);
      this.metrics.message("upstream", queued.bytes.length, now() - queued.receivedAt);
      if (link.queue.length > 0) {
        link.scheduled = true;
        member.ready.push(link);
      }
      if (link.paused && link.queuedBytes <= this.options.maxQueuedBytesPerAgent / 2) link.resumeReading();
    }
  }

  /**
   * The downstream connection ended. For each UID it spoke for that did not say goodbye,
   * the server is told at once with a synthesised `agent_disconnect` (an extension of
   * Bindplane's behaviour, which leaves the server to notice missing heartbeats).
   */
  linkClosed(link: AgentLink): void {
    if (!this.links.has(link)) return;
    const upstream = link.upstream;
    const member = upstream === undefined ? undefined : this.#pool.member(upstream);
    if (member !== undefined && upstream?.open === true && link.state === "ready") {
      // Messages still queued go first: the goodbye must be the agent's last word.
      this.#flush(link, member);
      for (const [id, entry] of link.uids) {
        if (entry.goodbye || !entry.forwarded || entry.relayed || this.routes.get(id) !== link) continue;
        if (member.extension && !entry.attached && link.requestUid !== undefined) {
          const attach = encodeGatewayAttach({ requestUid: link.requestUid, instanceUid: entry.id });
          upstream.send(agentControlFrame(GATEWAY_EXTENSION_CAPABILITY, GATEWAY_ATTACH, attach));
        }
        upstream.send(agentDisconnectFrame(entry.bytes, entry.seq + 1n));
      }
    }
    this.release(link);
  }

  /** Writes all of a link's queue now, ignoring the high-water mark (the link is leaving). */
  #flush(link: AgentLink, member: PoolMember): void {
    for (;;) {
      const queued = link.queue.shift();
      if (queued === undefined) break;
      const entry = queued.entry;
      if (entry !== undefined && member.extension && !entry.attached && link.requestUid !== undefined) {
        const attach = encodeGatewayAttach({ requestUid: link.requestUid, instanceUid: entry.id });
        member.upstream.send(agentControlFrame(GATEWAY_EXTENSION_CAPABILITY, GATEWAY_ATTACH, attach));
        entry.attached = true;
      }
      if (entry !== undefined) entry.forwarded = true;
      member.upstream.send(queued.bytes);
      this.metrics.message("upstream", queued.bytes.length, now() - queued.receivedAt);
    }
    link.queuedBytes = 0;
  }

  // ── Server → agent ─────────────────────────────────────────────────────────────────

  /** {@inheritDoc UpstreamHandler.frame} */
  frame(upstream: UpstreamConnection, data: Uint8Array): void {
    const receivedAt = now();
    const member = this.#pool.member(upstream);
    if (member === undefined) return;
    let info: ReturnType<typeof scanServerToAgent>;
    try {
      info = scanServerToAgent(decodeWsFrame(data, this.options.maxMessageBytes));
    } catch (e) {
      // One bad message does not cost the agents of this upstream their connection.
      this.events.emit("error", OpampError.from(e, "malformed_message"));
      return;
    }
    if (info.customCapabilities !== undefined) this.#cacheCapabilities(member, info.customCapabilities);
    const control = info.customMessage;
    if (info.instanceUid.length === 0) {
      if (control?.capability === GATEWAY_CAPABILITY && control.type === GATEWAY_CONNECT_RESULT) {
        this.#connectResult(member, data, control, receivedAt);
      }
      // Anything else without a UID cannot be routed (Bindplane drops it too).
      return;
    }
    const uidLength = info.instanceUid.length;
    if (!isInstanceUid(info.instanceUid)) {
      this.events.emit(
        "error",
        new OpampError("invalid_instance_uid", `${upstream.id}: a server message for a ${uidLength}-byte UID: dropped`),
      );
      return;
    }
    const id = instanceUidToString(info.instanceUid);
    const link = this.routes.get(id);
    if (link === undefined) return; // the agent is gone
    const entry = link.uids.get(id);
    if (
      control?.capability === GATEWAY_EXTENSION_CAPABILITY &&
      control.type === GATEWAY_REFUSED &&
      entry !== undefined &&
      !entry.relayed
    ) {
      this.#refused(link, id, control);
      return;
    }
    if (info.newInstanceUid !== undefined && isInstanceUid(info.newInstanceUid) && entry !== undefined) {
      this.#renamed(link, entry, info.newInstanceUid);
    }
    let frame = data;
    if (entry !== undefined && !entry.delivered) {
      entry.delivered = true;
      // opamp-go sends its custom capabilities once per WebSocket: the agents behind the
      // gateway would never see them otherwise.
      if (info.customCapabilities === undefined && member.inject !== undefined)
        frame = appendToFrame(data, member.inject);
    }
    link.deliver(frame, receivedAt);
  }

  #cacheCapabilities(member: PoolMember, encoded: Uint8Array): void {
    let capabilities: string[];
    try {
      capabilities = fromBinary(CustomCapabilitiesSchema, encoded).capabilities;
    } catch {
      return;
    }
    member.extension = capabilities.includes(GATEWAY_EXTENSION_CAPABILITY);
    const forAgents = capabilities.filter((c) => !PROTOCOL_CAPABILITIES.has(c));
    member.inject =
      forAgents.length === 0
        ? undefined
        : customCapabilitiesField(
            toBinary(CustomCapabilitiesSchema, create(CustomCapabilitiesSchema, { capabilities: forAgents })),
          );
  }

  #connectResult(member: PoolMember, data: Uint8Array, control: CustomMessage, receivedAt: number): void {
    let result: GatewayConnectResult;
    try {
      result = decodeGatewayConnectResult(control.data);
    } catch (e) {
      this.events.emit("error", OpampError.from(e, "malformed_message"));
      return;
    }
    const settle = member.pending.get(result.requestUid);
    if (settle !== undefined) {
      settle(
        result.accept
          ? { t: "accepted", requestUid: result.requestUid }
          : {
              t: "refused",
              status: result.httpStatusCode === 0 ? 401 : result.httpStatusCode,
              headers: result.responseHeaders,
            },
      );
      return;
    }
    // Else a chained gateway's request, or a late answer to one that timed out (dropped).
    this.#chained.answered(result.requestUid, data, receivedAt);
  }

  /** The server refused one relayed agent: close its connection as a direct agent's would be. */
  #refused(link: AgentLink, id: string, control: CustomMessage): void {
    let code = 1008;
    let status = 403;
    let reason = `the server refused agent ${id}`;
    try {
      const refused = decodeGatewayRefused(control.data);
      code = refused.wsCloseCode;
      status = refused.httpStatusCode;
      if (refused.reason !== "") reason = refused.reason;
    } catch {
      // Keep the plain refusal.
    }
    const entry = link.uids.get(id);
    if (entry !== undefined) entry.goodbye = true; // the server does not hold it: no goodbye to synthesise
    link.close(code, reason, status, "refused");
  }

  /** The server gave the agent a new UID: route it too, and keep the entry's state under it. */
  #renamed(link: AgentLink, entry: UidEntry, uid: Uint8Array): void {
    const id = instanceUidToString(uid);
    if (id === entry.id) return;
    link.uids.delete(entry.id);
    link.uids.set(id, { ...entry, id, bytes: Uint8Array.from(uid), attached: false, forwarded: entry.forwarded });
    // The old UID still routes here until the agent uses the new one.
    link.aliases.add(entry.id);
    this.route(id, link);
    this.routes.set(entry.id, link);
  }

  // ── Upstream events ────────────────────────────────────────────────────────────────

  /** {@inheritDoc UpstreamHandler.opened} */
  opened(upstream: UpstreamConnection): void {
    const member = this.#pool.member(upstream);
    if (member === undefined) return;
    member.inject = undefined;
    member.extension = false;
    this.metrics.connection("upstream", 1);
    this.events.emit("upstreamConnected", upstream.id);
    // Agents that lost their upstream while none was open move here (spread as they come).
    for (const link of [...this.#waiting]) {
      this.#waiting.delete(link);
      this.#move(link, undefined);
    }
  }

  /** {@inheritDoc UpstreamHandler.closed} */
  closed(upstream: UpstreamConnection, error: OpampError): void {
    const member = this.#pool.member(upstream);
    if (member === undefined) return;
    this.metrics.connection("upstream", -1);
    member.inject = undefined;
    member.extension = false;
    for (const settle of [...member.pending.values()]) settle({ t: "unavailable" });
    member.ready.clear();
    const links = [...member.links];
    member.links.clear();
    this.events.emit("upstreamDisconnected", upstream.id, error);
    if (this.#stopping) return;
    for (const link of links) {
      link.upstream = undefined;
      link.scheduled = false;
      this.#move(link, upstream.id);
    }
  }

  /** {@inheritDoc UpstreamHandler.failed} */
  failed(_upstream: UpstreamConnection, error: OpampError): void {
    this.events.emit("error", error);
  }

  /** {@inheritDoc UpstreamHandler.garbage} */
  garbage(_upstream: UpstreamConnection, error: OpampError): void {
    this.events.emit("error", error);
  }

  /** {@inheritDoc UpstreamHandler.drained} */
  drained(upstream: UpstreamConnection): void {
    const member = this.#pool.member(upstream);
    if (member !== undefined) this.#pump(member);
  }

  /**
   * A link whose upstream dropped moves to the open upstream with the fewest links, without
   * its agent being disconnected: it authenticates there again (delegated auth), its UIDs
   * are tied to the new request, and the agent is asked for its full state (the server
   * dropped it with the old connection). A chained gateway is closed instead: it moves its
   * own agents with their own credentials.
   */
  #move(link: AgentLink, from: string | undefined, except?: UpstreamConnection): void {
    if (link.state === "closed" || this.#stopping) return;
    if (link.state === "pending") {
      // Still being authenticated: that handshake fails (503) and the agent comes back.
      link.upstream = undefined;
      return;
    }
    link.state = "moving";
    link.requestUid = undefined;
    for (const entry of link.uids.values()) {
      entry.attached = false;
      entry.forwarded = false;
      entry.delivered = false;
    }
    if (link.relaysGateway) {
      link.close(1013, "upstream connection lost", 503, "upstream_unavailable");
      return;
    }
    const member = this.#pool.pick(except);
    if (member === undefined) {
      if (link.upstream !== undefined) this.#pool.member(link.upstream)?.links.delete(link);
      link.upstream = undefined;
      this.#waiting.add(link);
      return;
    }
    this.#pool.assignTo(link, member);
    this.events.emit("agentMoved", link.view(), from, member.upstream.id);
    void this.#reauthenticate(link, member.upstream);
  }

  async #reauthenticate(link: AgentLink, upstream: UpstreamConnection): Promise<void> {
    let requestUid: string | undefined;
    if (this.options.auth.mode === "delegate") {
      const outcome = await this.authenticate(link);
      if (link.state === "closed" || link.upstream !== upstream) return;
      if (outcome.t === "refused") {
        link.close(1008, `the server refused the agent (HTTP ${outcome.status})`, outcome.status, "refused");
        return;
      }
      if (outcome.t !== "accepted") {
        // The new upstream went too, or did not answer: back to waiting.
        if (outcome.t === "timeout") {
          link.close(1013, "the server did not answer the authentication", 504, "timeout");
        } else if (link.state === "moving") {
          // That upstream is going too: try another, else wait for one to open.
          this.#move(link, upstream.id, upstream);
        }
        return;
      }
      requestUid = outcome.requestUid;
    }
    link.requestUid = requestUid;
    link.state = "ready";
    link.requestFullState();
    this.#schedule(link);
  }

  /** Begins stopping: nothing moves any more. */
  beginStop(): void {
    this.#stopping = true;
    this.#pool.abortAuthentications();
  }

  /** Stops every pool member (close handshakes within the stop timeout). */
  async stopPool(): Promise<void> {
    await this.#pool.stop();
  }

  /** Writes every queued message now (stop: nothing the agents sent is left behind). */
  flushAll(): void {
    for (const member of this.#pool.members) {
      if (!member.upstream.open) continue;
      for (const link of member.links) if (link.state === "ready") this.#flush(link, member);
    }
  }
}

function isControl(message: CustomMessage | undefined): message is CustomMessage {
  return (
    message !== undefined &&
    (message.capability === GATEWAY_CAPABILITY || message.capability === GATEWAY_EXTENSION_CAPABILITY)
  );
}
