// The server's limits are part of the public contract: each numeric default is documented.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import * as cluster from "../../../src/server/cluster/index.js";
import * as server from "../../../src/server/index.js";

const limitsDoc = readFileSync(fileURLToPath(new URL("../../../docs/limits.md", import.meta.url)), "utf8");

describe("docs/limits.md (server)", () => {
  const numeric = Object.entries({ ...server, ...cluster })
    .filter(([name, value]) => name.startsWith("DEFAULT_") && typeof value === "number")
    .map(([name]) => name)
    // The listen port and the path are not limits.
    .filter((name) => name !== "DEFAULT_LISTEN_PORT");

  it("finds the server's limits", () => {
    expect(numeric).toContain("DEFAULT_MAX_CONNECTIONS");
  });

  it.each(numeric)("documents %s", (name) => {
    expect(limitsDoc).toContain(`\`${name}\``);
  });
});
