/**
 * The supervisor's own log, as `telemetry.logs` describes it: a level, console or JSON
 * lines, written to stdout, stderr or files (rotated like agent.log).
 */
import type { LogsConfig } from "./config/supervisor-config.js";
import { DEFAULT_LOG_MAX_FILES, DEFAULT_LOG_MAX_SIZE_MIB } from "./config/supervisor-config.js";
import type { SupervisorLogger } from "./options.js";
import { RotatingFile } from "./process/rotating-log.js";

const RANK = { debug: 0, info: 1, warn: 2, error: 3 } as const;

type Sink = (line: string) => void;

function sinkFor(path: string): Sink {
  if (path === "stdout") return (line) => process.stdout.write(line);
  if (path === "stderr") return (line) => process.stderr.write(line);
  const file = new RotatingFile(path, DEFAULT_LOG_MAX_SIZE_MIB * 1024 * 1024, DEFAULT_LOG_MAX_FILES);
  return (line) => file.write(line);
}

/**
 * Builds a logger from `telemetry.logs`: lines at `level` and above go to `output_paths`,
 * errors also to `error_output_paths` (as zap does). `console` encoding is
 * `time LEVEL message {fields}`; `json` is one object per line.
 */
export function createConsoleLogger(config: LogsConfig): SupervisorLogger {
  const outputs = config.outputPaths.map(sinkFor);
  const errors = config.errorOutputPaths.map(sinkFor);
  const min = RANK[config.level];
  const write = (level: keyof typeof RANK, message: string, fields: Readonly<Record<string, unknown>> = {}) => {
    if (RANK[level] < min) return;
    const ts = new Date().toISOString();
    const line =
      config.encoding === "json"
        ? `${JSON.stringify({ ts, level, msg: message, ...fields })}\n`
        : `${ts}\t${level.toUpperCase()}\t${message}${Object.keys(fields).length > 0 ? `\t${JSON.stringify(fields)}` : ""}\n`;
    for (const sink of outputs) sink(line);
    if (level === "error") for (const sink of errors) sink(line);
  };
  return {
    debug: (m, f) => write("debug", m, f),
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
  };
}
