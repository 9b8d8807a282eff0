/**
 * TLS settings shared by both transports: the options' TLS material, an offered client
 * certificate and offered TLSConnectionSettings merged into one set of Node TLS options.
 * Browser-safe: no `node:` import here; Node applies them (`ws` for WebSocket, the
 * injected {@link TlsFetchFactory} for HTTP), browsers cannot.
 */
// spec: Connection Settings Management (TLSConnectionSettings)

/** A TLS protocol version in Node's spelling. */
export type TlsVersion = "TLSv1" | "TLSv1.1" | "TLSv1.2" | "TLSv1.3";

/**
 * The TLS options a connection uses, in Node's vocabulary (`tls.connect`). Every field is
 * optional; an empty object means "platform defaults".
 */
export interface TlsSettings {
  /** Trusted CAs (PEM). Node: replaces the system pool unless {@link TlsSettings.includeSystemCa}. */
  readonly ca?: readonly (string | Uint8Array)[];
  /** Keep the system CA pool trusted next to {@link TlsSettings.ca}. */
  readonly includeSystemCa?: boolean;
  /** PEM client certificate. */
  readonly cert?: string | Uint8Array;
  /** PEM private key of the client certificate. */
  readonly key?: string | Uint8Array;
  /** Verify the server certificate. Default true. */
  readonly rejectUnauthorized?: boolean;
  /** Server name for SNI and certificate checks. Default the URL's host. */
  readonly servername?: string;
  /** Lowest TLS version accepted. Default Node's (`tls.DEFAULT_MIN_VERSION`, TLSv1.2). */
  readonly minVersion?: TlsVersion;
  /** Highest TLS version offered. Default Node's (`tls.DEFAULT_MAX_VERSION`, TLSv1.3). */
  readonly maxVersion?: TlsVersion;
  /** OpenSSL cipher list (TLS 1.3 suites keep their `TLS_` names), colon-separated. */
  readonly ciphers?: string;
}

/**
 * Makes a fetch that uses `tls` for `https:` requests. Node's implementation is
 * `nodeTlsFetch` from `opamp-sdk/client/node`; the returned function must behave like
 * fetch for what the HTTP transport uses: POST with a byte body, headers, an abort
 * signal, status, headers and a streamed body with Content-Encoding already undone.
 */
export type TlsFetchFactory = (tls: TlsSettings) => typeof globalThis.fetch;

/**
 * A fetch that holds connections (a keep-alive pool) and can let them go: the HTTP
 * transport calls `close()`, when present, once it no longer uses the fetch (at stop, or
 * when it moves to other settings). A fetch without `close` is simply dropped.
 */
export type ClosableFetch = typeof globalThis.fetch & { readonly close?: () => void };

/** The TLS offered with OpAMP connection settings, validated and in Node's terms. */
export interface OfferedTls {
  readonly caPem?: string;
  readonly includeSystemCa?: boolean;
  readonly insecureSkipVerify?: boolean;
  readonly minVersion?: TlsVersion;
  readonly maxVersion?: TlsVersion;
  /** IANA names as offered (kept for persistence and reporting). */
  readonly cipherSuites?: readonly string[];
}

const VERSION_ORDER: readonly TlsVersion[] = ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"];

/**
 * "1.2", "TLSv1.2", "TLS1.2", "tls12"… to Node's "TLSv1.2"; "" to undefined.
 * @throws Error naming the value when it is no TLS version.
 */
export function parseTlsVersion(value: string, field: string): TlsVersion | undefined {
  const text = value.trim();
  if (text === "") return undefined;
  const match = /^(?:tls\s*v?)?1\.?([0-3])$/i.exec(text);
  const minor = match?.[1];
  if (minor === undefined) throw new Error(`${field} ${JSON.stringify(value)} is not a TLS version (1.0–1.3)`);
  return VERSION_ORDER[Number(minor)] as TlsVersion;
}

/** IANA cipher suite names (as Go's crypto/tls names them) → OpenSSL names. */
const CIPHER_SUITES: Readonly<Record<string, string>> = {
  // TLS 1.3: OpenSSL uses the IANA names; Node takes them in `ciphers`.
  TLS_AES_128_GCM_SHA256: "TLS_AES_128_GCM_SHA256",
  TLS_AES_256_GCM_SHA384: "TLS_AES_256_GCM_SHA384",
  TLS_CHACHA20_POLY1305_SHA256: "TLS_CHACHA20_POLY1305_SHA256",
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: "ECDHE-ECDSA-AES128-GCM-SHA256",
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: "ECDHE-RSA-AES128-GCM-SHA256",
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: "ECDHE-ECDSA-AES256-GCM-SHA384",
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: "ECDHE-RSA-AES256-GCM-SHA384",
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-ECDSA-CHACHA20-POLY1305",
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305: "ECDHE-ECDSA-CHACHA20-POLY1305",
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-RSA-CHACHA20-POLY1305",
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305: "ECDHE-RSA-CHACHA20-POLY1305",
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: "ECDHE-ECDSA-AES128-SHA",
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: "ECDHE-RSA-AES128-SHA",
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: "ECDHE-ECDSA-AES256-SHA",
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: "ECDHE-RSA-AES256-SHA",
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256: "ECDHE-ECDSA-AES128-SHA256",
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256: "ECDHE-RSA-AES128-SHA256",
  TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA: "ECDHE-RSA-DES-CBC3-SHA",
  TLS_RSA_WITH_AES_128_GCM_SHA256: "AES128-GCM-SHA256",
  TLS_RSA_WITH_AES_256_GCM_SHA384: "AES256-GCM-SHA384",
  TLS_RSA_WITH_AES_128_CBC_SHA: "AES128-SHA",
  TLS_RSA_WITH_AES_256_CBC_SHA: "AES256-SHA",
  TLS_RSA_WITH_AES_128_CBC_SHA256: "AES128-SHA256",
  TLS_RSA_WITH_3DES_EDE_CBC_SHA: "DES-CBC3-SHA",
};

/**
 * IANA cipher suite names to Node's `ciphers` string.
 * @throws Error naming every suite that has no OpenSSL equivalent here.
 */
export function opensslCiphers(suites: readonly string[]): string | undefined {
  if (suites.length === 0) return undefined;
  const unknown = suites.filter((suite) => CIPHER_SUITES[suite.trim()] === undefined);
  if (unknown.length > 0) {
    throw new Error(`unsupported cipher suite(s): ${unknown.join(", ")} (use IANA names, e.g. TLS_AES_128_GCM_SHA256)`);
  }
  return [...new Set(suites.map((suite) => CIPHER_SUITES[suite.trim()] as string))].join(":");
}

/** Minimal view of TLSConnectionSettings (the generated message). */
export interface TlsConnectionSettingsLike {
  readonly caPemContents: string;
  readonly includeSystemCaCertsPool: boolean;
  readonly insecureSkipVerify: boolean;
  readonly minVersion: string;
  readonly maxVersion: string;
  readonly cipherSuites: readonly string[];
}

/**
 * Validates offered TLSConnectionSettings.
 * @throws Error with a message for the FAILED status when a field cannot be applied.
 */
export function parseOfferedTls(offer: TlsConnectionSettingsLike): OfferedTls {
  const minVersion = parseTlsVersion(offer.minVersion, "tls.min_version");
  const maxVersion = parseTlsVersion(offer.maxVersion, "tls.max_version");
  if (
    minVersion !== undefined &&
    maxVersion !== undefined &&
    VERSION_ORDER.indexOf(minVersion) > VERSION_ORDER.indexOf(maxVersion)
  ) {
    throw new Error(`tls.min_version ${minVersion} is above tls.max_version ${maxVersion}`);
  }
  opensslCiphers(offer.cipherSuites);
  const caPem = offer.caPemContents.trim();
  if (caPem !== "" && !caPem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new Error("tls.ca_pem_contents holds no PEM certificate");
  }
  return {
    ...(caPem === "" ? {} : { caPem: offer.caPemContents }),
    ...(offer.includeSystemCaCertsPool ? { includeSystemCa: true } : {}),
    ...(offer.insecureSkipVerify ? { insecureSkipVerify: true } : {}),
    ...(minVersion === undefined ? {} : { minVersion }),
    ...(maxVersion === undefined ? {} : { maxVersion }),
    ...(offer.cipherSuites.length === 0 ? {} : { cipherSuites: [...offer.cipherSuites] }),
  };
}

/** TLS material a connection target carries (from accepted connection settings). */
export interface TargetTls {
  readonly cert?: Uint8Array;
  readonly key?: Uint8Array;
  /** CA of an offered certificate. */
  readonly ca?: Uint8Array;
  readonly offered?: OfferedTls;
}

/** The options' TLS (see ClientTlsOptions). */
export interface BaseTlsOptions {
  readonly ca?: string | Uint8Array;
  readonly cert?: string | Uint8Array;
  readonly key?: string | Uint8Array;
  readonly rejectUnauthorized?: boolean;
  readonly servername?: string;
}

/**
 * The options' TLS with the target's on top: an offered certificate replaces the
 * configured one; an offered CA (ca_pem_contents and/or the certificate's CA) replaces
 * the configured CA; insecure_skip_verify turns verification off.
 */
export function effectiveTls(base: BaseTlsOptions, target: TargetTls | undefined): TlsSettings {
  const offered = target?.offered;
  const offeredCa: (string | Uint8Array)[] = [];
  if (offered?.caPem !== undefined) offeredCa.push(offered.caPem);
  if (target?.ca !== undefined) offeredCa.push(target.ca);
  const ca = offeredCa.length > 0 ? offeredCa : base.ca === undefined ? undefined : [base.ca];
  const cert = target?.cert ?? base.cert;
  const key = target?.key ?? base.key;
  const rejectUnauthorized = offered?.insecureSkipVerify === true ? false : base.rejectUnauthorized;
  const ciphers = offered?.cipherSuites === undefined ? undefined : opensslCiphers(offered.cipherSuites);
  return {
    ...(ca === undefined ? {} : { ca }),
    ...(offered?.includeSystemCa === true && ca !== undefined ? { includeSystemCa: true } : {}),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
    ...(rejectUnauthorized === undefined ? {} : { rejectUnauthorized }),
    ...(base.servername === undefined ? {} : { servername: base.servername }),
    ...(offered?.minVersion === undefined ? {} : { minVersion: offered.minVersion }),
    ...(offered?.maxVersion === undefined ? {} : { maxVersion: offered.maxVersion }),
    ...(ciphers === undefined ? {} : { ciphers }),
  };
}

/** True when `tls` asks for anything beyond the platform defaults. */
export function hasTls(tls: TlsSettings): boolean {
  return Object.keys(tls).length > 0;
}

function asPem(value: string | Uint8Array): string {
  return typeof value === "string" ? value : new TextDecoder().decode(value);
}

/**
 * Node `tls.connect` options for `tls`. `rootCertificates` (Node's `tls.rootCertificates`)
 * is added to `ca` when the system pool is to stay trusted.
 * @throws Error when the system pool is asked for but `rootCertificates` is unknown.
 */
export function nodeTlsOptions(
  tls: TlsSettings,
  rootCertificates: readonly string[] | undefined,
): Record<string, unknown> {
  let ca: string[] | undefined = tls.ca?.map(asPem);
  if (ca !== undefined && tls.includeSystemCa === true) {
    if (rootCertificates === undefined) {
      throw new Error("include_system_ca_certs_pool needs Node's tls.rootCertificates (Node ≥ 20.16)");
    }
    ca = [...rootCertificates, ...ca];
  }
  return {
    ...(ca === undefined ? {} : { ca }),
    ...(tls.cert === undefined ? {} : { cert: asPem(tls.cert) }),
    ...(tls.key === undefined ? {} : { key: asPem(tls.key) }),
    ...(tls.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: tls.rejectUnauthorized }),
    ...(tls.servername === undefined ? {} : { servername: tls.servername }),
    ...(tls.minVersion === undefined ? {} : { minVersion: tls.minVersion }),
    ...(tls.maxVersion === undefined ? {} : { maxVersion: tls.maxVersion }),
    ...(tls.ciphers === undefined ? {} : { ciphers: tls.ciphers }),
  };
}

/**
 * Node's root CAs without a static `node:tls` import (keeps browser bundles clean):
 * `process.getBuiltinModule` exists from Node 20.16; undefined elsewhere.
 */
export function nodeRootCertificates(): readonly string[] | undefined {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const tlsModule = proc?.getBuiltinModule?.("node:tls") as { rootCertificates?: readonly string[] } | undefined;
  return tlsModule?.rootCertificates;
}
