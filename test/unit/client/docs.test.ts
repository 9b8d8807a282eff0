// Every limit of opamp-sdk/client is part of the public contract: each must be documented.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import * as client from "../../../src/client/index.js";

const limits = readFileSync(fileURLToPath(new URL("../../../docs/limits.md", import.meta.url)), "utf8");
const clientDoc = readFileSync(fileURLToPath(new URL("../../../docs/client.md", import.meta.url)), "utf8");

describe("docs for opamp-sdk/client", () => {
  const defaults = Object.entries(client)
    .filter(([name, value]) => name.startsWith("DEFAULT_") && (typeof value === "number" || name === "DEFAULT_RETRY"))
    .map(([name]) => name);

  it("exports the bounds on server-given delays and the download deadlines", () => {
    expect(defaults).toEqual(
      expect.arrayContaining([
        "DEFAULT_MAX_RETRY_AFTER_MS",
        "DEFAULT_MAX_HEARTBEAT_INTERVAL_MS",
        "DEFAULT_CONNECT_TIMEOUT_MS",
        "DEFAULT_DOWNLOAD_CONNECT_TIMEOUT_MS",
        "DEFAULT_DOWNLOAD_IDLE_TIMEOUT_MS",
        "DEFAULT_DOWNLOAD_TIMEOUT_MS",
      ]),
    );
  });

  it.each(defaults)("docs/limits.md and docs/client.md document %s", (name) => {
    expect(limits).toContain(`\`${name}`);
    expect(clientDoc).toContain(`\`${name}`);
  });
});
