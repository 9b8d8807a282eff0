/**
 * The public OpAMP server: one object that a management backend embeds. It never listens
 * by itself unless asked to (`listen()`); it offers handlers to mount on an existing
 * node:http(s) server, or a fetch handler.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer, type ServerOptions as HttpsServerOptions } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { TypedEmitter } from "../internal/emitter.js";
import { globalMeterProvider } from "../internal/otel.js";
import { InMemoryServerStore } from "../storage/memory-server-store.js";
import { instanceUidFromString, instanceUidToString, isInstanceUid, OpampError } from "../wire/index.js";
import { ServerCore } from "./core.js";
import { type FetchRequestInfo, handleFetch } from "./fetch-adapter.js";
import { ConnectionGate, handleNodeRequest, requestUrl } from "./node-http-adapter.js";
import { type OpAMPServerOptions, type ResolvedServerOptions, resolveServerOptions } from "./options.js";
import {
  assignInstanceUid,
  type CustomMessageInput,
  carryOutForwarded,
  offerConnectionSettings,
  offerPackages,
  type PackagesInput,
  type PreparedRemoteConfig,
  prepareRemoteConfig,
  type RemoteConfigInput,
  requestFullState,
  sendCustomMessage,
  sendRestart,
  setRemoteConfig,
} from "./push.js";
import { Replicas } from "./replicas.js";
import type { ConnectionSettingsInput } from "./settings-offer.js";
import type { ServerStore, StoredDelivery } from "./store.js";
import type { PushKind } from "./telemetry.js";
import type { Agent, AgentTarget, PushResult, ServerEventArgs, ServerEventSink } from "./types.js";
import { rejectSocket, WS_CLOSE, WsAdapter } from "./ws-adapter.js";

/** Options of {@link OpAMPServer.listen}. */
export interface ListenOptions {
  /** TCP port; 0 picks a free one. Default 4320 (spec default). */
  readonly port?: number;
  /** Interface to bind. Default all interfaces (node's default). */
  readonly host?: string;
  /** TLS options (key, cert, ca, requestCert, …); when given the server speaks HTTPS/WSS. */
  readonly tls?: HttpsServerOptions;
}

/** Where `listen()` ended up. */
export interface ListenAddress {
  /** The port bound (the real one when `listen()` was given port 0). */
  readonly port: number;
  /** The address bound. */
  readonly host: string;
  /** `http(s)://host:port/path`; use `ws(s)` for WebSocket agents. */
  readonly url: string;
}

/**
 * Answers an HTTP upgrade request with a bodyless `status` (404 for a wrong path) and
 * closes its socket: for `upgrade` listeners of your own that decline a request
 * (`upgradeHandler` resolved false and no other listener takes it).
 */
export function refuseUpgrade(socket: Duplex, status = 404): void {
  socket.on("error", () => undefined);
  rejectSocket(socket, status);
}

/** Default port of `listen()` (spec: servers SHOULD listen on 4320). */
export const DEFAULT_LISTEN_PORT = 4320;

type State = "new" | "running" | "stopping" | "stopped";

/** Longest time `listen()`'s server keeps an idle HTTP connection for the next poll. */
const MAX_KEEP_ALIVE_SECONDS = 65;

/**
 * An OpAMP server: accepts both transports on one path, keeps every agent's full state,
 * pushes configs, packages, settings and commands, and reports what happens as events.
 *
 * Lifecycle: construct → `start()` (or `listen()`, which starts) → mount the handlers →
 * `stop()`. Handlers answer 503 before `start()` and after `stop()` begins.
 *
 * `P` is the type of the principal `authenticate` attaches (inferred from the hook).
 *
 * Duplicate UIDs: a message for a connected agent's UID arriving on another connection
 * moves the agent to that connection (newest wins). The old connection is not closed (it
 * may carry other agents, e.g. a gateway); it just no longer carries this agent. With
 * `duplicateUid: "reassign"` two live instances sharing a UID are split instead.
 */
export class OpAMPServer<P = unknown> extends TypedEmitter<ServerEventArgs<P>> {
  /** The options after defaults. */
  readonly options: ResolvedServerOptions;
  /** Where state is kept (the given store or an in-memory one). */
  readonly store: ServerStore;
  readonly #core: ServerCore;
  readonly #gate: ConnectionGate;
  readonly #ws: WsAdapter;
  #state: State = "new";
  #listener: Server | undefined;
  readonly #listenerSockets = new Set<Socket>();
  #stopping: Promise<void> | undefined;

  /**
   * @throws OpampError `invalid_argument` for a bad option, or when there is no
   *   `hooks.authenticate` and `allowAnonymous` is not true.
   */
  constructor(options: OpAMPServerOptions<P>) {
    // The core is principal-blind: it stores whatever authenticate returned.
    const resolved = resolveServerOptions(options as OpAMPServerOptions);
    const log = resolved.logger;
    super({
      listenerFailed: (cause, event) => {
        if (event === "error") {
          // An `error` listener that fails has nowhere else to report to.
          log.error({ err: cause }, "an 'error' listener of OpAMPServer threw or rejected");
          return;
        }
        this.#core.reportError(cause, "hook_failed");
      },
      unhandledError: (error) => {
        const e = OpampError.from(error);
        log.warn({ err: e, code: e.code }, `error with no 'error' listener: ${e.code}: ${e.message}`);
      },
      tooManyListeners: (event, count) =>
        log.warn({ event: String(event), count }, `${count} listeners of "${String(event)}": a leak?`),
    });
    this.options = resolved;
    this.store = options.store ?? new InMemoryServerStore();
    this.#core = new ServerCore(this.options, this.store, this as unknown as ServerEventSink);
    if (options.bus !== undefined) {
      const core = this.#core;
      core.replicas = new Replicas(core, options.bus, this.options.replicaId, (id, request) =>
        carryOutForwarded(core, id, request),
      );
    }
    this.#gate = new ConnectionGate(this.options.maxConnections);
    this.#ws = new WsAdapter(this.#core, this.#gate);
  }

  /** Connected agents by canonical UID string. Live view; do not modify the agents. */
  get agents(): ReadonlyMap<string, Agent<P>> {
    return this.#core.agents as ReadonlyMap<string, Agent<P>>;
  }

  /** This server's id among replicas (`options.replicaId`, or a random UUID). */
  get replicaId(): string {
    return this.options.replicaId;
  }

  /**
   * Which replica holds the agent: this server's {@link OpAMPServer.replicaId} when it is
   * connected here, another replica's id (with `options.bus`), or undefined.
   *
   * @throws OpampError (as a rejection) `invalid_instance_uid` for a bad UID,
   *   `storage_failed` when the bus cannot be read.
   */
  async locate(uid: string | Uint8Array): Promise<string | undefined> {
    const agent = this.getAgent(uid);
    if (agent !== undefined) return this.replicaId;
    const id = typeof uid === "string" ? instanceUidToString(instanceUidFromString(uid)) : instanceUidToString(uid);
    return this.#core.replicas?.locate(id);
  }

  /** Open WebSockets plus in-flight HTTP requests. */
  get connectionCount(): number {
    return this.#gate.active;
  }

  /** One connected agent by UID (any UUID string form, or 16 bytes), or undefined. Never throws. */
  getAgent(uid: string | Uint8Array): Agent<P> | undefined {
    if (typeof uid === "string") {
      // Canonical lower-case strings are the map keys; anything else is normalised first.
      const direct = this.#core.agents.get(uid);
      if (direct !== undefined) return direct as Agent<P>;
      try {
        uid = instanceUidFromString(uid);
      } catch {
        return undefined; // not a UID at all: no such agent
      }
    }
    if (!isInstanceUid(uid)) return undefined;
    return this.#core.agents.get(instanceUidToString(uid)) as Agent<P> | undefined;
  }

  /** Connected agents for which `predicate` is true. */
  select(predicate: (agent: Agent<P>) => boolean): Agent<P>[] {
    const out: Agent<P>[] = [];
    for (const agent of this.agents.values()) if (predicate(agent)) out.push(agent);
    return out;
  }

  /**
   * Starts taking connections and the liveness sweep, after joining the bus when there is
   * one. Idempotent while running.
   *
   * @throws OpampError `not_running` after stop(); `storage_failed` when the bus cannot be joined.
   */
  async start(): Promise<void> {
    if (this.#state === "running") return;
    if (this.#state !== "new") throw new OpampError("not_running", "a stopped server cannot be started again");
    this.#state = "running";
    try {
      await this.#core.replicas?.join();
    } catch (e) {
      this.#state = "new";
      throw e;
    }
    if (this.options.metricsEnabled) {
      const provider = this.options.meterProvider ?? (await globalMeterProvider());
      if (provider !== undefined) this.#core.telemetry.useMeter(provider.getMeter("opamp-sdk/server"));
    }
    this.#core.start();
    this.#ws.startPing();
    this.options.logger.info({ replicaId: this.options.replicaId }, "started");
  }

  /**
   * Starts the server and listens on its own node:http(s) server.
   *
   * @throws OpampError `not_running` after stop(); `transport_failed` when the port cannot be bound.
   */
  async listen(options: ListenOptions = {}): Promise<ListenAddress> {
    if (this.#listener !== undefined) throw new OpampError("invalid_argument", "listen() was already called");
    await this.start();
    const listener = options.tls ? createHttpsServer(options.tls) : createHttpServer();
    // An HTTP agent polls once per heartbeat interval: a connection kept open that long is
    // reused by the next poll instead of a new TCP and TLS handshake (bounded, as each
    // idle connection holds a socket).
    listener.keepAliveTimeout = Math.min(this.options.heartbeatIntervalSeconds + 5, MAX_KEEP_ALIVE_SECONDS) * 1000;
    this.attach(listener);
    this.#listener = listener;
    // Every TCP connection, so that stop() can cut those still open at its deadline
    // (upgraded and TLS ones included, which closeAllConnections() does not reach).
    listener.on("connection", (socket: Socket) => {
      this.#listenerSockets.add(socket);
      socket.once("close", () => this.#listenerSockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      const fail = (e: Error) => reject(new OpampError("transport_failed", e.message, { cause: e }));
      listener.once("error", fail);
      listener.listen(options.port ?? DEFAULT_LISTEN_PORT, options.host, () => {
        listener.off("error", fail);
        resolve();
      });
    });
    // Later listener errors are reported, never thrown at the process.
    listener.on("error", (e) => this.#core.reportError(new OpampError("transport_failed", e.message, { cause: e })));
    const address = listener.address() as AddressInfo;
    const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
    const scheme = options.tls ? "https" : "http";
    const url = `${scheme}://${host}:${address.port}${this.options.path}`;
    this.options.logger.info({ url }, "listening");
    return { port: address.port, host: address.address, url };
  }

  /**
   * Mounts both transports on an existing node:http(s) server: an `upgrade` listener for
   * WebSockets (see {@link OpAMPServer.attachUpgrade}) and a `request` listener for HTTP
   * polling. Requests for other paths are left to the server's other `request` listeners:
   * those present now (an Express or Connect app given to `createServer`) are moved
   * behind the OpAMP path, so they no longer see its requests and still see every other;
   * without any, other paths get 404. Listeners added later see every request, the OpAMP
   * path's included: attach last.
   */
  attach(server: Server): void {
    this.attachUpgrade(server);
    const others = server.listeners("request") as ((req: IncomingMessage, res: ServerResponse) => void)[];
    for (const listener of others) server.off("request", listener);
    const passOn = (req: IncomingMessage, res: ServerResponse): void => {
      if (others.length === 0) {
        if (!res.headersSent) res.writeHead(404).end();
        return;
      }
      for (const listener of others) listener.call(server, req, res);
    };
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      // The path decides synchronously, before any other listener could answer.
      if (requestUrl(req, false).pathname !== this.options.path) passOn(req, res);
      else this.requestHandler(req, res, () => passOn(req, res));
    });
  }

  /**
   * Mounts only the WebSocket transport on an existing node:http(s) server (an Express
   * app's `app.listen()` result, Fastify's `app.server`, Hono's `serve()`): HTTP requests
   * stay with the framework (mount `requestHandler` or `fetch` there for polling). An
   * upgrade for another path is left to the server's other `upgrade` listeners; when there
   * is none it is answered 404 and its socket closed, so a client with a wrong path learns
   * it at once rather than waiting for a timeout.
   */
  attachUpgrade(server: Server): void {
    const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
      void this.#ws.handleUpgrade(req, socket, head).then((mine) => {
        if (mine || server.listeners("upgrade").some((listener) => listener !== onUpgrade)) return;
        refuseUpgrade(socket, 404);
      });
    };
    server.on("upgrade", onUpgrade);
  }

  /**
   * node:http / Express / Connect style request handler for HTTP polling. Requests for
   * other paths go to `next` (or get 404 without it). Never throws; errors become statuses.
   */
  readonly requestHandler = (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void): void => {
    // Nothing thrown here may reach node:http's emitter (it would end the process): a throw
    // is reported on `error` and answered 500, or the socket destroyed once headers went out.
    const failed = (e: unknown) => {
      this.#core.reportError(e);
      try {
        if (!res.headersSent) res.writeHead(500, { connection: "close" }).end();
        else res.destroy();
      } catch {
        res.destroy();
      }
    };
    let handled: Promise<boolean>;
    try {
      handled = handleNodeRequest(this.#core, this.#gate, req, res);
    } catch (e) {
      failed(e);
      return;
    }
    handled
      .then((mine) => {
        if (mine) return;
        if (next) next();
        else res.writeHead(404).end();
      })
      .catch(failed);
  };

  /**
   * node:http `upgrade` handler for WebSockets. Upgrades for other paths are left alone
   * (the returned promise resolves false) so another listener can take them; answer those
   * yourself, e.g. `refuseUpgrade(socket, 404)`, or the client waits for its timeout.
   * {@link OpAMPServer.attachUpgrade} does that for you.
   */
  readonly upgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer): Promise<boolean> =>
    this.#ws.handleUpgrade(req, socket, head);

  /**
   * Web-standard handler for HTTP polling: `fetch(request) → Response`. WebSocket upgrades
   * get 426. Limits apply as on node:http: a body that has not ended within
   * `limits.handshakeTimeoutMs` gets 408 (its stream is cancelled and `error` reports
   * `timeout`); one over `limits.maxMessageBytes` gets 413. Never rejects.
   */
  readonly fetch = (request: Request, info?: FetchRequestInfo): Promise<Response> =>
    handleFetch(this.#core, this.#gate, request, info);

  /**
   * Stops: refuses new work (503), answers requests and upgrades still waiting on
   * `authenticate` with 503 + Retry-After at once (the hook's later answer is ignored),
   * closes the `listen()` server to new connections and its idle ones, closes every
   * WebSocket with 1001, and waits for the close handshakes, in-flight HTTP requests and
   * the listener's connections — all within one `stopTimeoutMs`. At that deadline every
   * connection still open is cut (WebSockets terminated, sockets of requests in flight and
   * of the listener destroyed, idle or half-sent ones included). Then it reports every
   * agent gone and waits for store writes. Idempotent; never rejects. After it resolves no
   * event fires.
   */
  stop(): Promise<void> {
    if (this.#stopping === undefined) this.#stopping = this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    if (this.#state === "new") {
      this.#state = "stopped";
      return;
    }
    this.#state = "stopping";
    this.#core.beginStop();
    // One deadline for everything: WebSocket close handshakes, in-flight requests and the
    // listener's connections. At it, whatever is still open is cut.
    const clock = this.options.clock;
    let timer: ReturnType<typeof clock.setTimeout> | undefined;
    const deadline = new Promise<void>((resolve) => {
      timer = clock.setTimeout(resolve, this.options.stopTimeoutMs);
    });
    const listener = this.#listener;
    // No new connections from now on; idle keep-alive connections go at once.
    const listenerClosed =
      listener === undefined
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            listener.close(() => resolve());
            listener.closeIdleConnections();
          });
    const expired = deadline.then(() => false);
    await this.#ws.closeAll(WS_CLOSE.goingAway, "server stopping", deadline);
    let done = await Promise.race([this.#gate.idle().then(() => true), expired]);
    if (done && listener !== undefined) {
      // Connections whose requests just finished are idle now.
      listener.closeIdleConnections();
      done = await Promise.race([listenerClosed.then(() => true), expired]);
    }
    if (!done) {
      // Node stops its own header and request timeouts once the server closes: without
      // this, a stalled request or an idle connection would hold stop() for ever.
      for (const socket of this.#gate.requestSockets) socket.destroy();
      if (listener !== undefined) {
        listener.closeAllConnections();
        for (const socket of this.#listenerSockets) socket.destroy();
      }
      await listenerClosed;
    }
    if (timer !== undefined) clock.clearTimeout(timer);
    await this.#core.stop();
    await this.#core.replicas?.leave();
    this.#state = "stopped";
    this.options.logger.info({}, "stopped");
  }

  // ── Push APIs ─────────────────────────────────────────────────────────────────────────
  // A single UID target throws (`unknown_agent`, `capability_missing`, …); a predicate
  // target returns the agents left out in `skipped`.

  /**
   * Sets the remote config for the target (hash computed with `configMapHash`). WebSocket
   * agents get it now, HTTP agents with their next poll; it is stored as desired state.
   */
  setRemoteConfig(
    target: AgentTarget<P>,
    config: RemoteConfigInput | PreparedRemoteConfig,
  ): Promise<
    PushResult<P> & {
      /** The config's hash: what agents report in RemoteConfigStatus once they apply it. */
      readonly hash: Uint8Array;
    }
  > {
    return this.#pushedLater("remoteConfig", setRemoteConfig(this.#core, target as AgentTarget, config)) as Promise<
      PushResult<P> & { readonly hash: Uint8Array }
    >;
  }

  /**
   * Hashes and encodes a remote config once, for `setRemoteConfig` calls over time (e.g.
   * to each agent as it connects). A prepared config pushed from an event listener is set
   * before the reply is built, so an HTTP agent gets it in the answer to that very poll.
   */
  prepareRemoteConfig(config: RemoteConfigInput): Promise<PreparedRemoteConfig> {
    return prepareRemoteConfig(config);
  }

  /** Offers packages (needs AcceptsPackages). */
  offerPackages(target: AgentTarget<P>, packages: PackagesInput): Promise<PushResult<P>> {
    return this.#pushedLater("packages", offerPackages(this.#core, target as AgentTarget, packages)) as Promise<
      PushResult<P>
    >;
  }

  /**
   * Offers connection settings (each kind needs its capability). Headers may be plain
   * records; an OpAMP part without `destinationEndpoint` gets each agent's own endpoint;
   * `hash` is computed when left out.
   *
   * An agent without ReportsConnectionSettingsStatus is taken to hold the last settings it
   * was sent: settings with the same hash are not sent to it again, on this connection or a
   * later one, also after a server restart when the store keeps
   * `StoredDesired.sentConnectionSettingsHash`. Offer settings with another hash (a new key)
   * to give such an agent new ones. An agent that keeps reconnecting after being sent
   * settings is protected by the reconnect guard (`limits.maxReconnectsPerWindow`).
   *
   * @throws OpampError (as a rejection) `invalid_argument` for malformed headers,
   *   `capability_missing`, `unknown_agent` for a single UID not connected.
   */
  offerConnectionSettings(target: AgentTarget<P>, settings: ConnectionSettingsInput): Promise<PushResult<P>> {
    return this.#pushedLater(
      "connectionSettings",
      offerConnectionSettings(this.#core, target as AgentTarget, settings),
    ) as Promise<PushResult<P>>;
  }

  /** Sends the Restart command (needs AcceptsRestartCommand). */
  sendRestart(target: AgentTarget<P>): PushResult<P> {
    return this.#pushedNow("restart", () => sendRestart(this.#core, target as AgentTarget)) as PushResult<P>;
  }

  /** Sends a custom message (the agent must list its capability). */
  sendCustomMessage(target: AgentTarget<P>, message: CustomMessageInput): PushResult<P> {
    return this.#pushedNow("customMessage", () =>
      sendCustomMessage(this.#core, target as AgentTarget, message),
    ) as PushResult<P>;
  }

  /** Asks agents to report their full state (flag ReportFullState). */
  requestFullState(target: AgentTarget<P>): PushResult<P> {
    return this.#pushedNow("fullState", () => requestFullState(this.#core, target as AgentTarget)) as PushResult<P>;
  }

  /** Gives one agent a new instance UID and returns it. */
  assignInstanceUid(target: string | Uint8Array, uid?: Uint8Array): Uint8Array {
    const telemetry = this.#core.telemetry;
    try {
      const assigned = assignInstanceUid(this.#core, target, uid);
      telemetry.pushed("instanceUid", { sent: [assigned], skipped: [], forwarded: [] });
      return assigned;
    } catch (e) {
      telemetry.pushed("instanceUid", undefined, OpampError.from(e));
      throw e;
    }
  }

  /** Reports a push on the diagnostics channel and metrics once it settles. */
  #pushedLater<R extends PushResult>(kind: PushKind, result: Promise<R>): Promise<R> {
    const telemetry = this.#core.telemetry;
    return result.then(
      (settled) => {
        telemetry.pushed(kind, settled);
        return settled;
      },
      (e: unknown) => {
        telemetry.pushed(kind, undefined, OpampError.from(e));
        throw e;
      },
    );
  }

  /** Same as {@link OpAMPServer.#pushedLater} for the push APIs that answer at once. */
  #pushedNow<R extends PushResult>(kind: PushKind, push: () => R): R {
    const telemetry = this.#core.telemetry;
    try {
      const result = push();
      telemetry.pushed(kind, result);
      return result;
    } catch (e) {
      telemetry.pushed(kind, undefined, OpampError.from(e));
      throw e;
    }
  }

  /**
   * The agent's deliveries with status history, from the store.
   *
   * @throws OpampError `invalid_instance_uid` (as a rejection) when `uid` is not a UID.
   */
  async deliveries(uid: string | Uint8Array): Promise<readonly StoredDelivery[]> {
    if (typeof uid !== "string" && !isInstanceUid(uid)) {
      throw new OpampError("invalid_instance_uid", "an instance UID is 16 bytes");
    }
    const id = typeof uid === "string" ? instanceUidToString(instanceUidFromString(uid)) : instanceUidToString(uid);
    return this.store.listDeliveries(id);
  }

  /** Runs the HTTP liveness sweep now (normally run by the timer). */
  sweep(): void {
    this.#core.sweep();
  }
}
