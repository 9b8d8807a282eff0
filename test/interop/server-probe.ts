// A record of what an OpAMPServer saw, for the field-interop tests: every authentication
// (with the credential it carried), every agent event with a snapshot of the parts that
// changed, and waiters that resolve on a matching record (already seen or to come), so
// that tests wait on what the server observed and never on the clock.

import { type AgentToServer, fromKeyValues, type OpampError } from "../../src/index.js";
import type { Agent, AgentPart, AuthDecision, AuthRequest, OpAMPServer } from "../../src/server/index.js";

const STATUS_NAMES = ["UNSET", "APPLIED", "APPLYING", "FAILED"] as const;

/** A snapshot of the parts of an agent's state the tests look at. */
export interface AgentSnapshot {
  readonly id: string;
  readonly capabilities: bigint;
  readonly transport: string;
  readonly identifying: Readonly<Record<string, unknown>>;
  readonly nonIdentifying: Readonly<Record<string, unknown>>;
  readonly health: { readonly healthy: boolean; readonly status: string; readonly lastError: string } | undefined;
  readonly remoteConfig:
    | { readonly status: (typeof STATUS_NAMES)[number] | number; readonly hash: string; readonly error: string }
    | undefined;
  /** Effective config files by name, as text. */
  readonly effective: Readonly<Record<string, string>> | undefined;
  /** Available components: kind → component names; undefined when not reported. */
  readonly components: Readonly<Record<string, readonly string[]>> | undefined;
  readonly customCapabilities: readonly string[] | undefined;
}

/** One thing the server saw. */
export type ProbeRecord =
  | {
      readonly kind: "auth";
      readonly transport: string;
      /** The Authorization header as presented. */
      readonly credential: string | undefined;
      readonly accepted: boolean;
    }
  | { readonly kind: "connected"; readonly agent: AgentSnapshot }
  | { readonly kind: "updated"; readonly agent: AgentSnapshot; readonly changes: readonly AgentPart[] }
  | {
      readonly kind: "message";
      readonly agentId: string;
      readonly seq: bigint;
      readonly full: boolean;
      readonly disconnect: boolean;
      readonly transport: string;
    }
  | { readonly kind: "disconnected"; readonly agentId: string; readonly reason: string }
  | { readonly kind: "error"; readonly code: string; readonly message: string };

export const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");

/** Copies what the tests need out of a live agent. */
export function snapshot(agent: Agent<unknown>): AgentSnapshot {
  const description = agent.agentDescription;
  const health = agent.health;
  const rcs = agent.remoteConfigStatus;
  const files = agent.effectiveConfig?.configMap?.configMap;
  const components = agent.availableComponents?.components;
  return {
    id: agent.id,
    capabilities: agent.capabilities,
    transport: agent.transport,
    identifying: description ? fromKeyValues(description.identifyingAttributes) : {},
    nonIdentifying: description ? fromKeyValues(description.nonIdentifyingAttributes) : {},
    health: health && { healthy: health.healthy, status: health.status, lastError: health.lastError },
    remoteConfig: rcs && {
      status: STATUS_NAMES[rcs.status] ?? rcs.status,
      hash: hex(rcs.lastRemoteConfigHash),
      error: rcs.errorMessage,
    },
    effective:
      files &&
      Object.fromEntries(Object.entries(files).map(([name, file]) => [name, Buffer.from(file.body).toString("utf8")])),
    components:
      components &&
      Object.fromEntries(
        Object.entries(components).map(([kind, details]) => [kind, Object.keys(details.subComponentMap).sort()]),
      ),
    customCapabilities: agent.customCapabilities?.capabilities.slice(),
  };
}

/** Records everything `server` does from now on; see {@link ProbeRecord}. */
export class ServerProbe {
  readonly records: ProbeRecord[] = [];
  readonly #listeners = new Set<() => void>();

  /** Records the events of `server` from now on. */
  observe<P>(server: OpAMPServer<P>): void {
    // Listeners only read the agent; the principal's type does not matter here.
    const s = server as unknown as OpAMPServer<unknown>;
    s.on("agentConnected", (agent) => this.#push({ kind: "connected", agent: snapshot(agent) }));
    s.on("agentUpdated", (agent, changes) => this.#push({ kind: "updated", agent: snapshot(agent), changes }));
    s.on("message", (agent, message: AgentToServer) =>
      this.#push({
        kind: "message",
        agentId: agent.id,
        seq: message.sequenceNum,
        full: message.agentDescription !== undefined,
        disconnect: message.agentDisconnect !== undefined,
        transport: agent.transport,
      }),
    );
    s.on("agentDisconnected", (agent, reason) => this.#push({ kind: "disconnected", agentId: agent.id, reason }));
    s.on("error", (error: OpampError) => this.#push({ kind: "error", code: error.code, message: error.message }));
  }

  /** Wraps an `authenticate` hook so that each decision is recorded with its credential. */
  authenticate<P>(
    hook: (request: AuthRequest) => AuthDecision<P> | Promise<AuthDecision<P>>,
  ): (request: AuthRequest) => Promise<AuthDecision<P>> {
    return async (request) => {
      const decision = await hook(request);
      this.#push({
        kind: "auth",
        transport: request.transport,
        credential: request.headers["authorization"],
        accepted: decision.accept,
      });
      return decision;
    };
  }

  #push(record: ProbeRecord): void {
    this.records.push(record);
    for (const l of [...this.#listeners]) l();
  }

  /** Records of one kind. */
  of<K extends ProbeRecord["kind"]>(kind: K): Extract<ProbeRecord, { kind: K }>[] {
    return this.records.filter((r): r is Extract<ProbeRecord, { kind: K }> => r.kind === kind);
  }

  /** Accepted authentications whose credential starts with `prefix` (e.g. "Bearer xag_"). */
  accepted(prefix: string): Extract<ProbeRecord, { kind: "auth" }>[] {
    return this.of("auth").filter((r) => r.accepted && r.credential?.startsWith(prefix) === true);
  }

  /** The number of records so far: pass it as `from` to wait only for later ones. */
  get mark(): number {
    return this.records.length;
  }

  /**
   * Resolves with the first record from index `from` on for which `pick` returns a value
   * other than undefined; rejects after `timeoutMs` with what was seen, for the test log.
   */
  waitFor<T>(
    what: string,
    pick: (record: ProbeRecord, index: number) => T | undefined,
    timeoutMs: number,
    from = 0,
  ): Promise<T> {
    return new Promise((resolve, reject) => {
      let next = from;
      const check = (): void => {
        for (; next < this.records.length; next++) {
          const found = pick(this.records[next]!, next);
          if (found !== undefined) {
            finish();
            resolve(found);
            return;
          }
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(
          new Error(`timed out after ${timeoutMs} ms waiting for ${what}; the server saw:\n${this.summary(from)}`),
        );
      }, timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        this.#listeners.delete(check);
      };
      this.#listeners.add(check);
      check();
    });
  }

  /** Waits for an agent update whose snapshot satisfies `test`. */
  waitForAgent(
    what: string,
    test: (agent: AgentSnapshot, changes: readonly AgentPart[]) => boolean,
    timeoutMs: number,
    from = 0,
  ): Promise<AgentSnapshot> {
    return this.waitFor(
      what,
      (r) =>
        (r.kind === "updated" && test(r.agent, r.changes)) || (r.kind === "connected" && test(r.agent, []))
          ? r.agent
          : undefined,
      timeoutMs,
      from,
    );
  }

  /** One line per record (the last 60 from `from`), for failure messages. */
  summary(from = 0): string {
    const lines = this.records.slice(from).map((r) => {
      switch (r.kind) {
        case "auth":
          return `auth ${r.transport} ${r.accepted ? "accepted" : "refused"} ${r.credential?.slice(0, 16) ?? "(none)"}`;
        case "connected":
          return `connected ${r.agent.id} caps=0x${r.agent.capabilities.toString(16)}`;
        case "updated":
          return `updated ${r.changes.join(",")} rc=${JSON.stringify(r.agent.remoteConfig)} health=${JSON.stringify(r.agent.health)}`;
        case "message":
          return `message seq=${r.seq}${r.full ? " full" : ""}${r.disconnect ? " agent_disconnect" : ""}`;
        case "disconnected":
          return `disconnected ${r.reason}`;
        default:
          return `error ${r.code}: ${r.message}`;
      }
    });
    return lines.slice(-60).join("\n");
  }
}
