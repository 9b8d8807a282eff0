#!/usr/bin/env node
/**
 * `opamp-conformance`: checks an OpAMP server or client against the spec.
 * Run `opamp-conformance --help` for usage; the logic lives in src/testing/conformance/cli.ts.
 */
import { runConformanceCli } from "../testing/conformance/cli.js";

runConformanceCli(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
}).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(
      `opamp-conformance: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = 2;
  },
);
