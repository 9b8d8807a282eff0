/**
 * The transport-blind heart of the client: what the agent's status is, what the server
 * last saw of it, and which AgentToServer goes out next. No sockets, no timers, no
 * hooks: transports pull messages from it, the client pushes state into it.
 */
// spec: Status Compression; spec: Status Reporting (coalescing, loop avoidance)
import { create, type DescMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";
import {
  AgentDescriptionSchema,
  AgentDisconnectSchema,
  type AgentToServer,
  AgentToServerSchema,
  type AvailableComponents,
  AvailableComponentsSchema,
  ComponentHealthSchema,
  type ConnectionSettingsRequest,
  ConnectionSettingsStatusSchema,
  CustomCapabilitiesSchema,
  type CustomMessage,
  EffectiveConfigSchema,
  PackageStatusesSchema,
  RemoteConfigStatusSchema,
} from "../gen/opamp/v1/opamp_pb.js";
import { sameBytes } from "../wire/bytes.js";
import { AgentToServerFlag } from "../wire/capabilities.js";
import { OpampError } from "../wire/errors.js";

/** The compressible sub-messages of AgentToServer, each sent only when it changed. */
export const COMPRESSIBLE_FIELDS = [
  "agentDescription",
  "health",
  "effectiveConfig",
  "remoteConfigStatus",
  "packageStatuses",
  "customCapabilities",
  "availableComponents",
  "connectionSettingsStatus",
] as const;

/** One of {@link COMPRESSIBLE_FIELDS}. */
export type CompressibleField = (typeof COMPRESSIBLE_FIELDS)[number];

type FieldValue<F extends CompressibleField> = NonNullable<AgentToServer[F]>;

const SCHEMAS: { readonly [F in CompressibleField]: DescMessage } = {
  agentDescription: AgentDescriptionSchema,
  health: ComponentHealthSchema,
  effectiveConfig: EffectiveConfigSchema,
  remoteConfigStatus: RemoteConfigStatusSchema,
  packageStatuses: PackageStatusesSchema,
  customCapabilities: CustomCapabilitiesSchema,
  availableComponents: AvailableComponentsSchema,
  connectionSettingsStatus: ConnectionSettingsStatusSchema,
};

function encode<F extends CompressibleField>(field: F, value: FieldValue<F>): Uint8Array {
  const schema: DescMessage = SCHEMAS[field];
  return toBinary(schema, value as MessageShape<DescMessage>);
}

interface QueuedCustomMessage {
  readonly message: CustomMessage;
  readonly resolve: () => void;
  readonly reject: (error: OpampError) => void;
}

/** Why a message is wanted; see TransportHost.takeMessage. */
export type TakeReason = "connect" | "pending" | "heartbeat" | "poll";

/**
 * Status, compression and sequencing for one agent. Not thread-safe by design: all
 * calls come from the client's single event loop.
 */
export class ClientCore {
  #instanceUid: Uint8Array;
  #sequenceNum = 0n;
  #capabilities = 0n;
  #lastSentCapabilities: bigint | undefined;
  #requestUid = false;
  #lastSentFlags: bigint | undefined;
  #fullState = true;
  #fullComponents = false;
  readonly #current: { [F in CompressibleField]?: FieldValue<F> } = {};
  readonly #lastSent = new Map<CompressibleField, Uint8Array>();
  readonly #customQueue: QueuedCustomMessage[] = [];
  readonly #inFlightCustom = new Map<AgentToServer, QueuedCustomMessage>();
  #settingsRequest: ConnectionSettingsRequest | undefined;

  /**
   * @param instanceUid - the UID to start with (16 bytes)
   * @param onPending - called (synchronously) whenever something new waits to be sent
   * @param maxPendingCustomMessages - bound of the custom message queue
   */
  constructor(
    instanceUid: Uint8Array,
    private readonly onPending: () => void,
    private readonly maxPendingCustomMessages: number,
  ) {
    this.#instanceUid = instanceUid;
  }

  /** The UID the next message carries. */
  get instanceUid(): Uint8Array {
    return this.#instanceUid;
  }

  /** The sequence number the next message carries. */
  get sequenceNum(): bigint {
    return this.#sequenceNum;
  }

  /** Capability bits announced on every message. */
  get capabilities(): bigint {
    return this.#capabilities;
  }

  /** The current value of a compressible sub-message (undefined when never set). */
  get<F extends CompressibleField>(field: F): FieldValue<F> | undefined {
    return this.#current[field] as FieldValue<F> | undefined;
  }

  /** Sets a sub-message; a value equal to the current one changes nothing. */
  set<F extends CompressibleField>(field: F, value: FieldValue<F> | undefined): void {
    const before = this.#current[field] as FieldValue<F> | undefined;
    if (before !== undefined && value !== undefined && sameBytes(encode(field, before), encode(field, value))) return;
    if (before === undefined && value === undefined) return;
    if (value === undefined) delete this.#current[field];
    else (this.#current as Record<CompressibleField, unknown>)[field] = value;
    this.onPending();
  }

  /** Replaces the capability bits; a change is sent at once. */
  setCapabilities(bits: bigint): void {
    if (bits === this.#capabilities) return;
    this.#capabilities = bits;
    this.onPending();
  }

  /** Switches to a new instance UID (server-assigned or set by the app). */
  setInstanceUid(uid: Uint8Array): void {
    this.#instanceUid = uid.slice();
    this.onPending();
  }

  /** Sets or clears the RequestInstanceUid flag. */
  setRequestInstanceUid(on: boolean): void {
    if (this.#requestUid === on) return;
    this.#requestUid = on;
    this.onPending();
  }

  /** The next message carries every sub-message (server set ReportFullState). */
  requestFullState(): void {
    this.#fullState = true;
    this.onPending();
  }

  /** The next message carries the full available-components map (server flag). */
  requestFullComponents(): void {
    this.#fullComponents = true;
    this.onPending();
  }

  /** Queues a ConnectionSettingsRequest (e.g. a CSR) for the next message; replaces one not yet sent. */
  requestConnectionSettings(request: ConnectionSettingsRequest): void {
    this.#settingsRequest = request;
    this.onPending();
  }

  /**
   * Queues a custom message. Resolves once it was handed to the network; rejects with
   * `limit_exceeded` when the queue is full, `not_running` when the client stops first.
   */
  sendCustomMessage(message: CustomMessage): Promise<void> {
    if (this.#customQueue.length >= this.maxPendingCustomMessages) {
      return Promise.reject(
        new OpampError("limit_exceeded", `${this.#customQueue.length} custom messages are already waiting`, {
          details: { limit: this.maxPendingCustomMessages },
        }),
      );
    }
    return new Promise<void>((resolve, reject) => {
      this.#customQueue.push({ message, resolve, reject });
      this.onPending();
    });
  }

  /** True when a "pending" take would return a message. */
  hasPending(): boolean {
    return this.#build("pending", false) !== undefined;
  }

  /**
   * Builds the next message and counts it as sent (sequence number, last-sent copies).
   * Returns undefined for reason "pending" when nothing changed.
   */
  take(reason: TakeReason): AgentToServer | undefined {
    return this.#build(reason, true);
  }

  /** A message with agent_disconnect plus anything pending, for stop or a deliberate reconnect. */
  takeDisconnect(): AgentToServer {
    const message = this.#build("poll", true)!;
    message.agentDisconnect = create(AgentDisconnectSchema);
    return message;
  }

  #flags(): bigint {
    return this.#requestUid ? AgentToServerFlag.RequestInstanceUid : 0n;
  }

  #build(reason: TakeReason, commit: boolean): AgentToServer | undefined {
    const message = create(AgentToServerSchema, {
      instanceUid: this.#instanceUid,
      sequenceNum: this.#sequenceNum,
      capabilities: this.#capabilities,
      flags: this.#flags(),
    });
    const full = this.#fullState;
    let changed = full || this.#capabilities !== this.#lastSentCapabilities || this.#flags() !== this.#lastSentFlags;
    const sentBytes = new Map<CompressibleField, Uint8Array>();
    for (const field of COMPRESSIBLE_FIELDS) {
      const value = this.#current[field];
      if (value === undefined) continue;
      let outgoing: FieldValue<CompressibleField> = value;
      let bytes = encode(field, value);
      if (field === "availableComponents") {
        // spec: Available Components — the hash alone unless the server asked for the map.
        const hashOnly = create(AvailableComponentsSchema, { hash: (value as AvailableComponents).hash });
        bytes = encode("availableComponents", hashOnly);
        if (this.#fullComponents) {
          message.availableComponents = value as AvailableComponents;
          sentBytes.set(field, bytes);
          changed = true;
          continue;
        }
        outgoing = hashOnly;
      }
      if (full || !sameBytes(this.#lastSent.get(field), bytes)) {
        (message as Record<CompressibleField, unknown>)[field] = outgoing;
        sentBytes.set(field, bytes);
        changed = true;
      }
    }
    const custom = this.#customQueue[0];
    if (custom !== undefined) {
      message.customMessage = custom.message;
      changed = true;
    }
    if (this.#settingsRequest !== undefined) {
      message.connectionSettingsRequest = this.#settingsRequest;
      changed = true;
    }
    if (!changed && reason === "pending") return undefined;
    if (!commit) return message;
    this.#sequenceNum += 1n;
    this.#fullState = false;
    this.#fullComponents = false;
    this.#lastSentCapabilities = this.#capabilities;
    this.#lastSentFlags = this.#flags();
    for (const [field, bytes] of sentBytes) this.#lastSent.set(field, bytes);
    if (custom !== undefined) {
      this.#customQueue.shift();
      this.#inFlightCustom.set(message, custom);
    }
    this.#settingsRequest = undefined;
    return message;
  }

  /** A taken message was handed to the network: settle its custom message. */
  sent(message: AgentToServer): void {
    const custom = this.#inFlightCustom.get(message);
    if (custom === undefined) return;
    this.#inFlightCustom.delete(message);
    custom.resolve();
  }

  /** A taken message was dropped for good: its custom message fails, its status is not resent. */
  dropped(message: AgentToServer, error: OpampError): void {
    const custom = this.#inFlightCustom.get(message);
    if (custom === undefined) return;
    this.#inFlightCustom.delete(message);
    custom.reject(error);
  }

  /** A taken message never left: everything in it is sent again with the next one. */
  returned(message: AgentToServer): void {
    // The server never processed it, so its number is free again: reusing it (as opamp-go
    // does) spares the server a "gap" and a full-state round trip after every refused request.
    if (message.sequenceNum === this.#sequenceNum - 1n) this.#sequenceNum = message.sequenceNum;
    for (const field of COMPRESSIBLE_FIELDS) if (message[field] !== undefined) this.#lastSent.delete(field);
    if (message.availableComponents !== undefined && message.availableComponents.components !== undefined) {
      if (Object.keys(message.availableComponents.components).length > 0) this.#fullComponents = true;
    }
    this.#lastSentCapabilities = undefined;
    this.#lastSentFlags = undefined;
    const custom = this.#inFlightCustom.get(message);
    if (custom !== undefined) {
      this.#inFlightCustom.delete(message);
      this.#customQueue.unshift(custom);
    }
    if (message.connectionSettingsRequest !== undefined && this.#settingsRequest === undefined) {
      this.#settingsRequest = message.connectionSettingsRequest;
    }
    this.onPending();
  }

  /** Rejects every queued custom message (at stop). */
  failPending(error: OpampError): void {
    for (const entry of this.#customQueue.splice(0)) entry.reject(error);
    for (const entry of this.#inFlightCustom.values()) entry.reject(error);
    this.#inFlightCustom.clear();
  }
}
