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
  toBe(expected: unknown): void;
  toEqual(expected: unknown): void;
  toBeUndefined(): void;
  toBeDefined(): void;
  // biome-ignore lint/suspicious/noExplicitAny: matches any class, as vitest's and jest's own signatures do
  toBeInstanceOf(expected: abstract new (...args: any[]) => unknown): void;
}
