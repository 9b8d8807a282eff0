/**
 * Helpers to mount an {@link OpAMPServer} in web frameworks. The frameworks are not
 * dependencies: each helper takes the framework's objects structurally.
 *
 * - Fastify: `app.register(opampFastify(server))`.
 * - Express (and Connect): `app.use(server.requestHandler)` for polling, then
 *   `server.attachUpgrade(app.listen(port))` for WebSockets.
 * - Hono and other fetch frameworks: `server.fetch(request, nodeFetchInfo(incoming))` on
 *   the OpAMP path, and `server.attachUpgrade(nodeServer)` on the node:http server that
 *   runs them (Hono's `serve()`).
 */
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { PROTOBUF_CONTENT_TYPE } from "../wire/http-body.js";
import type { FetchRequestInfo } from "./fetch-adapter.js";
import { peerCertificate, tlsVerdict } from "./node-http-adapter.js";
import type { OpAMPServer } from "./opamp-server.js";

/**
 * The parts of a Fastify instance {@link opampFastify} uses (Fastify 4 and 5 have them).
 */
export interface FastifyInstanceLike {
  /** The underlying Node HTTP server, whose `upgrade` events the plugin takes for WebSocket agents. */
  readonly server: Server;
  /** Registers a body parser; the plugin registers one that leaves protobuf bodies unread for the server to stream. */
  addContentTypeParser(
    contentType: string,
    parser: (request: unknown, payload: unknown, done: (error: Error | null, body?: unknown) => void) => void,
  ): unknown;
  /** Adds a route; the plugin adds `POST <path>` and hijacks the reply. */
  route(options: {
    readonly method: string;
    readonly url: string;
    readonly handler: (
      request: { readonly raw: IncomingMessage },
      reply: { readonly raw: ServerResponse; hijack(): unknown },
    ) => void;
  }): unknown;
  /** Adds a lifecycle hook; the plugin stops the OpAMP server in `preClose` (unless `stopOnClose` is false). */
  addHook(name: "preClose", hook: () => Promise<void>): unknown;
}

/** Options of {@link opampFastify}. */
export interface OpampFastifyOptions {
  /** Start the OpAMP server when the plugin is registered. Default true. */
  readonly start?: boolean;
  /** Stop the OpAMP server when Fastify closes (its `preClose` hook). Default true. */
  readonly stopOnClose?: boolean;
}

/**
 * A Fastify plugin serving `server` on its path: a POST route for HTTP polling (the body
 * is left unread for the OpAMP handler, which streams and limits it itself; the parser
 * is scoped to the plugin, so other routes keep theirs) and the WebSocket upgrade on
 * `app.server` (other paths get 404 unless another upgrade listener takes them).
 *
 * @example
 * const app = Fastify();
 * await app.register(opampFastify(server));
 * await app.listen({ port: 4320 });
 */
export function opampFastify<P>(
  server: OpAMPServer<P>,
  options: OpampFastifyOptions = {},
): (instance: FastifyInstanceLike) => Promise<void> {
  return async (instance) => {
    instance.addContentTypeParser(PROTOBUF_CONTENT_TYPE, (_request, _payload, done) => done(null));
    instance.route({
      method: "POST",
      url: server.options.path,
      handler: (request, reply) => {
        reply.hijack();
        server.requestHandler(request.raw, reply.raw);
      },
    });
    server.attachUpgrade(instance.server);
    if (options.stopOnClose !== false) instance.addHook("preClose", () => server.stop());
    if (options.start !== false) await server.start();
  };
}

/**
 * What `server.fetch` should know about a request that arrived on node:http (Hono's
 * `c.env.incoming` with `@hono/node-server`): the remote address and, over TLS, the
 * client certificate and Node's verdict on it. Never throws.
 */
export function nodeFetchInfo(incoming: IncomingMessage): FetchRequestInfo {
  const certificate = peerCertificate(incoming);
  const remoteAddress = incoming.socket.remoteAddress;
  return {
    ...(remoteAddress === undefined ? {} : { remoteAddress }),
    ...(certificate === undefined ? {} : { tlsPeerCertificate: certificate }),
    ...tlsVerdict(incoming),
  };
}
