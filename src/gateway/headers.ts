/**
 * Request headers as the gateway passes them on: in Go's `http.Header` shape for the
 * `connect` JSON (what Bindplane's gateway sends), and filtered for relaying a request
 * to a server that authenticates it itself (pass-through).
 */
import type { IncomingMessage } from "node:http";
import type { GoHeaders } from "../wire/gateway-protocol.js";

/**
 * Go's canonical header name (`textproto.CanonicalMIMEHeaderKey`): the first letter and
 * every letter after a hyphen upper-case, the rest lower-case (`sec-websocket-key` →
 * `Sec-Websocket-Key`). A name with characters outside a token is left as it is, as Go does.
 */
export function canonicalHeaderName(name: string): string {
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) return name;
  let out = "";
  let upper = true;
  for (const ch of name) {
    out += upper ? ch.toUpperCase() : ch.toLowerCase();
    upper = ch === "-";
  }
  return out;
}

/** Every header of a node request, canonical names to value lists (repeats kept apart). */
export function goHeaders(req: IncomingMessage): GoHeaders {
  const out: Record<string, string[]> = {};
  for (const [name, values] of Object.entries(req.headersDistinct)) {
    if (values === undefined) continue;
    const key = canonicalHeaderName(name);
    out[key] = [...(out[key] ?? []), ...values];
  }
  return out;
}

/** `RemoteAddr` as Go writes it: `ip:port`, IPv6 in brackets. */
export function goRemoteAddress(req: IncomingMessage): string {
  const address = req.socket.remoteAddress ?? "";
  const port = req.socket.remotePort;
  if (port === undefined) return address;
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * Headers that belong to one hop (RFC 9110 §7.6.1), to the WebSocket handshake or to
 * the body framing: never relayed.
 */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
  "expect",
  "sec-websocket-key",
  "sec-websocket-version",
  "sec-websocket-extensions",
  "sec-websocket-protocol",
  "sec-websocket-accept",
]);

/**
 * The headers of an agent's request to send on with it (pass-through auth): every
 * end-to-end header, or only those named in `only` (case-insensitive), plus
 * `X-Forwarded-For` naming the agent. `extra` (the gateway's configured upstream headers)
 * fills in names the agent did not send.
 */
export function forwardedHeaders(
  req: IncomingMessage,
  only: ReadonlySet<string> | undefined,
  extra: Readonly<Record<string, string>>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, values] of Object.entries(req.headersDistinct)) {
    if (values === undefined || HOP_BY_HOP.has(name)) continue;
    if (only !== undefined && !only.has(name)) continue;
    out[name] = values.join(", ");
  }
  for (const [name, value] of Object.entries(extra)) {
    const key = name.toLowerCase();
    if (out[key] === undefined && !HOP_BY_HOP.has(key)) out[key] = value;
  }
  const address = req.socket.remoteAddress;
  if (address !== undefined) {
    const prior = out["x-forwarded-for"];
    out["x-forwarded-for"] = prior === undefined ? address : `${prior}, ${address}`;
  }
  return out;
}

/** Response headers of the server that a relayed HTTP answer carries back to the agent. */
export function relayedResponseHeaders(
  headers: Readonly<Record<string, string | string[] | undefined>>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name.toLowerCase())) continue;
    out[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}
