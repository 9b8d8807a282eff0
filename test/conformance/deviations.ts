// Deviations from the OpAMP spec that the conformance kit finds in implementations we did
// not write. Each is theirs, not ours; the tests assert they still show exactly like this,
// and docs/interop.md lists them with these notes.

import type { Deviation } from "./peers.js";

/** opamp-go v0.23.0's server package, driven by test/interop/go/server.go. */
export const OPAMP_GO_SERVER: readonly Deviation[] = [
  {
    id: "server.oversized-message-refused",
    transport: "ws",
    evidence: /got a ServerToAgent/,
    note: "v0.23.0 has no receive limit: a message over 64 MiB is read, decoded and answered (limits landed after v0.23.0, opamp-go PR #570)",
  },
  {
    id: "server.oversized-message-refused",
    transport: "http",
    evidence: /was answered: HTTP 200/,
    note: "v0.23.0 has no receive limit: a body over 64 MiB is read, decoded and answered 200 instead of 413 (opamp-go PR #570, after v0.23.0)",
  },
];

/** opamp-go v0.23.0's client (test/interop/go/agent.go) over WebSocket. */
export const OPAMP_GO_AGENT_WS: readonly Deviation[] = [
  {
    id: "client.unavailable-backoff",
    transport: "ws",
    evidence: /the next message came after \d+ ms on the same connection/,
    note: "ServerErrorResponse UNAVAILABLE is only passed to OnError: retry_info is not read and the client neither disconnects nor waits (the next heartbeat goes out on time)",
  },
];

/** opamp-go v0.23.0's client (test/interop/go/agent.go) over plain HTTP. */
export const OPAMP_GO_AGENT_HTTP: readonly Deviation[] = [
  {
    id: "client.unavailable-backoff",
    transport: "http",
    evidence: /the next message came after \d+ ms/,
    note: "ServerErrorResponse UNAVAILABLE is only passed to OnError: retry_info is not read and the next poll goes out on time",
  },
  {
    id: "client.agent-disconnect",
    transport: "http",
    evidence: /no request with agent_disconnect/,
    note: "the HTTP client's Stop() does not send agent_disconnect (opamp-go issue #179; the spec says SHOULD for HTTP)",
  },
];

/** @elastic/opamp-client-node (HTTP only). */
export const ELASTIC_CLIENT_HTTP: readonly Deviation[] = [
  {
    id: "client.heartbeat-interval",
    transport: "http",
    evidence: /no message within \d+ ms of the previous one/,
    note: "OpAMPConnectionSettings.heartbeat_interval_seconds from the server is not read; the client keeps its own interval (set by the application)",
  },
  {
    id: "client.agent-disconnect",
    transport: "http",
    evidence: /no request with agent_disconnect/,
    note: "shutdown() does not send agent_disconnect",
  },
];

/** opentelemetry-opamp-client (Python, HTTP only), driven by test/conformance/python/opamp_agent.py. */
export const PYTHON_CLIENT_HTTP: readonly Deviation[] = [
  {
    id: "client.new-instance-uid",
    transport: "http",
    evidence: /still uses the old UID/,
    note: "agent_identification.new_instance_uid is not read: the client keeps its own UID",
  },
  {
    id: "client.heartbeat-interval",
    transport: "http",
    evidence: /no message within \d+ ms of the previous one/,
    note: "the server's heartbeat_interval_seconds is not read; the poll interval is fixed by the application",
  },
  {
    id: "client.retry-after",
    transport: "http",
    evidence: /the next request came after \d+ ms/,
    note: "a 503 is retried with the client's own backoff (about 1 s, doubling); Retry-After is not read",
  },
  {
    id: "client.unavailable-backoff",
    transport: "http",
    evidence: /the next message came after \d+ ms/,
    note: "ServerErrorResponse UNAVAILABLE is only passed to on_error; retry_info is not read and the next poll goes out on schedule",
  },
  {
    id: "client.sequence-num",
    transport: "http",
    evidence: /has sequence_num \d+ after \d+/,
    note: "sequence_num is fixed when a message is queued but counted per send attempt, so a retried request keeps its old number and the next message skips ahead",
  },
];

/** io.opentelemetry.contrib:opentelemetry-opamp-client (Java), plain HTTP, driven by test/conformance/java/OpampAgent.java. */
export const JAVA_CLIENT_HTTP: readonly Deviation[] = [
  {
    id: "client.capabilities-every-message",
    transport: "http",
    evidence: /has capabilities 0x1002/,
    note: "capabilities lack ReportsStatus (0x1), which every agent MUST set: only the bits of enabled features are sent",
  },
  {
    id: "client.agent-disconnect",
    transport: "http",
    evidence: /no request with agent_disconnect/,
    note: "close() prepares an agent_disconnect request, but HttpRequestService.stop() only shuts its executor down, so it is never sent",
  },
];

/**
 * The Collector's opampsupervisor v0.149.0 over WebSocket, run by test/conformance/collector.test.ts
 * with the seed's config plus accepts_opamp_connection_settings. Its OpAMP client is opamp-go
 * v0.23.0 (its go.mod), which explains most of what follows.
 */
export const COLLECTOR_SUPERVISOR_WS: readonly Deviation[] = [
  {
    id: "client.unavailable-backoff",
    transport: "ws",
    evidence: /the next message came after \d+ ms on the same connection/,
    note: 'ServerErrorResponse UNAVAILABLE is only logged (opamp-go hands it to OnError, which logs "Server returned an error response"): retry_info is not read and the client neither disconnects nor waits',
  },
  {
    id: "client.sequence-num",
    transport: "ws",
    evidence: /has sequence_num 0 after \d+ \(seq=0 capabilities=0x3947 agent_description/,
    note: "applying offered OpAMP connection settings (here the kit's heartbeat offer) stops its opamp-go client and starts a new one (supervisor.go onOpampConnectionSettings), whose sequence_num starts again at 0; it begins with a full report, so a server sees a gap but loses nothing",
  },
];

/** The Collector's opampsupervisor v0.149.0 over plain HTTP (an http:// endpoint selects opamp-go's HTTP client). */
export const COLLECTOR_SUPERVISOR_HTTP: readonly Deviation[] = [
  {
    id: "client.unavailable-backoff",
    transport: "http",
    evidence: /the next message came after \d+ ms/,
    note: "ServerErrorResponse UNAVAILABLE is only logged (opamp-go's OnError): retry_info is not read, and a pending report goes out at once",
  },
  {
    id: "client.sequence-num",
    transport: "http",
    evidence: /has sequence_num 0 after \d+ \(seq=0 capabilities=0x3947 agent_description/,
    note: "applying offered OpAMP connection settings starts a new opamp-go client, whose sequence_num starts again at 0 (with a full report)",
  },
  {
    id: "client.agent-disconnect",
    transport: "http",
    evidence: /no request with agent_disconnect/,
    note: "opamp-go's HTTP client sends no agent_disconnect when stopped (opamp-go issue #179; the spec says SHOULD for HTTP), so a server sees the supervisor leave only by its silence",
  },
];

/** A Collector v0.149.0 with the opampextension alone, over WebSocket: no deviation found. */
export const COLLECTOR_EXTENSION_WS: readonly Deviation[] = [];

/** A Collector v0.149.0 with the opampextension alone, over plain HTTP. */
export const COLLECTOR_EXTENSION_HTTP: readonly Deviation[] = [
  {
    id: "client.full-state-first",
    transport: "http",
    evidence: /ReportsEffectiveConfig is set but there is no effective_config/,
    note: "the first poll may leave out the effective config (the next message carries it): opamp-go's HTTP client builds its first request when the extension starts, usually before the Collector hands the extension its config (NotifyConfig), and retries that same request until a server answers (client/internal/httpsender.go, sendRequestWithRetries). Over WebSocket the first message is built once connected, after the Collector is ready in this run",
    intermittent: true,
  },
  {
    id: "client.unavailable-backoff",
    transport: "http",
    evidence: /the next message came after \d+ ms/,
    note: "ServerErrorResponse UNAVAILABLE is only logged (opamp-go's OnError): retry_info is not read and the next poll goes out on schedule",
  },
  {
    id: "client.agent-disconnect",
    transport: "http",
    evidence: /no request with agent_disconnect/,
    note: "opamp-go's HTTP client sends no agent_disconnect when the Collector shuts down (opamp-go issue #179; the spec says SHOULD for HTTP)",
  },
];
