/**
 * TLS and mutual TLS end to end, OpAMPClient against OpAMPServer over wss: and https:,
 * with a CA and certificates made by the test (openssl). The server requires client
 * certificates: a client without one is refused; with one it is accepted and
 * `authenticate` sees the peer certificate and `tlsAuthorized: true`. A certificate from a
 * rogue CA, let through by `rejectUnauthorized: false`, reaches the hook with
 * `tlsAuthorized: false` and Node's reason, so the hook can refuse it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { OpAMPClient } from "../../../src/client/opamp-client.js";
import type { AuthDecision, AuthRequest } from "../../../src/server/index.js";
import { OpAMPServer } from "../../../src/server/index.js";
import { nodeTlsFetch } from "../../../src/transport/node-tls-fetch.js";
import type { OpampError } from "../../../src/wire/errors.js";
import { hasOpenssl, inCI, type Material, makeMaterial, type Pem, rogueClient } from "./certs.js";

const openssl = hasOpenssl();
if (!openssl && inCI()) throw new Error("openssl is required in CI for the mTLS end-to-end tests");

interface Seen {
  readonly cn: string | undefined;
  readonly tlsAuthorized: boolean;
  readonly tlsAuthorizationError: string | undefined;
}

describe.skipIf(!openssl).each(["ws", "http"] as const)("mutual TLS end to end over %s", (kind) => {
  let dir = "";
  let pem: Material;
  let rogue: Pem;
  const servers: OpAMPServer[] = [];
  const clients: OpAMPClient[] = [];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "opamp-mtls-e2e-"));
    pem = makeMaterial(dir);
    rogue = rogueClient(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.stop()));
    await Promise.all(servers.splice(0).map((server) => server.stop()));
  });

  /** A server that only accepts a verified certificate for CN agent-options; it records what the hook saw. */
  async function serve(rejectUnauthorized: boolean): Promise<{ url: string; seen: Seen[] }> {
    const seen: Seen[] = [];
    const authenticate = (request: AuthRequest): AuthDecision => {
      const cn = (request.tlsPeerCertificate as { subject?: { CN?: string } } | undefined)?.subject?.CN;
      seen.push({ cn, tlsAuthorized: request.tlsAuthorized, tlsAuthorizationError: request.tlsAuthorizationError });
      return request.tlsAuthorized && cn === "agent-options"
        ? { accept: true, principal: cn }
        : { accept: false, status: 401 };
    };
    const server = new OpAMPServer({ hooks: { authenticate } });
    servers.push(server);
    const { url } = await server.listen({
      host: "127.0.0.1",
      port: 0,
      tls: {
        key: pem.server.key,
        cert: pem.server.cert,
        ca: pem.ca.cert,
        requestCert: true,
        rejectUnauthorized,
      },
    });
    return { url: kind === "ws" ? url.replace(/^https:/, "wss:") : url, seen };
  }

  function client(url: string, cert: Pem | undefined): OpAMPClient {
    const c = new OpAMPClient({
      transport: { url, tlsFetch: nodeTlsFetch },
      tls: { ca: pem.ca.cert, ...(cert === undefined ? {} : { cert: cert.cert, key: cert.key }) },
      // Long backoff: each test looks at one attempt.
      retry: { initialDelayMs: 60_000, maxDelayMs: 60_000 },
    });
    clients.push(c);
    return c;
  }

  const connected = (c: OpAMPClient) => new Promise<void>((resolve) => c.once("connect", () => resolve()));
  const refused = (c: OpAMPClient) => new Promise<OpampError>((resolve) => c.once("connectFailed", resolve));

  it("accepts a client certificate from the trusted CA, visible to authenticate with tlsAuthorized: true", async () => {
    const { url, seen } = await serve(true);
    const agent = client(url, pem.client);
    const up = connected(agent);
    await agent.start();
    await up;
    expect(seen[0]).toEqual({ cn: "agent-options", tlsAuthorized: true, tlsAuthorizationError: undefined });
  });

  it("refuses a client without a certificate during the TLS handshake; authenticate never runs", async () => {
    const { url, seen } = await serve(true);
    const agent = client(url, undefined);
    const failed = refused(agent);
    await agent.start();
    expect((await failed).code).toBe("transport_failed");
    expect(seen).toEqual([]);
  });

  it("lets authenticate tell a rogue CA's certificate apart under rejectUnauthorized: false", async () => {
    const { url, seen } = await serve(false);
    const agent = client(url, rogue);
    const failed = refused(agent);
    await agent.start();
    expect((await failed).code).toBe("unauthenticated");
    expect(seen).toHaveLength(1);
    expect(seen[0]?.cn).toBe("agent-options");
    expect(seen[0]?.tlsAuthorized).toBe(false);
    expect(seen[0]?.tlsAuthorizationError).toMatch(/^[A-Z_]+$/);

    // The same server still accepts the trusted certificate, with tlsAuthorized: true.
    const good = client(url, pem.client);
    const up = connected(good);
    await good.start();
    await up;
    expect(seen[1]).toEqual({ cn: "agent-options", tlsAuthorized: true, tlsAuthorizationError: undefined });
  });

  it("reports tlsAuthorized: false, with no reason, for a client without a certificate when certificates are optional", async () => {
    const { url, seen } = await serve(false);
    const agent = client(url, undefined);
    const failed = refused(agent);
    await agent.start();
    expect((await failed).code).toBe("unauthenticated");
    expect(seen[0]?.cn).toBeUndefined();
    expect(seen[0]?.tlsAuthorized).toBe(false);
  });
});
