/**
 * The proxy environment variables as Node users expect them (the rules of the
 * `proxy-from-env` package, which curl and most Node HTTP clients share): the proxy for a
 * URL comes from `HTTPS_PROXY` (https:, wss:) or `HTTP_PROXY` (http:, ws:), else
 * `ALL_PROXY`, lower-case names first; `NO_PROXY` lists hosts to reach directly.
 */
import { type ProxySettings, parseProxyUrl } from "./proxy.js";

/** An environment to read (`process.env` by default). */
export type ProxyEnvironment = Readonly<Record<string, string | undefined>>;

const DEFAULT_PORTS: Readonly<Record<string, number>> = { "http:": 80, "ws:": 80, "https:": 443, "wss:": 443 };

function variable(env: ProxyEnvironment, name: string): { readonly name: string; readonly value: string } | undefined {
  for (const key of [name.toLowerCase(), name.toUpperCase()]) {
    const value = env[key];
    if (value !== undefined && value !== "") return { name: key, value };
  }
  return undefined;
}

/**
 * True when `NO_PROXY` exempts the host: `*` exempts every host; an entry `example.com`
 * matches that host only, `.example.com` or `*.example.com` any host ending so; an entry
 * with `:port` applies to that port only (IPv6: `[::1]:4320`; a bare `::1` has no port).
 * Entries are separated by commas or spaces.
 */
function exempt(noProxy: string | undefined, hostname: string, port: number): boolean {
  if (noProxy === undefined) return false;
  if (noProxy.trim() === "*") return true;
  for (const entry of noProxy.toLowerCase().split(/[,\s]/)) {
    if (entry === "") continue;
    // `host:port`, `[v6]:port`, `[v6]`; a bare IPv6 address (several colons) has no port.
    const parts =
      /^\[(.+)\](?::(\d+))?$/.exec(entry) ??
      (entry.indexOf(":") === entry.lastIndexOf(":") ? /^(.+):(\d+)$/.exec(entry) : null);
    const host = parts?.[1] ?? entry;
    if (parts?.[2] !== undefined && Number(parts[2]) !== port) continue;
    if (!/^[.*]/.test(host)) {
      if (hostname === host) return true;
      continue;
    }
    if (hostname.endsWith(host.startsWith("*") ? host.slice(1) : host)) return true;
  }
  return false;
}

/**
 * The proxy the environment names for `target` (an OpAMP `ws:`, `wss:`, `http:` or
 * `https:` URL), or undefined for a direct connection. A proxy URL without a scheme is
 * `http://`.
 * @throws OpampError `invalid_argument` when the variable holds an unusable proxy URL
 *   (another scheme such as `socks5://`, no host), naming the variable.
 */
export function proxyFromEnvironment(target: string, env: ProxyEnvironment = process.env): ProxySettings | undefined {
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return undefined;
  }
  const secure = url.protocol === "https:" || url.protocol === "wss:";
  if (!secure && url.protocol !== "http:" && url.protocol !== "ws:") return undefined;
  const hostname = url.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  const port = url.port === "" ? (DEFAULT_PORTS[url.protocol] ?? 0) : Number(url.port);
  if (exempt(variable(env, "no_proxy")?.value, hostname, port)) return undefined;
  const found = variable(env, secure ? "https_proxy" : "http_proxy") ?? variable(env, "all_proxy");
  if (found === undefined) return undefined;
  return { url: parseProxyUrl(found.value, found.name).href };
}
