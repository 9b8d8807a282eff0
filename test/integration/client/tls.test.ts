/**
 * TLS over both transports against https/wss fake servers on 127.0.0.1, with
 * certificates made at test time by `openssl`: a private CA and mTLS from the options,
 * offered client certificates and TLSConnectionSettings verified by connecting, then
 * committed and persisted or rolled back with FAILED.
 *
 * Needs the `openssl` command. Without it the suite is skipped with a warning, except
 * when CI is set, where it fails.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { OpAMPClient } from "../../../src/client/opamp-client.js";
import { MemoryClientStateStore } from "../../../src/client/state-store.js";
import {
  ConnectionSettingsOffersSchema,
  ConnectionSettingsStatuses,
  type OpAMPConnectionSettings,
  OpAMPConnectionSettingsSchema,
  ServerToAgentSchema,
  TLSCertificateSchema,
  TLSConnectionSettingsSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import { nodeTlsFetch } from "../../../src/transport/node-tls-fetch.js";
import { hasOpenssl, inCI, type Material, makeMaterial } from "./certs.js";
import { FakeServer, type FakeServerTls } from "./fake-server.js";
import { eventWhere, makeClient, nextEvent } from "./helpers.js";

const OPENSSL = hasOpenssl();
if (!OPENSSL && !inCI()) console.warn("tls.test.ts: skipped — the `openssl` command is missing (required under CI)");

const text = (value: string) => new TextEncoder().encode(value);

describe.runIf(OPENSSL || inCI())("TLS", () => {
  let dir: string;
  let pem: Material;
  const servers: FakeServer[] = [];
  const clients: OpAMPClient[] = [];

  beforeAll(() => {
    if (!OPENSSL) throw new Error("the `openssl` command is required under CI");
    dir = mkdtempSync(join(tmpdir(), "opamp-tls-"));
    pem = makeMaterial(dir);
  });
  afterAll(() => {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    for (const client of clients.splice(0)) await client.stop();
    for (const server of servers.splice(0)) await server.close();
  });

  async function start(tls?: Partial<FakeServerTls>): Promise<FakeServer> {
    const server = await FakeServer.start(
      tls === undefined ? {} : { tls: { key: pem.server.key, cert: pem.server.cert, ...tls } },
    );
    servers.push(server);
    return server;
  }

  function track<T extends { client: OpAMPClient }>(harness: T): T {
    clients.push(harness.client);
    return harness;
  }

  /** A plain server that offers `settings` (once per hash) on every answer. */
  function offering(server: FakeServer, settings: OpAMPConnectionSettings, hash: number): void {
    server.script = ({ message }) =>
      create(ServerToAgentSchema, {
        instanceUid: message.instanceUid,
        connectionSettings: create(ConnectionSettingsOffersSchema, { hash: new Uint8Array([hash]), opamp: settings }),
      });
  }

  it("refuses tls options for an https: URL without transport.tlsFetch", () => {
    expect(
      () => new OpAMPClient({ transport: { url: "https://127.0.0.1:1/v1/opamp" }, tls: { ca: pem.ca.cert } }),
    ).toThrow(expect.objectContaining({ code: "invalid_argument", message: expect.stringContaining("tlsFetch") }));
  });

  describe.each(["ws", "http"] as const)("over %s", (kind) => {
    it("connects to a server with a private CA given in the options", async () => {
      const server = await start({});
      const { client } = track(
        makeClient(server, kind, { tls: { ca: pem.ca.cert }, transport: { tlsFetch: nodeTlsFetch } }),
      );
      expect(server.url(kind)).toMatch(/^(wss|https):/);
      const answered = nextEvent(client, "message");
      await client.start();
      await answered;
      expect(server.received[0]?.transport).toBe(kind);
    });

    it("does not connect when the server's CA is not trusted", async () => {
      const server = await start({});
      const { client } = track(
        makeClient(server, kind, { tls: { ca: pem.otherCa.cert }, transport: { tlsFetch: nodeTlsFetch } }),
      );
      const failed = nextEvent(client, "connectFailed");
      await client.start();
      const [error] = await failed;
      expect(error.message).toMatch(/certificate/i);
      expect(server.received).toHaveLength(0);
    });

    it("presents the client certificate from the options (mTLS)", async () => {
      const server = await start({ ca: pem.ca.cert, requestCert: true });
      const { client } = track(
        makeClient(server, kind, {
          tls: { ca: pem.ca.cert, cert: pem.client.cert, key: pem.client.key },
          transport: { tlsFetch: nodeTlsFetch },
        }),
      );
      const answered = nextEvent(client, "message");
      await client.start();
      await answered;
      expect(server.clientNames[0]).toBe("agent-options");
    });

    it("connects without verification when rejectUnauthorized is false", async () => {
      const server = await start({});
      const { client } = track(
        makeClient(server, kind, { tls: { rejectUnauthorized: false }, transport: { tlsFetch: nodeTlsFetch } }),
      );
      const answered = nextEvent(client, "message");
      await client.start();
      await answered;
    });

    it("verifies an offered client certificate and CA by connecting, then commits and persists them", async () => {
      const plain = await start();
      const secure = await start({ ca: pem.ca.cert, requestCert: true });
      offering(
        plain,
        create(OpAMPConnectionSettingsSchema, {
          destinationEndpoint: secure.url(kind),
          certificate: create(TLSCertificateSchema, {
            cert: text(pem.offeredClient.cert),
            privateKey: text(pem.offeredClient.key),
          }),
          tls: create(TLSConnectionSettingsSchema, { caPemContents: pem.ca.cert, minVersion: "1.2" }),
        }),
        1,
      );
      const store = new MemoryClientStateStore();
      const { client } = track(
        makeClient(plain, kind, {
          storage: { state: store },
          transport: { tlsFetch: nodeTlsFetch },
          hooks: { onOpampConnectionSettings: async () => true },
        }),
      );
      const committed = nextEvent(client, "connectionSettings");
      await client.start();
      const [settings] = await committed;
      expect(settings.endpoint).toBe(secure.url(kind));
      expect(settings.tls).toEqual({ caPem: pem.ca.cert, minVersion: "TLSv1.2" });
      const applied = await secure.waitFor(
        (r) =>
          r.message.connectionSettingsStatus?.status === ConnectionSettingsStatuses.ConnectionSettingsStatuses_APPLIED,
      );
      expect(applied.message.connectionSettingsStatus?.lastConnectionSettingsHash).toEqual(new Uint8Array([1]));
      expect(secure.clientNames.every((name) => name === "agent-offered")).toBe(true);
      const saved = (await store.load())?.connectionSettings;
      expect(saved?.tls?.caPem).toBe(pem.ca.cert);
      expect(saved?.certificate?.cert).toEqual(text(pem.offeredClient.cert));
    });

    it("rolls back an offered CA that does not verify the server and reports FAILED", async () => {
      const plain = await start();
      const secure = await start({});
      offering(
        plain,
        create(OpAMPConnectionSettingsSchema, {
          destinationEndpoint: secure.url(kind),
          tls: create(TLSConnectionSettingsSchema, { caPemContents: pem.otherCa.cert }),
        }),
        2,
      );
      const store = new MemoryClientStateStore();
      const { client, clock } = track(
        makeClient(plain, kind, {
          storage: { state: store },
          transport: { tlsFetch: nodeTlsFetch },
          hooks: { onOpampConnectionSettings: async () => true },
        }),
      );
      const failed = eventWhere(
        client,
        "connectionSettingsStatus",
        (s) => s.status === ConnectionSettingsStatuses.ConnectionSettingsStatuses_FAILED,
      );
      await client.start();
      const [status] = await failed;
      expect(status.errorMessage).toMatch(/new settings failed: .*certificate/i);
      clock.advance(1_000);
      const reported = await plain.waitFor(
        (r) =>
          r.message.connectionSettingsStatus?.status === ConnectionSettingsStatuses.ConnectionSettingsStatuses_FAILED,
      );
      expect(reported.transport).toBe(kind);
      expect(secure.received).toHaveLength(0);
      expect((await store.load())?.connectionSettings?.endpoint ?? plain.url(kind)).toBe(plain.url(kind));
    });

    it("applies an offered insecure_skip_verify", async () => {
      const plain = await start();
      const secure = await start({});
      offering(
        plain,
        create(OpAMPConnectionSettingsSchema, {
          destinationEndpoint: secure.url(kind),
          tls: create(TLSConnectionSettingsSchema, { insecureSkipVerify: true }),
        }),
        3,
      );
      const { client } = track(
        makeClient(plain, kind, {
          transport: { tlsFetch: nodeTlsFetch },
          hooks: { onOpampConnectionSettings: async () => true },
        }),
      );
      const committed = nextEvent(client, "connectionSettings");
      await client.start();
      expect((await committed)[0].tls).toEqual({ insecureSkipVerify: true });
      await secure.waitFor();
    });

    it("rolls back an offered min_version the server does not support and reports FAILED", async () => {
      const secure = await start({ maxVersion: "TLSv1.2" });
      secure.script = ({ message }) =>
        create(ServerToAgentSchema, {
          instanceUid: message.instanceUid,
          connectionSettings: create(ConnectionSettingsOffersSchema, {
            hash: new Uint8Array([4]),
            opamp: create(OpAMPConnectionSettingsSchema, {
              tls: create(TLSConnectionSettingsSchema, { caPemContents: pem.ca.cert, minVersion: "TLSv1.3" }),
            }),
          }),
        });
      const { client, clock } = track(
        makeClient(secure, kind, {
          tls: { ca: pem.ca.cert },
          transport: { tlsFetch: nodeTlsFetch },
          hooks: { onOpampConnectionSettings: async () => true },
        }),
      );
      const failed = eventWhere(
        client,
        "connectionSettingsStatus",
        (s) => s.status === ConnectionSettingsStatuses.ConnectionSettingsStatuses_FAILED,
      );
      await client.start();
      const [status] = await failed;
      expect(status.errorMessage).toMatch(/new settings failed: .*(protocol|version)/i);
      clock.advance(1_000);
      // Old settings kept: the client is back on TLS 1.2 and reports the failure.
      await secure.waitFor(
        (r) =>
          r.message.connectionSettingsStatus?.status === ConnectionSettingsStatuses.ConnectionSettingsStatuses_FAILED,
      );
    });

    it("reports FAILED at once for offered TLS settings it cannot apply, keeping the old settings", async () => {
      const server = await start({});
      server.script = ({ message }) =>
        create(ServerToAgentSchema, {
          instanceUid: message.instanceUid,
          connectionSettings: create(ConnectionSettingsOffersSchema, {
            hash: new Uint8Array([5]),
            opamp: create(OpAMPConnectionSettingsSchema, {
              tls: create(TLSConnectionSettingsSchema, {
                caPemContents: pem.ca.cert,
                cipherSuites: ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_MADE_UP_SUITE"],
              }),
            }),
          }),
        });
      const { client } = track(
        makeClient(server, kind, {
          tls: { ca: pem.ca.cert },
          transport: { tlsFetch: nodeTlsFetch },
          hooks: { onOpampConnectionSettings: async () => true },
        }),
      );
      const failed = eventWhere(
        client,
        "connectionSettingsStatus",
        (s) => s.status === ConnectionSettingsStatuses.ConnectionSettingsStatuses_FAILED,
      );
      await client.start();
      const [status] = await failed;
      expect(status.errorMessage).toMatch(/unsupported cipher suite\(s\): TLS_MADE_UP_SUITE/);
      const reported = await server.waitFor(
        (r) =>
          r.message.connectionSettingsStatus?.status === ConnectionSettingsStatuses.ConnectionSettingsStatuses_FAILED,
      );
      expect(reported.message.agentDisconnect).toBeUndefined();
      expect(server.received.some((r) => r.message.agentDisconnect !== undefined)).toBe(false);
    });
  });

  it("reports an offered certificate over HTTP FAILED when no tlsFetch is configured", async () => {
    const server = await start({});
    server.script = ({ message }) =>
      create(ServerToAgentSchema, {
        instanceUid: message.instanceUid,
        connectionSettings: create(ConnectionSettingsOffersSchema, {
          hash: new Uint8Array([6]),
          opamp: create(OpAMPConnectionSettingsSchema, {
            certificate: create(TLSCertificateSchema, {
              cert: text(pem.client.cert),
              privateKey: text(pem.client.key),
            }),
          }),
        }),
      });
    const { client } = track(
      makeClient(server, "http", {
        // Trust comes from a custom fetch here; certificates need tlsFetch.
        transport: { fetch: nodeTlsFetch({ ca: [pem.ca.cert] }) },
        hooks: { onOpampConnectionSettings: async () => true },
      }),
    );
    const failed = eventWhere(
      client,
      "connectionSettingsStatus",
      (s) => s.status === ConnectionSettingsStatuses.ConnectionSettingsStatuses_FAILED,
    );
    await client.start();
    expect((await failed)[0].errorMessage).toMatch(/transport\.tlsFetch/);
  });
});
