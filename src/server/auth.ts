/**
 * Running the `authenticate` hook and shaping its answer, shared by every adapter.
 */
import type { IncomingHttpHeaders } from "node:http";
import type { Clock, TimerHandle } from "../internal/clock.js";
import { OpampError } from "../wire/index.js";
import type { AuthThrottle } from "./auth-throttle.js";
import type { AuthDecision, AuthenticateHook, AuthRequest } from "./types.js";

/** Node's header object as lower-case name → value, repeated values joined with ", ". */
export function flattenHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  // Node already lower-cases names and joins repeats of every header but set-cookie, the
  // one it keeps as an array: without it (a request practically never has it) the object
  // is already flat. Per request, so no copy when none is needed.
  if (headers["set-cookie"] === undefined) return headers as Record<string, string>;
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(", ") : value;
  }
  return out;
}

/** Web `Headers` as a plain lower-case record. */
export function headersToRecord(headers: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  headers.forEach((value, name) => {
    out[name] = value;
  });
  return out;
}

const ACCEPT: AuthDecision = { accept: true };

/** RFC 9110 token: what a header name may be made of. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** A header value may not hold CR, LF, NUL or other control characters (no response splitting). */
const BAD_HEADER_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

function validHeaders(headers: Readonly<Record<string, string>> | undefined): boolean {
  if (headers === undefined) return true;
  if (typeof headers !== "object" || headers === null) return false;
  for (const [name, value] of Object.entries(headers)) {
    if (!HEADER_NAME.test(name) || typeof value !== "string" || BAD_HEADER_VALUE.test(value)) return false;
  }
  return true;
}

/**
 * The authentications still waiting on the hook, so that `stop()` can settle them at once
 * rather than leave each one holding its timer and connection slot until the timeout.
 * Each entry lives only while its hook runs.
 */
export class PendingAuthentications {
  readonly #waiting = new Set<(error: OpampError) => void>();
  #closed = false;

  /** True once {@link PendingAuthentications.abortAll} ran: the hook is no longer asked. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Registers a waiting authentication; `abort` is called with `aborted` if the server stops first. */
  add(abort: (error: OpampError) => void): void {
    if (this.#closed) abort(stopping());
    else this.#waiting.add(abort);
  }

  delete(abort: (error: OpampError) => void): void {
    this.#waiting.delete(abort);
  }

  /** Settles every waiting authentication with `aborted`, and any added later at once. */
  abortAll(): void {
    this.#closed = true;
    const waiting = [...this.#waiting];
    this.#waiting.clear();
    for (const abort of waiting) abort(stopping());
  }
}

function stopping(): OpampError {
  return new OpampError("aborted", "the server is stopping");
}

/** How long the hook may take, the clock that measures it, and who may cut it short. */
export interface AuthLimits {
  readonly clock: Clock;
  /** The hook must answer within this (the server's `limits.handshakeTimeoutMs`). */
  readonly timeoutMs: number;
  /** Where the wait is registered so that the server's `stop()` can end it. */
  readonly pending?: PendingAuthentications | undefined;
  /** Refusals counted per key (see {@link AuthThrottle}), with the key of this request. */
  readonly throttle?: { readonly throttle: AuthThrottle; readonly key: string | undefined } | undefined;
  /** Told of every refusal, with its status (for diagnostics). */
  readonly onRefused?: ((status: number) => void) | undefined;
  /** Told when a key becomes throttled. */
  readonly onThrottled?: ((key: string) => void) | undefined;
}

/**
 * Asks the hook (or accepts when there is none: the server only allows that with
 * `allowAnonymous`). A decision that is neither accept nor a valid status becomes a 500.
 *
 * @throws OpampError `hook_failed` when the hook throws or returns something unusable (a
 *   status outside 4xx/5xx, a header name or value that is not valid HTTP); `timeout` when
 *   it does not answer within `limits.timeoutMs`; `aborted` when `limits.pending` is
 *   aborted (the server stops) first. The adapters answer both with 503 + Retry-After.
 *   Once this settles, a late answer of the hook is ignored.
 */
export async function authenticate(
  hook: AuthenticateHook | undefined,
  request: AuthRequest,
  limits: AuthLimits,
): Promise<AuthDecision> {
  if (hook === undefined) return ACCEPT;
  if (limits.pending?.closed === true) throw stopping();
  const throttle = limits.throttle;
  const wait = throttle?.throttle.retryAfterMs(throttle.key) ?? 0;
  if (wait > 0) {
    limits.onRefused?.(429);
    return {
      accept: false,
      status: 429,
      headers: { "Retry-After": retryAfterSeconds(wait) },
      message: "too many refused attempts: try again later",
    };
  }
  let decision: AuthDecision;
  let timer: TimerHandle | undefined;
  let abort: ((error: OpampError) => void) | undefined;
  const timeout = new Promise<never>((_, reject) => {
    abort = reject;
    timer = limits.clock.setTimeout(
      () => reject(new OpampError("timeout", `authenticate did not answer within ${limits.timeoutMs} ms`)),
      limits.timeoutMs,
    );
  });
  if (abort !== undefined) limits.pending?.add(abort);
  try {
    decision = await Promise.race([
      (async () => {
        try {
          return await hook(request);
        } catch (e) {
          throw new OpampError("hook_failed", "authenticate threw", { cause: e });
        }
      })(),
      timeout,
    ]);
  } finally {
    if (timer !== undefined) limits.clock.clearTimeout(timer);
    if (abort !== undefined) limits.pending?.delete(abort);
  }
  if (decision?.accept === true) return decision;
  if (
    decision?.accept === false &&
    Number.isInteger(decision.status) &&
    decision.status >= 400 &&
    decision.status < 600 &&
    validHeaders(decision.headers)
  ) {
    limits.onRefused?.(decision.status);
    // Wrong or missing credentials count towards throttling; 429 or 503 (load) do not.
    if ((decision.status === 401 || decision.status === 403) && throttle?.throttle.refused(throttle.key)) {
      limits.onThrottled?.(throttle.key!);
    }
    return decision;
  }
  throw new OpampError(
    "hook_failed",
    "authenticate returned neither accept nor a 4xx/5xx rejection with valid header names and values",
  );
}

/** Standard reason phrases for the statuses the server writes itself. */
export const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  426: "Upgrade Required",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

/** `Retry-After` value (whole seconds, rounded up) for a delay in milliseconds. */
export function retryAfterSeconds(ms: number): string {
  return String(Math.max(0, Math.ceil(ms / 1000)));
}
