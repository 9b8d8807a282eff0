/**
 * The logger the client and the server write to. Its shape is pino's (and bunyan's):
 * `logger.warn({ fields }, "message")`, so a pino logger can be passed as it is.
 * Browser-safe: the default writes through `console`.
 */
import { describeValue } from "./check-options.js";

/** One log method: structured fields first, then the message (pino's argument order). */
export type LogFn = (fields: Readonly<Record<string, unknown>>, message: string) => void;

/**
 * A pino-compatible logger (pino, bunyan, or any object with these methods). The SDK
 * calls each method as `logger.level({ …fields }, "message")`; `child` is called once
 * per object with `{ component: "opamp-client" | "opamp-server" | … }` when present.
 */
export interface Logger {
  /** Finest detail; written only when the logger's level allows it. */
  trace: LogFn;
  /** Detail for diagnosis (refused authentications, disconnects). */
  debug: LogFn;
  /** Notable events (a connection established). */
  info: LogFn;
  /** Something went wrong but work carries on (an `error` event nobody listens to, a likely listener leak). */
  warn: LogFn;
  /** A failure. */
  error: LogFn;
  /** Returns a logger that adds `bindings` to every line. Optional. */
  child?: (bindings: Readonly<Record<string, unknown>>) => Logger;
}

const noop: LogFn = () => undefined;

function consoleLine(component: string, message: string, fields: Readonly<Record<string, unknown>>): string {
  const err = fields["err"];
  const detail =
    err instanceof Error && !message.includes(err.message)
      ? `: ${(err as { code?: unknown }).code ?? err.name}: ${err.message}`
      : "";
  return `[${component}] ${message}${detail}`;
}

/**
 * The default logger: silent below `warn`; warnings and errors go to `console.warn` and
 * `console.error` as one line each, prefixed with the component.
 */
export function defaultLogger(component: string): Logger {
  return {
    trace: noop,
    debug: noop,
    info: noop,
    warn: (fields, message) => console.warn(consoleLine(component, message, fields)),
    error: (fields, message) => console.error(consoleLine(component, message, fields)),
  };
}

/**
 * The logger an object of `component` writes to: `given.child({ component })` when the
 * given logger has `child`, the given one otherwise, {@link defaultLogger} when none.
 */
export function componentLogger(given: Logger | undefined, component: string): Logger {
  if (given === undefined) return defaultLogger(component);
  return typeof given.child === "function" ? given.child({ component }) : given;
}

const LEVELS = ["trace", "debug", "info", "warn", "error"] as const;

/** Why a `logger` option is unusable (the first missing method), or undefined when it is fine. */
export function loggerProblem(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "object" || value === null) {
    return `${name} must be a logger object (pino-compatible), got ${describeValue(value)}`;
  }
  for (const level of LEVELS) {
    if (typeof (value as Record<string, unknown>)[level] !== "function") {
      return `${name}.${level} must be a function (a pino-compatible logger has trace, debug, info, warn and error)`;
    }
  }
  const child = (value as Record<string, unknown>)["child"];
  if (child !== undefined && typeof child !== "function") return `${name}.child must be a function`;
  return undefined;
}
