/**
 * The `opamp-gateway --config gateway.yaml` file. Its schema stays close to Bindplane's
 * `opampgateway` extension (`server.endpoint`, `server.headers`, `server.tls`,
 * `server.connections`, `listener.endpoint`, `listener.tls`), so a Bindplane config block
 * can be used as it is — also inside a Collector-style file, under
 * `extensions.opampgateway`. opamp-sdk adds `listener.path` and an `auth` block.
 * `${env:NAME}` (and `${NAME}`) in a value is replaced by the environment variable.
 */
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import type { TlsSettings } from "../transport/tls.js";
import { OpampError } from "../wire/errors.js";
import type { GatewayListenOptions } from "./opamp-gateway.js";
import type { OpAMPGatewayOptions } from "./options.js";

/** A parsed config file: the gateway's options and where to listen. */
export interface GatewayConfig {
  /** Options for `new OpAMPGateway()`, from the file's `server`, `auth` and `listener.path`. */
  readonly gateway: OpAMPGatewayOptions;
  /** Options for `gateway.listen()`, from `listener.endpoint` and `listener.tls`. */
  readonly listen: GatewayListenOptions;
}

/** How files named in the config are read, and the environment for `${env:…}`. */
export interface ConfigContext {
  /** Directory relative file names are resolved against. */
  readonly baseDir: string;
  /** Variables `${env:NAME}` in the file expands from (`process.env` for {@link loadGatewayConfig}). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /**
   * Reads a PEM file the config names (`*_file` TLS settings), given its path resolved
   * against `baseDir`; a rejection becomes `invalid_argument`.
   */
  readonly readFile: (path: string) => Promise<string>;
}

type Obj = Record<string, unknown>;

function bad(message: string): OpampError {
  return new OpampError("invalid_argument", `gateway config: ${message}`);
}

function isObj(value: unknown): value is Obj {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function section(parent: Obj, key: string, where: string): Obj {
  const value = parent[key];
  if (value === undefined || value === null) return {};
  if (!isObj(value)) throw bad(`${where}${key} must be a mapping`);
  return value;
}

function str(obj: Obj, key: string, where: string): string | undefined {
  const value = obj[key];
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value !== "string") throw bad(`${where}${key} must be a string`);
  return value;
}

function bool(obj: Obj, key: string, where: string): boolean | undefined {
  const value = obj[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "boolean") throw bad(`${where}${key} must be true or false`);
  return value;
}

/** `30s`, `500ms`, `1m`, `2h`, or a number of milliseconds. */
export function parseDuration(value: unknown, where: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "number" && Number.isFinite(value) && value >= 0) return value;
  if (typeof value === "string") {
    const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(value.trim());
    if (match !== null) {
      const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] as "ms" | "s" | "m" | "h"];
      return Math.round(Number(match[1]) * scale);
    }
  }
  throw bad(`${where} must be a duration such as 30s or 500ms`);
}

/** Replaces `${env:NAME}` and `${NAME}` in every string of the tree. */
function expand(value: unknown, env: ConfigContext["env"], where: string): unknown {
  if (typeof value === "string") {
    return value.replace(/\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => {
      const found = env[name];
      if (found === undefined) throw bad(`${where} names the environment variable ${name}, which is not set`);
      return found;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => expand(v, env, `${where}[${i}]`));
  if (isObj(value)) {
    const out: Obj = {};
    for (const [k, v] of Object.entries(value)) out[k] = expand(v, env, where === "" ? k : `${where}.${k}`);
    return out;
  }
  return value;
}

async function pem(
  obj: Obj,
  inline: string,
  file: string,
  where: string,
  ctx: ConfigContext,
): Promise<string | undefined> {
  const text = str(obj, inline, where);
  const path = str(obj, file, where);
  if (text !== undefined && path !== undefined) throw bad(`${where}${inline} and ${where}${file} are exclusive`);
  if (text !== undefined) return text;
  if (path === undefined) return undefined;
  try {
    return await ctx.readFile(resolve(ctx.baseDir, path));
  } catch (e) {
    throw new OpampError("invalid_argument", `gateway config: cannot read ${where}${file} ${path}`, { cause: e });
  }
}

function tlsVersion(value: string | undefined, where: string): TlsSettings["minVersion"] {
  if (value === undefined) return undefined;
  const match = /^1\.([0-3])$/.exec(value);
  if (match === null) throw bad(`${where} must be 1.0, 1.1, 1.2 or 1.3`);
  return (["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"] as const)[Number(match[1])];
}

/** `configtls.ClientConfig` → the upstream's TLS settings. */
async function clientTls(obj: Obj, ctx: ConfigContext): Promise<TlsSettings | undefined> {
  const where = "server.tls.";
  if (bool(obj, "insecure", where) === true) return undefined;
  const ca = await pem(obj, "ca_pem", "ca_file", where, ctx);
  const cert = await pem(obj, "cert_pem", "cert_file", where, ctx);
  const key = await pem(obj, "key_pem", "key_file", where, ctx);
  if ((cert === undefined) !== (key === undefined)) throw bad("server.tls needs both a certificate and its key");
  const skip = bool(obj, "insecure_skip_verify", where);
  const servername = str(obj, "server_name_override", where);
  const min = tlsVersion(str(obj, "min_version", where), `${where}min_version`);
  const max = tlsVersion(str(obj, "max_version", where), `${where}max_version`);
  return {
    ...(ca === undefined
      ? {}
      : { ca: [ca], includeSystemCa: bool(obj, "include_system_ca_certs_pool", where) === true }),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
    ...(skip === true ? { rejectUnauthorized: false } : {}),
    ...(servername === undefined ? {} : { servername }),
    ...(min === undefined ? {} : { minVersion: min }),
    ...(max === undefined ? {} : { maxVersion: max }),
  };
}

/** `host:port` (Bindplane's `listener.endpoint`); an empty host means every interface. */
function listenEndpoint(value: string | undefined): { host?: string; port: number } {
  if (value === undefined) throw bad("listener.endpoint is required (e.g. 0.0.0.0:4320)");
  const match = /^(?:\[([^\]]*)\]|([^:]*)):(\d+)$/.exec(value);
  if (match === null) throw bad(`listener.endpoint must be host:port, got ${JSON.stringify(value)}`);
  const host = match[1] ?? match[2] ?? "";
  const port = Number(match[3]);
  if (port > 65_535) throw bad(`listener.endpoint port ${port} is out of range`);
  return host === "" ? { port } : { host, port };
}

/**
 * Parses a config file's text.
 *
 * @throws OpampError `invalid_argument` naming the offending key for anything that does
 *   not fit the schema, a missing environment variable or a file that cannot be read.
 */
export async function parseGatewayConfig(text: string, ctx: ConfigContext): Promise<GatewayConfig> {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new OpampError("invalid_argument", `gateway config: not valid YAML: ${(e as Error).message}`, { cause: e });
  }
  if (!isObj(raw)) throw bad("the file must hold a mapping");
  // A Collector-style file with the Bindplane extension block works too.
  if (raw["server"] === undefined && isObj(raw["extensions"]) && isObj(raw["extensions"]["opampgateway"])) {
    raw = raw["extensions"]["opampgateway"];
  }
  const root = expand(raw, ctx.env, "") as Obj;
  const server = section(root, "server", "");
  const listener = section(root, "listener", "");
  const auth = section(root, "auth", "");
  const endpoint = str(server, "endpoint", "server.");
  if (endpoint === undefined) throw bad("server.endpoint is required (ws:// or wss://)");
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(section(server, "headers", "server."))) {
    if (typeof value === "string") headers[name] = value;
    else if (Array.isArray(value) && value.every((v) => typeof v === "string")) headers[name] = value as string[];
    else throw bad(`server.headers.${name} must be a string or a list of strings`);
  }
  const connections = server["connections"];
  if (
    connections !== undefined &&
    (typeof connections !== "number" || !Number.isInteger(connections) || connections < 1)
  ) {
    throw bad("server.connections must be an integer of at least 1");
  }
  const tls = await clientTls(section(server, "tls", "server."), ctx);
  const mode = str(auth, "mode", "auth.") ?? "delegate";
  let gatewayAuth: OpAMPGatewayOptions["auth"];
  if (mode === "delegate") {
    const timeoutMs = parseDuration(auth["timeout"], "auth.timeout");
    gatewayAuth = timeoutMs === undefined ? { mode } : { mode, timeoutMs };
  } else if (mode === "passthrough") {
    const forward = auth["forward_headers"];
    if (forward !== undefined && !(Array.isArray(forward) && forward.every((h) => typeof h === "string"))) {
      throw bad("auth.forward_headers must be a list of header names");
    }
    gatewayAuth = forward === undefined ? { mode } : { mode, forwardHeaders: forward as string[] };
  } else if (mode === "none") {
    gatewayAuth = { mode };
  } else {
    throw bad(`auth.mode must be delegate, passthrough or none, got ${JSON.stringify(mode)}`);
  }
  const path = str(listener, "path", "listener.");
  const listenTls = section(listener, "tls", "listener.");
  const cert = await pem(listenTls, "cert_pem", "cert_file", "listener.tls.", ctx);
  const key = await pem(listenTls, "key_pem", "key_file", "listener.tls.", ctx);
  const clientCa = await pem(listenTls, "client_ca_pem", "client_ca_file", "listener.tls.", ctx);
  if ((cert === undefined) !== (key === undefined)) throw bad("listener.tls needs both cert_file and key_file");
  const where = listenEndpoint(str(listener, "endpoint", "listener."));
  return {
    gateway: {
      upstream: {
        url: endpoint,
        headers,
        ...(tls === undefined ? {} : { tls }),
        ...(connections === undefined ? {} : { connections: connections as number }),
      },
      auth: gatewayAuth,
      ...(path === undefined ? {} : { path }),
    },
    listen: {
      ...where,
      ...(cert === undefined || key === undefined
        ? {}
        : { tls: { cert, key, ...(clientCa === undefined ? {} : { ca: clientCa, requestCert: true }) } }),
    },
  };
}

/**
 * Reads and parses a config file; relative file names in it are resolved against its
 * directory, `${env:…}` against `process.env`.
 *
 * @throws OpampError `invalid_argument` (see {@link parseGatewayConfig}) or when the file
 *   cannot be read.
 */
export async function loadGatewayConfig(path: string, env: ConfigContext["env"] = process.env): Promise<GatewayConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new OpampError("invalid_argument", `gateway config: cannot read ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return parseGatewayConfig(text, { baseDir: dirname(resolve(path)), env, readFile: (p) => readFile(p, "utf8") });
}
