/**
 * The OpAMP conformance kit: checks any OpAMP server (driving it as scripted agents) or
 * any OpAMP client (as the server it connects to) against the requirements of the spec.
 * Built only on the wire layer, so it does not share code paths with opamp-sdk's own
 * client and server. The `opamp-conformance` CLI is a thin shell over these functions.
 *
 * @module
 */
export type { Exchange, ReceivedMessage, ReplyInit, ServerEvent } from "./checking-server.js";
export { CHECKING_SERVER_CAPABILITIES, CheckingServer } from "./checking-server.js";
export { type CliIo, CONFORMANCE_USAGE, runConformanceCli } from "./cli.js";
export { CLIENT_CHECKS, type ClientCheck, type ClientScriptTiming, type ClientSession } from "./client-checks.js";
export { formatReportJson, formatReportJunit, formatReportTable } from "./report.js";
export { type ClientChecksOptions, type ClientChecksSession, startClientChecks } from "./run-client-checks.js";
export {
  DEFAULT_CHECK_TIMEOUT_MS,
  deriveUrls,
  runServerChecks,
  type ServerChecksOptions,
} from "./run-server-checks.js";
export type { ServerTarget } from "./scripted-agent.js";
export { SERVER_CHECKS, type ServerCheck, type ServerCheckContext } from "./server-checks.js";
export {
  type Check,
  type CheckOutcome,
  type CheckResult,
  type CheckStatus,
  type ConformanceReport,
  type ConformanceTransport,
  fail,
  notApplicable,
  pass,
  type ReportSummary,
  summarize,
} from "./types.js";
