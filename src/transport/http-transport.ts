/**
 * Plain-HTTP transport: POST one AgentToServer, read one ServerToAgent, half-duplex with
 * one request in flight, polling at the heartbeat interval when idle.
 */
// spec: Plain HTTP Transport
import { type AgentToServer, AgentToServerSchema, ServerToAgentSchema } from "../gen/opamp/v1/opamp_pb.js";
import { Backoff, clampDelay, parseRetryAfter } from "../internal/backoff.js";
import type { TimerHandle } from "../internal/clock.js";
import { OpampError } from "../wire/errors.js";
import { decodeHttpBody, encodeHttpBody, gzip, PROTOBUF_CONTENT_TYPE } from "../wire/http-body.js";
import { DEFAULT_GZIP_MIN_BYTES } from "../wire/limits.js";
import { instanceUidToString } from "../wire/uid.js";
import {
  type ConnectionEvent,
  type ConnectionState,
  INITIAL_CONNECTION_STATE,
  transition,
} from "./connection-state.js";
import { notFoundMessage } from "./not-found.js";
import type { ProxyConnector } from "./proxy.js";
import { type BaseTlsOptions, type ClosableFetch, effectiveTls, hasTls, type TlsFetchFactory } from "./tls.js";
import type { ConnectTarget, Transport, TransportHost, TransportSettings } from "./types.js";

/** HTTP-specific settings. */
export interface HttpTransportOptions {
  /** Gzip request bodies. */
  readonly compression: boolean;
  /** The fetch implementation. */
  readonly fetch: typeof globalThis.fetch;
  /** TLS from the options, applied with an offered certificate / TLS settings on top. */
  readonly tls?: BaseTlsOptions;
  /** Makes a fetch for `https:` with TLS settings; without it such a target fails. */
  readonly tlsFetch?: TlsFetchFactory | undefined;
  /** Makes the fetch for a target with a proxy; without it such a target fails. */
  readonly proxyConnector?: ProxyConnector | undefined;
}

type PostResult =
  | { readonly t: "answered"; readonly retryAfterMs?: number }
  | { readonly t: "dropped" }
  | { readonly t: "failed"; readonly error: OpampError; readonly retryAfterMs?: number };

/** A polling transport; at most one request is in flight at any time. */
export class HttpTransport implements Transport {
  #state: ConnectionState = INITIAL_CONNECTION_STATE;
  readonly #backoff: Backoff;
  #timer: TimerHandle | undefined;
  #inFlight: Promise<void> | undefined;
  #abort: AbortController | undefined;
  #runQueued = false;
  /** reconnect() is saying goodbye; nothing else may be posted meanwhile. */
  #reconnecting = false;
  /** The last request was answered (any status the server chose to give). */
  #reachable = false;
  /** Where this connection posts; read from the host only when (re)connecting. */
  #target: ConnectTarget | undefined;
  /** The fetch made for the last target (TLS settings are fixed per target). */
  #fetchFor: { readonly target: ConnectTarget; readonly fetch: typeof globalThis.fetch } | undefined;

  constructor(
    private readonly host: TransportHost,
    private readonly settings: TransportSettings,
    private readonly options: HttpTransportOptions,
  ) {
    this.#backoff = new Backoff(settings.backoff, settings.random);
  }

  /** {@inheritDoc Transport.start} */
  start(): void {
    this.#dispatch({ type: "connect" });
    this.#queueRun("connect");
  }

  /** {@inheritDoc Transport.notifyPending} */
  notifyPending(): void {
    // While a request is in flight the answer's handler looks for pending changes;
    // while backing off, the retry carries them (no sends during reconnection).
    const t = this.#state.t;
    if (this.#inFlight !== undefined || t === "backoff" || t === "stopping" || t === "stopped" || t === "idle") return;
    this.#queueRun("pending");
  }

  /** {@inheritDoc Transport.reconnect} */
  async reconnect(goodbye?: () => AgentToServer): Promise<void> {
    if (this.#isStopping()) return;
    this.#clearTimer();
    // No other request may start until the goodbye is answered: half-duplex holds here too.
    this.#reconnecting = true;
    try {
      while (this.#inFlight !== undefined) await this.#inFlight;
      // spec: send agent_disconnect before moving to new connection settings.
      if (goodbye !== undefined && this.#reachable && !this.#isStopping()) {
        const bye = this.#post(goodbye(), this.settings.closeTimeoutMs).then(() => undefined);
        this.#inFlight = bye; // stop() waits for it rather than posting alongside it
        try {
          await bye;
        } finally {
          if (this.#inFlight === bye) this.#inFlight = undefined;
        }
        // The server has been told we left; a stop() now needs no second goodbye.
        this.#reachable = false;
      }
    } finally {
      this.#reconnecting = false;
    }
    if (this.#isStopping()) return;
    this.#clearTimer();
    this.#backoff.reset();
    this.#target = undefined; // the next request, whatever its reason, reads the new target
    this.#dispatch({ type: "connect" });
    this.#queueRun("connect");
  }

  /** {@inheritDoc Transport.stop} */
  async stop(goodbye?: () => AgentToServer): Promise<void> {
    if (this.#state.t === "stopped") return;
    this.#dispatch({ type: "stop" });
    this.#clearTimer();
    if (this.#inFlight !== undefined) {
      const inFlight = this.#inFlight;
      const timer = this.settings.clock.setTimeout(() => this.#abort?.abort(), this.settings.closeTimeoutMs);
      await inFlight;
      this.settings.clock.clearTimeout(timer);
    }
    // spec: the last request SHOULD carry agent_disconnect (when the server answers at all).
    if (goodbye !== undefined && this.#reachable) await this.#post(goodbye(), this.settings.closeTimeoutMs);
    this.#releaseFetch();
    this.#dispatch({ type: "stopped" });
  }

  #isStopping(): boolean {
    return this.#state.t === "stopping" || this.#state.t === "stopped";
  }

  #dispatch(event: ConnectionEvent): void {
    const previous = this.#state;
    this.#state = transition(previous, event);
    if (this.#state !== previous) this.host.stateChanged(this.#state, previous);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) this.settings.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #queueRun(reason: "connect" | "pending" | "poll"): void {
    if (this.#runQueued) return;
    this.#runQueued = true;
    queueMicrotask(() => {
      this.#runQueued = false;
      this.#run(reason);
    });
  }

  #run(reason: "connect" | "pending" | "poll"): void {
    if (this.#isStopping() || this.#inFlight !== undefined || this.#reconnecting) return;
    this.#clearTimer();
    if (reason === "connect" || this.#target === undefined) this.#target = this.host.target();
    const message = this.host.takeMessage(reason);
    if (message === undefined) {
      this.#armPoll();
      return;
    }
    this.#inFlight = this.#exchange(message);
  }

  async #exchange(message: AgentToServer): Promise<void> {
    let result: PostResult;
    try {
      result = await this.#post(message);
    } finally {
      this.#inFlight = undefined;
    }
    if (this.#isStopping()) return;
    if (result.t === "failed") {
      this.#backOff(result.error, result.retryAfterMs);
      return;
    }
    if (result.t === "answered" && result.retryAfterMs !== undefined) {
      const retryAfterMs = result.retryAfterMs;
      this.#backOff(
        new OpampError("unavailable", "server answered UNAVAILABLE", { details: { retryAfterMs } }),
        retryAfterMs,
      );
      return;
    }
    // spec: after an answer the client may send again at once if something is pending.
    queueMicrotask(() => {
      if (this.#isStopping() || this.#inFlight !== undefined) return;
      this.#run("pending");
    });
  }

  /** Waits max(backoff, Retry-After) and connects again; nothing is sent meanwhile. */
  #backOff(error: OpampError, retryAfterMs: number | undefined): void {
    const delay = Math.max(this.#backoff.next(), clampDelay(retryAfterMs ?? 0, this.settings.maxRetryAfterMs));
    this.#dispatch({ type: "failed", error, until: this.settings.clock.now() + delay });
    this.#timer = this.settings.clock.setTimeout(() => {
      this.#timer = undefined;
      this.#dispatch({ type: "connect" });
      this.#run("connect");
    }, delay);
  }

  #armPoll(): void {
    this.#clearTimer();
    if (this.#isStopping()) return;
    const interval = this.host.heartbeatIntervalMs();
    this.#timer = this.settings.clock.setTimeout(() => {
      this.#timer = undefined;
      this.#run("poll");
    }, interval);
  }

  async #post(message: AgentToServer, timeoutMs = this.settings.responseTimeoutMs): Promise<PostResult> {
    let body: Uint8Array;
    let gzipped = false;
    try {
      body = await encodeHttpBody(AgentToServerSchema, message, { maxMessageBytes: this.settings.maxMessageBytes });
      // A small body gzipped grows (gzip's framing alone is 18 bytes).
      gzipped = this.options.compression && body.length >= DEFAULT_GZIP_MIN_BYTES;
      if (gzipped) body = await gzip(body);
    } catch (cause) {
      // spec: a client MUST NOT send an oversized request; the drop is reported.
      this.host.messageDropped(message, OpampError.from(cause));
      return { t: "dropped" };
    }
    const target = this.#target ?? this.host.target();
    const headers: Record<string, string> = {
      ...target.headers,
      "Content-Type": PROTOBUF_CONTENT_TYPE,
      "Accept-Encoding": "gzip",
      "OpAMP-Instance-UID": instanceUidToString(message.instanceUid),
    };
    if (gzipped) headers["Content-Encoding"] = "gzip";
    const abort = new AbortController();
    this.#abort = abort;
    // A server that never answers must not stall the half-duplex channel for good.
    const timer = this.settings.clock.setTimeout(
      () => abort.abort(new OpampError("timeout", `no answer from the server within ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      let response: Response;
      try {
        // Called as a plain function, never as a method of the options: a browser's fetch
        // throws "Illegal invocation" when `this` is anything but the global object.
        const fetchImpl = this.#fetchOf(target);
        response = await fetchImpl(target.url, {
          method: "POST",
          headers,
          body: body as BodyInit,
          signal: abort.signal,
        });
      } catch (cause) {
        this.#reachable = false;
        this.host.returnMessage(message);
        return { t: "failed", error: OpampError.from(cause, "transport_failed") };
      }
      return await this.#handleResponse(message, response, target.url);
    } finally {
      this.settings.clock.clearTimeout(timer);
      if (this.#abort === abort) this.#abort = undefined;
    }
  }

  /**
   * The fetch for `target`: through a proxy one made by `proxyConnector` (it applies the
   * TLS settings too); else the configured one, or for `https:` with TLS settings
   * (options, offered certificate or TLS) one made by `tlsFetch`.
   * @throws OpampError when a proxy or TLS settings apply but cannot be (no connector or
   *   tlsFetch, bad settings).
   */
  #fetchOf(target: ConnectTarget): typeof globalThis.fetch {
    if (this.#fetchFor?.target === target) return this.#fetchFor.fetch;
    this.#releaseFetch();
    let fetchImpl = this.options.fetch;
    const secure = new URL(target.url).protocol === "https:";
    if (target.proxy !== undefined) {
      const connector = this.options.proxyConnector;
      if (connector === undefined) {
        throw new OpampError(
          "invalid_argument",
          "a proxy needs transport.proxyConnector (Node: nodeProxyConnector from opamp-sdk/client/node)",
        );
      }
      // The TLS settings serve an https: target and an https:// proxy alike (as in opamp-go).
      fetchImpl = connector.fetch(target.proxy, effectiveTls(this.options.tls ?? {}, target.tls));
    } else if (secure) {
      const tls = effectiveTls(this.options.tls ?? {}, target.tls);
      if (hasTls(tls)) {
        const factory = this.options.tlsFetch;
        if (factory === undefined) {
          throw new OpampError(
            "invalid_argument",
            "TLS settings for an https: endpoint need transport.tlsFetch (Node: nodeTlsFetch from opamp-sdk/client/node)",
          );
        }
        fetchImpl = factory(tls);
      }
    }
    this.#fetchFor = { target, fetch: fetchImpl };
    return fetchImpl;
  }

  /** Lets the connections of the fetch made for the last target go (see ClosableFetch). */
  #releaseFetch(): void {
    const made = this.#fetchFor;
    this.#fetchFor = undefined;
    // Only one this transport made: the user's own `transport.fetch` is theirs to manage.
    if (made !== undefined && made.fetch !== this.options.fetch) (made.fetch as ClosableFetch).close?.();
  }

  async #handleResponse(message: AgentToServer, response: Response, url: string): Promise<PostResult> {
    const status = response.status;
    // Overloaded, refusing or failing servers get no goodbye; one that answered does.
    this.#reachable =
      status === 200 ||
      (status >= 400 &&
        status < 500 &&
        status !== 401 &&
        status !== 403 &&
        status !== 404 &&
        status !== 407 &&
        status !== 429);
    if (status === 200) {
      let answer: ReturnType<typeof decodeHttpBody<typeof ServerToAgentSchema>> extends Promise<infer M> ? M : never;
      try {
        // fetch has already undone Content-Encoding, so the body is plain protobuf;
        // the limit is still checked while reading the stream.
        answer = await decodeHttpBody(ServerToAgentSchema, response.body ?? new Uint8Array(0), {
          maxMessageBytes: this.settings.maxMessageBytes,
        });
      } catch (cause) {
        this.host.messageSent(message);
        return { t: "failed", error: OpampError.from(cause, "malformed_message") };
      }
      this.host.messageSent(message);
      this.#dispatch({ type: "connected" });
      const outcome = this.host.receive(answer);
      // An in-band UNAVAILABLE keeps the backoff growing; any other answer resets it.
      if (outcome.retryAfterMs === undefined) this.#backoff.reset();
      return outcome.retryAfterMs === undefined
        ? { t: "answered" }
        : { t: "answered", retryAfterMs: outcome.retryAfterMs };
    }
    await response.body?.cancel().catch(() => undefined);
    const details = { status };
    if (status === 429 || status === 503) {
      this.host.returnMessage(message);
      const retryAfterMs = parseRetryAfter(
        response.headers.get("retry-after"),
        this.settings.clock.now(),
        this.settings.maxRetryAfterMs,
      );
      const error = new OpampError("unavailable", `the server is unavailable (HTTP ${status})`, {
        details: retryAfterMs === undefined ? details : { ...details, retryAfterMs },
      });
      return retryAfterMs === undefined ? { t: "failed", error } : { t: "failed", error, retryAfterMs };
    }
    if (status === 401 || status === 403) {
      this.host.returnMessage(message);
      return {
        t: "failed",
        error: new OpampError("unauthenticated", `the server refused the request (HTTP ${status})`, { details }),
      };
    }
    if (status === 407) {
      // Only a proxy answers 407 (an absolute-form request it wants other credentials for):
      // the server never saw the message, so it is kept and the attempt fails.
      this.host.returnMessage(message);
      return {
        t: "failed",
        error: new OpampError("http_status", "the proxy refused the request (HTTP 407 Proxy Authentication Required)", {
          details,
        }),
      };
    }
    if (status === 404) {
      // No OpAMP endpoint at this URL (a wrong path, most likely): the message never reached
      // a server that could take it, so it is kept, and the attempt fails and backs off.
      this.host.returnMessage(message);
      return {
        t: "failed",
        error: new OpampError("http_status", notFoundMessage(url), {
          details,
        }),
      };
    }
    if (status >= 500) {
      this.host.returnMessage(message);
      return { t: "failed", error: new OpampError("http_status", `the server failed (HTTP ${status})`, { details }) };
    }
    // spec: 413 and other client errors are not retried; the message is dropped.
    const code = status === 413 ? "message_too_large" : "http_status";
    this.host.messageDropped(
      message,
      new OpampError(code, `the server rejected the message (HTTP ${status}); not retried`, { details }),
    );
    return { t: "dropped" };
  }
}
