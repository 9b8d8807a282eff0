/**
 * The `opamp-conformance` command line, as a function so that it can be tested without a
 * process. src/cli/conformance.ts is the executable that calls it.
 */
import { writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { formatReportJson, formatReportJunit, formatReportTable } from "./report.js";
import { startClientChecks } from "./run-client-checks.js";
import { runServerChecks } from "./run-server-checks.js";
import type { ConformanceReport, ConformanceTransport } from "./types.js";

/** Where the CLI writes. */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

export const CONFORMANCE_USAGE = `usage:
  opamp-conformance server <url> [--header K=V ...] [--transport ws|http|both] [--auth-required]
                           [--max-message-bytes N] [--timeout S] [--only ID,...] [--json] [--junit FILE]
  opamp-conformance client --listen <port> [--host H] [--timeout S] [--heartbeat S] [--retry-after S]
                           [--only ID,...] [--json] [--junit FILE]

server: drives the OpAMP server at <url> (ws://, wss://, http:// or https://) as scripted agents.
client: listens on <port> (path /v1/opamp, WebSocket and HTTP); start the client under test
        against it, and stop the client when told to, so that its disconnect can be checked.

--timeout S   server: wait per answer (default 5); client: wait for the client to connect and
              to disconnect (default 60)
--json        print the report as JSON instead of a table
--junit FILE  also write the report as JUnit XML to FILE
exit code: 0 every check passed or did not apply, 1 a check failed, 2 usage error`;

function positiveNumber(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${name} must be a positive number, got ${value}`);
  return n;
}

class UsageError extends Error {}

/** Runs the CLI with `argv` (without node and the script) and returns the exit code. */
export async function runConformanceCli(argv: readonly string[], io: CliIo): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    io.stderr(`${error instanceof Error ? error.message : String(error)}\n\n${CONFORMANCE_USAGE}\n`);
    return 2;
  }
  if (parsed === "help") {
    io.stdout(`${CONFORMANCE_USAGE}\n`);
    return 0;
  }
  const progress = (line: string): void => io.stderr(`${line}\n`);
  let report: ConformanceReport;
  if (parsed.mode === "server") {
    progress(`checking the server at ${parsed.url} …`);
    report = await runServerChecks({
      url: parsed.url,
      headers: parsed.headers,
      transports: parsed.transports,
      authRequired: parsed.authRequired,
      ...(parsed.maxMessageBytes === undefined ? {} : { maxMessageBytes: parsed.maxMessageBytes }),
      ...(parsed.timeoutS === undefined ? {} : { timeoutMs: parsed.timeoutS * 1000 }),
      ...(parsed.only === undefined ? {} : { only: parsed.only }),
      onResult: (r) => progress(`  ${r.status.padEnd(14)} ${r.transport.padEnd(4)} ${r.id}`),
    });
  } else {
    const waitMs = (parsed.timeoutS ?? 60) * 1000;
    const session = await startClientChecks({
      port: parsed.port,
      host: parsed.host,
      connectTimeoutMs: waitMs,
      ...(parsed.heartbeatS === undefined ? {} : { heartbeatSeconds: parsed.heartbeatS }),
      ...(parsed.retryAfterS === undefined ? {} : { retryAfterSeconds: parsed.retryAfterS }),
      ...(parsed.only === undefined ? {} : { only: parsed.only }),
      onResult: (r) => progress(`  ${r.status.padEnd(14)} ${r.transport.padEnd(4)} ${r.id}`),
    });
    progress(`listening: point the client under test at ${session.wsUrl} or ${session.httpUrl}`);
    void session.connected.then(() => progress("client connected; running the script …"));
    await session.scriptDone;
    progress(`script done: stop the client now (waiting up to ${waitMs / 1000} s for its disconnect)`);
    report = await session.finish({ disconnectTimeoutMs: waitMs });
  }
  io.stdout(`${parsed.json ? formatReportJson(report) : formatReportTable(report)}\n`);
  if (parsed.junit !== undefined) await writeFile(parsed.junit, formatReportJunit(report));
  return report.summary.fail > 0 ? 1 : 0;
}

interface Common {
  readonly json: boolean;
  readonly junit: string | undefined;
  readonly timeoutS: number | undefined;
  readonly only: string[] | undefined;
}

type Parsed =
  | (Common & {
      readonly mode: "server";
      readonly url: string;
      readonly headers: Record<string, string>;
      readonly transports: ConformanceTransport[];
      readonly authRequired: boolean;
      readonly maxMessageBytes: number | undefined;
    })
  | (Common & {
      readonly mode: "client";
      readonly port: number;
      readonly host: string;
      readonly heartbeatS: number | undefined;
      readonly retryAfterS: number | undefined;
    });

function parse(argv: readonly string[]): Parsed | "help" {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      help: { type: "boolean", short: "h" },
      header: { type: "string", short: "H", multiple: true },
      transport: { type: "string" },
      "auth-required": { type: "boolean" },
      "max-message-bytes": { type: "string" },
      listen: { type: "string" },
      host: { type: "string" },
      timeout: { type: "string" },
      heartbeat: { type: "string" },
      "retry-after": { type: "string" },
      only: { type: "string" },
      json: { type: "boolean" },
      junit: { type: "string" },
    },
  });
  if (values.help === true) return "help";
  const [mode, ...rest] = positionals;
  const common: Common = {
    json: values.json === true,
    junit: values.junit,
    timeoutS: positiveNumber(values.timeout, "--timeout"),
    only: values.only?.split(",").map((s) => s.trim()),
  };
  if (mode === "server") {
    if (rest.length !== 1) throw new UsageError("server mode needs exactly one <url>");
    const headers: Record<string, string> = {};
    for (const h of values.header ?? []) {
      const eq = h.indexOf("=");
      if (eq <= 0) throw new UsageError(`--header must be K=V, got ${h}`);
      headers[h.slice(0, eq).trim()] = h.slice(eq + 1);
    }
    const transport = values.transport ?? "both";
    if (transport !== "ws" && transport !== "http" && transport !== "both")
      throw new UsageError(`--transport must be ws, http or both, got ${transport}`);
    const maxBytes = positiveNumber(values["max-message-bytes"], "--max-message-bytes");
    if (maxBytes !== undefined && !Number.isSafeInteger(maxBytes))
      throw new UsageError("--max-message-bytes must be an integer");
    return {
      ...common,
      mode,
      url: rest[0]!,
      headers,
      transports: transport === "both" ? ["ws", "http"] : [transport],
      authRequired: values["auth-required"] === true,
      maxMessageBytes: maxBytes,
    };
  }
  if (mode === "client") {
    if (rest.length !== 0) throw new UsageError("client mode takes no positional arguments");
    if (values.listen === undefined) throw new UsageError("client mode needs --listen <port>");
    const port = Number(values.listen);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new UsageError(`--listen must be a port, got ${values.listen}`);
    return {
      ...common,
      mode,
      port,
      host: values.host ?? "127.0.0.1",
      heartbeatS: positiveNumber(values.heartbeat, "--heartbeat"),
      retryAfterS: positiveNumber(values["retry-after"], "--retry-after"),
    };
  }
  throw new UsageError(mode === undefined ? "missing mode: server or client" : `unknown mode ${mode}`);
}
