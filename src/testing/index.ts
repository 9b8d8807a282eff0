/**
 * `opamp-sdk/testing`: what a project needs to test its own OpAMP pieces the way
 * opamp-sdk tests its own — contract suites for third-party stores, a manual clock for
 * fake time, and the OpAMP conformance kit. Loads without any test runner installed.
 *
 * @module
 */
export type { Clock, TimerHandle } from "../internal/clock.js";
export { ManualClock } from "./client-manual-clock.js";
export { clientStateStoreContract } from "./client-state-store-contract.js";
export {
  CHECKING_SERVER_CAPABILITIES,
  type Check,
  CheckingServer,
  type CheckOutcome,
  type CheckResult,
  type CheckStatus,
  CLIENT_CHECKS,
  type ClientCheck,
  type ClientChecksOptions,
  type ClientChecksSession,
  type ClientScriptTiming,
  type ClientSession,
  type ConformanceReport,
  type ConformanceTransport,
  DEFAULT_CHECK_TIMEOUT_MS,
  deriveUrls,
  type Exchange,
  fail,
  formatReportJson,
  formatReportJunit,
  formatReportTable,
  notApplicable,
  pass,
  type ReceivedMessage,
  type ReplyInit,
  type ReportSummary,
  runServerChecks,
  SERVER_CHECKS,
  type ServerCheck,
  type ServerCheckContext,
  type ServerChecksOptions,
  type ServerEvent,
  type ServerTarget,
  startClientChecks,
  summarize,
} from "./conformance/index.js";
export { type ServerBusFactory, serverBusContract } from "./server-bus-contract.js";
export { type ServerStoreFactory, serverStoreContract } from "./server-store-contract.js";
export type { ContractMatchers, ContractTestApi } from "./test-api.js";
