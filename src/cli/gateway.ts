#!/usr/bin/env node
/**
 * `opamp-gateway --config gateway.yaml`: runs an OpAMPGateway from a config file
 * (docs/gateway.md). Prints one JSON line when listening, logs errors as JSON lines on
 * stderr, and stops gracefully on SIGTERM / SIGINT.
 */
import { runGatewayCli } from "../gateway/cli.js";

runGatewayCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`opamp-gateway: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
