// A Collector with the opampextension alone (no supervisor), v0.149.0, connecting straight
// to OpAMPServer over WebSocket and plain HTTP: what it reports, how it leaves, and the
// instance UID it uses from one start to the next.

import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { beforeAll, describe, it } from "vitest";
import { AgentCapability } from "../../src/index.js";
import {
  type CollectorStack,
  collectorStack,
  describeWithCollector,
  STACK_BUILD_TIMEOUT_MS,
} from "./collector-stack.js";
import { extensionConfig, finisher, STEP_TIMEOUT_MS, startCollector, startFieldServer } from "./field.js";
import type { AgentSnapshot, ServerProbe } from "./server-probe.js";

/** The extension's default capabilities: no heartbeats, no remote config. */
const EXTENSION_CAPABILITIES =
  AgentCapability.ReportsStatus |
  AgentCapability.ReportsEffectiveConfig |
  AgentCapability.ReportsHealth |
  AgentCapability.ReportsAvailableComponents;

function connected(probe: ServerProbe, from: number): Promise<AgentSnapshot> {
  return probe.waitFor(
    "the Collector to connect",
    (r) => (r.kind === "connected" ? r.agent : undefined),
    STEP_TIMEOUT_MS,
    from,
  );
}

describeWithCollector("field interop: a Collector v0.149.0 with the opampextension alone, against OpAMPServer", () => {
  let stack: CollectorStack;

  beforeAll(async () => {
    stack = await collectorStack();
  }, STACK_BUILD_TIMEOUT_MS);

  describe.concurrent("straight to the server", () => {
    for (const transport of ["ws", "http"] as const) {
      it(`${transport}: reports its description, health, effective config and components; leaves on SIGTERM; a new UID each start`, {
        timeout: 120_000,
      }, async (context) => {
        const { expect } = context;
        const { onFinished, logsOf } = finisher(context);
        const token = randomBytes(12).toString("hex");
        const { probe, endpoint } = await startFieldServer(
          transport,
          ({ headers }) =>
            headers["authorization"] === `Bearer ${token}` ? { accept: true } : { accept: false, status: 401 },
          {},
          onFinished,
        );
        const collector = await startCollector(stack, onFinished, extensionConfig(transport, endpoint, token));
        logsOf(collector);

        const agent = await connected(probe, 0);
        expect(probe.accepted(`Bearer ${token}`).length).toBeGreaterThan(0);
        expect(agent.capabilities).toBe(EXTENSION_CAPABILITIES);
        expect(agent.identifying).toEqual({
          "service.name": "otelcol-opamp",
          "service.version": stack.version,
          "service.instance.id": agent.id,
        });
        expect(agent.nonIdentifying).toMatchObject({ "os.type": "linux", "host.name": hostname() });
        expect(agent.nonIdentifying["host.arch"]).toEqual(expect.any(String));
        // With no instance_uid configured, the UID is the Collector's service.instance.id: a
        // random UUID (version 4) made at each start.
        expect(agent.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-/);

        const ready = await probe.waitForAgent(
          "health StatusOK with the effective config",
          (a) => a.health?.healthy === true && a.health.status === "StatusOK" && a.effective?.[""] !== undefined,
          STEP_TIMEOUT_MS,
        );
        expect(ready.effective?.[""]).toMatch(/otlp:/);
        expect(ready.effective?.[""]).toMatch(/opamp:/);
        const withComponents = await probe.waitForAgent(
          "the available components",
          (a) => Object.keys(a.components ?? {}).length > 0,
          STEP_TIMEOUT_MS,
        );
        expect(withComponents.components).toMatchObject({
          receivers: expect.arrayContaining(["otlp"]),
          processors: expect.arrayContaining(["batch"]),
          exporters: expect.arrayContaining(["debug"]),
          extensions: expect.arrayContaining(["opamp"]),
        });

        // SIGTERM: the Collector shuts down in order and stops its OpAMP client. Over
        // WebSocket that sends agent_disconnect; opamp-go's HTTP client sends none (#179).
        let mark = probe.mark;
        expect(await collector.stop("SIGTERM")).toEqual({ code: 0, signal: null });
        const left = await probe.waitFor(
          "the Collector to leave",
          (r) => (r.kind === "disconnected" ? r.reason : undefined),
          STEP_TIMEOUT_MS,
          mark,
        );
        expect(left).toBe(transport === "ws" ? "agent_disconnect" : "heartbeat_timeout");

        // Started again on the same config: another agent as far as a server can tell.
        mark = probe.mark;
        const again = await startCollector(stack, onFinished, extensionConfig(transport, endpoint, token));
        logsOf(again);
        const second = await connected(probe, mark);
        expect(second.id).not.toBe(agent.id);
        expect(probe.of("error")).toEqual([]);
      });
    }
  });
});
