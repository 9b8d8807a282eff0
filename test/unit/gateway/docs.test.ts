// The gateway's limits are part of the public contract: each numeric default is documented.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import * as gateway from "../../../src/gateway/index.js";

const limitsDoc = readFileSync(fileURLToPath(new URL("../../../docs/limits.md", import.meta.url)), "utf8");
const gatewayDoc = readFileSync(fileURLToPath(new URL("../../../docs/gateway.md", import.meta.url)), "utf8");

describe("docs/limits.md (gateway)", () => {
  const defaults = Object.keys(gateway)
    .filter((name) => name.startsWith("DEFAULT_"))
    // The listen port is not a limit.
    .filter((name) => name !== "DEFAULT_GATEWAY_PORT");

  it("finds the gateway's defaults", () => {
    expect(defaults).toContain("DEFAULT_MAX_QUEUED_BYTES_PER_AGENT");
  });

  it.each(defaults)("documents %s", (name) => {
    expect(limitsDoc).toContain(`\`${name}\``);
  });

  it("docs/gateway.md names every event", () => {
    for (const event of ["agentConnected", "agentDisconnected", "agentMoved", "upstreamConnected", "error"]) {
      expect(gatewayDoc).toContain(`\`${event}\``);
    }
  });
});
