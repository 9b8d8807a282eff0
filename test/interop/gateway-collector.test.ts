/**
 * The real Collector supervisor (opampsupervisor v0.149.0, running a real Collector)
 * through the gateway into OpAMPServer, over both transports: it is authenticated with its
 * own header by delegation, reports its description, and applies a remote config.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, expect, it } from "vitest";
import { RemoteConfigStatuses } from "../../src/gen/opamp/v1/opamp_pb.js";
import { startGo } from "../conformance/peers.js";
import { cleanup, defer, startGateway, startServer } from "../integration/gateway/helpers.js";
import { waitFor } from "../integration/server/test-agent.js";
import {
  COLLECTOR_TEST_ARGS,
  collectorStack,
  describeWithCollector,
  STACK_BUILD_TIMEOUT_MS,
} from "./collector-stack.js";
import { buildHarness } from "./go-harness.js";
import { startProcess } from "./processes.js";

afterEach(cleanup);

const CONFIG = [
  "receivers:",
  "  nop:",
  "exporters:",
  "  nop:",
  "service:",
  "  pipelines:",
  "    traces:",
  "      receivers: [nop]",
  "      exporters: [nop]",
  "",
].join("\n");

function supervisorConfig(endpoint: string, collector: string, storage: string, token = "token-a"): string {
  return [
    "server:",
    `  endpoint: ${endpoint}`,
    "  headers:",
    `    Authorization: ["Bearer ${token}"]`,
    "capabilities:",
    "  accepts_remote_config: true",
    "  reports_remote_config: true",
    "  reports_effective_config: true",
    "  reports_health: true",
    "agent:",
    `  executable: ${collector}`,
    `  args: ${JSON.stringify(COLLECTOR_TEST_ARGS)}`,
    "  bootstrap_timeout: 30s",
    "storage:",
    `  directory: ${storage}`,
    "",
  ].join("\n");
}

describeWithCollector("the Collector supervisor through the gateway", () => {
  beforeAll(async () => {
    await collectorStack();
    await buildHarness();
  }, STACK_BUILD_TIMEOUT_MS);

  for (const scheme of ["ws", "http"] as const) {
    it(`${scheme}: authenticated by delegation, described, remote config applied`, { timeout: 150_000 }, async () => {
      const stack = await collectorStack();
      const { server, wsUrl } = await startServer({ heartbeat: { intervalSeconds: 1 } });
      const { url } = await startGateway(wsUrl, { upstream: { url: "", connections: 2 } });
      const dir = mkdtempSync(join(tmpdir(), "gateway-supervisor-"));
      const config = join(dir, "supervisor.yaml");
      writeFileSync(
        config,
        supervisorConfig(`${scheme}://${new URL(url).host}/v1/opamp`, stack.collector, join(dir, "state")),
      );
      const connected = waitFor(server, "agentConnected");
      runSupervisor(stack.supervisor, config, dir);
      const [agent] = await connected;
      expect(agent.principal).toBe("alice");
      const described = (a: typeof agent) =>
        a.agentDescription?.identifyingAttributes.some((kv) => kv.key === "service.name") === true;
      if (!described(agent)) await waitFor(server, "agentUpdated", (a) => a.id === agent.id && described(a));
      const applied = waitFor(
        server,
        "agentUpdated",
        (a) => a.id === agent.id && a.remoteConfigStatus?.status === RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
      );
      const { hash } = await server.setRemoteConfig(agent.id, { "collector.yaml": CONFIG });
      const [updated] = await applied;
      expect([...(updated.remoteConfigStatus?.lastRemoteConfigHash ?? [])]).toEqual([...hash]);
    });
  }

  it("ws: into opamp-go's server through a pass-through gateway: its own token, the offered config applied", {
    timeout: 150_000,
  }, async () => {
    const stack = await collectorStack();
    const server = await startGo(["server", "-auth-token", "supervisor-secret", "-config", CONFIG]);
    defer(() => void server.stop());
    const listening = await server.waitFor((e) => e.event === "listening", 20_000);
    const { url } = await startGateway(String(listening["wsUrl"]), {
      auth: { mode: "passthrough" },
      upstream: { url: "" },
    });
    const dir = mkdtempSync(join(tmpdir(), "gateway-supervisor-"));
    const config = join(dir, "supervisor.yaml");
    writeFileSync(
      config,
      supervisorConfig(`ws://${new URL(url).host}/v1/opamp`, stack.collector, join(dir, "state"), "supervisor-secret"),
    );
    runSupervisor(stack.supervisor, config, dir);
    const message = await server.waitFor((e) => e.event === "message" && e["description"] === true, 60_000);
    expect(message["auth"]).toBe("Bearer supervisor-secret");
    await server.waitFor((e) => e.event === "config_applied" && e["uid"] === message["uid"], 90_000);
  });
});

/**
 * Runs the supervisor until the test ends: its whole process group is killed then, the
 * Collector it started included (v0.149.0 leaves its Collector running when it is killed).
 */
function runSupervisor(supervisor: string, config: string, dir: string): void {
  const sup = startProcess("opampsupervisor", supervisor, ["--config", config], { cwd: dir });
  defer(async () => {
    sup.killGroup();
    await sup.exited;
  });
}
