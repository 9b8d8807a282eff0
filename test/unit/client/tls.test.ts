/** Offered TLSConnectionSettings: parsing, IANA → OpenSSL names, merging, Node options, persistence. */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { FileClientStateStore } from "../../../src/client/file-state-store.js";
import { resolveClientOptions } from "../../../src/client/options.js";
import { TLSConnectionSettingsSchema } from "../../../src/gen/opamp/v1/opamp_pb.js";
import { nodeTlsFetch } from "../../../src/transport/node-tls-fetch.js";
import {
  effectiveTls,
  nodeTlsOptions,
  opensslCiphers,
  parseOfferedTls,
  parseTlsVersion,
} from "../../../src/transport/tls.js";

const CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

describe("parseTlsVersion", () => {
  it.each([
    ["1.2", "TLSv1.2"],
    ["TLSv1.2", "TLSv1.2"],
    ["tls1.3", "TLSv1.3"],
    ["TLS13", "TLSv1.3"],
    ["1.0", "TLSv1"],
    ["TLSv1.1", "TLSv1.1"],
  ])("reads %s as %s", (input, expected) => {
    expect(parseTlsVersion(input, "tls.min_version")).toBe(expected);
  });
  it("reads an empty version as the default", () => {
    expect(parseTlsVersion("", "tls.min_version")).toBeUndefined();
  });
  it.each(["1.4", "SSLv3", "2", "latest"])("refuses %s", (input) => {
    expect(() => parseTlsVersion(input, "tls.max_version")).toThrow(/tls\.max_version .* is not a TLS version/);
  });
});

describe("opensslCiphers", () => {
  it("maps IANA names to OpenSSL names and keeps TLS 1.3 names", () => {
    expect(
      opensslCiphers([
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        "TLS_AES_256_GCM_SHA384",
      ]),
    ).toBe("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:TLS_AES_256_GCM_SHA384");
  });
  it("names every suite it cannot map", () => {
    expect(() => opensslCiphers(["TLS_AES_128_GCM_SHA256", "TLS_FOO", "TLS_BAR"])).toThrow(
      "unsupported cipher suite(s): TLS_FOO, TLS_BAR",
    );
  });
  it("leaves the default when no suite is given", () => {
    expect(opensslCiphers([])).toBeUndefined();
  });
});

describe("parseOfferedTls", () => {
  it("validates and normalises an offer", () => {
    const offer = create(TLSConnectionSettingsSchema, {
      caPemContents: CA,
      includeSystemCaCertsPool: true,
      minVersion: "1.2",
      maxVersion: "TLSv1.3",
      cipherSuites: ["TLS_AES_128_GCM_SHA256"],
    });
    expect(parseOfferedTls(offer)).toEqual({
      caPem: CA,
      includeSystemCa: true,
      minVersion: "TLSv1.2",
      maxVersion: "TLSv1.3",
      cipherSuites: ["TLS_AES_128_GCM_SHA256"],
    });
    expect(parseOfferedTls(create(TLSConnectionSettingsSchema, {}))).toEqual({});
  });
  it("refuses min above max, CA text that is no PEM and unknown suites", () => {
    expect(() =>
      parseOfferedTls(create(TLSConnectionSettingsSchema, { minVersion: "1.3", maxVersion: "1.2" })),
    ).toThrow(/above tls\.max_version/);
    expect(() => parseOfferedTls(create(TLSConnectionSettingsSchema, { caPemContents: "garbage" }))).toThrow(/no PEM/);
    expect(() => parseOfferedTls(create(TLSConnectionSettingsSchema, { cipherSuites: ["RC4"] }))).toThrow(/RC4/);
  });
});

describe("effectiveTls and nodeTlsOptions", () => {
  it("puts offered CA, certificate and insecure_skip_verify over the options", () => {
    const tls = effectiveTls(
      { ca: "options-ca", cert: "options-cert", key: "options-key", rejectUnauthorized: true, servername: "opamp" },
      {
        cert: new TextEncoder().encode("offered-cert"),
        key: new TextEncoder().encode("offered-key"),
        offered: {
          caPem: CA,
          insecureSkipVerify: true,
          minVersion: "TLSv1.3",
          cipherSuites: ["TLS_AES_128_GCM_SHA256"],
        },
      },
    );
    expect(nodeTlsOptions(tls, undefined)).toEqual({
      ca: [CA],
      cert: "offered-cert",
      key: "offered-key",
      rejectUnauthorized: false,
      servername: "opamp",
      minVersion: "TLSv1.3",
      ciphers: "TLS_AES_128_GCM_SHA256",
    });
  });
  it("keeps the options when nothing is offered", () => {
    expect(effectiveTls({ ca: "options-ca" }, undefined)).toEqual({ ca: ["options-ca"] });
    expect(effectiveTls({}, undefined)).toEqual({});
  });
  it("adds the system pool to an offered CA when asked", () => {
    const tls = effectiveTls({}, { offered: { caPem: CA, includeSystemCa: true } });
    expect(nodeTlsOptions(tls, ["ROOT"])).toEqual({ ca: ["ROOT", CA] });
    expect(() => nodeTlsOptions(tls, undefined)).toThrow(/rootCertificates/);
  });
});

describe("options", () => {
  it("needs transport.tlsFetch for tls options with an https: URL only", () => {
    expect(() =>
      resolveClientOptions({ transport: { url: "HTTPS://example.test/v1/opamp" }, tls: { ca: CA } }),
    ).toThrow(expect.objectContaining({ code: "invalid_argument" }));
    expect(
      resolveClientOptions({
        transport: { url: "https://example.test/v1/opamp", tlsFetch: nodeTlsFetch },
        tls: { ca: CA },
      }).tlsFetch,
    ).toBe(nodeTlsFetch);
    expect(() =>
      resolveClientOptions({ transport: { url: "wss://example.test/v1/opamp" }, tls: { ca: CA } }),
    ).not.toThrow();
    expect(() => resolveClientOptions({ transport: { url: "https://example.test/v1/opamp" }, tls: {} })).not.toThrow();
  });
});

describe("FileClientStateStore and TLS settings", () => {
  it("round-trips offered TLS settings and still reads a file written before they existed", async () => {
    const dir = await mkdtemp(join(tmpdir(), "opamp-client-tls-"));
    try {
      const path = join(dir, "state.json");
      const store = new FileClientStateStore(path);
      const settings = {
        endpoint: "https://example.test/v1/opamp",
        headers: [],
        tls: { caPem: CA, minVersion: "TLSv1.2" as const, cipherSuites: ["TLS_AES_128_GCM_SHA256"] },
      };
      await store.save({ connectionSettings: settings });
      expect((await new FileClientStateStore(path).load())?.connectionSettings).toEqual(settings);
      // An older file: connection settings without the tls field.
      await writeFile(
        path,
        JSON.stringify({
          version: 1,
          state: { connectionSettings: { endpoint: "wss://old.test/v1/opamp", headers: [] } },
        }),
      );
      const old = (await store.load())?.connectionSettings;
      expect(old).toEqual({ endpoint: "wss://old.test/v1/opamp", headers: [] });
      expect(old?.tls).toBeUndefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
