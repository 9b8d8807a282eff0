/**
 * A small HTTP proxy for client tests on 127.0.0.1, port 0 (node:http, or node:https for
 * an https:// proxy): it tunnels CONNECT requests and forwards absolute-form requests,
 * records each with its headers, can refuse them with a status or leave CONNECTs
 * unanswered, and remembers the local port of every connection it opens to a target, so
 * a test can tell connections that came through it from direct ones.
 */
import { once } from "node:events";
import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { type AddressInfo, connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";

/** One request the proxy received. */
export interface ProxyRequest {
  /** "connect" for a CONNECT tunnel, "forward" for an absolute-form request. */
  readonly kind: "connect" | "forward";
  /** `host:port` for CONNECT, the absolute URL for a forwarded request. */
  readonly target: string;
  readonly method: string;
  readonly headers: IncomingHttpHeaders;
}

const REASONS: Readonly<Record<number, string>> = {
  403: "Forbidden",
  407: "Proxy Authentication Required",
  502: "Bad Gateway",
};

/** A fake HTTP proxy. */
export class FakeProxy {
  readonly requests: ProxyRequest[] = [];
  /** Local ports of the proxy's connections to targets (the server sees them as peer ports). */
  readonly upstreamPorts: number[] = [];
  /** Refuse every request with this status (407: wants credentials); undefined: serve them. */
  refuseWith: number | undefined;
  /** Leave CONNECT requests unanswered (the client's socket stays open until it gives up). */
  hang = false;
  /** Client connections whose socket closed, counted (a hung CONNECT's socket included). */
  closedClientSockets = 0;
  readonly #server: Server;
  readonly #secure: boolean;
  readonly #sockets = new Set<Duplex>();
  #waiters: { predicate: (r: ProxyRequest) => boolean; resolve: (r: ProxyRequest) => void }[] = [];
  #closeWaiters: (() => void)[] = [];

  private constructor(tls: { key: string; cert: string } | undefined) {
    this.#secure = tls !== undefined;
    const handler = (req: IncomingMessage, res: ServerResponse) => this.#onRequest(req, res);
    this.#server = tls === undefined ? createServer(handler) : createHttpsServer(tls, handler);
    this.#server.on("connection", (socket: Socket) => {
      this.#track(socket);
      socket.once("close", () => {
        this.closedClientSockets += 1;
        for (const resolve of this.#closeWaiters.splice(0)) resolve();
      });
    });
    this.#server.on("connect", (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.#onConnect(req, socket, head),
    );
  }

  /** Starts a proxy on 127.0.0.1 with a free port (https:// when `tls` is given). */
  static async start(tls?: { key: string; cert: string }): Promise<FakeProxy> {
    const proxy = new FakeProxy(tls);
    proxy.#server.listen(0, "127.0.0.1");
    await once(proxy.#server, "listening");
    return proxy;
  }

  /** The proxy URL, with `userinfo` (`user:password`) when given. */
  url(userinfo?: string): string {
    const { port } = this.#server.address() as AddressInfo;
    return `${this.#secure ? "https" : "http"}://${userinfo === undefined ? "" : `${userinfo}@`}127.0.0.1:${port}`;
  }

  /** Resolves with the first request (recorded so far or later) that matches. */
  waitFor(predicate: (r: ProxyRequest) => boolean = () => true): Promise<ProxyRequest> {
    const found = this.requests.find(predicate);
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve) => this.#waiters.push({ predicate, resolve }));
  }

  /** Resolves once `count` client connections have closed. */
  async waitForClosed(count: number): Promise<void> {
    while (this.closedClientSockets < count) {
      await new Promise<void>((resolve) => this.#closeWaiters.push(resolve));
    }
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #track(socket: Duplex): void {
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
  }

  #record(request: ProxyRequest): void {
    this.requests.push(request);
    this.#waiters = this.#waiters.filter((waiter) => {
      if (!waiter.predicate(request)) return true;
      waiter.resolve(request);
      return false;
    });
  }

  #onConnect(req: IncomingMessage, client: Duplex, head: Buffer): void {
    const target = req.url ?? "";
    this.#record({ kind: "connect", target, method: req.method ?? "", headers: req.headers });
    client.on("error", () => client.destroy());
    if (this.hang) {
      // http.Server sockets are half-open: without this a client that gave up would leave
      // the proxy's side open for ever.
      client.once("end", () => client.destroy());
      return;
    }
    if (this.refuseWith !== undefined) {
      const status = this.refuseWith;
      client.end(
        `HTTP/1.1 ${status} ${REASONS[status] ?? "Refused"}\r\nProxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n`,
      );
      return;
    }
    const { hostname, port } = new URL(`http://${target}`);
    const upstream = connect(Number(port), hostname.replace(/^\[|\]$/g, ""), () => {
      this.upstreamPorts.push(upstream.localPort ?? 0);
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    this.#track(upstream);
    upstream.on("error", () => client.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const target = req.url ?? "";
    if (!/^https?:\/\//.test(target)) {
      res.writeHead(400).end("a proxy takes absolute-form requests");
      return;
    }
    this.#record({ kind: "forward", target, method: req.method ?? "", headers: req.headers });
    if (this.refuseWith !== undefined) {
      res.writeHead(this.refuseWith, { "Proxy-Authenticate": 'Basic realm="test"' }).end();
      return;
    }
    const url = new URL(target);
    const headers = { ...req.headers };
    delete headers["proxy-authorization"];
    delete headers["proxy-connection"];
    const upstream = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        method: req.method,
        path: `${url.pathname}${url.search}`,
        headers,
        agent: false,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("socket", (socket) => {
      this.#track(socket);
      socket.once("connect", () => this.upstreamPorts.push(socket.localPort ?? 0));
    });
    upstream.on("error", () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.pipe(upstream);
  }
}
