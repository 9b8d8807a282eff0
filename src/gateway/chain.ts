/**
 * Gateways chained below this one (gateway → gateway → server). A lower gateway speaks the
 * gateway protocol on its upstream connections, which are this gateway's agent
 * connections: its `connect`s go up as they are and their `connectResult`s come back to it
 * by `request_uid`; its `attach`es go up too, and route their UIDs to its connection. Each
 * agent is still authenticated by the server with its own credentials.
 */
import type { CustomMessage } from "../gen/opamp/v1/opamp_pb.js";
import { OpampError } from "../wire/errors.js";
import { encodeWsFrame } from "../wire/frame.js";
import {
  decodeGatewayAttach,
  encodeGatewayConnectResult,
  GATEWAY_ATTACH,
  GATEWAY_CAPABILITY,
  GATEWAY_CONNECT,
  GATEWAY_CONNECT_RESULT,
  GATEWAY_EXTENSION_CAPABILITY,
  peekRequestUid,
  serverControlMessage,
} from "../wire/gateway-protocol.js";
import { instanceUidFromString, instanceUidToString } from "../wire/uid.js";
import { type AgentLink, newEntry, type QueuedFrame } from "./link.js";

/** What the chain needs from the core. */
export interface ChainHost {
  enqueue(link: AgentLink, frame: QueuedFrame): void;
  route(id: string, link: AgentLink): void;
  readonly events: { emit(event: "error", error: OpampError): boolean };
}

/** The relayed requests of one gateway run. */
export class ChainedGateways {
  /** Relayed `connect`s by request UID: their answer goes back to this link. */
  readonly #relayed = new Map<string, AgentLink>();

  constructor(readonly host: ChainHost) {}

  /** A control message (empty instance UID, gateway capability) from an agent connection. */
  control(link: AgentLink, frame: Uint8Array, control: CustomMessage, receivedAt: number): void {
    if (control.capability === GATEWAY_CAPABILITY && control.type === GATEWAY_CONNECT) {
      const requestUid = peekRequestUid(control.data);
      const owner = this.#relayed.get(requestUid);
      if (requestUid === "" || (owner !== undefined && owner !== link)) {
        // No way to route the answer, or another connection's request: answer it here.
        if (requestUid !== "") this.#answerDown(link, requestUid, 400, receivedAt);
        return;
      }
      link.relaysGateway = true;
      link.relayedRequests.add(requestUid);
      this.#relayed.set(requestUid, link);
      this.host.enqueue(link, { bytes: frame, receivedAt, entry: undefined });
      return;
    }
    if (control.capability === GATEWAY_EXTENSION_CAPABILITY && control.type === GATEWAY_ATTACH) {
      let id: string;
      let bytes: Uint8Array;
      try {
        bytes = instanceUidFromString(decodeGatewayAttach(control.data).instanceUid);
        id = instanceUidToString(bytes);
      } catch (e) {
        this.host.events.emit("error", OpampError.from(e, "malformed_message"));
        return;
      }
      let entry = link.uids.get(id);
      if (entry === undefined) {
        entry = newEntry(id, bytes);
        link.uids.set(id, entry);
      }
      // The lower gateway ties the UID to its own request; its messages pass as they are.
      entry.relayed = true;
      entry.attached = true;
      this.host.route(id, link);
      this.host.enqueue(link, { bytes: frame, receivedAt, entry: undefined });
    }
    // Nothing else of the gateway protocol goes from a gateway to its server.
  }

  /**
   * A `connectResult` nobody here waits for: if it answers a relayed request, the frame goes
   * back down as it came. Returns false for a late answer (dropped).
   */
  answered(requestUid: string, frame: Uint8Array, receivedAt: number): boolean {
    const owner = this.#relayed.get(requestUid);
    if (owner === undefined) return false;
    this.#relayed.delete(requestUid);
    owner.relayedRequests.delete(requestUid);
    owner.deliver(frame, receivedAt);
    return true;
  }

  /** The link is gone: answers to its requests have nowhere to go. */
  forget(link: AgentLink): void {
    for (const requestUid of link.relayedRequests) {
      if (this.#relayed.get(requestUid) === link) this.#relayed.delete(requestUid);
    }
  }

  /** A `connectResult` made here for a chained gateway's request that cannot be relayed. */
  #answerDown(link: AgentLink, requestUid: string, status: number, receivedAt: number): void {
    const data = encodeGatewayConnectResult({ requestUid, accept: false, httpStatusCode: status, responseHeaders: {} });
    link.deliver(encodeWsFrame(serverControlMessage(GATEWAY_CAPABILITY, GATEWAY_CONNECT_RESULT, data)), receivedAt);
  }
}
