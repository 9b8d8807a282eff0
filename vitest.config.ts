import { defineConfig } from "vitest/config";

// Suites that measure the server under load (response-time bounds, heap plateaus, a fleet
// of thousands of agents, kill -9 timing) run after everything else, one file at a time:
// sharing the machine's two cores with other suites would measure the neighbours.
const ALONE = ["test/fuzz/*.test.ts", "test/reliability/soak.test.ts", "test/reliability/faults.test.ts"];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: "forks",
    // The JSON report is what .ci/run counts to print its "N passed, N failed" line.
    reporters: ["default", ["json", { outputFile: ".tmp/vitest-report.json" }]],
    projects: [
      {
        extends: true,
        test: { name: "main", include: ["test/**/*.test.ts"], exclude: ALONE },
      },
      {
        extends: true,
        test: { name: "alone", include: ALONE, sequence: { groupOrder: 1 }, fileParallelism: false },
      },
    ],
  },
});
