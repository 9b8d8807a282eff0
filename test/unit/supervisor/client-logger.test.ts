/**
 * The supervisor hands its own logger (message first) to its OpAMPClient (pino shape,
 * fields first): the client's lines land in the supervisor's log, not on the console.
 */
import { describe, expect, it } from "vitest";
import { OpAMPClient } from "../../../src/client/index.js";
import type { SupervisorLogger } from "../../../src/supervisor/index.js";
import { clientLogger } from "../../../src/supervisor/upstream.js";
import { OpampError } from "../../../src/wire/index.js";

function recording(): { log: SupervisorLogger; lines: [string, string, Record<string, unknown>][] } {
  const lines: [string, string, Record<string, unknown>][] = [];
  const at = (level: string) => (message: string, fields?: Readonly<Record<string, unknown>>) =>
    void lines.push([level, message, { ...fields }]);
  return { log: { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") }, lines };
}

describe("clientLogger", () => {
  it("swaps the argument order, keeps child bindings, sends info to debug and drops trace", () => {
    const { log, lines } = recording();
    const logger = clientLogger(log).child?.({ component: "opamp-client" });
    logger?.trace({ a: 1 }, "t");
    logger?.info({ url: "ws://x" }, "connected");
    logger?.warn({ code: "timeout" }, "w");
    logger?.error({}, "e");
    expect(lines).toEqual([
      ["debug", "connected", { component: "opamp-client", url: "ws://x" }],
      ["warn", "w", { component: "opamp-client", code: "timeout" }],
      ["error", "e", { component: "opamp-client" }],
    ]);
  });

  it("is a logger the client accepts, and the client's warnings reach the supervisor's log", () => {
    const { log, lines } = recording();
    const client = new OpAMPClient({ transport: { url: "ws://127.0.0.1:9/v1/opamp" }, logger: clientLogger(log) });
    // An error nobody listens to is a warning through the logger.
    client.emit("error", new OpampError("timeout", "nobody listens"));
    expect(lines).toEqual([
      [
        "warn",
        expect.stringContaining("nobody listens"),
        expect.objectContaining({ component: "opamp-client", code: "timeout" }),
      ],
    ]);
  });
});
