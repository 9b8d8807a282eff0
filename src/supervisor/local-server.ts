/**
 * The supervisor's own OpAMP server, on loopback, for the agent's OpAMP client (the
 * Collector's opamp extension): it learns the agent's description, health, effective
 * config, available components and custom messages from it, and carries custom messages
 * back. Built on this SDK's OpAMPServer, bound to 127.0.0.1, speaking only to the instance
 * UID the supervisor gave the agent.
 */
import { EventEmitter } from "eventemitter3";
import type {
  AgentDescription,
  AvailableComponents,
  ComponentHealth,
  CustomMessage,
  EffectiveConfig,
} from "../gen/opamp/v1/opamp_pb.js";
import { OpAMPServer } from "../server/opamp-server.js";
import type { Agent } from "../server/types.js";
import { OpampError } from "../wire/errors.js";
import { instanceUidEquals } from "../wire/uid.js";

/** What the local server reports about the agent. */
export interface LocalAgentEvents {
  /** The agent's OpAMP client connected (a new run, or a reconnect). */
  connected: () => void;
  disconnected: () => void;
  description: (description: AgentDescription) => void;
  /** A health report, as received (every report, changed or not). */
  health: (health: ComponentHealth) => void;
  effectiveConfig: (config: EffectiveConfig) => void;
  availableComponents: (components: AvailableComponents) => void;
  customCapabilities: (capabilities: readonly string[]) => void;
  customMessage: (message: CustomMessage) => void;
  error: (error: OpampError) => void;
}

/** The local OpAMP server and the last known state of its one agent. */
export class LocalAgentServer extends EventEmitter<LocalAgentEvents> {
  readonly #server: OpAMPServer;
  #agent: Agent | undefined;
  #url: string | undefined;

  /** @param expectedUid - the instance UID the agent must use (it may change when the server assigns one) */
  constructor(private readonly expectedUid: () => Uint8Array) {
    super();
    this.#server = new OpAMPServer({
      // Loopback only, and every message must carry the supervisor's instance UID.
      allowAnonymous: true,
      hooks: {
        authorizeMessage: ({ message }) => instanceUidEquals(message.instanceUid, this.expectedUid()),
      },
    });
    this.#server.on("error", (error) => this.emit("error", error));
    this.#server.on("agentConnected", (agent) => {
      this.#agent = agent;
      this.emit("connected");
      this.#relay(agent, ["agentDescription", "effectiveConfig", "availableComponents", "customCapabilities"]);
    });
    this.#server.on("agentUpdated", (agent, changes) => {
      this.#agent = agent;
      this.#relay(agent, changes);
    });
    this.#server.on("message", (_agent, message) => {
      if (message.health !== undefined) this.emit("health", message.health);
      if (message.customMessage !== undefined) this.emit("customMessage", message.customMessage);
    });
    this.#server.on("agentDisconnected", (agent) => {
      if (this.#agent === agent) this.#agent = undefined;
      this.emit("disconnected");
    });
  }

  #relay(agent: Agent, parts: readonly string[]): void {
    if (parts.includes("agentDescription") && agent.agentDescription !== undefined) {
      this.emit("description", agent.agentDescription);
    }
    if (parts.includes("effectiveConfig") && agent.effectiveConfig !== undefined) {
      this.emit("effectiveConfig", agent.effectiveConfig);
    }
    if (parts.includes("availableComponents") && agent.availableComponents !== undefined) {
      this.emit("availableComponents", agent.availableComponents);
    }
    if (parts.includes("customCapabilities") && agent.customCapabilities !== undefined) {
      this.emit("customCapabilities", [...agent.customCapabilities.capabilities]);
    }
  }

  /** `ws://127.0.0.1:PORT/v1/opamp`; set once started. */
  get url(): string {
    if (this.#url === undefined) throw new OpampError("not_running", "the local OpAMP server is not started");
    return this.#url;
  }

  /** The connected agent, if any. */
  get agent(): Agent | undefined {
    return this.#agent;
  }

  /**
   * Listens on 127.0.0.1:`port` (0 = any free port).
   * @throws OpampError `transport_failed` when the port cannot be bound.
   */
  async start(port: number): Promise<string> {
    try {
      const address = await this.#server.listen({ port, host: "127.0.0.1" });
      this.#url = address.url.replace(/^http/, "ws");
      return this.#url;
    } catch (cause) {
      throw OpampError.from(cause, "transport_failed");
    }
  }

  /** Sends a custom message to the agent; false when it is not connected or did not announce the capability. */
  sendCustomMessage(message: CustomMessage): boolean {
    const agent = this.#agent;
    if (agent === undefined) return false;
    const result = this.#server.sendCustomMessage(agent.id, {
      capability: message.capability,
      type: message.type,
      data: message.data,
    });
    return result.sent.length > 0;
  }

  /** Asks the agent for its full state (after a reconnect of the supervisor's upstream side). */
  requestFullState(): void {
    if (this.#agent !== undefined) this.#server.requestFullState(this.#agent.id);
  }

  /** Stops the server. */
  async stop(): Promise<void> {
    await this.#server.stop();
  }
}
