#!/usr/bin/env node
/**
 * `opamp-supervisor --config supervisor.yaml`: runs the Supervisor until SIGTERM or
 * SIGINT, then stops the agent and exits 0. Exits 1 when the config is invalid or the
 * supervisor cannot start, 2 on a usage error.
 */
import { parseArgs } from "node:util";
import { createConsoleLogger, loadSupervisorConfig, Supervisor } from "../supervisor/index.js";
import { OpampError } from "../wire/errors.js";

const USAGE = `usage: opamp-supervisor --config supervisor.yaml [--check]

  --config FILE   the supervisor config (the Collector opampsupervisor's schema)
  --check         validate the config and exit
`;

async function main(): Promise<number> {
  let values: { config?: string; check?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        config: { type: "string" },
        check: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help === true) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.config === undefined) {
    process.stderr.write(USAGE);
    return 2;
  }
  let loaded: Awaited<ReturnType<typeof loadSupervisorConfig>>;
  try {
    loaded = await loadSupervisorConfig(values.config);
  } catch (error) {
    process.stderr.write(`opamp-supervisor: ${OpampError.from(error).message}\n`);
    return 1;
  }
  const logger = createConsoleLogger(loaded.config.telemetry.logs);
  for (const warning of loaded.warnings) logger.warn(warning);
  if (values.check === true) {
    logger.info("config is valid", { file: values.config });
    return 0;
  }
  const supervisor = new Supervisor({ config: loaded.config, logger });
  supervisor.on("remoteConfigStatus", (status) =>
    logger.info("remote config status", {
      status: status.status,
      hash: Buffer.from(status.lastRemoteConfigHash).toString("hex"),
      error: status.errorMessage,
    }),
  );
  supervisor.on("error", () => undefined); // already logged by the supervisor
  let stopping = false;
  let stopped: () => void = () => undefined;
  const done = new Promise<void>((resolve) => {
    stopped = resolve;
  });
  const shutdown = (signal: string) => {
    logger.info("stopping", { signal });
    if (stopping) return;
    stopping = true;
    void supervisor.stop().then(stopped);
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
  try {
    await supervisor.start();
  } catch (error) {
    logger.error(`cannot start: ${OpampError.from(error).message}`);
    return 1;
  }
  logger.info("supervisor started", { instance_uid: supervisor.instanceUid, storage: loaded.config.storage.directory });
  await done;
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`opamp-supervisor: ${String((error as Error)?.stack ?? error)}\n`);
    process.exit(1);
  },
);
