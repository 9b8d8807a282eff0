// The conformance kit against opamp-sdk's own OpAMPServer (both transports on one
// endpoint). Ours must pass every applicable check: no deviations are recorded.

import { afterAll, beforeAll, expect, it } from "vitest";
import { OpAMPServer } from "../../src/server/index.js";
import { runServerChecks } from "../../src/testing/conformance/index.js";
import { expectConformance, writeMatrixEntry } from "./peers.js";

const TOKEN = "conformance-token";
const LIMIT = 1024 * 1024;
let server: OpAMPServer;
let url = "";

beforeAll(async () => {
  server = new OpAMPServer({
    hooks: {
      authenticate: ({ headers }) =>
        headers["authorization"] === `Bearer ${TOKEN}` ? { accept: true } : { accept: false, status: 401 },
    },
    limits: { maxMessageBytes: LIMIT },
  });
  // The kit checks the wire; what the server reports as events is not its business here.
  server.on("error", () => undefined);
  url = (await server.listen({ port: 0, host: "127.0.0.1" })).url;
});

afterAll(async () => {
  await server?.stop();
});

for (const transport of ["ws", "http"] as const) {
  it(`opamp-sdk's OpAMPServer passes every server check over ${transport}`, async () => {
    const report = await runServerChecks({
      url,
      transports: [transport],
      headers: { Authorization: `Bearer ${TOKEN}` },
      authRequired: true,
      maxMessageBytes: LIMIT,
    });
    await writeMatrixEntry({
      implementation: "opamp-sdk",
      version: "workspace",
      ours: true,
      role: "server",
      transport,
      deviations: [],
      report,
    });
    expectConformance(report, []);
    expect(report.summary.fail).toBe(0);
  });
}
