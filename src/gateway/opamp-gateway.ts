/**
 * The public OpAMP gateway: a server for agents on one side (WebSocket and HTTP polling on
 * one endpoint), a small pool of WebSockets to the upstream server on the other, routing
 * by instance UID, and authentication delegated to the server with the same handshake as
 * Bindplane's opampgateway.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer, type ServerOptions as HttpsServerOptions } from "node:https";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { EventEmitter } from "eventemitter3";
import { PendingAuthentications } from "../server/auth.js";
import { ConnectionGate, requestUrl } from "../server/node-http-adapter.js";
import { WS_CLOSE } from "../server/ws-adapter.js";
import { OpampError } from "../wire/errors.js";
import { GatewayCore } from "./core.js";
import type { GatewayAgent, GatewayDisconnectReason, GatewayEvents } from "./events.js";
import { HttpDownstream } from "./http-downstream.js";
import type { AgentLink } from "./link.js";
import { GatewayMetrics, type GatewayMetricsSnapshot, globalMeterProvider } from "./metrics.js";
import { type OpAMPGatewayOptions, type ResolvedGatewayOptions, resolveGatewayOptions } from "./options.js";
import { HttpRelay } from "./relay.js";
import { type DownstreamHost, WsDownstream } from "./ws-downstream.js";

/** Options of {@link OpAMPGateway.listen}. */
export interface GatewayListenOptions {
  /** TCP port; 0 picks a free one. Default 4320. */
  readonly port?: number;
  /** Interface to bind. Default all interfaces. */
  readonly host?: string;
  /** TLS (key, cert, …): agents then connect with wss:// and https://. */
  readonly tls?: HttpsServerOptions;
}

/** Where `listen()` ended up. */
export interface GatewayAddress {
  /** The port bound (the real one when `listen()` was given port 0). */
  readonly port: number;
  /** The address bound. */
  readonly host: string;
  /** `http(s)://host:port/path` (the path is `/v1/opamp` when the gateway serves every path). */
  readonly url: string;
}

/** One upstream pool member, as `upstreams` shows it. */
export interface GatewayUpstream {
  /** `upstream-<i>`, also sent as `X-Opamp-Gateway-Connection-Id`. */
  readonly id: string;
  /** Whether its WebSocket to the server is open now (false while it reconnects). */
  readonly open: boolean;
  /** Agent connections assigned to it (what least-connections compares). */
  readonly agents: number;
}

/** Default port of `listen()` (the OpAMP spec's 4320, as the server's). */
export const DEFAULT_GATEWAY_PORT = 4320;

type State = "new" | "running" | "stopping";

/** One run: everything start() makes and stop() takes down. */
interface Run {
  readonly host: DownstreamHost;
  readonly core: GatewayCore;
  readonly ws: WsDownstream;
  readonly http: HttpDownstream;
  readonly relay: HttpRelay | undefined;
}

/**
 * An OpAMP gateway. Lifecycle: construct → `start()` (or `listen()`, which starts) →
 * mount the handlers (or use `listen()`) → `stop()`. It can be started again after
 * `stop()` resolved (a fresh pool and fresh state), as a Collector reloads an extension.
 */
export class OpAMPGateway extends EventEmitter<GatewayEvents> {
  /** The options after defaults. */
  readonly options: ResolvedGatewayOptions;
  #state: State = "new";
  #run: Run | undefined;
  #metrics = new GatewayMetrics();
  #listener: Server | undefined;
  #stopping: Promise<void> | undefined;

  /**
   * @throws OpampError `invalid_argument` for a bad option (no ws:// or wss:// upstream URL,
   *   a bad header, a limit out of range, an unknown auth mode).
   */
  constructor(options: OpAMPGatewayOptions) {
    super();
    this.options = resolveGatewayOptions(options);
  }

  /** The metrics as plain numbers (also exported through OpenTelemetry when available). */
  get metrics(): GatewayMetricsSnapshot {
    return this.#metrics.snapshot();
  }

  /** The upstream pool (empty in pass-through mode, where each agent has its own connection). */
  get upstreams(): readonly GatewayUpstream[] {
    return (this.#run?.core.pool ?? []).map((m) => ({
      id: m.upstream.id,
      open: m.upstream.open,
      agents: m.links.size,
    }));
  }

  /** Agent connections held now (WebSockets and HTTP agents). */
  get agents(): readonly GatewayAgent[] {
    const run = this.#run;
    if (run === undefined) return [];
    return [...new Set<AgentLink>([...run.core.links, ...run.ws.links()])].map((link) => link.view());
  }

  /** Starts the upstream pool and takes agents. Idempotent while running. */
  async start(): Promise<void> {
    if (this.#state === "running") return;
    if (this.#state === "stopping") await this.#stopping;
    const metrics = new GatewayMetrics();
    this.#metrics = metrics;
    const options = this.options;
    if (options.metricsEnabled) {
      const provider = options.meterProvider ?? (await globalMeterProvider());
      if (provider !== undefined) metrics.useMeter(provider.getMeter("opamp-sdk/gateway"));
    }
    const core = new GatewayCore(options, this, metrics);
    const gate = new ConnectionGate(options.maxConnections);
    const authentications = new PendingAuthentications();
    // One object for both downstream kinds; `accepting` reads the gateway's state.
    const gateway = this;
    const host: DownstreamHost = {
      core,
      gate,
      authentications,
      get accepting() {
        return gateway.#state === "running" && gateway.#run?.core === core;
      },
      linkStarted: (link) => {
        metrics.connection("downstream", 1);
        this.emit("agentConnected", link.view());
      },
      linkEnded: (link, reason) => this.#linkEnded(link, reason),
    };
    const ws = new WsDownstream(host);
    const http = new HttpDownstream(host);
    const relay = options.auth.mode === "passthrough" ? new HttpRelay(host) : undefined;
    this.#run = { host, core, ws, http, relay };
    this.#state = "running";
    this.#stopping = undefined;
    if (options.auth.mode !== "passthrough") core.startPool();
    ws.startPing();
    http.startSweep();
  }

  #linkEnded(link: AgentLink, reason: GatewayDisconnectReason): void {
    this.#metrics.connection("downstream", -1);
    this.emit("agentDisconnected", link.view(), reason);
  }

  /**
   * Starts and listens on its own node:http(s) server.
   *
   * @throws OpampError `transport_failed` when the port cannot be bound; `invalid_argument`
   *   when listen() was already called.
   */
  async listen(options: GatewayListenOptions = {}): Promise<GatewayAddress> {
    if (this.#listener !== undefined) throw new OpampError("invalid_argument", "listen() was already called");
    await this.start();
    const listener = options.tls ? createHttpsServer(options.tls) : createHttpServer();
    this.attach(listener);
    this.#listener = listener;
    await new Promise<void>((resolve, reject) => {
      const fail = (e: Error) => reject(new OpampError("transport_failed", e.message, { cause: e }));
      listener.once("error", fail);
      listener.listen(options.port ?? DEFAULT_GATEWAY_PORT, options.host, () => {
        listener.off("error", fail);
        resolve();
      });
    });
    listener.on("error", (e) => this.emit("error", new OpampError("transport_failed", e.message, { cause: e })));
    const address = listener.address() as AddressInfo;
    const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
    return {
      port: address.port,
      host: address.address,
      url: `${options.tls ? "https" : "http"}://${host}:${address.port}${this.options.path ?? "/v1/opamp"}`,
    };
  }

  /** Mounts both transports on an existing node:http(s) server (other paths get 404). */
  attach(server: Server): void {
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      this.requestHandler(req, res, () => {
        res.writeHead(404).end();
      });
    });
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      void this.upgradeHandler(req, socket, head).then((mine) => {
        if (!mine && server.listenerCount("upgrade") === 1) socket.destroy();
      });
    });
  }

  #mine(req: IncomingMessage): boolean {
    const path = this.options.path;
    return path === undefined || requestUrl(req, false).pathname === path;
  }

  /**
   * node:http / Express style handler for HTTP-polling agents. Requests for other paths go
   * to `next` (404 without it). Never throws.
   */
  readonly requestHandler = (req: IncomingMessage, res: ServerResponse, next?: () => void): void => {
    if (!this.#mine(req)) {
      if (next) next();
      else res.writeHead(404).end();
      return;
    }
    const run = this.#run;
    if (run === undefined || this.#state !== "running") {
      req.resume();
      res.writeHead(503, { "retry-after": String(Math.ceil(this.options.retryAfterMs / 1000)) }).end();
      return;
    }
    const done = run.relay !== undefined ? run.relay.handle(req, res) : run.http.handle(req, res);
    done.catch((e: unknown) => {
      this.emit("error", OpampError.from(e));
      if (!res.headersSent) res.writeHead(500).end();
    });
  };

  /**
   * node:http `upgrade` handler for agent WebSockets. Resolves false, leaving the socket
   * alone, for other paths.
   */
  readonly upgradeHandler = async (req: IncomingMessage, socket: Duplex, head: Buffer): Promise<boolean> => {
    if (!this.#mine(req)) return false;
    const run = this.#run;
    if (run === undefined || this.#state !== "running") {
      socket.on("error", () => undefined);
      socket.end(
        `HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\nRetry-After: ${Math.ceil(this.options.retryAfterMs / 1000)}\r\n\r\n`,
      );
      return true;
    }
    await run.ws.handleUpgrade(req, socket, head);
    return true;
  };

  /**
   * Stops gracefully: refuses new agents (503), ends authentications still waiting (503),
   * writes every agent message already received to its upstream, closes agent WebSockets
   * with 1001 (going away: they reconnect elsewhere or later), forgets HTTP agents, closes
   * the upstream connections with 1000 and the `listen()` server. Waits up to
   * `stopTimeoutMs` for close handshakes. Idempotent; no event fires after it resolves.
   */
  stop(): Promise<void> {
    if (this.#stopping === undefined) this.#stopping = this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    const run = this.#run;
    if (this.#state !== "running" || run === undefined) return;
    this.#state = "stopping";
    run.host.authentications.abortAll();
    run.core.beginStop();
    run.core.flushAll();
    await run.ws.closeAll(WS_CLOSE.goingAway, "gateway stopping", this.options.stopTimeoutMs);
    run.http.stopAll();
    run.relay?.destroy();
    await run.core.stopPool();
    const listener = this.#listener;
    this.#listener = undefined;
    if (listener !== undefined) {
      await new Promise<void>((resolve) => {
        listener.close(() => resolve());
        listener.closeAllConnections();
      });
    }
    this.#metrics.dropMeter();
    this.#run = undefined;
    this.#state = "new";
  }
}
