import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: "forks",
    // The JSON report is what .ci/run counts to print its "N passed, N failed" line.
    reporters: ["default", ["json", { outputFile: ".tmp/vitest-report.json" }]],
  },
});
