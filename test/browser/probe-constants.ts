// Values the browser probe (entry.ts) and the test (browser.test.ts) both use, kept apart
// so that the test can import them without running the browser entry in Node.

/** sequence_num of the probe message: above 2^53, so it must travel as a bigint. */
export const PROBE_SEQUENCE_NUM = 2n ** 60n + 7n;
/** service.name of the probe message. */
export const PROBE_AGENT_NAME = "browser-probe";
/** A config map whose hash the browser and Node must agree on, whatever the key order. */
export const PROBE_CONFIG: Readonly<Record<string, string>> = { "b.yaml": "second: 2\n", "a.yaml": "first: 1\n" };
