/**
 * A download server that misbehaves on purpose (node:http on 127.0.0.1, port 0):
 * `/hang` never answers, `/trickle` sends headers at once and then one byte each time the
 * test calls {@link DownloadServer.trickle}, `/endless`
 * streams zeros until the client goes away, `/file/<name>` serves a file.
 */
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** The server and what it saw. */
export class DownloadServer {
  readonly files = new Map<string, Uint8Array>();
  /** Paths requested, in order. */
  readonly requests: string[] = [];
  /** Requests whose connection the client closed before the answer ended. */
  readonly abandoned: string[] = [];
  /** Bytes written by /endless before the client went away. */
  endlessBytes = 0;
  readonly #server: Server;
  readonly #open = new Set<ServerResponse>();
  #trickle: ServerResponse | undefined;
  #waiters: { path: string; resolve: () => void }[] = [];

  private constructor() {
    this.#server = createServer((req, res) => this.#handle(req, res));
  }

  static async start(): Promise<DownloadServer> {
    const server = new DownloadServer();
    server.#server.listen(0, "127.0.0.1");
    await once(server.#server, "listening");
    return server;
  }

  url(path: string): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}${path}`;
  }

  /** Resolves once `path` was requested (at any time). */
  requested(path: string): Promise<void> {
    if (this.requests.includes(path)) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ path, resolve }));
  }

  /** Writes one more byte to the /trickle download in progress. */
  trickle(): void {
    this.#trickle?.write(new Uint8Array([0x2a]));
  }

  async close(): Promise<void> {
    for (const res of this.#open) res.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const path = req.url ?? "/";
    this.requests.push(path);
    this.#open.add(res);
    res.on("close", () => {
      this.#open.delete(res);
      if (!res.writableFinished) this.abandoned.push(path);
    });
    this.#waiters = this.#waiters.filter((waiter) => {
      if (waiter.path !== path) return true;
      waiter.resolve();
      return false;
    });
    if (path === "/hang") return;
    if (path === "/trickle") {
      res.writeHead(200, { "Content-Type": "application/octet-stream" });
      res.flushHeaders();
      this.#trickle = res;
      return;
    }
    if (path === "/endless") {
      res.writeHead(200, { "Content-Type": "application/octet-stream" });
      const chunk = new Uint8Array(64 * 1024);
      const pump = () => {
        while (!res.destroyed && res.write(chunk)) this.endlessBytes += chunk.length;
        if (!res.destroyed) this.endlessBytes += chunk.length;
      };
      res.on("drain", pump);
      pump();
      return;
    }
    const file = path.startsWith("/file/") ? this.files.get(path.slice("/file/".length)) : undefined;
    if (file === undefined) res.writeHead(404).end();
    else res.writeHead(200, { "Content-Length": String(file.length) }).end(file);
  }
}
