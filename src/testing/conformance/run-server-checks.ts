/**
 * Runs the server checks against a server under test.
 */
import { DEFAULT_MAX_MESSAGE_BYTES, OpampError } from "../../wire/index.js";
import { errorText } from "./scripted-agent.js";
import { SERVER_CHECKS, type ServerCheck, type ServerCheckContext } from "./server-checks.js";
import { type CheckResult, type ConformanceReport, type ConformanceTransport, fail, summarize } from "./types.js";

/** Default time to wait for any single answer from the server under test. */
export const DEFAULT_CHECK_TIMEOUT_MS = 5_000;

/** Options of {@link runServerChecks}. */
export interface ServerChecksOptions {
  /** The server's OpAMP URL: `ws(s)://` or `http(s)://`; the other scheme is derived from it. */
  readonly url: string;
  /** Headers sent on every request and handshake, typically the credential. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Which transports to check. Default: both. */
  readonly transports?: readonly ConformanceTransport[];
  /** The server must refuse requests without `headers` with 401. Default false. */
  readonly authRequired?: boolean;
  /** The server's receive limit. Default {@link DEFAULT_MAX_MESSAGE_BYTES} (the spec's recommended 64 MiB). */
  readonly maxMessageBytes?: number;
  /** Time to wait for any single answer. Default {@link DEFAULT_CHECK_TIMEOUT_MS}. */
  readonly timeoutMs?: number;
  /** Run only these check ids (default: all). */
  readonly only?: readonly string[];
  /** Aborts the run; the promise then rejects with an `aborted` OpampError. */
  readonly signal?: AbortSignal;
  /** Called after each result, for progress output. */
  readonly onResult?: (result: CheckResult) => void;
}

/**
 * The ws:// and http:// forms of one OpAMP URL (same host, port and path; `wss`/`https` stay secure).
 * @throws OpampError `invalid_argument` when `url` is not a ws, wss, http or https URL.
 */
export function deriveUrls(url: string): {
  /** The `ws:`/`wss:` form. */
  wsUrl: string;
  /** The `http:`/`https:` form. */
  httpUrl: string;
} {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new OpampError("invalid_argument", `not a URL: ${url}`);
  }
  const secure = parsed.protocol === "wss:" || parsed.protocol === "https:";
  if (!["ws:", "wss:", "http:", "https:"].includes(parsed.protocol)) {
    throw new OpampError("invalid_argument", `the URL must be ws(s):// or http(s)://, got ${parsed.protocol}`);
  }
  const rest = url.slice(parsed.protocol.length);
  return { wsUrl: `${secure ? "wss:" : "ws:"}${rest}`, httpUrl: `${secure ? "https:" : "http:"}${rest}` };
}

/**
 * Drives the server at `url` as scripted agents and checks what the spec requires of a
 * server. Resolves with the report (failures are data, not exceptions); rejects only on
 * invalid options or abort.
 */
export async function runServerChecks(options: ServerChecksOptions): Promise<ConformanceReport> {
  const { wsUrl, httpUrl } = deriveUrls(options.url);
  const transports = options.transports ?? ["ws", "http"];
  const timeoutMs = options.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
  const target = { wsUrl, httpUrl, headers: options.headers ?? {}, timeoutMs };
  const started = Date.now();
  const results: CheckResult[] = [];
  const checks = SERVER_CHECKS.filter((c) => options.only === undefined || options.only.includes(c.id));
  for (const transport of transports) {
    for (const check of checks) {
      if (!check.transports.includes(transport)) continue;
      if (options.signal?.aborted === true) throw new OpampError("aborted", "conformance run aborted");
      const result = await runOne(check, {
        transport,
        target,
        authRequired: options.authRequired === true,
        maxMessageBytes: options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
      });
      results.push(result);
      options.onResult?.(result);
    }
  }
  return {
    kind: "server",
    target: options.url,
    startedAt: new Date(started).toISOString(),
    durationMs: Date.now() - started,
    results,
    summary: summarize(results),
  };
}

async function runOne(check: ServerCheck, base: Omit<ServerCheckContext, "defer">): Promise<CheckResult> {
  const cleanups: (() => void)[] = [];
  const ctx: ServerCheckContext = { ...base, defer: (fn) => cleanups.push(fn) };
  const started = Date.now();
  const head = { id: check.id, title: check.title, specSection: check.specSection, transport: base.transport };
  const applies = check.appliesWhen?.(ctx) ?? true;
  if (applies !== true) return { ...head, status: "not_applicable", reason: applies, durationMs: 0 };
  let outcome: Awaited<ReturnType<ServerCheck["run"]>>;
  try {
    outcome = await check.run(ctx);
  } catch (error) {
    outcome = fail(`the check threw: ${errorText(error)}`);
  } finally {
    for (const fn of cleanups) {
      try {
        fn();
      } catch {
        // Cleanup of a socket that is already gone.
      }
    }
  }
  const durationMs = Date.now() - started;
  if (outcome.status === "not_applicable")
    return { ...head, status: outcome.status, reason: outcome.reason, durationMs };
  return outcome.evidence === undefined
    ? { ...head, status: outcome.status, durationMs }
    : { ...head, status: outcome.status, evidence: outcome.evidence, durationMs };
}
