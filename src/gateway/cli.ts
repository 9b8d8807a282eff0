/**
 * The logic of the `opamp-gateway` command: arguments, config, run until a signal.
 */
import { OpampError } from "../wire/errors.js";
import { loadGatewayConfig } from "./config.js";
import { OpAMPGateway } from "./opamp-gateway.js";

const USAGE = "usage: opamp-gateway --config gateway.yaml\n";

function line(stream: NodeJS.WriteStream, fields: Record<string, unknown>): void {
  stream.write(`${JSON.stringify({ time: new Date().toISOString(), ...fields })}\n`);
}

/**
 * Runs the gateway described by `--config FILE` until SIGTERM or SIGINT, then stops it
 * gracefully. Resolves with the process exit code: 0 after a clean stop, 2 for a usage or
 * config error, 1 when the listener cannot be bound.
 */
export async function runGatewayCli(args: readonly string[]): Promise<number> {
  let path: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--help" || arg === "-h") {
      process.stdout.write(USAGE);
      return 0;
    }
    if (arg === "--config" || arg === "-c") path = args[++i];
    else if (arg.startsWith("--config=")) path = arg.slice("--config=".length);
    else {
      process.stderr.write(`opamp-gateway: unknown argument ${arg}\n${USAGE}`);
      return 2;
    }
  }
  if (path === undefined) {
    process.stderr.write(USAGE);
    return 2;
  }
  let gateway: OpAMPGateway;
  let listen: Awaited<ReturnType<typeof loadGatewayConfig>>["listen"];
  try {
    const config = await loadGatewayConfig(path);
    gateway = new OpAMPGateway(config.gateway);
    listen = config.listen;
  } catch (e) {
    process.stderr.write(`opamp-gateway: ${OpampError.from(e).message}\n`);
    return 2;
  }
  gateway.on("error", (e) => line(process.stderr, { level: "error", code: e.code, message: e.message }));
  gateway.on("upstreamConnected", (id) => line(process.stderr, { level: "info", event: "upstream_connected", id }));
  gateway.on("upstreamDisconnected", (id, e) =>
    line(process.stderr, { level: "warn", event: "upstream_disconnected", id, message: e.message }),
  );
  let address: Awaited<ReturnType<OpAMPGateway["listen"]>>;
  try {
    address = await gateway.listen(listen);
  } catch (e) {
    process.stderr.write(`opamp-gateway: ${OpampError.from(e).message}\n`);
    await gateway.stop();
    return 1;
  }
  line(process.stdout, {
    event: "listening",
    url: address.url,
    port: address.port,
    upstream: gateway.options.upstreamUrl,
  });
  await new Promise<void>((resolve) => {
    const done = () => {
      process.off("SIGTERM", done);
      process.off("SIGINT", done);
      resolve();
    };
    process.on("SIGTERM", done);
    process.on("SIGINT", done);
  });
  await gateway.stop();
  line(process.stdout, { event: "stopped" });
  return 0;
}
