// The conformance kit's client checks against @elastic/opamp-client-node (HTTP only).
// Elastic clamps Retry-After and retry_info to at least 30 s, so this run takes a minute.

import { createRequire } from "node:module";
import { createOpAMPClient, RemoteConfigStatuses } from "@elastic/opamp-client-node";
import { expect, it } from "vitest";
import { startClientChecks } from "../../src/testing/conformance/index.js";
import { AgentCapability } from "../../src/wire/index.js";
import { ELASTIC_CLIENT_HTTP } from "./deviations.js";
import { deviationNotes, expectConformance, writeMatrixEntry } from "./peers.js";

const version = (createRequire(import.meta.url)("@elastic/opamp-client-node/package.json") as { version: string })
  .version;

it("@elastic/opamp-client-node passes the client checks over http, apart from its recorded deviations", {
  timeout: 240_000,
}, async () => {
  const session = await startClientChecks({ connectTimeoutMs: 30_000, pollWaitMs: 15_000 });
  let client: ReturnType<typeof createOpAMPClient> | undefined;
  try {
    client = createOpAMPClient({
      endpoint: session.httpUrl,
      capabilities: AgentCapability.AcceptsRemoteConfig | AgentCapability.ReportsRemoteConfig,
      // Its own interval (the server's offer is ignored); 5 s keeps the run short.
      heartbeatIntervalSeconds: 5,
      onMessage: ({ remoteConfig }) => {
        if (remoteConfig === undefined) return;
        client?.setRemoteConfigStatus({
          status: RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
          lastRemoteConfigHash: remoteConfig.configHash,
        });
      },
    });
    client.setAgentDescription({ identifyingAttributes: { "service.name": "elastic-conformance" } });
    client.start();
    await session.scriptDone;
    await client.shutdown();
    client = undefined;
    const report = await session.finish({ disconnectTimeoutMs: 2_000 });
    await writeMatrixEntry({
      implementation: "@elastic/opamp-client-node",
      version,
      ours: false,
      role: "client",
      transport: "http",
      deviations: deviationNotes(ELASTIC_CLIENT_HTTP),
      report,
    });
    expect(report.results.every((r) => r.transport === "http")).toBe(true);
    expectConformance(report, ELASTIC_CLIENT_HTTP);
  } finally {
    await client?.shutdown();
    await session.close().catch(() => undefined);
  }
});
