/**
 * Public shapes of the server: the agent view, hooks, events and push results.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type {
  AgentDescription,
  AgentToServer,
  AvailableComponents,
  ComponentHealth,
  ConnectionSettingsStatus,
  CustomCapabilities,
  EffectiveConfig,
  OpAMPConnectionSettingsSchema,
  PackageStatuses,
  RemoteConfigStatus,
} from "../gen/opamp/v1/opamp_pb.js";
import type { OpampError } from "../wire/errors.js";
import type { ConnectionSettingsStatusName, PackageStatusName, RemoteConfigStatusName } from "../wire/status-names.js";

/** How an agent talks to the server. */
export type AgentTransport = "websocket" | "http";

/**
 * The parts of an agent's state that can change, named after the AgentToServer fields,
 * plus `instanceUid` (after a reassignment), `connection` (a newer connection took over
 * the agent's UID) and `principal` (a connected agent now speaks with other credentials that
 * `allowRebind` let take over its UID — over HTTP polling, where no new connection shows it,
 * e.g. an enrolled agent's first poll with its own key after the fleet token).
 */
export type AgentPart =
  | "agentDescription"
  | "capabilities"
  | "health"
  | "effectiveConfig"
  | "remoteConfigStatus"
  | "packageStatuses"
  | "customCapabilities"
  | "availableComponents"
  | "connectionSettingsStatus"
  | "instanceUid"
  | "connection"
  | "principal";

/**
 * One agent as the server knows it: the full state reconstructed from compressed reports.
 * The object is live (the server updates it in place) and must be treated as read-only.
 */
export interface Agent<P = unknown> {
  /** Canonical lower-case UUID string of the instance UID; the key of `server.agents`. */
  readonly id: string;
  /** The 16 raw bytes of the instance UID. */
  readonly instanceUid: Uint8Array;
  /** Last AgentCapabilities bitmask reported. */
  readonly capabilities: bigint;
  /**
   * Last description reported. Held encoded and decoded on each read (a fresh object each
   * time): keep the value when you need it more than once.
   */
  readonly agentDescription: AgentDescription | undefined;
  /** Last health tree reported; like `agentDescription`, decoded on each read. */
  readonly health: ComponentHealth | undefined;
  /** Last effective config reported; one shared read-only object for all agents reporting the same. */
  readonly effectiveConfig: EffectiveConfig | undefined;
  /** Last RemoteConfigStatus reported (the message; {@link Agent.remoteConfigState} has it in words). */
  readonly remoteConfigStatus: RemoteConfigStatus | undefined;
  /** Last PackageStatuses reported (the message; {@link Agent.packageStates} has it in words). */
  readonly packageStatuses: PackageStatuses | undefined;
  /** Custom capabilities the agent last announced. */
  readonly customCapabilities: CustomCapabilities | undefined;
  /** Available components; `components` is filled from the server's cache when the agent sent only the hash. */
  readonly availableComponents: AvailableComponents | undefined;
  /** Last ConnectionSettingsStatus reported (the message; {@link Agent.connectionSettingsState} has it in words). */
  readonly connectionSettingsStatus: ConnectionSettingsStatus | undefined;
  /** Transport of the agent's latest message. */
  readonly transport: AgentTransport;
  /** What `authenticate` attached to the connection that carried the latest message. */
  readonly principal: P | undefined;
  /**
   * Key of the principal the agent's instance UID is bound to: the first principal that
   * spoke for it, or the one a `hooks.allowRebind` let take it over. Messages for the UID
   * from another principal are refused.
   */
  readonly boundPrincipal: string | undefined;
  /** Remote address of that connection, when known. */
  readonly remoteAddress: string | undefined;
  /** Clock time (ms since epoch) of the latest message. */
  readonly lastSeen: number;
  /** `sequence_num` of the latest message. */
  readonly sequenceNum: bigint;
  /** Hash of the remote config the server wants this agent to run, if any. */
  readonly desiredConfigHash: Uint8Array | undefined;
  /**
   * `remoteConfigStatus` in words: `{ status: "applied", hash, errorMessage }` (status
   * `"unset"`, `"applying"`, `"applied"` or `"failed"`); undefined until reported.
   */
  readonly remoteConfigState: AppliedState<RemoteConfigStatusName> | undefined;
  /** `connectionSettingsStatus` in words, like {@link Agent.remoteConfigState}. */
  readonly connectionSettingsState: AppliedState<ConnectionSettingsStatusName> | undefined;
  /**
   * Each package's status in words (`"installed"`, `"install_failed"`, …) by package
   * name, with its versions and error; undefined until reported. Decoded on each read.
   */
  readonly packageStates: Readonly<Record<string, PackageState>> | undefined;
}

/** A status the agent reports for something it was given, in words. */
export interface AppliedState<S extends string> {
  /** The status, e.g. `"applied"`. */
  readonly status: S;
  /** Hash of what the status is about (the remote config's, the settings offer's). */
  readonly hash: Uint8Array;
  /** Why it failed; "" otherwise. */
  readonly errorMessage: string;
}

/** One package's status in words (see {@link Agent.packageStates}). */
export interface PackageState {
  /** The package's status, e.g. `"installed"` or `"install_failed"`. */
  readonly status: PackageStatusName;
  /** Version the agent has installed; "" if none. */
  readonly agentHasVersion: string;
  /** Version the server last offered, as the agent reports it. */
  readonly serverOfferedVersion: string;
  /** Why it failed; "" otherwise. */
  readonly errorMessage: string;
}

/** What `authenticate` is given: the HTTP request or WebSocket upgrade, before any body is read. */
export interface AuthRequest {
  /** Request headers, names lower-case; repeated headers joined with ", ". */
  readonly headers: Readonly<Record<string, string>>;
  /** Full request URL. */
  readonly url: URL;
  /** The client's address (`req.socket.remoteAddress`, or the fetch handler's `info`), when known. */
  readonly remoteAddress: string | undefined;
  /** The client's TLS certificate (node's `PeerCertificate`) when mutual TLS is in use. */
  readonly tlsPeerCertificate: unknown;
  /**
   * Node's verdict on the client certificate (`TLSSocket.authorized`): true only when the
   * connection is TLS and the certificate chains to the server's trusted CAs. With
   * `rejectUnauthorized: false` a certificate from an unknown (rogue) CA still reaches
   * this hook, with `tlsAuthorized: false`: check it before trusting `tlsPeerCertificate`.
   * False for plain HTTP and for a TLS client without a certificate. The fetch handler
   * takes it from its `info` argument (default false).
   */
  readonly tlsAuthorized: boolean;
  /** Why the certificate was not verified (Node's `authorizationError`, e.g. `"UNABLE_TO_VERIFY_LEAF_SIGNATURE"`), when Node gave a reason. */
  readonly tlsAuthorizationError?: string;
  /** Which transport the request starts. */
  readonly transport: AgentTransport;
  /**
   * Set when a gateway forwarded the request (a `connect` of the auth delegation
   * handshake, see docs/server.md "Gateways"): `headers` and `remoteAddress` are then the
   * agent's as the gateway reports them, and this names the gateway's own connection.
   * `remoteAddress` is only as trustworthy as the gateway; `tlsPeerCertificate` is
   * undefined (the gateway terminated the agent's TLS).
   */
  readonly gateway?: GatewayInfo;
}

/** The gateway connection a request or message came through. */
export interface GatewayInfo<P = unknown> {
  /** What `authenticate` attached to the gateway's own WebSocket. */
  readonly principal: P | undefined;
  /** The gateway's address (the agent's is in `remoteAddress`). */
  readonly remoteAddress: string | undefined;
}

/** Outcome of `authenticate`. */
export type AuthDecision<P = unknown> =
  | {
      /** Let the request through. */
      readonly accept: true;
      /**
       * Who is calling; attached to the connection, bound to the UIDs it speaks for, and
       * shown as `agent.principal`.
       */
      readonly principal?: P;
    }
  | {
      /** Refuse the request; nothing of it is read. */
      readonly accept: false;
      /** 401 (spec: MUST on bad credentials), 403, 429 or 503. */
      readonly status: number;
      /** Extra response headers, e.g. `Retry-After` or `WWW-Authenticate`. */
      readonly headers?: Readonly<Record<string, string>>;
      /**
       * Body text of the refusal for an HTTP request (a refused WebSocket upgrade gets the
       * bare status). Default `refused`.
       */
      readonly message?: string;
    };

/** Decides whether a request may talk to the server. A throw answers 500 and emits `error` (`hook_failed`). */
export type AuthenticateHook<P = unknown> = (request: AuthRequest) => AuthDecision<P> | Promise<AuthDecision<P>>;

/** Re-authorises each agent message; false refuses it (WS close 1008, HTTP 403). */
export type AuthorizeMessageHook<P = unknown> = (input: {
  readonly message: AgentToServer;
  readonly principal: P | undefined;
  readonly transport: AgentTransport;
  /**
   * The key of the principal the message's instance UID is bound to (see
   * `hooks.principalKey`), after the binding check passed; undefined for a UID not bound.
   */
  readonly boundPrincipal: string | undefined;
  /**
   * Set when the message came through a gateway connection. `principal` is then the one
   * `authenticate` returned for this agent's own request (delegated by the gateway), or,
   * for a gateway that does not tie agents to requests and `gateways.trustUnattached`,
   * the gateway's.
   */
  readonly gateway?: GatewayInfo<P>;
}) => boolean | Promise<boolean>;

/**
 * The identity an instance UID is bound to, from the principal `authenticate` attached.
 * Return undefined to leave UIDs spoken for by this principal unbound. Default
 * `defaultPrincipalKey`: a string principal, an object's `id`, or the object's sorted JSON.
 */
export type PrincipalKeyHook<P = unknown> = (principal: P | undefined) => string | undefined;

/**
 * Decides whether a principal may take over an instance UID bound to another principal:
 * a re-enrollment, a key that replaced the enrollment token. Return true to move the
 * binding to `principalKey` (stored at once); false refuses the message (WS close 1008,
 * HTTP 403, `error` `unauthenticated`). Without this hook a bound UID never moves.
 */
export type RebindHook<P = unknown> = (input: {
  /** Canonical UID string. */
  readonly instanceUid: string;
  /** Key of the principal the UID is bound to. */
  readonly boundPrincipal: string;
  /** Key of the principal now speaking for it; undefined when that principal has none. */
  readonly principalKey: string | undefined;
  readonly principal: P | undefined;
  readonly message: AgentToServer;
  readonly transport: AgentTransport;
}) => boolean | Promise<boolean>;

/** Chooses a new UID for an agent that asked for one; return 16 bytes. */
export type InstanceUidHook = (input: { readonly message: AgentToServer }) => Uint8Array | Promise<Uint8Array>;

/**
 * Answers an agent's certificate signing request (spec: Connection settings, CSR flow).
 * Return the OpAMP connection settings to offer, with `certificate` holding the signed
 * certificate; `destinationEndpoint` defaults to the endpoint the agent used. Throw (or
 * return undefined) to refuse: the agent gets `error_response` BadRequest. Check here that
 * the CSR names the agent (`agent.id`).
 */
export type CertificateRequestHook<P = unknown> = (input: {
  readonly csr: Uint8Array;
  readonly agent: Agent<P>;
  readonly principal: P | undefined;
}) => Promise<MessageInitShape<typeof OpAMPConnectionSettingsSchema> | undefined>;

/**
 * Why an agent left. `moved`: with replicas (`options.bus`), the agent connected to (or
 * polled) another replica, which holds it now.
 */
export type DisconnectReason =
  | "agent_disconnect"
  | "connection_closed"
  | "heartbeat_timeout"
  | "server_stopped"
  | "moved";

/**
 * Events of {@link OpAMPServer}. Listeners observe; they cannot change what the server
 * does. A listener that throws, or an async one whose promise rejects, is reported as
 * `error` (`hook_failed`, or the OpampError it threw); an `error` with no listener is
 * logged as a warning through `logger`.
 */
export interface ServerEvents<P = unknown> {
  /** First message from an agent not currently connected; its state is already merged. */
  agentConnected: (agent: Agent<P>) => void;
  /** The agent said goodbye, its connection closed, or it missed its heartbeat window. */
  agentDisconnected: (agent: Agent<P>, reason: DisconnectReason) => void;
  /** Some parts of a connected agent's state changed. */
  agentUpdated: (agent: Agent<P>, changes: readonly AgentPart[]) => void;
  /** Every AgentToServer received, after its state was merged. */
  message: (agent: Agent<P>, message: AgentToServer) => void;
  /** Something went wrong that no caller is waiting on (a store write, a hook, a bad peer). */
  error: (error: OpampError) => void;
}

/** {@link ServerEvents} as event name → listener arguments (the emitter's map). */
export type ServerEventArgs<P = unknown> = { [K in keyof ServerEvents<P>]: Parameters<ServerEvents<P>[K]> };

/** What the core emits through: the server itself. */
export interface ServerEventSink {
  emit<E extends keyof ServerEventArgs>(event: E, ...args: ServerEventArgs[E]): boolean;
  listenerCount(event: keyof ServerEventArgs): number;
}

/** Which agents a push addresses: one UID (string or bytes) or a predicate over connected agents. */
export type AgentTarget<P = unknown> = string | Uint8Array | ((agent: Agent<P>) => boolean);

/** A push handed to the replica that holds the agent (see `OpAMPServerOptions.bus`). */
export interface ForwardedPush {
  /** Canonical UID string of the agent. */
  readonly id: string;
  /**
   * Settles once the replica holding the agent carried out the push: it rejects with that
   * replica's OpampError (`unknown_agent` when no live replica holds the agent,
   * `capability_missing`, …, or `timeout`). Already settled for the pushes that return a
   * promise (they throw instead); never an unhandled rejection when left unawaited.
   */
  readonly done: Promise<void>;
}

/** Outcome of a push to a selection. */
export interface PushResult<P = unknown> {
  /** Agents the message was sent to (WebSocket) or queued for (HTTP, next poll). */
  readonly sent: readonly Agent<P>[];
  /** Agents left out, with why (e.g. `capability_missing`). */
  readonly skipped: readonly {
    /** The agent left out. */
    readonly agent: Agent<P>;
    /** Why: `capability_missing`, `limit_exceeded`, …. */
    readonly error: OpampError;
  }[];
  /**
   * With replicas: a single UID target connected to another replica, whose push went there.
   * Empty otherwise (a predicate selects among this replica's own agents only).
   */
  readonly forwarded: readonly ForwardedPush[];
}
