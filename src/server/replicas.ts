/**
 * What a server does with a bus (see bus.ts): it claims the agents that connect to it and
 * releases those that leave; it forwards a push for an agent held by another replica to
 * that replica and waits for its answer; and when an agent moves here from another replica
 * it tells that replica to let go, then picks up any desired state set there meanwhile.
 */
import type { TimerHandle } from "../internal/clock.js";
import { isOpampErrorCode, OpampError } from "../wire/errors.js";
import type { BusMember, ServerBus } from "./bus.js";
import type { ServerCore } from "./core.js";

/** A push carried out by the replica holding the agent. */
export type ForwardedRequest =
  | { readonly op: "remoteConfig" | "packages" | "connectionSettings"; readonly data: Uint8Array }
  | { readonly op: "restart" | "fullState" }
  | { readonly op: "custom"; readonly capability: string; readonly type: string; readonly data: Uint8Array };

/** Runs a forwarded push on this replica's own agent. */
export type ForwardedExecutor = (instanceUid: string, request: ForwardedRequest) => Promise<void>;

/** Bus messages between replicas (JSON; bytes as base64). */
type Wire =
  | {
      t: "push";
      id: number;
      uid: string;
      op: ForwardedRequest["op"];
      data?: string;
      capability?: string;
      type?: string;
    }
  | { t: "result"; id: number; code?: string; message?: string }
  | { t: "taken"; uid: string }
  | { t: "released"; uid: string };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

function fromBase64(text: string | undefined): Uint8Array {
  return new Uint8Array(Buffer.from(text ?? "", "base64"));
}

/** Bus messages may carry a whole pushed config; anything much larger than a message is refused. */
const BUS_OVERHEAD_BYTES = 64 * 1024;

interface Pending {
  readonly resolve: () => void;
  readonly reject: (error: OpampError) => void;
  readonly timer: TimerHandle;
}

/** The bus side of one server. */
export class Replicas {
  readonly replicaId: string;
  #member: BusMember | undefined;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  /** Agents that moved here, waiting for the previous replica to let go. */
  readonly #awaitingRelease = new Map<string, TimerHandle>();

  constructor(
    private readonly core: ServerCore,
    private readonly bus: ServerBus,
    replicaId: string,
    private readonly execute: ForwardedExecutor,
  ) {
    this.replicaId = replicaId;
  }

  /** Joins the bus. */
  async join(): Promise<void> {
    try {
      this.#member = await this.bus.join(this.replicaId, (from, payload) => this.#receive(from, payload));
    } catch (e) {
      throw OpampError.from(e, "storage_failed");
    }
  }

  /** Leaves the bus; requests still waiting fail with `not_running`. */
  async leave(): Promise<void> {
    const member = this.#member;
    this.#member = undefined;
    const clock = this.core.options.clock;
    for (const [id, p] of this.#pending) {
      clock.clearTimeout(p.timer);
      p.reject(new OpampError("not_running", "the server stopped before the other replica answered"));
      this.#pending.delete(id);
    }
    for (const timer of this.#awaitingRelease.values()) clock.clearTimeout(timer);
    this.#awaitingRelease.clear();
    if (member !== undefined) await member.leave().catch((e) => this.core.reportError(e, "storage_failed"));
  }

  /** The agent connected here: claim it, and tell a replica that held it to let go. */
  claimed(instanceUid: string): void {
    const member = this.#member;
    if (member === undefined) return;
    member.claim([instanceUid]).then(
      (moved) => {
        const previous = moved.get(instanceUid);
        if (previous === undefined || this.#member !== member) return;
        this.#send(previous, { t: "taken", uid: instanceUid });
        // If the other replica is gone it never answers: look at the store anyway.
        const clock = this.core.options.clock;
        const existing = this.#awaitingRelease.get(instanceUid);
        if (existing !== undefined) clock.clearTimeout(existing);
        this.#awaitingRelease.set(
          instanceUid,
          clock.setTimeout(() => this.#released(instanceUid), this.core.options.busRequestTimeoutMs),
        );
      },
      (e: unknown) => this.core.reportError(e, "storage_failed"),
    );
  }

  /** The agent left this replica. */
  released(instanceUid: string): void {
    this.#member?.release([instanceUid]).catch((e: unknown) => this.core.reportError(e, "storage_failed"));
  }

  /**
   * The replica holding the agent (this one's id when it is connected here), or undefined.
   *
   * @throws OpampError (as a rejection) `storage_failed` when the bus cannot be read.
   */
  async locate(instanceUid: string): Promise<string | undefined> {
    if (this.core.agents.has(instanceUid)) return this.replicaId;
    const member = this.#requireMember();
    try {
      return await member.locate(instanceUid);
    } catch (e) {
      throw OpampError.from(e, "storage_failed");
    }
  }

  /**
   * Has the replica holding the agent carry out the push, and resolves once it has (the
   * desired state is then stored).
   *
   * @throws OpampError (as a rejection) `unknown_agent` when no live replica holds the agent,
   *   `timeout` when the holder did not answer within `limits.busRequestTimeoutMs`, or the
   *   error the holder's push raised (`capability_missing`, …).
   */
  async forward(instanceUid: string, request: ForwardedRequest): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const holder = await this.locate(instanceUid);
      // It reached this replica since the caller looked (an HTTP agent's next poll): carry
      // the push out here, as the holder would.
      if (holder === this.replicaId && this.core.agents.has(instanceUid)) {
        await this.execute(instanceUid, request);
        return;
      }
      if (holder === undefined || holder === this.replicaId) {
        throw new OpampError("unknown_agent", `agent ${instanceUid} is not connected to any replica`, {
          details: { instanceUid },
        });
      }
      try {
        await this.#request(holder, instanceUid, request);
        return;
      } catch (e) {
        // It moved on between the look-up and the push: look again, once.
        if (attempt === 0 && e instanceof OpampError && e.code === "unknown_agent") continue;
        throw e;
      }
    }
  }

  #requireMember(): BusMember {
    if (this.#member === undefined) throw new OpampError("not_running", "the server is not running");
    return this.#member;
  }

  #request(to: string, uid: string, request: ForwardedRequest): Promise<void> {
    const id = this.#nextId++;
    const message: Wire = { t: "push", id, uid, op: request.op };
    if ("data" in request) message.data = toBase64(request.data);
    if (request.op === "custom") {
      message.capability = request.capability;
      message.type = request.type;
    }
    const clock = this.core.options.clock;
    const timeoutMs = this.core.options.busRequestTimeoutMs;
    return new Promise<void>((resolve, reject) => {
      const timer = clock.setTimeout(() => {
        this.#pending.delete(id);
        reject(
          new OpampError("timeout", `replica ${to} did not answer a push for ${uid} within ${timeoutMs} ms`, {
            details: { instanceUid: uid },
          }),
        );
      }, timeoutMs);
      this.#pending.set(id, { resolve, reject, timer });
      this.#requireMember()
        .send(to, encoder.encode(JSON.stringify(message)))
        .catch((e: unknown) => {
          clock.clearTimeout(timer);
          this.#pending.delete(id);
          reject(OpampError.from(e, "storage_failed"));
        });
    });
  }

  #send(to: string, message: Wire): void {
    this.#member
      ?.send(to, encoder.encode(JSON.stringify(message)))
      .catch((e: unknown) => this.core.reportError(e, "storage_failed"));
  }

  #receive(from: string, payload: Uint8Array): void {
    if (payload.length > this.core.options.maxMessageBytes * 2 + BUS_OVERHEAD_BYTES) {
      this.core.reportError(
        new OpampError("message_too_large", `a bus message of ${payload.length} bytes from replica ${from}`, {
          details: { limit: this.core.options.maxMessageBytes },
        }),
      );
      return;
    }
    let message: Wire;
    try {
      message = JSON.parse(decoder.decode(payload)) as Wire;
    } catch (e) {
      this.core.reportError(
        new OpampError("malformed_message", `an unreadable bus message from ${from}`, { cause: e }),
      );
      return;
    }
    switch (message.t) {
      case "push":
        void this.#carryOut(from, message);
        return;
      case "result": {
        const pending = this.#pending.get(message.id);
        if (pending === undefined) return; // timed out already
        this.#pending.delete(message.id);
        this.core.options.clock.clearTimeout(pending.timer);
        if (message.code === undefined) pending.resolve();
        else {
          const code = isOpampErrorCode(message.code) ? message.code : "internal";
          pending.reject(new OpampError(code, `replica ${from}: ${message.message ?? code}`));
        }
        return;
      }
      case "taken": {
        const record = this.core.agents.get(message.uid);
        if (record !== undefined) this.core.disconnect(record, "moved");
        // Once this replica's writes have landed (a push made here a moment ago included),
        // the new holder reads the agent's desired state.
        void this.core.writesSettled().then(() => this.#send(from, { t: "released", uid: message.uid }));
        return;
      }
      case "released":
        this.#released(message.uid);
        return;
      default:
        this.core.reportError(new OpampError("malformed_message", `an unknown bus message from ${from}`));
    }
  }

  #released(uid: string): void {
    const timer = this.#awaitingRelease.get(uid);
    if (timer === undefined) return;
    this.core.options.clock.clearTimeout(timer);
    this.#awaitingRelease.delete(uid);
    void this.core.refreshDesired(uid);
  }

  async #carryOut(from: string, message: Extract<Wire, { t: "push" }>): Promise<void> {
    let request: ForwardedRequest;
    if (message.op === "restart" || message.op === "fullState") request = { op: message.op };
    else if (message.op === "custom") {
      request = {
        op: "custom",
        capability: message.capability ?? "",
        type: message.type ?? "",
        data: fromBase64(message.data),
      };
    } else request = { op: message.op, data: fromBase64(message.data) };
    let reply: Wire;
    try {
      await this.execute(message.uid, request);
      reply = { t: "result", id: message.id };
    } catch (e) {
      const error = OpampError.from(e);
      reply = { t: "result", id: message.id, code: error.code, message: error.message };
    }
    this.#send(from, reply);
  }
}
