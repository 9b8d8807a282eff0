/**
 * TLS polling reuses its connection (issue 15): an HTTP-polling client with nodeTlsFetch
 * does one TLS handshake for many polls, counted on the server, and closes its pooled
 * connection when it stops.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { OpAMPClient } from "../../../src/client/index.js";
import { nodeTlsFetch } from "../../../src/client/node.js";
import { OpAMPServer } from "../../../src/server/index.js";
import { hasOpenssl, inCI, type Material, makeMaterial } from "../client/certs.js";

const usable = hasOpenssl() || inCI();
if (!usable) console.warn("TLS keep-alive test skipped: openssl is not installed (under CI this fails)");

let dir = "";
let pem: Material;
beforeAll(() => {
  if (!usable) return;
  dir = mkdtempSync(join(tmpdir(), "opamp-dx-tls-"));
  pem = makeMaterial(dir);
});
afterAll(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe.skipIf(!usable)("HTTP polling over TLS", () => {
  it("does one TLS handshake for many polls, and closes the connection at stop()", async () => {
    // Not advertised: the client keeps polling at its own 20 ms.
    const server = new OpAMPServer({ allowAnonymous: true, heartbeat: { advertise: false } });
    await server.start();
    const https: HttpsServer = createHttpsServer({ key: pem.server.key, cert: pem.server.cert });
    server.attach(https);
    const handshakes: TLSSocket[] = [];
    https.on("secureConnection", (socket: TLSSocket) => handshakes.push(socket));
    await new Promise<void>((resolve) => https.listen(0, "127.0.0.1", resolve));
    cleanups.push(async () => {
      await server.stop();
      https.closeAllConnections();
      await new Promise<void>((resolve) => https.close(() => resolve()));
    });
    const url = `https://127.0.0.1:${(https.address() as AddressInfo).port}/v1/opamp`;

    let polls = 0;
    const fivePolls = new Promise<void>((resolve) =>
      server.on("message", () => {
        polls++;
        if (polls === 5) resolve();
      }),
    );
    const client = new OpAMPClient({
      transport: { url, heartbeatIntervalMs: 20, tlsFetch: nodeTlsFetch },
      tls: { ca: pem.ca.cert },
      agent: { description: { identifying: { "service.name": "keep-alive" } } },
    });
    cleanups.push(() => client.stop());
    await client.start();
    await fivePolls;
    expect(handshakes).toHaveLength(1);

    // stop() sends its goodbye on the same connection, then lets the connection go.
    const closed = new Promise<void>((resolve) => handshakes[0]!.once("close", () => resolve()));
    await client.stop();
    await closed;
    expect(handshakes).toHaveLength(1);
  });
});
