/**
 * Hostile server against the client: connection-settings offers with CR/LF (or other
 * control characters) in headers, a header name that is not a token, and bad client
 * certificates (not PEM at all; from a CA the endpoint does not trust). Header offers are
 * refused at once, without dropping the working connection; certificates are tried and
 * rolled back. Either way the server hears FAILED and the agent stays where it was.
 * Both transports.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  ConnectionSettingsOffersSchema,
  ConnectionSettingsStatuses,
  HeaderSchema,
  HeadersSchema,
  type OpAMPConnectionSettings,
  OpAMPConnectionSettingsSchema,
  ProxyConnectionSettingsSchema,
  ServerToAgentSchema,
  TLSCertificateSchema,
  TLSConnectionSettingsSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import { nodeTlsFetch } from "../../../src/transport/node-tls-fetch.js";
import { hasOpenssl, inCI, type Material, makeMaterial, type Pem, rogueClient } from "../client/certs.js";
import { FakeServer } from "../client/fake-server.js";
import { eventWhere, makeClient, nextEvent } from "../client/helpers.js";

const FAILED = ConnectionSettingsStatuses.ConnectionSettingsStatuses_FAILED;
const text = (value: string) => new TextEncoder().encode(value);
const header = (key: string, value: string) => create(HeaderSchema, { key, value });

describe.each(["ws", "http"] as const)("hostile connection-settings offers over %s", (kind) => {
  let server: FakeServer;
  beforeEach(async () => {
    server = await FakeServer.start();
  });
  afterEach(async () => {
    await server.close();
  });

  /** Offers `opamp` (hash `n`) in the answer to the first message only. */
  function offering(target: FakeServer, opamp: OpAMPConnectionSettings, n: number): void {
    target.script = ({ message }) =>
      create(ServerToAgentSchema, {
        instanceUid: message.instanceUid,
        ...(message.sequenceNum === 0n
          ? { connectionSettings: create(ConnectionSettingsOffersSchema, { hash: new Uint8Array([n]), opamp }) }
          : {}),
      });
  }

  const HOSTILE_HEADERS = {
    "CR/LF in a value": create(HeadersSchema, { headers: [header("Authorization", "Bearer x\r\nX-Injected: 1")] }),
    "a bare LF in a value": create(HeadersSchema, { headers: [header("X-Tenant", "a\nb")] }),
    "a NUL in a value": create(HeadersSchema, { headers: [header("X-Tenant", "a\u0000b")] }),
    "a name with a space and a colon": create(HeadersSchema, { headers: [header("X-Injected: 1\r\nX", "v")] }),
  };

  for (const [what, headers] of Object.entries(HOSTILE_HEADERS)) {
    it(`refuses headers with ${what} at once, keeping the connection and its headers`, async () => {
      offering(server, create(OpAMPConnectionSettingsSchema, { headers }), 1);
      const { client, clock } = makeClient(server, kind, {
        transport: { headers: { Authorization: "Bearer good" } },
        hooks: { onOpampConnectionSettings: async () => true },
      });
      const failed = eventWhere(client, "connectionSettingsStatus", (s) => s.status === FAILED);
      await client.start();
      const [status] = await failed;
      expect(status.errorMessage).toMatch(/^invalid headers: header/);
      if (kind === "http") clock.advance(30_000);
      const reported = await server.waitFor((r) => r.message.connectionSettingsStatus?.status === FAILED);
      expect(reported.headers.authorization).toBe("Bearer good");
      expect(reported.headers["x-injected"]).toBeUndefined();
      // No goodbye, no second connection: the offer never reached the transport.
      expect(server.received.some((r) => r.message.agentDisconnect !== undefined)).toBe(false);
      if (kind === "ws") expect(server.upgrades).toHaveLength(1);
      expect(client.state.t).toBe("connected");
      await client.stop();
    });
  }

  it("refuses a proxy offer whose connect headers hold CR/LF", async () => {
    offering(
      server,
      create(OpAMPConnectionSettingsSchema, {
        proxy: create(ProxyConnectionSettingsSchema, {
          url: "http://127.0.0.1:3128",
          connectHeaders: create(HeadersSchema, { headers: [header("Proxy-Authorization", "Basic x\r\nHost: evil")] }),
        }),
      }),
      2,
    );
    const { client } = makeClient(server, kind, { hooks: { onOpampConnectionSettings: async () => true } });
    const failed = eventWhere(client, "connectionSettingsStatus", (s) => s.status === FAILED);
    await client.start();
    expect((await failed)[0].errorMessage).toMatch(/^invalid proxy settings: connect_headers: header/);
    expect(client.state.t).toBe("connected");
    await client.stop();
  });

  describe.skipIf(!hasOpenssl() && !inCI())("bad client certificates", () => {
    let dir = "";
    let pem: Material;
    let rogue: Pem;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), "opamp-hostile-certs-"));
      pem = makeMaterial(dir);
      rogue = rogueClient(dir);
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    /** A TLS endpoint that requires a client certificate from the test CA. */
    const secureServer = () =>
      FakeServer.start({ tls: { key: pem.server.key, cert: pem.server.cert, ca: pem.ca.cert, requestCert: true } });

    const CERTIFICATES = {
      "not PEM at all": () => ({
        cert: text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n"),
        key: text("garbage"),
      }),
      "from a CA the endpoint does not trust": () => ({ cert: text(rogue.cert), key: text(rogue.key) }),
    };

    for (const [what, certificate] of Object.entries(CERTIFICATES)) {
      it(`rolls back a certificate ${what} and reports FAILED on the old endpoint`, async () => {
        const { cert, key } = certificate();
        const secure = await secureServer();
        offering(
          server,
          create(OpAMPConnectionSettingsSchema, {
            destinationEndpoint: secure.url(kind),
            certificate: create(TLSCertificateSchema, { cert, privateKey: key }),
            tls: create(TLSConnectionSettingsSchema, { caPemContents: pem.ca.cert }),
          }),
          3,
        );
        const { client, clock } = makeClient(server, kind, {
          transport: { tlsFetch: nodeTlsFetch },
          hooks: { onOpampConnectionSettings: async () => true },
        });
        const errors: string[] = [];
        client.on("error", (e) => errors.push(e.code));
        const failed = eventWhere(client, "connectionSettingsStatus", (s) => s.status === FAILED);
        await client.start();
        const [status] = await failed;
        expect(status.errorMessage).toMatch(/^new settings failed: /);
        const back = nextEvent(client, "connect");
        clock.advance(1_000);
        await back;
        const reported = await server.waitFor((r) => r.message.connectionSettingsStatus?.status === FAILED);
        expect(reported.transport).toBe(kind);
        expect(secure.received).toHaveLength(0);
        expect(errors).not.toContain("internal");
        await client.stop();
        await secure.close();
      });
    }
  });
});
