// The conformance kit against opamp-go v0.23.0: its server (WS and HTTP on one endpoint)
// and its client (one process per transport), through test/interop/go.

import { afterAll, beforeAll, expect, it } from "vitest";
import { runServerChecks, startClientChecks } from "../../src/testing/conformance/index.js";
import { describeWithGo } from "../interop/go-harness.js";
import { OPAMP_GO_AGENT_HTTP, OPAMP_GO_AGENT_WS, OPAMP_GO_SERVER } from "./deviations.js";
import {
  type Deviation,
  deviationNotes,
  expectConformance,
  type GoProcess,
  startGo,
  writeMatrixEntry,
} from "./peers.js";

const TOKEN = "conformance-token";
const OPAMP_GO = { implementation: "opamp-go", version: "v0.23.0", ours: false } as const;

describeWithGo("conformance: opamp-go server", () => {
  let server: GoProcess | undefined;
  let httpUrl = "";

  beforeAll(async () => {
    server = await startGo(["server", "-config", "receivers: {}", "-auth-token", TOKEN]);
    const listening = await server.waitFor((e) => e.event === "listening", 30_000);
    httpUrl = String(listening["httpUrl"]);
  });

  afterAll(async () => {
    await server?.stop();
  });

  for (const transport of ["ws", "http"] as const) {
    it(`passes the server checks over ${transport}, apart from its recorded deviations`, async () => {
      const report = await runServerChecks({
        url: httpUrl,
        transports: [transport],
        headers: { Authorization: `Bearer ${TOKEN}` },
        authRequired: true,
      });
      const deviations = OPAMP_GO_SERVER.filter((d) => d.transport === transport);
      await writeMatrixEntry({
        ...OPAMP_GO,
        role: "server",
        transport,
        deviations: deviationNotes(deviations),
        report,
      });
      expectConformance(report, deviations);
      expect(report.summary.pass).toBeGreaterThan(5);
    });
  }
});

describeWithGo("conformance: opamp-go client", () => {
  const agents: GoProcess[] = [];

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
  });

  const cases: [transport: "ws" | "http", deviations: readonly Deviation[]][] = [
    ["ws", OPAMP_GO_AGENT_WS],
    ["http", OPAMP_GO_AGENT_HTTP],
  ];
  for (const [transport, deviations] of cases) {
    it(`passes the client checks over ${transport}, apart from its recorded deviations`, {
      timeout: 180_000,
    }, async () => {
      const session = await startClientChecks({ connectTimeoutMs: 60_000, pollWaitMs: 15_000 });
      try {
        const url = transport === "ws" ? session.wsUrl : session.httpUrl;
        // A 5 s poll keeps the HTTP run short; the heartbeat check then offers 1 s.
        const agent = await startGo(["agent", "-url", url, "-heartbeat", "5s"]);
        agents.push(agent);
        await session.scriptDone;
        expect(await agent.stop()).toBe(0);
        const report = await session.finish({ disconnectTimeoutMs: 3_000 });
        await writeMatrixEntry({
          ...OPAMP_GO,
          role: "client",
          transport,
          deviations: deviationNotes(deviations),
          report,
        });
        expect(report.results.every((r) => r.transport === transport)).toBe(true);
        expectConformance(report, deviations);
      } finally {
        await session.close().catch(() => undefined);
      }
    });
  }
});
