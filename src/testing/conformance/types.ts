/**
 * Shared shapes of the conformance kit: a check, its result and a report.
 */

/** The two OpAMP transports (spec: Transports). */
export type ConformanceTransport = "ws" | "http";

/** Outcome of one check on one transport. */
export type CheckStatus = "pass" | "fail" | "not_applicable";

/**
 * What a check's `run` returns. `evidence` says what was observed (always for `fail`,
 * optional for `pass`); `reason` says why a check does not apply.
 */
export type CheckOutcome =
  | {
      /** The requirement holds. */
      readonly status: "pass";
      /** What was observed, when worth reporting. */
      readonly evidence?: string;
    }
  | {
      /** The requirement does not hold. */
      readonly status: "fail";
      /** What was observed instead of what the spec requires. */
      readonly evidence: string;
    }
  | {
      /** The check does not apply to this implementation or setup. */
      readonly status: "not_applicable";
      /** Why it does not apply. */
      readonly reason: string;
    };

/** One check's result on one transport, as it appears in a report. */
export interface CheckResult {
  /** Stable id, e.g. `server.first-reply-capabilities`. */
  readonly id: string;
  /** One line saying what the requirement is, for reports. */
  readonly title: string;
  /** The section of the OpAMP specification the requirement comes from. */
  readonly specSection: string;
  /** The transport this result is for. */
  readonly transport: ConformanceTransport;
  /** Whether the check passed, failed or does not apply. */
  readonly status: CheckStatus;
  /** What was observed; always set on `fail`. */
  readonly evidence?: string;
  /** Why the check does not apply; set on `not_applicable`. */
  readonly reason?: string;
  /** How long the check took on this transport. */
  readonly durationMs: number;
}

/** Counts of results per status. */
export interface ReportSummary {
  /** Results that passed. */
  readonly pass: number;
  /** Results that failed; a conforming implementation has none. */
  readonly fail: number;
  /** Results whose check did not apply. */
  readonly not_applicable: number;
}

/** Everything one run of the kit found. */
export interface ConformanceReport {
  /** `server`: the kit drove a server under test; `client`: a client under test connected to the kit. */
  readonly kind: "server" | "client";
  /** The URL checked (server mode) or the URL the kit listened on (client mode). */
  readonly target: string;
  /** ISO-8601 time the run started. */
  readonly startedAt: string;
  /** How long the whole run took. */
  readonly durationMs: number;
  /** One result per check and transport, in run order. */
  readonly results: readonly CheckResult[];
  /** The results counted per status. */
  readonly summary: ReportSummary;
}

/**
 * A conformance check. `appliesWhen` decides from the context whether the check applies at
 * all (for example, auth checks only when the operator says auth is required); `run` may
 * still answer `not_applicable` when what it needs turns out to be absent (for example, a
 * server that never assigns instance UIDs).
 */
export interface Check<Ctx> {
  /** Stable id, e.g. `server.first-reply-capabilities`. */
  readonly id: string;
  /** One line saying what the requirement is, for reports. */
  readonly title: string;
  /** The section of the OpAMP specification the requirement comes from. */
  readonly specSection: string;
  /** Returns `true`, or the reason the check does not apply. */
  readonly appliesWhen?: (ctx: Ctx) => true | string;
  /** Runs the check; resolves with the outcome, and a rejection is reported as `fail` with the error as evidence. */
  readonly run: (ctx: Ctx) => Promise<CheckOutcome>;
}

/** Builds a passing outcome. */
export function pass(evidence?: string): CheckOutcome {
  return evidence === undefined ? { status: "pass" } : { status: "pass", evidence };
}

/** Builds a failing outcome; `evidence` says what was observed. */
export function fail(evidence: string): CheckOutcome {
  return { status: "fail", evidence };
}

/** Builds a not-applicable outcome. */
export function notApplicable(reason: string): CheckOutcome {
  return { status: "not_applicable", reason };
}

/** Counts results per status. */
export function summarize(results: readonly CheckResult[]): ReportSummary {
  let passed = 0;
  let failed = 0;
  let na = 0;
  for (const r of results) {
    if (r.status === "pass") passed++;
    else if (r.status === "fail") failed++;
    else na++;
  }
  return { pass: passed, fail: failed, not_applicable: na };
}
