/**
 * The server's diagnostics: `node:diagnostics_channel` channels and OpenTelemetry metrics
 * (docs/diagnostics.md). Both sit on the per-message path of a server benchmarked at
 * 10k–19k agents, so each call costs one branch per sink when nobody listens: a payload
 * is built only when a channel has subscribers, attributes are frozen objects made once.
 */
import { channel } from "node:diagnostics_channel";
import type { AgentToServer } from "../gen/opamp/v1/opamp_pb.js";
import type { MeterLike } from "../internal/otel.js";
import type { OpampError } from "../wire/errors.js";
import type { Agent, AgentTransport, DisconnectReason } from "./types.js";

/** Name of the channel that reports agents connecting and disconnecting. */
export const CONNECTION_CHANNEL = "opamp-sdk:server:connection";
/** Name of the channel that reports every OpAMP message received or sent. */
export const MESSAGE_CHANNEL = "opamp-sdk:server:message";
/** Name of the channel that reports every push API call and its outcome. */
export const PUSH_CHANNEL = "opamp-sdk:server:push";

/** What {@link CONNECTION_CHANNEL} publishes. */
export type ConnectionDiagnostic =
  | {
      /** An agent connected (as the `agentConnected` event). */
      readonly event: "connected";
      /** The agent (the live object; treat it as read-only). */
      readonly agent: Agent;
      /** How it connected. */
      readonly transport: AgentTransport;
    }
  | {
      /** An agent disconnected (as the `agentDisconnected` event). */
      readonly event: "disconnected";
      /** The agent, as last known. */
      readonly agent: Agent;
      /** How it was connected. */
      readonly transport: AgentTransport;
      /** Why it went. */
      readonly reason: DisconnectReason;
    };

/**
 * What {@link MESSAGE_CHANNEL} publishes. `bytes` counts what crossed the wire: the HTTP
 * body as sent (gzipped or not), the WebSocket message with its header byte. A received
 * message carries the decoded message and its agent's UID; a sent one neither (a push may
 * be one frame shared by many agents).
 */
export type MessageDiagnostic =
  | {
      /** An AgentToServer arrived. */
      readonly direction: "received";
      /** The transport it came over. */
      readonly transport: AgentTransport;
      /** Bytes on the wire. */
      readonly bytes: number;
      /** The sending agent's UID, canonical lower-case UUID string. */
      readonly instanceUid: string;
      /** The decoded message; treat it as read-only. */
      readonly message: AgentToServer;
    }
  | {
      /** A ServerToAgent was sent. */
      readonly direction: "sent";
      /** The transport it went over. */
      readonly transport: AgentTransport;
      /** Bytes on the wire. */
      readonly bytes: number;
    };

/** The push APIs, as {@link PUSH_CHANNEL} and the `opamp.server.pushes` metric name them. */
export type PushKind =
  | "remoteConfig"
  | "packages"
  | "connectionSettings"
  | "restart"
  | "customMessage"
  | "fullState"
  | "instanceUid";

/**
 * What {@link PUSH_CHANNEL} publishes once a push API call has settled: how many agents
 * it was sent or queued to, left out, forwarded to another replica; or the error it
 * threw (a single UID target that is unknown, lacks the capability, …).
 */
export interface PushDiagnostic {
  /** Which push API was called. */
  readonly kind: PushKind;
  /** Agents it was sent to or queued for. */
  readonly sent: number;
  /** Agents left out (see `PushResult.skipped`). */
  readonly skipped: number;
  /** Agents it went to through another replica. */
  readonly forwarded: number;
  /**
   * The error the call threw (a single UID target unknown, lacking the capability, …);
   * undefined when it settled with a result.
   */
  readonly error: OpampError | undefined;
}

/** The parts of a push result the diagnostics count. */
interface PushCounts {
  readonly sent: readonly unknown[];
  readonly skipped: readonly unknown[];
  readonly forwarded: readonly unknown[];
}

const connectionChannel = channel(CONNECTION_CHANNEL);
const messageChannel = channel(MESSAGE_CHANNEL);
const pushChannel = channel(PUSH_CHANNEL);

type Attrs = Readonly<Record<string, string | number>>;
const frozen = (attributes: Record<string, string | number>): Attrs => Object.freeze(attributes);

const TRANSPORT: Readonly<Record<AgentTransport, Attrs>> = {
  websocket: frozen({ transport: "websocket" }),
  http: frozen({ transport: "http" }),
};
const MESSAGE: Readonly<Record<"received" | "sent", Readonly<Record<AgentTransport, Attrs>>>> = {
  received: {
    websocket: frozen({ direction: "received", transport: "websocket" }),
    http: frozen({ direction: "received", transport: "http" }),
  },
  sent: {
    websocket: frozen({ direction: "sent", transport: "websocket" }),
    http: frozen({ direction: "sent", transport: "http" }),
  },
};

interface Instruments {
  readonly agents: { add(value: number, attributes?: object): void };
  readonly messages: { add(value: number, attributes?: object): void };
  readonly bytes: { add(value: number, attributes?: object): void };
  readonly pushes: { add(value: number, attributes?: object): void };
  readonly authRefusals: { add(value: number, attributes?: object): void };
}

/** The metric names, in one place for the docs test. */
export const SERVER_METRIC_NAMES = [
  "opamp.server.agents",
  "opamp.server.messages",
  "opamp.server.message.bytes",
  "opamp.server.pushes",
  "opamp.server.auth.refusals",
] as const;

/** One server's diagnostics. */
export class ServerTelemetry {
  #metrics: Instruments | undefined;
  /** Agents counted into the up-down counter, so that a meter set late does not go negative. */
  #connected = { websocket: 0, http: 0 };

  /** Starts recording metrics through `meter`; agents already connected are carried over. */
  useMeter(meter: MeterLike): void {
    const metrics: Instruments = {
      agents: meter.createUpDownCounter(SERVER_METRIC_NAMES[0], {
        description: "Agents connected to this OpAMP server",
        unit: "{agents}",
      }),
      messages: meter.createCounter(SERVER_METRIC_NAMES[1], {
        description: "OpAMP messages received from and sent to agents",
        unit: "{messages}",
      }),
      bytes: meter.createCounter(SERVER_METRIC_NAMES[2], {
        description: "Bytes of the OpAMP messages received and sent, as on the wire",
        unit: "By",
      }),
      pushes: meter.createCounter(SERVER_METRIC_NAMES[3], {
        description: "Agents reached by push API calls, by kind and outcome (sent, skipped, forwarded, failed)",
        unit: "{agents}",
      }),
      authRefusals: meter.createCounter(SERVER_METRIC_NAMES[4], {
        description: "Requests and upgrades refused by authenticate or the auth throttle, by HTTP status",
        unit: "{requests}",
      }),
    };
    for (const transport of ["websocket", "http"] as const) {
      if (this.#connected[transport] !== 0) metrics.agents.add(this.#connected[transport], TRANSPORT[transport]);
    }
    this.#metrics = metrics;
  }

  connected(agent: Agent, transport: AgentTransport): void {
    this.#connected[transport]++;
    this.#metrics?.agents.add(1, TRANSPORT[transport]);
    if (connectionChannel.hasSubscribers) connectionChannel.publish({ event: "connected", agent, transport });
  }

  disconnected(agent: Agent, transport: AgentTransport, reason: DisconnectReason): void {
    this.#connected[transport]--;
    this.#metrics?.agents.add(-1, TRANSPORT[transport]);
    if (connectionChannel.hasSubscribers) {
      connectionChannel.publish({ event: "disconnected", agent, transport, reason });
    }
  }

  /** True when message sizes are wanted: a meter is set or the message channel has subscribers. */
  get measuring(): boolean {
    return this.#metrics !== undefined || messageChannel.hasSubscribers;
  }

  /** A connected agent now speaks over the other transport. */
  moved(from: AgentTransport, to: AgentTransport): void {
    this.#connected[from]--;
    this.#connected[to]++;
    const metrics = this.#metrics;
    if (metrics !== undefined) {
      metrics.agents.add(-1, TRANSPORT[from]);
      metrics.agents.add(1, TRANSPORT[to]);
    }
  }

  received(transport: AgentTransport, bytes: number, instanceUid: string, message: AgentToServer): void {
    const metrics = this.#metrics;
    if (metrics !== undefined) {
      metrics.messages.add(1, MESSAGE.received[transport]);
      metrics.bytes.add(bytes, MESSAGE.received[transport]);
    }
    if (messageChannel.hasSubscribers) {
      messageChannel.publish({ direction: "received", transport, bytes, instanceUid, message });
    }
  }

  /** `frame` is the message as written: whole, or in pieces (counted only when someone listens). */
  sent(transport: AgentTransport, frame: Uint8Array | readonly Uint8Array[]): void {
    const metrics = this.#metrics;
    const listened = messageChannel.hasSubscribers;
    if (metrics === undefined && !listened) return;
    let bytes = 0;
    if (frame instanceof Uint8Array) bytes = frame.length;
    else for (const piece of frame) bytes += piece.length;
    if (metrics !== undefined) {
      metrics.messages.add(1, MESSAGE.sent[transport]);
      metrics.bytes.add(bytes, MESSAGE.sent[transport]);
    }
    if (listened) messageChannel.publish({ direction: "sent", transport, bytes });
  }

  /** A push API call settled with `result`, or threw `error`. */
  pushed(kind: PushKind, result: PushCounts | undefined, error?: OpampError): void {
    const metrics = this.#metrics;
    if (metrics !== undefined) {
      if (result === undefined) metrics.pushes.add(1, { kind, outcome: "failed" });
      else {
        if (result.sent.length > 0) metrics.pushes.add(result.sent.length, { kind, outcome: "sent" });
        if (result.skipped.length > 0) metrics.pushes.add(result.skipped.length, { kind, outcome: "skipped" });
        if (result.forwarded.length > 0) metrics.pushes.add(result.forwarded.length, { kind, outcome: "forwarded" });
      }
    }
    if (pushChannel.hasSubscribers) {
      pushChannel.publish({
        kind,
        sent: result?.sent.length ?? 0,
        skipped: result?.skipped.length ?? 0,
        forwarded: result?.forwarded.length ?? 0,
        error,
      } satisfies PushDiagnostic);
    }
  }

  /** `authenticate` (or the throttle) refused a request or upgrade with `status`. */
  authRefused(status: number): void {
    this.#metrics?.authRefusals.add(1, { status });
  }
}
