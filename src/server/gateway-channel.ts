/**
 * The server's side of a gateway connection: one WebSocket that relays many agents and
 * delegates each agent's authentication to this server.
 *
 * - `connect` (Bindplane's handshake): `authenticate` runs on the headers and address the
 *   gateway forwards; the answer is a `connectResult`. An accepted request is kept with its
 *   principal.
 * - `attach` (opamp-sdk's extension): ties an instance UID to an accepted request. The
 *   agent's messages then speak with that request's principal: the UID is bound to it and
 *   `authorizeMessage` sees it.
 * - `refused` (extension, server → gateway): a message of one relayed agent was refused;
 *   the gateway closes that agent's connection. The shared connection carries on.
 *
 * Created on the first control message, so a plain agent's connection costs nothing here.
 */
import type { CustomMessage } from "../gen/opamp/v1/opamp_pb.js";
import { OpampError } from "../wire/errors.js";
import { encodeWsFrame } from "../wire/frame.js";
import {
  decodeGatewayAttach,
  decodeGatewayConnect,
  encodeGatewayConnectResult,
  encodeGatewayRefused,
  GATEWAY_ATTACH,
  GATEWAY_CAPABILITY,
  GATEWAY_CONNECT,
  GATEWAY_CONNECT_RESULT,
  GATEWAY_EXTENSION_CAPABILITY,
  GATEWAY_REFUSED,
  type GoHeaders,
  peekRequestUid,
  serverControlMessage,
} from "../wire/gateway-protocol.js";
import { instanceUidFromString, instanceUidToString } from "../wire/uid.js";
import { authenticate, retryAfterSeconds } from "./auth.js";
import type { CoreConnection, ServerCore } from "./core.js";
import type { AuthDecision, AuthRequest, GatewayInfo } from "./types.js";

/** One request a gateway forwarded and `authenticate` accepted. */
interface AcceptedRequest {
  readonly id: string;
  /** How the core sees messages spoken under this request. */
  readonly conn: CoreConnection;
  /** UIDs attached to it; when the last one goes, so does the request. */
  readonly uids: Set<string>;
  /** Clock time of acceptance; one never attached expires after the handshake timeout. */
  readonly acceptedAt: number;
  /** A UID was attached to it once (an agent that spoke; its request outlives a UID moving away). */
  attachedOnce: boolean;
}

/** Go header lists to the lower-case, comma-joined record `authenticate` takes. */
function flattenGoHeaders(headers: GoHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, values] of Object.entries(headers)) {
    if (values.length === 0) continue;
    const key = name.toLowerCase();
    const joined = values.join(", ");
    out[key] = out[key] === undefined ? joined : `${out[key]}, ${joined}`;
  }
  return out;
}

/**
 * The host part of a Go `RemoteAddr` (`10.0.0.7:53122` → `10.0.0.7`, `[::1]:5000` →
 * `::1`), so a relayed agent's address reads like a direct one's. A bare address is kept.
 */
export function hostOfAddress(address: string): string | undefined {
  if (address === "") return undefined;
  if (address.startsWith("[")) {
    const end = address.indexOf("]");
    return end > 0 ? address.slice(1, end) : address;
  }
  const colon = address.lastIndexOf(":");
  // Exactly one colon: host:port. More: a bare IPv6 address.
  if (colon > 0 && address.indexOf(":") === colon) return address.slice(0, colon);
  return address;
}

/** Control state of one gateway WebSocket. */
export class GatewayChannel {
  readonly #requests = new Map<string, AcceptedRequest>();
  /** Accepted requests no UID is attached to yet, oldest first (for expiry). */
  readonly #unattached = new Map<string, AcceptedRequest>();
  readonly #uids = new Map<string, AcceptedRequest>();
  readonly #gateway: GatewayInfo;
  /** The gateway's own connection, as unattached agents speak under it when trusted. */
  #trusted: CoreConnection | undefined;
  #pending = 0;
  #active = false;

  constructor(
    readonly core: ServerCore,
    /** The WebSocket's own connection (the gateway's principal). */
    readonly base: CoreConnection,
    /** Writes one WebSocket message to the gateway; false when it was dropped. */
    readonly send: (frame: Uint8Array) => boolean,
  ) {
    this.#gateway = { principal: base.principal, remoteAddress: base.remoteAddress };
  }

  /** True once the connection sent a `connect`: its UIDs then need an accepted request. */
  get active(): boolean {
    return this.#active;
  }

  /**
   * Handles one control message (empty instance UID, gateway capability). `connect` runs
   * the hook and answers when it is done, without holding up the connection's other
   * messages; `attach` takes effect at once, so the agent message after it sees it.
   */
  handle(message: CustomMessage): void {
    if (message.capability === GATEWAY_CAPABILITY && message.type === GATEWAY_CONNECT) {
      void this.#connect(message.data);
    } else if (message.capability === GATEWAY_EXTENSION_CAPABILITY && message.type === GATEWAY_ATTACH) {
      this.#attach(message.data);
    } else {
      this.core.reportError(
        new OpampError(
          "malformed_message",
          `gateway control message ${message.capability}/${message.type} is not known: ignored`,
        ),
      );
    }
  }

  /**
   * The connection a relayed agent's message speaks under: its attached request's, the
   * gateway's own when `gateways.trustUnattached`, else undefined (refused).
   */
  connectionFor(uid: string): CoreConnection | undefined {
    const request = this.#uids.get(uid);
    if (request !== undefined) return request.conn;
    if (!this.core.options.trustUnattachedGatewayAgents) return undefined;
    this.#trusted ??= { ...this.base, gateway: this.#gateway };
    return this.#trusted;
  }

  /** The agent said goodbye: its UID is no longer tied to the request it spoke under, which ends with it. */
  detach(uid: string, conn: CoreConnection): void {
    const request = this.#uids.get(uid);
    if (request === undefined || request.conn !== conn) return;
    this.#uids.delete(uid);
    request.uids.delete(uid);
    if (request.uids.size === 0) {
      this.#requests.delete(request.id);
      this.#unattached.delete(request.id);
    }
  }

  /**
   * A UID moved to another request (an HTTP agent's next poll, another agent claiming it).
   * The old request stays usable, as unattached: its agent may attach again. Unattached
   * requests are bounded (the oldest goes first) rather than timed, except those never
   * attached, which expire with the handshake timeout.
   */
  #moveAway(uid: string, request: AcceptedRequest): void {
    this.#uids.delete(uid);
    request.uids.delete(uid);
    if (request.uids.size === 0) this.#unattached.set(request.id, request);
  }

  /**
   * Tells the gateway that a relayed agent was refused: it closes that agent's connection
   * with what a direct agent would have got (1008 / 403 for an authorization refusal).
   */
  refuse(uid: Uint8Array, error: OpampError): void {
    const authz = error.code === "unauthenticated";
    const data = encodeGatewayRefused({
      httpStatusCode: authz ? 403 : 500,
      wsCloseCode: authz ? 1008 : 1011,
      reason: authz ? error.message : "internal error",
    });
    this.send(
      encodeWsFrame(serverControlMessage(GATEWAY_EXTENSION_CAPABILITY, GATEWAY_REFUSED, data, { instanceUid: uid })),
    );
  }

  /** The custom capabilities sent with every connectResult: the server's, and the gateway protocol's. */
  #capabilities(): readonly string[] {
    return [...this.core.options.customCapabilities, GATEWAY_CAPABILITY, GATEWAY_EXTENSION_CAPABILITY];
  }

  #answer(requestUid: string, accept: boolean, status: number, headers: Readonly<Record<string, string>>): void {
    const data = encodeGatewayConnectResult({
      requestUid,
      accept,
      httpStatusCode: status,
      responseHeaders: headers,
    });
    this.send(
      encodeWsFrame(
        serverControlMessage(GATEWAY_CAPABILITY, GATEWAY_CONNECT_RESULT, data, {
          customCapabilities: this.#capabilities(),
        }),
      ),
    );
  }

  /**
   * Drops requests that no UID was attached to within the handshake timeout, and the
   * oldest unattached ones beyond `limits.maxAgentsPerConnection`.
   */
  #expire(): void {
    const deadline = this.core.options.clock.now() - this.core.options.handshakeTimeoutMs;
    for (const request of [...this.#unattached.values()]) {
      if (request.attachedOnce || request.acceptedAt > deadline) continue;
      this.#drop(request);
    }
    const max = this.core.options.maxAgentsPerConnection;
    for (const request of this.#unattached.values()) {
      if (this.#unattached.size < max) break;
      this.#drop(request);
    }
  }

  #drop(request: AcceptedRequest): void {
    this.#unattached.delete(request.id);
    if (request.uids.size === 0) this.#requests.delete(request.id);
  }

  async #connect(data: Uint8Array): Promise<void> {
    const options = this.core.options;
    const retry = { "Retry-After": retryAfterSeconds(options.retryAfterMs) };
    let requestUid: string;
    let forwarded: AuthRequest;
    try {
      const connect = decodeGatewayConnect(data);
      requestUid = connect.requestUid;
      const headers = flattenGoHeaders(connect.headers);
      forwarded = {
        headers,
        url: new URL(this.base.endpoint),
        remoteAddress: hostOfAddress(connect.remoteAddress),
        // The agent's TLS ended at the gateway: the server has no verdict of its own on it.
        tlsPeerCertificate: undefined,
        tlsAuthorized: false,
        transport: headers["upgrade"] === undefined ? "http" : "websocket",
        gateway: this.#gateway,
      };
    } catch (e) {
      this.core.reportError(e, "malformed_message");
      const id = peekRequestUid(data);
      if (id !== "") this.#answer(id, false, 400, {});
      return;
    }
    this.#active = true;
    this.#expire();
    if (this.#requests.has(requestUid)) {
      this.#answer(requestUid, false, 400, {});
      return;
    }
    // Requests waiting on the hook are bounded like agents are.
    if (this.#pending >= options.maxAgentsPerConnection) {
      this.core.reportError(
        new OpampError(
          "limit_exceeded",
          `gateway connection from ${this.base.remoteAddress} has ${options.maxAgentsPerConnection} ` +
            "authentications in progress: connect refused with 503",
          { details: { limit: options.maxAgentsPerConnection } },
        ),
      );
      this.#answer(requestUid, false, 503, retry);
      return;
    }
    this.#pending++;
    let decision: AuthDecision;
    try {
      // Counted by the agent's forwarded address (authThrottleKey), as if it came itself.
      decision = await authenticate(options.authenticate, forwarded, this.core.authLimits(forwarded));
    } catch (e) {
      const error = OpampError.from(e, "hook_failed");
      if (error.code !== "aborted") this.core.reportError(error);
      const later = error.code === "timeout" || error.code === "aborted";
      decision = { accept: false, status: later ? 503 : 500, ...(later ? { headers: retry } : {}) };
    } finally {
      this.#pending--;
    }
    if (!decision.accept) {
      this.#answer(requestUid, false, decision.status, decision.headers ?? {});
      return;
    }
    if (!this.core.accepting) {
      this.#answer(requestUid, false, 503, retry);
      return;
    }
    const request: AcceptedRequest = {
      id: requestUid,
      conn: {
        transport: "websocket",
        principal: decision.principal,
        remoteAddress: forwarded.remoteAddress,
        channel: this.base.channel,
        endpoint: this.base.endpoint,
        gateway: this.#gateway,
      },
      uids: new Set(),
      acceptedAt: options.clock.now(),
      attachedOnce: false,
    };
    this.#requests.set(requestUid, request);
    this.#unattached.set(requestUid, request);
    this.#answer(requestUid, true, 200, {});
  }

  #attach(data: Uint8Array): void {
    let uid: string;
    let requestUid: string;
    let uidBytes: Uint8Array;
    try {
      const attach = decodeGatewayAttach(data);
      uidBytes = instanceUidFromString(attach.instanceUid);
      uid = instanceUidToString(uidBytes);
      requestUid = attach.requestUid;
    } catch (e) {
      this.core.reportError(e, "malformed_message");
      return;
    }
    this.#active = true;
    const request = this.#requests.get(requestUid);
    if (request === undefined) {
      // Unknown or expired: the agent is not authenticated here.
      const previous = this.#uids.get(uid);
      if (previous !== undefined) this.#moveAway(uid, previous);
      this.refuse(
        uidBytes,
        new OpampError("unauthenticated", `gateway attached ${uid} to unknown request ${requestUid}`),
      );
      return;
    }
    const previous = this.#uids.get(uid);
    if (previous === request) return;
    if (previous !== undefined) this.#moveAway(uid, previous);
    request.uids.add(uid);
    request.attachedOnce = true;
    this.#uids.set(uid, request);
    this.#unattached.delete(requestUid);
  }
}
