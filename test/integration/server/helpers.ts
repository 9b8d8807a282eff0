/** Starting and stopping servers on loopback for integration tests. */
import { OpAMPServer, type OpAMPServerOptions } from "../../../src/server/index.js";

export interface Running {
  readonly server: OpAMPServer;
  /** http://127.0.0.1:port/v1/opamp */
  readonly url: string;
}

const running = new Set<OpAMPServer>();

/** Starts a server on 127.0.0.1, port 0. Anonymous unless options say otherwise. */
export async function startServer(options: Partial<OpAMPServerOptions> = {}): Promise<Running> {
  const server = new OpAMPServer({ allowAnonymous: true, ...options } as OpAMPServerOptions);
  const address = await server.listen({ port: 0, host: "127.0.0.1" });
  running.add(server);
  return { server, url: address.url };
}

/** Stops every server started by {@link startServer}; call from afterEach. */
export async function stopAll(): Promise<void> {
  const list = [...running];
  running.clear();
  await Promise.all(list.map((s) => s.stop()));
}
