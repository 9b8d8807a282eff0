/**
 * The upstream pool: N self-healing WebSockets (`upstream-<i>`), the links assigned to
 * each (least connections, ties at random), and the delegated authentications waiting
 * for their `connectResult` on each.
 */
import {
  agentControlFrame,
  encodeGatewayConnect,
  GATEWAY_CAPABILITY,
  GATEWAY_CONNECT,
} from "../wire/gateway-protocol.js";
import { type AgentLink, Fifo } from "./link.js";
import type { ResolvedGatewayOptions } from "./options.js";
import { UpstreamConnection, type UpstreamHandler } from "./upstream-connection.js";

/** What one pool member holds besides its socket. */
export interface PoolMember {
  readonly upstream: UpstreamConnection;
  /** Links assigned to it: the count least-connections compares is this set's size. */
  readonly links: Set<AgentLink>;
  /** Links with queued messages, served in turn. */
  readonly ready: Fifo<AgentLink>;
  /** The encoded custom_capabilities field injected into agents' first messages. */
  inject: Uint8Array | undefined;
  /** The server understands opamp-sdk's `attach` (it listed the extension capability). */
  extension: boolean;
  /** `connect`s waiting for their `connectResult`, by request UID. */
  readonly pending: Map<string, (result: AuthOutcome) => void>;
}

/** The answer to a delegated authentication. */
export type AuthOutcome =
  | { readonly t: "accepted"; readonly requestUid: string }
  | { readonly t: "refused"; readonly status: number; readonly headers: Readonly<Record<string, string>> }
  | { readonly t: "timeout" }
  | { readonly t: "unavailable" };

/** The pool of one gateway run. */
export class UpstreamPool {
  readonly members: PoolMember[] = [];
  readonly #byUpstream = new Map<UpstreamConnection, PoolMember>();

  constructor(readonly options: ResolvedGatewayOptions) {}

  /** Creates the pool's connections and starts them; `handler` hears what they do. */
  start(handler: UpstreamHandler): void {
    const o = this.options;
    for (let i = 0; i < o.connections; i++) {
      const id = `upstream-${i}`;
      const upstream = new UpstreamConnection(
        id,
        {
          url: o.upstreamUrl,
          headers: { ...o.upstreamHeaders, "X-Opamp-Gateway-Connection-Id": id },
          tls: o.upstreamTls,
          clock: o.clock,
          backoff: o.retry,
          random: o.random,
          maxMessageBytes: o.maxMessageBytes,
          pingIntervalMs: o.wsPingIntervalMs,
          closeTimeoutMs: o.stopTimeoutMs,
        },
        handler,
      );
      const member: PoolMember = {
        upstream,
        links: new Set(),
        ready: new Fifo(),
        inject: undefined,
        extension: false,
        pending: new Map(),
      };
      this.#byUpstream.set(upstream, member);
      this.members.push(member);
      upstream.start();
    }
  }

  /** The member of `upstream`, if it is one of the pool's. */
  member(upstream: UpstreamConnection): PoolMember | undefined {
    return this.#byUpstream.get(upstream);
  }

  /** Least connections among open members (but `except`); ties broken at random. */
  pick(except?: UpstreamConnection): PoolMember | undefined {
    let best: PoolMember[] = [];
    let fewest = Number.POSITIVE_INFINITY;
    for (const member of this.members) {
      if (!member.upstream.open || member.upstream === except) continue;
      const n = member.links.size;
      if (n < fewest) {
        fewest = n;
        best = [member];
      } else if (n === fewest) {
        best.push(member);
      }
    }
    if (best.length <= 1) return best[0];
    return best[Math.floor(this.options.random() * best.length)];
  }

  /** Moves a link's assignment to `member` (the only place counts change but release). */
  assignTo(link: AgentLink, member: PoolMember): void {
    if (link.upstream !== undefined) this.#byUpstream.get(link.upstream)?.links.delete(link);
    link.upstream = member.upstream;
    member.links.add(link);
  }

  /**
   * Sends a `connect` for the link's request on its upstream and waits for the answer,
   * at most `auth.timeoutMs` (then `timeout`); `unavailable` when the upstream is not open
   * or closes first.
   */
  authenticate(link: AgentLink): Promise<AuthOutcome> {
    const upstream = link.upstream;
    const member = upstream === undefined ? undefined : this.#byUpstream.get(upstream);
    if (member === undefined || !member.upstream.open) return Promise.resolve({ t: "unavailable" });
    const requestUid = globalThis.crypto.randomUUID();
    const frame = agentControlFrame(
      GATEWAY_CAPABILITY,
      GATEWAY_CONNECT,
      encodeGatewayConnect({ requestUid, remoteAddress: link.auth.remoteAddress, headers: link.auth.headers }),
    );
    return new Promise<AuthOutcome>((resolve) => {
      const clock = this.options.clock;
      const timer = clock.setTimeout(() => {
        member.pending.delete(requestUid);
        resolve({ t: "timeout" });
      }, this.options.authTimeoutMs);
      member.pending.set(requestUid, (outcome) => {
        clock.clearTimeout(timer);
        member.pending.delete(requestUid);
        resolve(outcome);
      });
      if (!member.upstream.send(frame)) member.pending.get(requestUid)?.({ t: "unavailable" });
    });
  }

  /** Ends every authentication still waiting (stop). */
  abortAuthentications(): void {
    for (const member of this.members) for (const settle of [...member.pending.values()]) settle({ t: "unavailable" });
  }

  /** Stops every member (close handshakes within the stop timeout). */
  async stop(): Promise<void> {
    await Promise.all(this.members.map((m) => m.upstream.stop()));
  }
}
