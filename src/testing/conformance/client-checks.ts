/**
 * Checks of what the spec requires of an OpAMP client. They run in order as one script
 * against one connected client: each check decides the replies it needs, and the log of
 * every message received is checked as a whole at the end.
 */
import type { AgentToServer } from "../../gen/opamp/v1/opamp_pb.js";
import { RemoteConfigStatuses, ServerErrorResponseType } from "../../gen/opamp/v1/opamp_pb.js";
import {
  AgentCapability,
  configMap,
  configMapHash,
  hasBit,
  hashEquals,
  instanceUidEquals,
  instanceUidToString,
  newInstanceUid,
  ServerToAgentFlag,
} from "../../wire/index.js";
import type { CheckingServer, Exchange, ReceivedMessage } from "./checking-server.js";
import { describeAgentToServer, hex } from "./describe.js";
import { type Check, type ConformanceTransport, fail, pass } from "./types.js";

/** Timing knobs of the client script, resolved. */
export interface ClientScriptTiming {
  /** Wait for a reaction the client owes at once (e.g. full state after ReportFullState). */
  readonly timeoutMs: number;
  /** Wait for an HTTP client's next poll when the script needs a fresh request. */
  readonly pollWaitMs: number;
  /** The heartbeat interval offered to clients with ReportsHeartbeat, in seconds. */
  readonly heartbeatSeconds: number;
  /** The Retry-After / retry_info sent by the throttling checks, in seconds. */
  readonly retryAfterSeconds: number;
  /** How long after the advised delay a throttled client may take to come back. */
  readonly retryGraceMs: number;
}

/** What a client check gets to work with. */
export interface ClientSession {
  /** The server the client under test talks to. */
  readonly server: CheckingServer;
  /** The URL clients were told to use (http form). */
  readonly url: string;
  /** How long the checks wait for the client. */
  readonly timing: ClientScriptTiming;
  /** The transport the client under test uses (from its first message). */
  transport: ConformanceTransport;
  /** The client's current instance UID. */
  uid: Uint8Array;
  /** A message whose reply the next check decides. */
  held: Exchange | undefined;
  /** The first message the client sent. */
  first: ReceivedMessage | undefined;
  /** The delay used by the throttling checks, once chosen. */
  throttleSeconds: number | undefined;
  /** The client's latest capabilities. */
  readonly capabilities: () => bigint;
  /** The held message, or the next one to arrive (undefined after `timeoutMs`). */
  readonly next: (timeoutMs: number) => Promise<Exchange | undefined>;
}

/** A client check. Checks with `atEnd` inspect the whole log after the client has stopped. */
export interface ClientCheck extends Check<ClientSession> {
  /** Run after the client has stopped, on the whole log. Default false. */
  readonly atEnd?: boolean;
}

const TIMING_SLACK_MS = 150;

/** The compressible fields the client's capabilities oblige it to include in a full report. */
function fullStateProblems(m: AgentToServer): string[] {
  const problems: string[] = [];
  const caps = m.capabilities;
  const desc = m.agentDescription;
  if (desc === undefined) problems.push("no agent_description");
  else if (desc.identifyingAttributes.length + desc.nonIdentifyingAttributes.length === 0)
    problems.push("agent_description has no attributes");
  if (caps === 0n) problems.push("no capabilities");
  if (hasBit(caps, AgentCapability.ReportsHealth) && m.health === undefined)
    problems.push("ReportsHealth is set but there is no health");
  if (hasBit(caps, AgentCapability.ReportsEffectiveConfig) && m.effectiveConfig === undefined)
    problems.push("ReportsEffectiveConfig is set but there is no effective_config");
  return problems;
}

function ms(value: number): string {
  return `${Math.round(value)} ms`;
}

/** Waits for messages until `accept` says yes; others are acknowledged. */
async function until(
  session: ClientSession,
  deadlineMs: number,
  accept: (ex: Exchange) => boolean,
): Promise<{ match: Exchange | undefined; seen: Exchange[] }> {
  const seen: Exchange[] = [];
  const end = performance.now() + deadlineMs;
  for (;;) {
    const left = end - performance.now();
    if (left <= 0) return { match: undefined, seen };
    const ex = await session.next(left);
    if (ex === undefined) return { match: undefined, seen };
    seen.push(ex);
    if (accept(ex)) return { match: ex, seen };
    ex.reply();
  }
}

/**
 * The delay the throttling checks ask for, in seconds: the configured one, raised to twice
 * the longest silence seen from the client so far (at most 30 s, the spec's recommended
 * minimum retry interval). A client that ignores the delay and just sends at its own
 * interval then shows. Computed once per session.
 */
function throttleSeconds(session: ClientSession): number {
  if (session.throttleSeconds === undefined) {
    const log = session.server.log;
    let longest = 0;
    for (let i = 1; i < log.length; i++) longest = Math.max(longest, log[i]!.at - log[i - 1]!.at);
    session.throttleSeconds = Math.min(30, Math.max(session.timing.retryAfterSeconds, Math.ceil((2 * longest) / 1000)));
  }
  return session.throttleSeconds;
}

/** Replies to the held message (if any) with `init`; returns it. */
function replyHeld(session: ClientSession, init: Parameters<Exchange["reply"]>[0]): Exchange | undefined {
  const held = session.held;
  session.held = undefined;
  held?.reply(init);
  return held;
}

/** The client checks, in the order they run. */
export const CLIENT_CHECKS: readonly ClientCheck[] = [
  {
    id: "client.full-state-first",
    title: "The first message is a full status report",
    specSection: "Connection establishment; Status reporting",
    async run(session) {
      const first = session.held;
      if (first === undefined) return fail("the client never sent a message");
      const problems = fullStateProblems(first.message);
      if (problems.length > 0)
        return fail(`first message (${describeAgentToServer(first.message)}): ${problems.join("; ")}`);
      return pass(describeAgentToServer(first.message));
    },
  },
  {
    id: "client.report-full-state",
    title: "After ReportFullState the client sends its full state",
    specSection: "ServerToAgent.flags (ReportFullState); Status compression",
    async run(session) {
      const ex = await session.next(session.timing.pollWaitMs);
      if (ex === undefined) return fail("no message to answer with ReportFullState");
      const waiting = until(session, session.timing.timeoutMs, (m) => fullStateProblems(m.message).length === 0);
      ex.reply({ flags: ServerToAgentFlag.ReportFullState });
      const { match, seen } = await waiting;
      if (match === undefined) {
        const last = seen.at(-1);
        return fail(
          last === undefined
            ? `no message within ${ms(session.timing.timeoutMs)} of ReportFullState`
            : `${seen.length} message(s) after ReportFullState, none full; last: ${describeAgentToServer(last.message)} (${fullStateProblems(last.message).join("; ")})`,
        );
      }
      session.held = match;
      return pass(`${describeAgentToServer(match.message)} ${ms(match.at - (ex.repliedAt ?? ex.at))} after the flag`);
    },
  },
  {
    id: "client.new-instance-uid",
    title: "A new_instance_uid from the server is adopted for all later messages",
    specSection: "AgentIdentification; instance_uid",
    async run(session) {
      const ex = await session.next(session.timing.pollWaitMs);
      if (ex === undefined) return fail("no message to answer with a new instance UID");
      const old = ex.message.instanceUid;
      const assigned = newInstanceUid();
      // WebSocket is full duplex: a report the client sent before our reply reached it still
      // carries the old UID. The full report that answers ReportFullState is what shows the
      // UID adopted; over HTTP (one request at a time) the very next message must.
      const crossing = session.transport === "ws";
      const waiting = until(
        session,
        session.timing.timeoutMs,
        (m) => !crossing || fullStateProblems(m.message).length === 0 || !instanceUidEquals(m.message.instanceUid, old),
      );
      // ReportFullState makes the client send at once, so the new UID shows without waiting for a poll.
      ex.reply({ agentIdentification: { newInstanceUid: assigned }, flags: ServerToAgentFlag.ReportFullState });
      const { match: after, seen } = await waiting;
      if (after === undefined)
        return fail(
          seen.length === 0
            ? `no message within ${ms(session.timing.timeoutMs)} of the new UID`
            : `the next message still uses the old UID ${instanceUidToString(old)} (${seen.length} message(s), none a full report)`,
        );
      session.held = after;
      if (instanceUidEquals(after.message.instanceUid, assigned)) {
        session.uid = assigned;
        const crossed = seen.length - 1;
        return pass(
          `adopted ${instanceUidToString(assigned)}${crossed > 0 ? ` (after ${crossed} report(s) sent before the reply reached the client)` : ""}`,
        );
      }
      if (instanceUidEquals(after.message.instanceUid, old))
        return fail(`the next message still uses the old UID ${instanceUidToString(old)}`);
      return fail(`the next message uses an unexpected UID ${hex(after.message.instanceUid)}`);
    },
  },
  {
    id: "client.remote-config-status",
    title: "A remote config is answered with remote_config_status carrying its hash",
    specSection: "Configuration › Remote configuration; RemoteConfigStatus",
    appliesWhen(session) {
      const caps = session.capabilities();
      if (!hasBit(caps, AgentCapability.AcceptsRemoteConfig)) return "the client lacks AcceptsRemoteConfig";
      if (!hasBit(caps, AgentCapability.ReportsRemoteConfig)) return "the client lacks ReportsRemoteConfig";
      return true;
    },
    async run(session) {
      const ex = await session.next(session.timing.pollWaitMs);
      if (ex === undefined) return fail("no message to answer with a remote config");
      const config = configMap({
        "config.json": { body: JSON.stringify({ conformance: true, at: Date.now() }), contentType: "application/json" },
      });
      const hash = await configMapHash(config);
      const statuses: string[] = [];
      let applying: Exchange | undefined;
      const waiting = until(session, session.timing.timeoutMs, (m) => {
        const s = m.message.remoteConfigStatus;
        if (s === undefined || !hashEquals(s.lastRemoteConfigHash, hash)) return false;
        statuses.push(RemoteConfigStatuses[s.status] ?? String(s.status));
        if (s.status === RemoteConfigStatuses.RemoteConfigStatuses_APPLYING) {
          applying = m;
          return false;
        }
        return true;
      });
      ex.reply({ remoteConfig: { config, configHash: hash } });
      const { match } = await waiting;
      if (match !== undefined) {
        match.reply();
        return pass(`statuses with the hash: ${statuses.join(" → ")}`);
      }
      if (applying !== undefined)
        return pass(`APPLYING with the hash; no final status within ${ms(session.timing.timeoutMs)}`);
      return fail(`no remote_config_status with the offered hash within ${ms(session.timing.timeoutMs)}`);
    },
  },
  {
    id: "client.no-reply-loop",
    title: "The client does not answer a plain acknowledgement with another message",
    specSection: "Status reporting (avoiding loops)",
    async run(session) {
      // A message sent within this window of a plain reply counts as a reply to it.
      const quietMs = 500;
      const limit = 5;
      replyHeld(session, {});
      let immediate = 0;
      for (;;) {
        const ex = await session.next(quietMs);
        if (ex === undefined)
          return pass(`quiet after a plain acknowledgement (${immediate} follow-up message(s) first)`);
        ex.reply();
        immediate++;
        if (immediate >= limit)
          return fail(
            `${immediate} messages in a row each within ${quietMs} ms of a plain acknowledgement: a reply loop`,
          );
      }
    },
  },
  {
    id: "client.heartbeat-interval",
    title: "The heartbeat interval offered by the server is honoured",
    specSection: "Heartbeats; OpAMPConnectionSettings.heartbeat_interval_seconds",
    appliesWhen: (session) =>
      hasBit(session.capabilities(), AgentCapability.ReportsHeartbeat) ? true : "the client lacks ReportsHeartbeat",
    async run(session) {
      const h = session.timing.heartbeatSeconds * 1000;
      const offer = {
        connectionSettings: {
          hash: new TextEncoder().encode(`heartbeat-${session.timing.heartbeatSeconds}`),
          opamp: {
            // The endpoint of the transport in use: a client that applies the settings
            // connects to this URL, and its scheme picks the transport (ws: or http:).
            destinationEndpoint: session.transport === "ws" ? session.url.replace(/^http/, "ws") : session.url,
            heartbeatIntervalSeconds: BigInt(session.timing.heartbeatSeconds),
          },
        },
      };
      if (session.transport === "ws" && session.server.wsOpen) {
        session.server.push(offer, session.uid);
      } else {
        const ex = await session.next(session.timing.pollWaitMs);
        if (ex === undefined) return fail(`no poll within ${ms(session.timing.pollWaitMs)} to carry the offer`);
        ex.reply(offer);
      }
      // The first message after the offer may be a status report about it; measure the gaps after it.
      // A client that applies the settings disconnects and reconnects with them (spec: OpAMP
      // settings offer flow): its agent_disconnect is skipped, and the gaps are measured from
      // the first message after it.
      const upper = h * 1.5 + 500;
      let first = await session.next(upper + session.timing.timeoutMs);
      while (first?.message.agentDisconnect !== undefined) {
        first.reply();
        first = await session.next(upper + session.timing.timeoutMs);
      }
      if (first === undefined) return fail(`no message within ${ms(upper + session.timing.timeoutMs)} of the offer`);
      first.reply();
      const gaps: number[] = [];
      let previous = first;
      for (let i = 0; i < 2; i++) {
        const ex = await session.next(upper);
        const from = session.transport === "http" ? (previous.repliedAt ?? previous.at) : previous.at;
        if (ex === undefined)
          return fail(
            `offered ${h} ms; no message within ${ms(upper)} of the previous one (gaps so far: ${gaps.map(ms).join(", ") || "none"})`,
          );
        ex.reply();
        gaps.push(ex.at - from);
        previous = ex;
      }
      const tooShort = gaps.find((g) => g < h * 0.5);
      if (tooShort !== undefined) return fail(`offered ${h} ms; a gap of ${ms(tooShort)}`);
      return pass(`offered ${h} ms; gaps ${gaps.map(ms).join(", ")}`);
    },
  },
  {
    id: "client.retry-after",
    title: "Retry-After on a 503 is honoured before trying again",
    specSection: "Throttling; Plain HTTP Transport (503 + Retry-After)",
    async run(session) {
      const r = throttleSeconds(session);
      const headers = { "Retry-After": String(r) };
      let refusedAt: number;
      if (session.transport === "http") {
        const ex = await session.next(session.timing.pollWaitMs);
        if (ex === undefined) return fail(`no request within ${ms(session.timing.pollWaitMs)} to refuse`);
        ex.refuse(503, headers);
        refusedAt = ex.repliedAt ?? performance.now();
        const again = await session.next(r * 1000 + session.timing.retryGraceMs);
        if (again === undefined)
          return fail(`no new request within ${ms(r * 1000 + session.timing.retryGraceMs)} of the 503`);
        session.held = again;
        const waited = again.at - refusedAt;
        if (waited < r * 1000 - TIMING_SLACK_MS)
          return fail(`Retry-After: ${r}; the next request came after ${ms(waited)}`);
        return pass(`Retry-After: ${r}; the next request came after ${ms(waited)}`);
      }
      // WS: the server closes the connection and refuses the reconnect with 503 + Retry-After.
      const server = session.server;
      const before = server.events.length;
      replyHeld(session, {});
      server.refuseNextUpgrade(503, headers);
      server.closeWebSockets(1013, "try again later");
      const refused = await server.waitForEvent(
        (events) => events.slice(before).some((e) => e.kind === "upgrade-refused"),
        session.timing.timeoutMs + session.timing.retryGraceMs,
      );
      if (!refused) return fail("the client did not reconnect after the server closed the connection");
      const refusal = server.events.slice(before).find((e) => e.kind === "upgrade-refused")!;
      refusedAt = refusal.at;
      const reopened = await server.waitForEvent(
        (events) => events.slice(before).some((e) => e.kind === "ws-open"),
        r * 1000 + session.timing.retryGraceMs,
      );
      if (!reopened) return fail(`no new handshake within ${ms(r * 1000 + session.timing.retryGraceMs)} of the 503`);
      const open = server.events.slice(before).find((e) => e.kind === "ws-open")!;
      const waited = open.at - refusedAt;
      if (waited < r * 1000 - TIMING_SLACK_MS)
        return fail(`Retry-After: ${r}; the next handshake came after ${ms(waited)}`);
      return pass(`Retry-After: ${r}; the next handshake came after ${ms(waited)}`);
    },
  },
  {
    id: "client.unavailable-backoff",
    title: "ServerErrorResponse UNAVAILABLE with retry_info is honoured before sending again",
    specSection: "Throttling (ServerErrorResponse UNAVAILABLE, RetryInfo)",
    async run(session) {
      const r = throttleSeconds(session);
      const ex = await session.next(session.timing.pollWaitMs);
      if (ex === undefined) return fail(`no message within ${ms(session.timing.pollWaitMs)} to answer UNAVAILABLE`);
      const closesBefore = session.server.events.filter((e) => e.kind === "ws-close").length;
      const next = session.next(r * 1000 + session.timing.retryGraceMs);
      ex.reply({
        capabilities: 0n,
        errorResponse: {
          type: ServerErrorResponseType.ServerErrorResponseType_Unavailable,
          errorMessage: "conformance: throttling",
          Details: { case: "retryInfo", value: { retryAfterNanoseconds: BigInt(r) * 1_000_000_000n } },
        },
      });
      const sentAt = ex.repliedAt ?? performance.now();
      const again = await next;
      if (again === undefined)
        return fail(`no message within ${ms(r * 1000 + session.timing.retryGraceMs)} of UNAVAILABLE`);
      session.held = again;
      const waited = again.at - sentAt;
      const reconnected =
        session.transport === "ws"
          ? session.server.events.filter((e) => e.kind === "ws-close").length > closesBefore
            ? " after reconnecting"
            : " on the same connection"
          : "";
      if (waited < r * 1000 - TIMING_SLACK_MS)
        return fail(`retry_info ${r} s; the next message came after ${ms(waited)}${reconnected}`);
      return pass(`retry_info ${r} s; the next message came after ${ms(waited)}${reconnected}`);
    },
  },
  {
    id: "client.sequence-num",
    title: "sequence_num grows by exactly 1 per message",
    specSection: "AgentToServer.sequence_num",
    atEnd: true,
    async run(session) {
      const log = session.server.log;
      if (log.length < 2) return fail(`only ${log.length} message(s) received`);
      for (let i = 1; i < log.length; i++) {
        const prev = log[i - 1]!;
        const cur = log[i]!;
        const a = prev.message.sequenceNum;
        const b = cur.message.sequenceNum;
        // A request refused at the HTTP level was not processed, so resending it with the same number is fine.
        if (b === a + 1n || (b === a && prev.refusedWith !== undefined)) continue;
        return fail(`message ${i + 1} has sequence_num ${b} after ${a} (${describeAgentToServer(cur.message)})`);
      }
      return pass(
        `${log.length} messages, sequence_num ${log[0]!.message.sequenceNum}…${log.at(-1)!.message.sequenceNum}`,
      );
    },
  },
  {
    id: "client.capabilities-every-message",
    title: "Every message carries capabilities with the ReportsStatus bit",
    specSection: "AgentToServer.capabilities",
    atEnd: true,
    async run(session) {
      const log = session.server.log;
      if (log.length === 0) return fail("no message received");
      const bad = log.find((r) => !hasBit(r.message.capabilities, AgentCapability.ReportsStatus));
      if (bad !== undefined)
        return fail(
          `message ${bad.index + 1} of ${log.length} has capabilities 0x${bad.message.capabilities.toString(16)}`,
        );
      return pass(`${log.length} messages`);
    },
  },
  {
    id: "client.agent-disconnect",
    title: "On shutdown the last message carries agent_disconnect",
    specSection: "AgentDisconnect; WebSocket Transport › Closing",
    atEnd: true,
    async run(session) {
      const log = session.server.log;
      // The last one: a client also says goodbye before each deliberate reconnect (spec), e.g.
      // to apply new connection settings, and carries on on the new connection.
      const bye = log.findLast((r) => r.message.agentDisconnect !== undefined);
      const last = log.at(-1);
      if (bye === undefined) {
        const closed = session.server.events.some((e) => e.kind === "ws-close");
        return fail(
          session.transport === "ws"
            ? `no message with agent_disconnect${closed ? " before the connection closed" : ""}`
            : "no request with agent_disconnect after the client was stopped",
        );
      }
      if (
        last !== undefined &&
        bye !== last &&
        log.slice(bye.index + 1).some((r) => r.message.agentDisconnect === undefined)
      )
        return fail(`agent_disconnect came in message ${bye.index + 1}, but ${log.length} messages were sent`);
      return pass(`in message ${bye.index + 1} (${bye.transport})`);
    },
  },
];
