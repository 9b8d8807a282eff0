/**
 * A TCP forwarder between the gateway and its server, so a test can cut one chosen
 * upstream connection (by the `X-Opamp-Gateway-Connection-Id` of its upgrade request)
 * without stopping the server.
 */

import type { AddressInfo } from "node:net";
import { connect, createServer, type Server, type Socket } from "node:net";

interface Piped {
  readonly client: Socket;
  readonly server: Socket;
  head: string;
}

export class TcpRelay {
  readonly #pipes = new Set<Piped>();
  private constructor(
    readonly listener: Server,
    readonly port: number,
  ) {}

  /** Forwards `port` (0: a free one) on 127.0.0.1 to `targetPort`. */
  static async start(targetPort: number, port = 0): Promise<TcpRelay> {
    const listener = createServer();
    await new Promise<void>((resolve) => listener.listen(port, "127.0.0.1", resolve));
    const relay = new TcpRelay(listener, (listener.address() as AddressInfo).port);
    listener.on("connection", (client) => {
      const server = connect(targetPort, "127.0.0.1");
      const piped: Piped = { client, server, head: "" };
      relay.#pipes.add(piped);
      client.on("data", (chunk: Buffer) => {
        if (piped.head.length < 4096) piped.head += chunk.toString("latin1");
      });
      client.pipe(server);
      server.pipe(client);
      const end = () => {
        relay.#pipes.delete(piped);
        client.destroy();
        server.destroy();
      };
      client.on("error", end);
      server.on("error", end);
      client.on("close", end);
      server.on("close", end);
    });
    return relay;
  }

  /** Cuts every connection whose upgrade request carries this gateway connection id. */
  cut(id: string): number {
    let n = 0;
    for (const piped of [...this.#pipes]) {
      if (new RegExp(`x-opamp-gateway-connection-id: ${id}\\r\\n`, "i").test(piped.head)) {
        piped.client.destroy();
        piped.server.destroy();
        n++;
      }
    }
    return n;
  }

  async stop(): Promise<void> {
    for (const piped of this.#pipes) {
      piped.client.destroy();
      piped.server.destroy();
    }
    await new Promise<void>((resolve) => this.listener.close(() => resolve()));
  }
}
