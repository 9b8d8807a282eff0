// The conformance kit's client checks against opamp-sdk's own OpAMPClient, over both
// transports. Ours must pass every applicable check: no deviations are recorded.

import { expect, it } from "vitest";
import { OpAMPClient } from "../../src/client/index.js";
import { startClientChecks } from "../../src/testing/conformance/index.js";
import { agentDescription, configMap } from "../../src/wire/index.js";
import { expectConformance, writeMatrixEntry } from "./peers.js";

for (const transport of ["ws", "http"] as const) {
  it(`opamp-sdk's OpAMPClient passes every client check over ${transport}`, { timeout: 120_000 }, async () => {
    const session = await startClientChecks({ connectTimeoutMs: 30_000, pollWaitMs: 15_000 });
    let client: OpAMPClient | undefined;
    try {
      let effective = configMap({ "local.yaml": "receivers: {}\n" });
      client = new OpAMPClient({
        transport: { url: transport === "ws" ? session.wsUrl : session.httpUrl, heartbeatIntervalMs: 5_000 },
        agent: {
          description: agentDescription({ identifying: { "service.name": "opamp-sdk-conformance" } }),
          health: { healthy: true, status: "running" },
        },
        hooks: {
          onRemoteConfig: async (offer) => {
            effective = offer.config;
            return { status: "applied" };
          },
          getEffectiveConfig: async () => effective,
        },
      });
      await client.start();
      await session.scriptDone;
      // The script ends by answering the client's last message; stop once that answer is
      // in, so that this run checks the ordinary shutdown. (Stopping while a request is
      // still in flight after a backoff sends no agent_disconnect: a known gap, reported.)
      const running = client;
      if (running.state.t !== "connected")
        await new Promise<void>((resolve) => {
          const onState = (state: { t: string }) => {
            if (state.t !== "connected") return;
            running.off("stateChange", onState);
            resolve();
          };
          running.on("stateChange", onState);
        });
      await client.stop();
      client = undefined;
      const report = await session.finish({ disconnectTimeoutMs: 3_000 });
      await writeMatrixEntry({
        implementation: "opamp-sdk",
        version: "workspace",
        ours: true,
        role: "client",
        transport,
        deviations: [],
        report,
      });
      expect(report.results.every((r) => r.transport === transport)).toBe(true);
      expectConformance(report, []);
    } finally {
      await client?.stop();
      await session.close();
    }
  });
}
