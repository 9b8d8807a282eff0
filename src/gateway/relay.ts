/**
 * Pass-through mode, for servers that know nothing of gateways (opamp-go's): every agent
 * WebSocket gets its own upstream WebSocket opened with the agent's own headers, and every
 * HTTP poll is relayed as an HTTP request with them, so the server authenticates each
 * agent as if it had connected directly. Bytes go both ways as they came.
 *
 * When an agent's upstream WebSocket drops, the agent stays connected: the upstream
 * reconnects with backoff (with the agent's headers), the agent's messages wait in its
 * queue, and once it is back the agent is asked for its full state. A refusal on
 * reconnecting (401/403) closes the agent with 1008.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type ServerResponse } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { AgentToServer } from "../gen/opamp/v1/opamp_pb.js";
import { retryAfterSeconds, STATUS_TEXT } from "../server/auth.js";
import { readNodeBody } from "../server/node-http-adapter.js";
import { nodeRootCertificates, nodeTlsOptions } from "../transport/tls.js";
import { OpampError } from "../wire/errors.js";
import { instanceUidToString, isInstanceUid } from "../wire/uid.js";
import { forwardedHeaders, relayedResponseHeaders } from "./headers.js";
import { Fifo, type QueuedFrame } from "./link.js";
import { UpstreamConnection, type UpstreamHandler } from "./upstream-connection.js";
import type { DownstreamHost, WsLink } from "./ws-downstream.js";

function now(): number {
  return performance.now();
}

let nextRelayId = 1;

/** The upstream half of one relayed agent WebSocket. */
export class RelayUpstream implements UpstreamHandler {
  readonly upstream: UpstreamConnection;
  readonly #queue = new Fifo<QueuedFrame>();
  #link: WsLink | undefined;
  #opened = false;
  #settleFirst:
    | ((outcome: { ok: true } | { ok: false; status: number; retryAfterMs: number | undefined }) => void)
    | undefined;

  constructor(
    readonly host: DownstreamHost,
    headers: Readonly<Record<string, string>>,
  ) {
    const o = host.core.options;
    this.upstream = new UpstreamConnection(
      `agent-${nextRelayId++}`,
      {
        url: o.upstreamUrl,
        headers,
        tls: o.upstreamTls,
        clock: o.clock,
        backoff: o.retry,
        random: o.random,
        maxMessageBytes: o.maxMessageBytes,
        pingIntervalMs: o.wsPingIntervalMs,
        closeTimeoutMs: o.stopTimeoutMs,
      },
      this,
    );
  }

  /** Dials and resolves with the first outcome: open, or the status the server refused with (0: unreachable). */
  dial(): Promise<{ ok: true } | { ok: false; status: number; retryAfterMs: number | undefined }> {
    return new Promise((resolve) => {
      this.#settleFirst = resolve;
      this.upstream.start();
    });
  }

  /** The agent's side, once its upgrade was accepted. */
  bind(link: WsLink): void {
    this.#link = link;
    this.#pump();
  }

  /** One agent message: straight up when the socket takes it, else queued (the agent pauses when full). */
  agentMessage(frame: Uint8Array, message: AgentToServer, receivedAt: number): void {
    const link = this.#link;
    if (link === undefined) return;
    const id = isInstanceUid(message.instanceUid) ? instanceUidToString(message.instanceUid) : "";
    if (id !== "" && !link.uids.has(id)) {
      link.uids.set(id, {
        id,
        bytes: Uint8Array.from(message.instanceUid),
        seq: 0n,
        attached: true,
        forwarded: true,
        relayed: false,
        delivered: false,
        goodbye: false,
      });
    }
    const entry = link.uids.get(id);
    if (entry !== undefined) {
      entry.seq = message.sequenceNum;
      if (message.agentDisconnect !== undefined) entry.goodbye = true;
    }
    this.#queue.push({ bytes: frame, receivedAt, entry });
    link.queuedBytes += frame.length;
    if (link.queuedBytes > this.host.core.options.maxQueuedBytesPerAgent && !link.paused) link.pauseReading();
    this.#pump();
  }

  #pump(): void {
    const link = this.#link;
    if (link === undefined) return;
    const limit = this.host.core.options.upstreamHighWaterBytes;
    while (this.upstream.open && this.#queue.length > 0 && this.upstream.bufferedAmount < limit) {
      const queued = this.#queue.shift()!;
      link.queuedBytes -= queued.bytes.length;
      this.upstream.send(queued.bytes);
      this.host.core.metrics.message("upstream", queued.bytes.length, now() - queued.receivedAt);
    }
    if (link.paused && link.queuedBytes <= this.host.core.options.maxQueuedBytesPerAgent / 2) link.resumeReading();
  }

  /** The agent left: what it sent goes first, then the upstream closes (the server then forgets the agent). */
  async close(): Promise<void> {
    this.#link = undefined;
    while (this.upstream.open && this.#queue.length > 0) this.upstream.send(this.#queue.shift()!.bytes);
    await this.upstream.stop();
  }

  opened(): void {
    this.host.core.metrics.connection("upstream", 1);
    this.host.core.events.emit("upstreamConnected", this.upstream.id);
    const first = this.#settleFirst;
    this.#settleFirst = undefined;
    if (first !== undefined) {
      this.#opened = true;
      first({ ok: true });
      return;
    }
    // Back after a drop: the server forgot the agent with the old connection.
    this.#link?.requestFullState();
    this.#pump();
  }

  closed(_upstream: UpstreamConnection, error: OpampError): void {
    this.host.core.metrics.connection("upstream", -1);
    this.host.core.events.emit("upstreamDisconnected", this.upstream.id, error);
  }

  failed(_upstream: UpstreamConnection, error: OpampError, status: number | undefined): void {
    const first = this.#settleFirst;
    if (first !== undefined && !this.#opened) {
      this.#settleFirst = undefined;
      void this.upstream.stop();
      first({ ok: false, status: status ?? 0, retryAfterMs: error.details.retryAfterMs });
      return;
    }
    this.host.core.events.emit("error", error);
    if (status === 401 || status === 403) {
      // Its credentials no longer open the server: the agent must learn it as it would directly.
      this.#link?.close(1008, `the server refused the agent (HTTP ${status})`, status, "refused");
      void this.upstream.stop();
    }
  }

  frame(_upstream: UpstreamConnection, data: Uint8Array): void {
    this.#link?.deliver(data, now());
  }

  garbage(_upstream: UpstreamConnection, error: OpampError): void {
    this.host.core.events.emit("error", error);
  }

  drained(): void {
    this.#pump();
  }
}

/** The upstream's HTTP(S) URL for relayed polls: the WebSocket URL with its scheme swapped. */
export function pollUrl(wsUrl: string): URL {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === "wss:" ? "https:" : "http:";
  return url;
}

/** Relays HTTP polls one for one (pass-through mode). */
export class HttpRelay {
  readonly #url: URL;
  readonly #agent: HttpAgent | HttpsAgent;

  constructor(readonly host: DownstreamHost) {
    const o = host.core.options;
    this.#url = pollUrl(o.upstreamUrl);
    this.#agent =
      this.#url.protocol === "https:"
        ? new HttpsAgent({ keepAlive: true, ...nodeTlsOptions(o.upstreamTls, nodeRootCertificates()) })
        : new HttpAgent({ keepAlive: true });
  }

  /** Closes idle kept-alive sockets (stop). */
  destroy(): void {
    this.#agent.destroy();
  }

  /** Relays one poll: the agent's body and headers up, the server's status, headers and body down. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const o = this.host.core.options;
    const retry = { "retry-after": retryAfterSeconds(o.retryAfterMs) };
    const gate = this.host.gate;
    const reject = (status: number, headers: Record<string, string> = {}) => {
      res.writeHead(status, STATUS_TEXT[status], headers).end();
    };
    if (!this.host.accepting || !gate.tryAcquire()) {
      req.resume();
      reject(503, retry);
      return;
    }
    try {
      let body: Uint8Array;
      try {
        body = await readNodeBody(req, o.maxMessageBytes, this.host.core);
      } catch (e) {
        const error = OpampError.from(e);
        reject(error.code === "message_too_large" ? 413 : error.code === "timeout" ? 408 : 400, {
          connection: "close",
        });
        return;
      }
      const receivedAt = now();
      const headers = forwardedHeaders(req, o.forwardHeaders, o.upstreamHeaders);
      headers["content-length"] = String(body.length);
      await new Promise<void>((resolve) => {
        const send = this.#url.protocol === "https:" ? httpsRequest : httpRequest;
        const upstream = send(this.#url, { method: "POST", headers, agent: this.#agent }, (response) => {
          const chunks: Buffer[] = [];
          let size = 0;
          response.on("data", (chunk: Buffer) => {
            size += chunk.length;
            if (size > o.maxMessageBytes) {
              response.destroy(new Error("response over the limit"));
              return;
            }
            chunks.push(chunk);
          });
          response.on("end", () => {
            const bytes = Buffer.concat(chunks);
            res.writeHead(response.statusCode ?? 502, relayedResponseHeaders(response.headers));
            res.end(bytes);
            this.host.core.metrics.message("upstream", body.length, 0);
            this.host.core.metrics.message("downstream", bytes.length, now() - receivedAt);
            resolve();
          });
          response.on("error", () => {
            if (!res.headersSent) reject(502);
            resolve();
          });
        });
        upstream.on("error", (e) => {
          this.host.core.events.emit(
            "error",
            new OpampError("transport_failed", `relaying a poll to ${this.#url.host} failed: ${e.message}`, {
              cause: e,
            }),
          );
          if (!res.headersSent) reject(503, retry);
          resolve();
        });
        upstream.end(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
      });
    } finally {
      gate.release();
    }
  }
}
