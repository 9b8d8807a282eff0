/**
 * Checks of what the spec requires of an OpAMP server. Each runs as one or more scripted
 * agents (fresh instance UIDs, fresh connections) against the server under test.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import {
  AgentToServerSchema,
  CustomMessageSchema,
  ServerErrorResponseType,
  type ServerToAgent,
} from "../../gen/opamp/v1/opamp_pb.js";
import {
  AgentToServerFlag,
  hasBit,
  INSTANCE_UID_BYTES,
  instanceUidEquals,
  instanceUidToString,
  newInstanceUid,
  ServerCapability,
  ServerToAgentFlag,
} from "../../wire/index.js";
import { describeServerToAgent, hex } from "./describe.js";
import {
  agentMessage,
  type HttpAnswer,
  postMessage,
  postRaw,
  type ServerTarget,
  WsAgentConnection,
  type WsEvent,
} from "./scripted-agent.js";
import { type Check, type CheckOutcome, type ConformanceTransport, fail, notApplicable, pass } from "./types.js";

/** What a server check gets to work with. */
export interface ServerCheckContext {
  /** The transport this run of the check uses. */
  readonly transport: ConformanceTransport;
  /** The server under test: URLs, credentials, timeout. */
  readonly target: ServerTarget;
  /** The operator says the server must refuse requests without the configured credentials. */
  readonly authRequired: boolean;
  /** The server's receive limit in bytes (header + data on WS, body after decompression on HTTP). */
  readonly maxMessageBytes: number;
  /** Registers cleanup that runs after the check, whatever its outcome. */
  readonly defer: (cleanup: () => void) => void;
}

/** A server check; `transports` lists the transports it runs on. */
export interface ServerCheck extends Check<ServerCheckContext> {
  /** The transports the check runs on (some requirements are WebSocket- or HTTP-only). */
  readonly transports: readonly ConformanceTransport[];
}

const BOTH: readonly ConformanceTransport[] = ["ws", "http"];
const DEFINED_SERVER_BITS = Object.values(ServerCapability).reduce((all, bit) => all | bit, 0n);

/** A scripted agent bound to one transport: one WS connection, or stateless POSTs. */
interface Channel {
  /** Sends a message and returns the reply, or evidence of why there was none. */
  exchange(message: ReturnType<typeof agentMessage>): Promise<{ reply: ServerToAgent } | { evidence: string }>;
  close(): void;
}

async function openChannel(ctx: ServerCheckContext): Promise<Channel | { evidence: string }> {
  if (ctx.transport === "http") {
    return {
      async exchange(message) {
        const answer = await postMessage(ctx.target, message);
        if (answer.message !== undefined) return { reply: answer.message };
        return { evidence: describeHttpAnswer(answer) };
      },
      close() {},
    };
  }
  const opened = await WsAgentConnection.open(ctx.target);
  if (!opened.ok) return { evidence: `WebSocket handshake failed: ${opened.error}` };
  const conn = opened.conn;
  ctx.defer(() => conn.terminate());
  return {
    async exchange(message) {
      const event = await conn.exchange(message, ctx.target.timeoutMs);
      if (event.kind === "message" && event.message !== undefined) return { reply: event.message };
      return { evidence: describeWsEvent(event, ctx.target.timeoutMs) };
    },
    close() {
      conn.close();
    },
  };
}

function describeHttpAnswer(answer: HttpAnswer): string {
  if (answer.status === 0) return answer.error ?? "no HTTP response";
  if (answer.status !== 200) return `HTTP ${answer.status}`;
  if (answer.decodeError !== undefined) return `HTTP 200 whose body is not a ServerToAgent: ${answer.decodeError}`;
  return "HTTP 200";
}

function describeWsEvent(event: WsEvent, timeoutMs: number): string {
  switch (event.kind) {
    case "timeout":
      return `no message from the server within ${timeoutMs} ms`;
    case "close":
      return `the server closed the connection (code ${event.code}${event.reason ? `, "${event.reason}"` : ""})`;
    case "message":
      if (!event.isBinary) return `a text frame (${event.raw.length} bytes)`;
      if (event.decodeError !== undefined)
        return `a binary frame that is not a ServerToAgent (${event.decodeError}); first bytes ${hex(event.raw, 8)}`;
      return `a ServerToAgent: ${event.message === undefined ? "?" : describeServerToAgent(event.message)}`;
  }
}

function isSuccessReply(reply: ServerToAgent): boolean {
  return reply.errorResponse === undefined;
}

/** Runs `body` with an open channel, turning a failed open into a failure. */
async function withChannel(
  ctx: ServerCheckContext,
  body: (channel: Channel) => Promise<CheckOutcome>,
): Promise<CheckOutcome> {
  const channel = await openChannel(ctx);
  if ("evidence" in channel) return fail(channel.evidence);
  try {
    return await body(channel);
  } finally {
    channel.close();
  }
}

/** Builds an AgentToServer padded with a custom message so that its encoding is exactly `size` bytes. */
function messageOfSize(uid: Uint8Array, size: number): Uint8Array {
  const build = (dataLength: number) => {
    const message = agentMessage(uid, 0, { full: true });
    message.customMessage = create(CustomMessageSchema, {
      capability: "io.opamp-sdk.conformance.padding",
      type: "padding",
      data: new Uint8Array(dataLength),
    });
    return message;
  };
  let dataLength = Math.max(0, size - 256);
  for (let attempt = 0; attempt < 4; attempt++) {
    const bytes = toBinary(AgentToServerSchema, build(dataLength)).length;
    if (bytes === size) break;
    dataLength += size - bytes;
  }
  return toBinary(AgentToServerSchema, build(dataLength));
}

/** Invalid protobuf: field 1 (bytes) announces 255 bytes and the message ends. */
const GARBAGE_PROTOBUF = new Uint8Array([0x0a, 0xff, 0x01, 0x42]);

/** The server checks, in the order they run. */
export const SERVER_CHECKS: readonly ServerCheck[] = [
  {
    id: "server.ws-binary-frame",
    title: "Replies are binary WebSocket messages with a zero varint header",
    specSection: "WebSocket Transport › WebSocket Message Format",
    transports: ["ws"],
    async run(ctx) {
      const opened = await WsAgentConnection.open(ctx.target);
      if (!opened.ok) return fail(`WebSocket handshake failed: ${opened.error}`);
      const conn = opened.conn;
      ctx.defer(() => conn.terminate());
      const event = await conn.exchange(agentMessage(newInstanceUid(), 0, { full: true }), ctx.target.timeoutMs);
      conn.close();
      if (event.kind !== "message") return fail(describeWsEvent(event, ctx.target.timeoutMs));
      if (!event.isBinary)
        return fail(
          `the reply is a text frame: ${JSON.stringify(Buffer.from(event.raw).toString("utf8").slice(0, 60))}`,
        );
      if (event.raw[0] !== 0x00) return fail(`the reply starts with ${hex(event.raw, 4)}, not the header byte 0x00`);
      if (event.decodeError !== undefined)
        return fail(`after the header the bytes are not a ServerToAgent: ${event.decodeError}`);
      return pass(`header 0x00 + ${event.raw.length - 1} bytes of ServerToAgent`);
    },
  },
  {
    id: "server.http-protobuf-post",
    title: "An HTTP POST with Content-Type application/x-protobuf is answered 200 with a ServerToAgent body",
    specSection: "Plain HTTP Transport",
    transports: ["http"],
    async run(ctx) {
      const answer = await postMessage(ctx.target, agentMessage(newInstanceUid(), 0, { full: true }));
      if (answer.status !== 200 || answer.message === undefined) return fail(describeHttpAnswer(answer));
      const type = answer.headers?.get("content-type") ?? "(none)";
      return pass(`HTTP 200, Content-Type ${type}, ${answer.raw?.length ?? 0} bytes`);
    },
  },
  {
    id: "server.first-reply-capabilities",
    title: "The first ServerToAgent carries capabilities with AcceptsStatus and no undefined bits",
    specSection: "ServerToAgent.capabilities; Capabilities negotiation",
    transports: BOTH,
    run: (ctx) =>
      withChannel(ctx, async (channel) => {
        const result = await channel.exchange(agentMessage(newInstanceUid(), 0, { full: true }));
        if ("evidence" in result) return fail(result.evidence);
        const caps = result.reply.capabilities;
        if (!hasBit(caps, ServerCapability.AcceptsStatus))
          return fail(`capabilities 0x${caps.toString(16)} lack AcceptsStatus (0x1)`);
        const undefinedBits = caps & ~DEFINED_SERVER_BITS;
        if (undefinedBits !== 0n)
          return fail(`capabilities 0x${caps.toString(16)} set undefined bits 0x${undefinedBits.toString(16)}`);
        return pass(`capabilities 0x${caps.toString(16)}`);
      }),
  },
  {
    id: "server.answers-every-message",
    title: "Every AgentToServer (including a duplicate) gets a ServerToAgent with the same instance_uid",
    specSection: "Status reporting; Retrying messages (duplicates)",
    transports: BOTH,
    async run(ctx) {
      const uid = newInstanceUid();
      const messages = [
        agentMessage(uid, 0, { full: true }),
        agentMessage(uid, 1),
        agentMessage(uid, 2),
        agentMessage(uid, 2), // a duplicate: MUST be answered too
      ];
      const replies: ServerToAgent[] = [];
      if (ctx.transport === "ws") {
        const opened = await WsAgentConnection.open(ctx.target);
        if (!opened.ok) return fail(`WebSocket handshake failed: ${opened.error}`);
        const conn = opened.conn;
        ctx.defer(() => conn.terminate());
        // Sent back to back: the server must answer each one, not just the latest.
        for (const m of messages) conn.send(m);
        for (let i = 0; i < messages.length; i++) {
          const event = await conn.next(ctx.target.timeoutMs);
          if (event.kind !== "message" || event.message === undefined)
            return fail(
              `after ${replies.length} of ${messages.length} replies: ${describeWsEvent(event, ctx.target.timeoutMs)}`,
            );
          replies.push(event.message);
        }
        conn.close();
      } else {
        for (const m of messages) {
          const answer = await postMessage(ctx.target, m);
          if (answer.message === undefined)
            return fail(`message with sequence_num ${m.sequenceNum}: ${describeHttpAnswer(answer)}`);
          replies.push(answer.message);
        }
      }
      for (const [i, reply] of replies.entries()) {
        if (!instanceUidEquals(reply.instanceUid, uid))
          return fail(
            `reply ${i + 1} has instance_uid ${hex(reply.instanceUid, 16)}, expected ${instanceUidToString(uid)}`,
          );
      }
      return pass(`${replies.length} messages, ${replies.length} replies`);
    },
  },
  {
    id: "server.full-state-after-gap",
    title: "A gap in sequence_num is answered with the ReportFullState flag",
    specSection: "Status compression; AgentToServer.sequence_num",
    transports: BOTH,
    run: (ctx) =>
      withChannel(ctx, async (channel) => {
        const uid = newInstanceUid();
        for (const m of [agentMessage(uid, 0, { full: true }), agentMessage(uid, 1)]) {
          const r = await channel.exchange(m);
          if ("evidence" in r) return fail(`before the gap (sequence_num ${m.sequenceNum}): ${r.evidence}`);
        }
        const r = await channel.exchange(agentMessage(uid, 5));
        if ("evidence" in r) return fail(`after sequence_num 1 -> 5: ${r.evidence}`);
        if (!hasBit(r.reply.flags, ServerToAgentFlag.ReportFullState))
          return fail(
            `after sequence_num 1 -> 5 the reply does not set ReportFullState: ${describeServerToAgent(r.reply)}`,
          );
        return pass("sequence_num 1 -> 5 answered with ReportFullState");
      }),
  },
  {
    id: "server.full-state-unknown-agent",
    title: "A compressed report from an agent the server does not know is answered with ReportFullState",
    specSection: "Status compression (server without stored state)",
    transports: BOTH,
    run: (ctx) =>
      withChannel(ctx, async (channel) => {
        // As if the agent reconnected after a server restart: no description, sequence_num mid-stream.
        const r = await channel.exchange(agentMessage(newInstanceUid(), 7));
        if ("evidence" in r) return fail(r.evidence);
        if (!hasBit(r.reply.flags, ServerToAgentFlag.ReportFullState))
          return fail(`the reply does not set ReportFullState: ${describeServerToAgent(r.reply)}`);
        return pass("answered with ReportFullState");
      }),
  },
  {
    id: "server.gzip-request-body",
    title: "A gzip request body (Content-Encoding: gzip) is accepted",
    specSection: "Plain HTTP Transport › Content-Encoding",
    transports: ["http"],
    async run(ctx) {
      const uid = newInstanceUid();
      const answer = await postMessage(ctx.target, agentMessage(uid, 0, { full: true }), { gzip: true });
      if (answer.message === undefined) return fail(`gzip body: ${describeHttpAnswer(answer)}`);
      if (!instanceUidEquals(answer.message.instanceUid, uid))
        return fail(`the reply's instance_uid ${hex(answer.message.instanceUid, 16)} is not the request's`);
      if (!isSuccessReply(answer.message))
        return fail(`the gzip body was answered with an error: ${describeServerToAgent(answer.message)}`);
      return pass("HTTP 200 with a ServerToAgent");
    },
  },
  {
    id: "server.oversized-message-refused",
    title: "A message over the receive limit is refused (WS close 1009, HTTP 413)",
    specSection: "Message size limits",
    transports: BOTH,
    async run(ctx) {
      const size = ctx.maxMessageBytes + 1;
      const waitMs = Math.max(ctx.target.timeoutMs, 30_000);
      if (ctx.transport === "http") {
        const answer = await postRaw({ ...ctx.target, timeoutMs: waitMs }, messageOfSize(newInstanceUid(), size));
        if (answer.status === 413) return pass(`${size} bytes answered HTTP 413`);
        return fail(`a ${size}-byte body (limit ${ctx.maxMessageBytes}) was answered: ${describeHttpAnswer(answer)}`);
      }
      const opened = await WsAgentConnection.open(ctx.target);
      if (!opened.ok) return fail(`WebSocket handshake failed: ${opened.error}`);
      const conn = opened.conn;
      ctx.defer(() => conn.terminate());
      // Header byte + payload = limit + 1.
      const frame = new Uint8Array(size);
      frame.set(messageOfSize(newInstanceUid(), size - 1), 1);
      conn.sendRaw(frame);
      const event = await conn.next(waitMs);
      if (event.kind === "close" && event.code === 1009) return pass(`${size} bytes: closed with 1009`);
      return fail(`a ${size}-byte message (limit ${ctx.maxMessageBytes}) got ${describeWsEvent(event, waitMs)}`);
    },
  },
  {
    id: "server.garbage-refused",
    title: "Bytes that are not an AgentToServer are refused and other agents are still served",
    specSection: "Errors › BadRequest; WebSocket Message Format",
    transports: BOTH,
    async run(ctx) {
      const peerUid = newInstanceUid();
      if (ctx.transport === "http") {
        const peerFirst = await postMessage(ctx.target, agentMessage(peerUid, 0, { full: true }));
        if (peerFirst.message === undefined)
          return fail(`the well-behaved agent's first message: ${describeHttpAnswer(peerFirst)}`);
        const garbage = await postRaw(ctx.target, GARBAGE_PROTOBUF);
        const refusal = describeHttpAnswer(garbage);
        if (garbage.status === 200 && garbage.message !== undefined) {
          const err = garbage.message.errorResponse;
          if (err === undefined)
            return fail(`garbage was answered as a success: ${describeServerToAgent(garbage.message)}`);
          if (err.type !== ServerErrorResponseType.ServerErrorResponseType_BadRequest)
            return fail(`garbage was answered with error type ${err.type}, not BadRequest`);
        } else if (garbage.status < 400 || garbage.status >= 500) {
          return fail(`garbage was answered with ${refusal}, not a 4xx or a BadRequest`);
        }
        const peerNext = await postMessage(ctx.target, agentMessage(peerUid, 1));
        if (peerNext.message === undefined)
          return fail(`after the garbage, the other agent got ${describeHttpAnswer(peerNext)}`);
        return pass(
          `garbage answered ${garbage.status === 200 ? "200 with BadRequest" : refusal}; the other agent still served`,
        );
      }
      const peerOpen = await WsAgentConnection.open(ctx.target);
      if (!peerOpen.ok) return fail(`WebSocket handshake failed: ${peerOpen.error}`);
      const peer = peerOpen.conn;
      ctx.defer(() => peer.terminate());
      const first = await peer.exchange(agentMessage(peerUid, 0, { full: true }), ctx.target.timeoutMs);
      if (first.kind !== "message")
        return fail(`the well-behaved agent's first message: ${describeWsEvent(first, ctx.target.timeoutMs)}`);
      const badOpen = await WsAgentConnection.open(ctx.target);
      if (!badOpen.ok) return fail(`WebSocket handshake failed: ${badOpen.error}`);
      const bad = badOpen.conn;
      ctx.defer(() => bad.terminate());
      const frame = new Uint8Array(GARBAGE_PROTOBUF.length + 1);
      frame.set(GARBAGE_PROTOBUF, 1);
      bad.sendRaw(frame);
      const peerNext = await peer.exchange(agentMessage(peerUid, 1), ctx.target.timeoutMs);
      if (peerNext.kind !== "message" || peerNext.message === undefined)
        return fail(
          `after another connection sent garbage, the well-behaved agent got ${describeWsEvent(peerNext, ctx.target.timeoutMs)}`,
        );
      const onBad = await bad.next(Math.min(ctx.target.timeoutMs, 1000));
      let what: string;
      if (onBad.kind === "message") {
        const err = onBad.message?.errorResponse;
        if (onBad.message !== undefined && err === undefined)
          return fail(`garbage was answered as a success: ${describeServerToAgent(onBad.message)}`);
        if (err !== undefined && err.type !== ServerErrorResponseType.ServerErrorResponseType_BadRequest)
          return fail(`garbage was answered with error type ${err.type}, not BadRequest`);
        what = "answered with BadRequest";
      } else if (onBad.kind === "close") {
        what = `connection closed with ${onBad.code}`;
      } else {
        what = "ignored (no reply)";
      }
      peer.close();
      bad.close();
      return pass(`garbage ${what}; the other agent still served`);
    },
  },
  {
    id: "server.agent-disconnect",
    title: "agent_disconnect is handled: the close completes and the agent can come back",
    specSection: "AgentDisconnect; WebSocket Transport › Closing",
    transports: BOTH,
    async run(ctx) {
      const uid = newInstanceUid();
      if (ctx.transport === "http") {
        const first = await postMessage(ctx.target, agentMessage(uid, 0, { full: true }));
        if (first.message === undefined) return fail(`first message: ${describeHttpAnswer(first)}`);
        const bye = await postMessage(ctx.target, agentMessage(uid, 1, { disconnect: true }));
        if (bye.message === undefined) return fail(`the agent_disconnect message got ${describeHttpAnswer(bye)}`);
        const back = await postMessage(ctx.target, agentMessage(uid, 2));
        if (back.message === undefined) return fail(`coming back after agent_disconnect: ${describeHttpAnswer(back)}`);
        return pass("agent_disconnect answered; the agent was served again afterwards");
      }
      const opened = await WsAgentConnection.open(ctx.target);
      if (!opened.ok) return fail(`WebSocket handshake failed: ${opened.error}`);
      const conn = opened.conn;
      ctx.defer(() => conn.terminate());
      const first = await conn.exchange(agentMessage(uid, 0, { full: true }), ctx.target.timeoutMs);
      if (first.kind !== "message") return fail(`first message: ${describeWsEvent(first, ctx.target.timeoutMs)}`);
      // spec: the last message carries agent_disconnect, then the client sends Close.
      conn.send(agentMessage(uid, 1, { disconnect: true }));
      conn.close(1000);
      let closed: WsEvent;
      do closed = await conn.next(ctx.target.timeoutMs);
      while (closed.kind === "message");
      if (closed.kind !== "close") return fail("the server did not complete the close handshake");
      const again = await WsAgentConnection.open(ctx.target);
      if (!again.ok) return fail(`reconnecting after agent_disconnect: ${again.error}`);
      ctx.defer(() => again.conn.terminate());
      const back = await again.conn.exchange(agentMessage(uid, 2), ctx.target.timeoutMs);
      again.conn.close();
      if (back.kind !== "message" || back.message === undefined)
        return fail(`coming back after agent_disconnect: ${describeWsEvent(back, ctx.target.timeoutMs)}`);
      return pass(`close completed (code ${closed.code}); the agent was served again on a new connection`);
    },
  },
  {
    id: "server.new-instance-uid",
    title: "RequestInstanceUid is answered with a 16-byte new_instance_uid that the server then uses",
    specSection: "AgentToServer.flags (RequestInstanceUid); AgentIdentification",
    transports: BOTH,
    run: (ctx) =>
      withChannel(ctx, async (channel) => {
        const uid = newInstanceUid();
        const r = await channel.exchange(
          agentMessage(uid, 0, { full: true, flags: AgentToServerFlag.RequestInstanceUid }),
        );
        if ("evidence" in r) return fail(r.evidence);
        const assigned = r.reply.agentIdentification?.newInstanceUid;
        if (assigned === undefined)
          return notApplicable("the server does not assign instance UIDs (no agent_identification)");
        if (assigned.length !== INSTANCE_UID_BYTES) return fail(`new_instance_uid is ${assigned.length} bytes, not 16`);
        if (instanceUidEquals(assigned, uid)) return fail("new_instance_uid equals the UID the agent already has");
        if (!instanceUidEquals(r.reply.instanceUid, uid))
          return fail(`the reply's instance_uid ${hex(r.reply.instanceUid, 16)} is not the request's`);
        const next = await channel.exchange(agentMessage(assigned, 1, { full: true }));
        if ("evidence" in next) return fail(`using the new UID: ${next.evidence}`);
        if (!instanceUidEquals(next.reply.instanceUid, assigned))
          return fail(`the reply to the new UID carries instance_uid ${hex(next.reply.instanceUid, 16)}`);
        return pass(`assigned ${instanceUidToString(assigned)}`);
      }),
  },
  {
    id: "server.auth-required",
    title: "A request without the credential is refused with HTTP 401",
    specSection: "Security › Authentication",
    transports: BOTH,
    appliesWhen: (ctx) => (ctx.authRequired ? true : "the operator did not say authentication is required"),
    async run(ctx) {
      if (ctx.transport === "http") {
        const answer = await postMessage(ctx.target, agentMessage(newInstanceUid(), 0, { full: true }), {
          withTargetHeaders: false,
        });
        if (answer.status === 401) return pass("HTTP 401");
        return fail(`without credentials the POST got ${describeHttpAnswer(answer)}`);
      }
      const opened = await WsAgentConnection.open(ctx.target, {});
      if (opened.ok) {
        opened.conn.terminate();
        return fail("the WebSocket handshake succeeded without credentials");
      }
      if (opened.status === 401) return pass("handshake answered HTTP 401");
      return fail(`without credentials: ${opened.error}`);
    },
  },
];
