/**
 * Runs the client checks: a checking server that one client under test connects to.
 */
import { CheckingServer, type Exchange, type ReceivedMessage } from "./checking-server.js";
import { CLIENT_CHECKS, type ClientCheck, type ClientScriptTiming, type ClientSession } from "./client-checks.js";
import { errorText } from "./scripted-agent.js";
import { type CheckResult, type ConformanceReport, fail, summarize } from "./types.js";

/** Options of {@link startClientChecks}; every time is in milliseconds unless named seconds. */
export interface ClientChecksOptions {
  /** Port to listen on; 0 (default) picks a free one. */
  readonly port?: number;
  /** Host to bind. Default `127.0.0.1`. */
  readonly host?: string;
  /** How long to wait for the client's first message. Default 60 000. */
  readonly connectTimeoutMs?: number;
  /** Wait for a reaction the client owes at once. Default 10 000. */
  readonly timeoutMs?: number;
  /** Wait for an HTTP client's next poll. Default 35 000 (a 30 s default poll plus slack). */
  readonly pollWaitMs?: number;
  /** Heartbeat interval offered to clients with ReportsHeartbeat. Default 1 s. */
  readonly heartbeatSeconds?: number;
  /** Retry-After / retry_info sent by the throttling checks. Default 2 s. */
  readonly retryAfterSeconds?: number;
  /** Extra time a throttled client may take to come back. Default 40 000 (clients may clamp to 30 s). */
  readonly retryGraceMs?: number;
  /** Run only these check ids (default: all). */
  readonly only?: readonly string[];
  /** Called after each result, for progress output. */
  readonly onResult?: (result: CheckResult) => void;
}

/** A running client check session. */
export interface ClientChecksSession {
  /** The port the kit listens on (the one chosen when `port` was 0). */
  readonly port: number;
  /** The URL to give an HTTP client. */
  readonly httpUrl: string;
  /** The URL to give a WebSocket client. */
  readonly wsUrl: string;
  /** Every message received so far, in order, with arrival times. */
  readonly messages: readonly ReceivedMessage[];
  /** Resolves once the client has connected. */
  readonly connected: Promise<void>;
  /** Resolves when every check that needs the client running is done; then stop the client. */
  readonly scriptDone: Promise<void>;
  /**
   * Waits (up to `disconnectTimeoutMs`, default 10 000) for the client's shutdown to show,
   * runs the checks over the whole log, closes the server and resolves with the report.
   * Call it after stopping the client.
   */
  finish(options?: { disconnectTimeoutMs?: number }): Promise<ConformanceReport>;
  /** Closes the server without a report (cleanup on error). */
  close(): Promise<void>;
}

/** Starts the checking server and the script; see {@link ClientChecksSession}. */
export async function startClientChecks(options: ClientChecksOptions = {}): Promise<ClientChecksSession> {
  const host = options.host ?? "127.0.0.1";
  const server = new CheckingServer();
  const port = await server.listen(options.port ?? 0, host);
  const urlHost = host.includes(":") ? `[${host}]` : host;
  const httpUrl = `http://${urlHost}:${port}/v1/opamp`;
  const wsUrl = `ws://${urlHost}:${port}/v1/opamp`;
  const timing: ClientScriptTiming = {
    timeoutMs: options.timeoutMs ?? 10_000,
    pollWaitMs: options.pollWaitMs ?? 35_000,
    heartbeatSeconds: options.heartbeatSeconds ?? 1,
    retryAfterSeconds: options.retryAfterSeconds ?? 2,
    retryGraceMs: options.retryGraceMs ?? 40_000,
  };
  const started = Date.now();
  const results: CheckResult[] = [];
  const checks = CLIENT_CHECKS.filter((c) => options.only === undefined || options.only.includes(c.id));
  const record = (result: CheckResult): void => {
    results.push(result);
    options.onResult?.(result);
  };

  const session: ClientSession = {
    server,
    url: httpUrl,
    timing,
    transport: "http",
    uid: new Uint8Array(16),
    held: undefined,
    first: undefined,
    throttleSeconds: undefined,
    capabilities: () => server.log.at(-1)?.message.capabilities ?? 0n,
    next(timeoutMs) {
      const held = session.held;
      if (held !== undefined) {
        session.held = undefined;
        return Promise.resolve(held);
      }
      return server.take(timeoutMs);
    },
  };

  let markConnected: () => void = () => {};
  const connected = new Promise<void>((resolve) => {
    markConnected = resolve;
  });

  const scriptDone = (async () => {
    const first: Exchange | undefined = await server.take(options.connectTimeoutMs ?? 60_000);
    if (first === undefined) {
      for (const check of checks.filter((c) => c.atEnd !== true))
        record(result(check, session, fail("the client never connected"), 0));
      return;
    }
    markConnected();
    session.first = first;
    session.held = first;
    session.transport = first.transport;
    session.uid = first.message.instanceUid;
    for (const check of checks) {
      if (check.atEnd === true) continue;
      record(await runOne(check, session));
    }
    const held = session.held as Exchange | undefined;
    session.held = undefined;
    held?.reply();
  })();

  return {
    port,
    httpUrl,
    wsUrl,
    messages: server.log,
    connected,
    scriptDone,
    async finish(finishOptions = {}) {
      await scriptDone;
      const disconnectTimeoutMs = finishOptions.disconnectTimeoutMs ?? 10_000;
      if (session.first !== undefined) {
        await server.waitForEvent(
          () =>
            server.log.some((r) => r.message.agentDisconnect !== undefined) ||
            (session.transport === "ws" && !server.wsOpen),
          disconnectTimeoutMs,
        );
      }
      for (const check of checks) if (check.atEnd === true) record(await runOne(check, session));
      await server.close();
      return {
        kind: "client",
        target: httpUrl,
        startedAt: new Date(started).toISOString(),
        durationMs: Date.now() - started,
        results: results.slice(),
        summary: summarize(results),
      };
    },
    close: () => server.close(),
  };
}

function result(
  check: ClientCheck,
  session: ClientSession,
  outcome: Awaited<ReturnType<ClientCheck["run"]>>,
  durationMs: number,
): CheckResult {
  const head = { id: check.id, title: check.title, specSection: check.specSection, transport: session.transport };
  if (outcome.status === "not_applicable")
    return { ...head, status: outcome.status, reason: outcome.reason, durationMs };
  return outcome.evidence === undefined
    ? { ...head, status: outcome.status, durationMs }
    : { ...head, status: outcome.status, evidence: outcome.evidence, durationMs };
}

async function runOne(check: ClientCheck, session: ClientSession): Promise<CheckResult> {
  const started = Date.now();
  const applies = check.appliesWhen?.(session) ?? true;
  if (applies !== true) return result(check, session, { status: "not_applicable", reason: applies }, 0);
  let outcome: Awaited<ReturnType<ClientCheck["run"]>>;
  try {
    outcome = await check.run(session);
  } catch (error) {
    outcome = fail(`the check threw: ${errorText(error)}`);
  }
  return result(check, session, outcome, Date.now() - started);
}
