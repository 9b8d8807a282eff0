/** Servers and gateways on loopback for the gateway tests. */
import type { EventEmitter } from "eventemitter3";
import { type GatewayEvents, OpAMPGateway, type OpAMPGatewayOptions } from "../../../src/gateway/index.js";
import { OpAMPServer, type OpAMPServerOptions } from "../../../src/server/index.js";

const cleanups: (() => Promise<void> | void)[] = [];

/** Registers something to undo in {@link cleanup}. */
export function defer(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

/** Undoes everything deferred, newest first; call from afterEach. */
export async function cleanup(): Promise<void> {
  for (const fn of cleanups.splice(0).reverse()) await fn();
}

/** Tokens the test server accepts, each its own principal. */
export const TOKENS: Readonly<Record<string, string>> = {
  "token-a": "alice",
  "token-b": "bob",
  "token-gw": "gateway",
};

/** The gateway's own credentials for its upstream connections. */
export const GATEWAY_HEADERS: Readonly<Record<string, string>> = { Authorization: "Bearer token-gw" };

/** Starts an OpAMPServer on 127.0.0.1 that accepts `Bearer token-a|token-b`. */
export async function startServer(
  options: Partial<OpAMPServerOptions<string>> = {},
): Promise<{ server: OpAMPServer<string>; url: string; wsUrl: string }> {
  const server = new OpAMPServer<string>({
    hooks: {
      authenticate: ({ headers }) => {
        const token = /^Bearer (.+)$/.exec(headers["authorization"] ?? "")?.[1];
        const principal = token === undefined ? undefined : TOKENS[token];
        return principal === undefined
          ? { accept: false, status: 401, headers: { "WWW-Authenticate": "Bearer" } }
          : { accept: true, principal };
      },
    },
    ...options,
  } as OpAMPServerOptions<string>);
  const { url } = await server.listen({ port: 0, host: "127.0.0.1" });
  defer(() => server.stop());
  return { server, url, wsUrl: url.replace(/^http/, "ws") };
}

/** Starts a gateway to `upstreamUrl` on 127.0.0.1 and waits until `open` upstreams are open. */
export async function startGateway(
  upstreamUrl: string,
  options: Partial<OpAMPGatewayOptions> = {},
  open = options.auth?.mode === "passthrough" ? 0 : (options.upstream?.connections ?? 3),
): Promise<{ gateway: OpAMPGateway; url: string }> {
  const gateway = new OpAMPGateway({
    ...options,
    upstream: { headers: GATEWAY_HEADERS, ...options.upstream, url: upstreamUrl },
  });
  const opened = waitUpstreams(gateway, open);
  const { url } = await gateway.listen({ port: 0, host: "127.0.0.1" });
  defer(() => gateway.stop());
  await opened;
  return { gateway, url };
}

/** Resolves once `n` upstreamConnected events fired. */
export function waitUpstreams(gateway: OpAMPGateway, n: number): Promise<void> {
  if (n === 0) return Promise.resolve();
  return new Promise((resolve) => {
    let seen = 0;
    const listener = () => {
      if (++seen < n) return;
      gateway.off("upstreamConnected", listener);
      resolve();
    };
    gateway.on("upstreamConnected", listener);
  });
}

/** Resolves with the arguments of the next gateway `event` for which `match` is true. */
export function nextEvent<E extends keyof GatewayEvents>(
  gateway: EventEmitter<GatewayEvents>,
  event: E,
  match: (...args: Parameters<GatewayEvents[E]>) => boolean = () => true,
): Promise<Parameters<GatewayEvents[E]>> {
  return new Promise((resolve) => {
    const listener = (...args: Parameters<GatewayEvents[E]>) => {
      if (!match(...args)) return;
      (gateway.off as (e: E, l: typeof listener) => void)(event, listener);
      resolve(args);
    };
    (gateway.on as (e: E, l: typeof listener) => void)(event, listener);
  });
}
