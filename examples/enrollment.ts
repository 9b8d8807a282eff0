// Enrollment with real supervisors: the recipe docs/server.md shows (section "Enrollment
// with real supervisors"), as a module. test/examples/enrollment.test.ts checks that the
// doc shows exactly this code and runs it with opamp-sdk's own client;
// test/interop/collector-supervisor.test.ts runs it against the Collector's opampsupervisor.
//
// A new agent connects with a fleet enrollment token (`Authorization: Bearer xse_…`). The
// server gives it a key of its own (`xag_…`) in an OpAMP connection-settings offer; the
// agent reconnects with that key, once, and uses it from then on. Only a SHA-256 of each
// token and key is kept, and presented credentials are compared in constant time.

import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { AgentCapability, type AgentToServer, hasBit, instanceUidToString } from "../src/index.js";
import { type AuthDecision, type AuthRequest, bearerToken, type OpAMPServer } from "../src/server/index.js";

/**
 * Who a connection is: an agent with its own key (`id` is its instance UID), or an agent
 * enrolling with a fleet token (`id` is `enroll:<fleet>`). The server binds each instance
 * UID to the `id` that first speaks for it.
 */
export type EnrollmentPrincipal =
  | { readonly kind: "agent"; readonly id: string }
  | { readonly kind: "enrolling"; readonly id: string; readonly fleet: string };

/** Agent keys, kept as SHA-256 digests. Back it with your database. */
export interface AgentKeyStore {
  /** Digests of the keys the agent may use, oldest first. */
  digests(agentId: string): Promise<readonly Uint8Array[]>;
  /** Adds the digest of a key just issued to the agent. */
  add(agentId: string, digest: Uint8Array): Promise<void>;
  /** The agent used this key: forget the keys issued before it. */
  used(agentId: string, digest: Uint8Array): Promise<void>;
}

/** An {@link AgentKeyStore} in memory (a single process, lost on restart). */
export class MemoryAgentKeyStore implements AgentKeyStore {
  readonly #keys = new Map<string, Uint8Array[]>();
  async digests(agentId: string): Promise<readonly Uint8Array[]> {
    return this.#keys.get(agentId) ?? [];
  }
  async add(agentId: string, digest: Uint8Array): Promise<void> {
    this.#keys.set(agentId, [...(this.#keys.get(agentId) ?? []), digest]);
  }
  async used(agentId: string, digest: Uint8Array): Promise<void> {
    const keys = this.#keys.get(agentId) ?? [];
    const at = keys.findIndex((d) => timingSafeEqual(d, digest));
    if (at > 0) this.#keys.set(agentId, keys.slice(at));
  }
}

export interface EnrollmentOptions {
  /** Fleet enrollment tokens (`xse_…`) by fleet name. */
  readonly enrollmentTokens: Readonly<Record<string, string>>;
  /** Where agent keys live. Default: a new {@link MemoryAgentKeyStore}. */
  readonly keys?: AgentKeyStore;
  /**
   * Heartbeat interval sent with the key, in seconds. Must be above 0: the supervisor's
   * plain-HTTP client refuses settings without one and is then left with no connection.
   * Default 30.
   */
  readonly heartbeatIntervalSeconds?: number;
  /**
   * How long an issued key is awaited: an agent that still presents the fleet token
   * within this time is not given another key (its messages may still be on their way).
   * Default 60 000 ms.
   */
  readonly pendingKeyMs?: number;
  /**
   * Whether a known instance UID may enroll again with a fleet token. A supervisor that
   * restarts has lost its key and needs to; but a fleet token then lets whoever holds it take
   * over any UID. With false, such an agent is refused until you act. Default true.
   */
  readonly allowReenrollment?: boolean;
  /** Called when a key could not be issued. Default: `console.error`. */
  readonly onError?: (error: unknown, agentId: string) => void;
}

const KEY = /^xag_([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})_[A-Za-z0-9_-]{43}$/;

function sha256(text: string): Uint8Array {
  return createHash("sha256").update(text).digest();
}

/**
 * The enrollment token → agent key exchange. Pass `authenticate`, `authorizeMessage` and
 * `allowRebind` to the server's hooks, then call `attach(server)` once.
 */
export class Enrollment {
  readonly #tokens: readonly (readonly [fleet: string, digest: Uint8Array])[];
  readonly #keys: AgentKeyStore;
  readonly #heartbeatIntervalSeconds: number;
  readonly #pendingKeyMs: number;
  readonly #allowReenrollment: boolean;
  readonly #onError: (error: unknown, agentId: string) => void;
  /** Agents with a key issued and not used yet, and when it was issued. */
  readonly #pending = new Map<string, number>();

  constructor(options: EnrollmentOptions) {
    this.#tokens = Object.entries(options.enrollmentTokens).map(([fleet, token]) => [fleet, sha256(token)] as const);
    this.#keys = options.keys ?? new MemoryAgentKeyStore();
    this.#heartbeatIntervalSeconds = options.heartbeatIntervalSeconds ?? 30;
    this.#pendingKeyMs = options.pendingKeyMs ?? 60_000;
    this.#allowReenrollment = options.allowReenrollment ?? true;
    this.#onError = options.onError ?? ((error, agentId) => console.error(`enrollment of ${agentId} failed:`, error));
  }

  /** `hooks.authenticate`: an agent key, or a fleet enrollment token; anything else is 401. */
  authenticate = async (request: AuthRequest): Promise<AuthDecision<EnrollmentPrincipal>> => {
    const token = bearerToken(request.headers);
    if (token !== undefined) {
      const digest = sha256(token);
      const agentId = KEY.exec(token)?.[1];
      if (agentId !== undefined) {
        const known = await this.#keys.digests(agentId);
        if (known.some((d) => timingSafeEqual(d, digest))) {
          this.#pending.delete(agentId);
          await this.#keys.used(agentId, digest);
          return { accept: true, principal: { kind: "agent", id: agentId } };
        }
      } else {
        const fleet = this.#tokens.find(([, d]) => timingSafeEqual(d, digest))?.[0];
        if (fleet !== undefined)
          return { accept: true, principal: { kind: "enrolling", id: `enroll:${fleet}`, fleet } };
      }
    }
    return { accept: false, status: 401, headers: { "WWW-Authenticate": "Bearer" } };
  };

  /** `hooks.authorizeMessage`: an agent key speaks only for its own agent. */
  authorizeMessage = (input: {
    readonly message: AgentToServer;
    readonly principal: EnrollmentPrincipal | undefined;
  }): boolean =>
    input.principal?.kind !== "agent" || instanceUidToString(input.message.instanceUid) === input.principal.id;

  /**
   * `hooks.allowRebind`: the key issued to a UID takes the UID over from the fleet token it
   * enrolled with, and (unless `allowReenrollment` is false) a fleet token takes a known UID
   * over again to enroll it anew.
   */
  allowRebind = (input: {
    readonly instanceUid: string;
    readonly principal: EnrollmentPrincipal | undefined;
  }): boolean =>
    input.principal?.kind === "agent"
      ? input.principal.id === input.instanceUid
      : input.principal?.kind === "enrolling" && this.#allowReenrollment;

  /**
   * Gives every agent that presents a fleet token a key of its own: a new agent, and a
   * known one that enrolls again (a supervisor keeps no offered headers across restarts).
   * A new key is a new offer with a new hash, which the agent takes and reconnects with.
   */
  attach(server: OpAMPServer<EnrollmentPrincipal>): void {
    server.on("message", (agent) => {
      if (agent.principal?.kind !== "enrolling") return;
      // An agent that cannot take connection settings stays on the fleet token.
      if (!hasBit(agent.capabilities, AgentCapability.AcceptsOpAMPConnectionSettings)) return;
      const issued = this.#pending.get(agent.id);
      if (issued !== undefined && Date.now() - issued < this.#pendingKeyMs) return;
      this.rotate(server, agent.id).catch((error: unknown) => this.#onError(error, agent.id));
    });
  }

  /**
   * Issues a new key to a connected agent and offers it; the agent reconnects with it, and
   * its older keys stop working once it does. Use it to rotate keys, or when an agent that
   * cannot report connection-settings status must be given settings again.
   */
  async rotate(server: OpAMPServer<EnrollmentPrincipal>, agentId: string): Promise<void> {
    const key = `xag_${agentId}_${randomBytes(32).toString("base64url")}`;
    this.#pending.set(agentId, Date.now());
    try {
      await this.#keys.add(agentId, sha256(key));
      // No destinationEndpoint: the server fills in the endpoint this agent connected to.
      await server.offerConnectionSettings(agentId, {
        opamp: {
          headers: { Authorization: `Bearer ${key}` },
          heartbeatIntervalSeconds: BigInt(this.#heartbeatIntervalSeconds),
        },
      });
    } catch (error) {
      this.#pending.delete(agentId);
      throw error;
    }
  }
}
