/**
 * The few test-runner functions the contract suites need. They are passed in rather than
 * imported so that `opamp-sdk/testing` loads without any test runner installed, and so
 * that the suites run under vitest, jest or any runner with the same shape:
 *
 * @example
 * ```ts
 * import * as vitest from "vitest";
 * import { serverStoreContract } from "opamp-sdk/testing";
 * serverStoreContract(vitest, "my store", () => new MyStore());
 * ```
 */
export interface ContractTestApi {
  /** Groups tests (vitest/jest `describe`). */
  describe(name: string, body: () => void): void;
  /** Registers one test (vitest/jest `it`). */
  it(name: string, body: () => Promise<void> | void): void;
  /** vitest/jest `expect`; only these matchers are used. */
  expect(actual: unknown): ContractMatchers;
}

/** The matchers the contract suites use. */
export interface ContractMatchers {
  /** Fails unless `actual` is `expected` (`Object.is`). */
  toBe(expected: unknown): void;
  /** Fails unless `actual` deeply equals `expected`. */
  toEqual(expected: unknown): void;
  /** Fails unless `actual` is undefined. */
  toBeUndefined(): void;
  /** Fails when `actual` is undefined. */
  toBeDefined(): void;
  /** Fails unless `actual` is an instance of `expected`. */
  // biome-ignore lint/suspicious/noExplicitAny: matches any class, as vitest's and jest's own signatures do
  toBeInstanceOf(expected: abstract new (...args: any[]) => unknown): void;
}
