/**
 * Events of {@link OpAMPGateway}. They observe; listeners cannot change what the gateway
 * does, and none fires after `stop()` resolves.
 */
import type { OpampError } from "../wire/errors.js";
import type { LinkCloseReason } from "./link.js";

/** One agent connection as the gateway holds it (a snapshot). */
export interface GatewayAgent {
  /** The gateway's number for the connection (an HTTP agent keeps one across polls). */
  readonly id: number;
  /** How the agent connects: one WebSocket, or HTTP polls. */
  readonly transport: "websocket" | "http";
  /** The agent's address as the gateway saw it. */
  readonly remoteAddress: string | undefined;
  /** Instance UIDs it spoke for (one for an agent, many for a chained gateway). */
  readonly instanceUids: readonly string[];
  /** The upstream connection it is assigned to (`upstream-<i>`), if any. */
  readonly upstream: string | undefined;
}

/** Why an agent connection ended. */
export type GatewayDisconnectReason = LinkCloseReason;

/** Events of {@link OpAMPGateway}. */
export interface GatewayEvents {
  /** An agent's WebSocket was accepted, or an HTTP agent polled for the first time. */
  agentConnected: (agent: GatewayAgent) => void;
  /** An agent connection ended (closed by the agent, refused, too slow, stopped…). */
  agentDisconnected: (agent: GatewayAgent, reason: GatewayDisconnectReason) => void;
  /**
   * An agent moved to another upstream connection because its own dropped; it stayed
   * connected and was asked for its full state.
   */
  agentMoved: (agent: GatewayAgent, from: string | undefined, to: string) => void;
  /** An upstream connection opened (`upstream-<i>`, or `agent-<n>` in pass-through mode). */
  upstreamConnected: (id: string) => void;
  /** An open upstream connection closed; it reconnects with backoff. */
  upstreamDisconnected: (id: string, error: OpampError) => void;
  /**
   * Something went wrong that no caller waits on: an upstream that refuses or cannot be
   * reached, a malformed server message (dropped), a slow agent dropped (`limit_exceeded`),
   * an authentication that timed out, a hook that threw.
   */
  error: (error: OpampError) => void;
}
