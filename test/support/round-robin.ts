// A load balancer for tests, in front of several replicas on 127.0.0.1: each HTTP request
// and each WebSocket upgrade goes to the next backend in turn (no stickiness, the worst case
// for replicas), and a backend that refuses the connection is skipped, as a health-checking
// load balancer would. `pin()` sends everything to one backend.

import { createServer, type IncomingMessage, request, type Server } from "node:http";
import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";

export interface RoundRobin {
  /** http://127.0.0.1:port (add the OpAMP path). */
  readonly url: string;
  /** Backend ports each request or upgrade went to, in order. */
  readonly routed: number[];
  /** Sends everything to the backend on `port` (undefined: round robin again). */
  pin(port: number | undefined): void;
  close(): Promise<void>;
}

export async function startRoundRobin(backendPorts: readonly number[]): Promise<RoundRobin> {
  let next = 0;
  let pinned: number | undefined;
  const routed: number[] = [];
  const sockets = new Set<Duplex>();
  const order = (): number[] => {
    if (pinned !== undefined) return [pinned];
    const start = next++ % backendPorts.length;
    return [...backendPorts.slice(start), ...backendPorts.slice(0, start)];
  };

  const forwardRequest = (req: IncomingMessage, res: import("node:http").ServerResponse, ports: number[]) => {
    const port = ports.shift();
    if (port === undefined) {
      res.writeHead(502).end();
      return;
    }
    const body: Buffer[] = [];
    req.on("data", (c: Buffer) => body.push(c));
    req.on("end", () => {
      const attempt = (p: number, rest: number[]) => {
        const out = request(
          { host: "127.0.0.1", port: p, method: req.method, path: req.url, headers: req.headers },
          (upstream) => {
            routed.push(p);
            res.writeHead(upstream.statusCode ?? 502, upstream.headers);
            upstream.pipe(res);
          },
        );
        out.on("error", () => {
          const again = rest.shift();
          if (again === undefined) res.writeHead(502).end();
          else attempt(again, rest);
        });
        out.end(Buffer.concat(body));
      };
      attempt(port, ports);
    });
  };

  const server: Server = createServer((req, res) => forwardRequest(req, res, order()));
  server.on("upgrade", (req: IncomingMessage, client: Duplex, head: Buffer) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => undefined);
    const ports = order();
    const attempt = () => {
      const port = ports.shift();
      if (port === undefined) {
        client.destroy();
        return;
      }
      const upstream: Socket = connect(port, "127.0.0.1");
      upstream.once("error", () => {
        upstream.destroy();
        attempt();
      });
      upstream.once("connect", () => {
        routed.push(port);
        sockets.add(upstream);
        upstream.on("close", () => {
          sockets.delete(upstream);
          client.destroy();
        });
        upstream.on("error", () => client.destroy());
        client.on("close", () => upstream.destroy());
        let headText = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
        for (let i = 0; i < req.rawHeaders.length; i += 2)
          headText += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
        upstream.write(`${headText}\r\n`);
        if (head.length > 0) upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
    };
    attempt();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as import("node:net").AddressInfo;
  return {
    url: `http://127.0.0.1:${address.port}`,
    routed,
    pin(port) {
      pinned = port;
    },
    async close() {
      for (const s of sockets) s.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
