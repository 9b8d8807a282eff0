// The Collector's own opampsupervisor v0.149.0 (the seed's "Agent Mode": an OTel Collector
// run by the supervisor) against OpAMPServer, over WebSocket and plain HTTP, with the
// seed's supervisor config as written plus accepts_opamp_connection_settings, and the
// enrollment recipe of docs/server.md (examples/enrollment.ts). Every scenario starts its
// own server, supervisor and Collector, so the scenarios run concurrently; every process
// is killed when its test ends, passed or failed. Each step waits on what the server saw.

import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, it } from "vitest";
import { AgentCapability, OpampError } from "../../src/index.js";
import {
  type CollectorStack,
  collectorStack,
  describeWithCollector,
  STACK_BUILD_TIMEOUT_MS,
} from "./collector-stack.js";
import {
  FIELD_HOSTNAME,
  type FieldServer,
  type FieldTransport,
  finisher,
  pipelineConfig,
  STEP_TIMEOUT_MS,
  startEnrollmentServer,
  startFieldServer,
  startSupervisor,
  TEST_HEARTBEAT_SECONDS,
} from "./field.js";
import { processGroupMembers, waitForFile, waitForGroupGone } from "./processes.js";
import { hex } from "./server-probe.js";
import {
  connected,
  credentialRuns,
  healthy,
  keyInUse,
  remoteConfigStatus,
  requestWith,
  sessionStarts,
} from "./supervisor-steps.js";

/** What the seed's capabilities plus accepts_opamp_connection_settings send (no ReportsConnectionSettingsStatus). */
const SEED_CAPABILITIES =
  AgentCapability.ReportsStatus |
  AgentCapability.AcceptsRemoteConfig |
  AgentCapability.ReportsEffectiveConfig |
  AgentCapability.ReportsOwnMetrics | // on by default in the supervisor
  AgentCapability.AcceptsOpAMPConnectionSettings |
  AgentCapability.ReportsHealth |
  AgentCapability.ReportsRemoteConfig |
  AgentCapability.ReportsHeartbeat; // on by default in the supervisor

const ACCEPTS_SETTINGS = { accepts_opamp_connection_settings: true } as const;
const TRANSPORTS: readonly FieldTransport[] = ["ws", "http"];
const SCENARIO_TIMEOUT_MS = 150_000;

describeWithCollector("field interop: the Collector's opampsupervisor v0.149.0 against OpAMPServer", () => {
  let stack: CollectorStack;

  beforeAll(async () => {
    stack = await collectorStack();
  }, STACK_BUILD_TIMEOUT_MS);

  describe.concurrent("the seed's supervisor config, enrolling through the recipe of docs/server.md", () => {
    for (const transport of TRANSPORTS) {
      it(`${transport}: enrolls xse_ → xag_ with one reconnection, applies, replaces, fails and recovers configs, rotates its key`, {
        timeout: SCENARIO_TIMEOUT_MS,
      }, async (context) => {
        const { expect } = context;
        const { onFinished, logsOf } = finisher(context);
        const field = await startEnrollmentServer(transport, onFinished);
        const { server, probe } = field;
        const sup = await startSupervisor(stack, onFinished, {
          endpoint: field.endpoint,
          enrollmentToken: field.token,
          capabilities: ACCEPTS_SETTINGS,
        });
        logsOf(sup.process, sup.files.storageDir);

        // The first connection: the seed's description, capabilities and token.
        const first = await connected(probe);
        expect(first.capabilities).toBe(SEED_CAPABILITIES);
        expect(first.capabilities & AgentCapability.ReportsConnectionSettingsStatus).toBe(0n);
        expect(first.identifying).toMatchObject({
          "service.name": "otelcol-opamp",
          "service.version": stack.version,
          "service.instance.id": first.id,
        });
        // ${HOSTNAME} in the seed's description is expanded from the supervisor's environment.
        expect(first.nonIdentifying).toMatchObject({ "host.name": FIELD_HOSTNAME, "os.type": "linux" });
        expect(probe.accepted("Bearer xse_")[0]?.credential).toBe(`Bearer ${field.token}`);

        // Enrollment: the key comes in an offer, the supervisor reconnects with it.
        const key1 = await keyInUse(probe, "Bearer xag_");
        const enrolled = probe.mark;

        // A config: APPLYING, then APPLIED with its hash, and the Collector runs it.
        let mark = probe.mark;
        const one = await server.setRemoteConfig(first.id, { "collector.yaml": pipelineConfig() });
        await remoteConfigStatus(probe, "APPLYING", one.hash, mark);
        await remoteConfigStatus(probe, "APPLIED", one.hash, mark);
        await healthy(probe, mark);
        const running = await probe.waitForAgent(
          "the effective config with the pushed pipeline",
          (a) => /debug:/.test(a.effective?.[""] ?? "") && /otlp:/.test(a.effective?.[""] ?? ""),
          STEP_TIMEOUT_MS,
          mark,
        );
        expect(running.effective?.[""]).not.toMatch(/timeout: 2s/);

        // A new key (rotation): a new offer, one more reconnection. The supervisor starts its
        // new OpAMP client as unhealthy and does not relay the Collector's health again until
        // it changes: a server sees healthy=false, no status, no error, for a running Collector.
        mark = probe.mark;
        await field.enrollment.rotate(server, first.id);
        const key2 = await keyInUse(probe, "Bearer xag_", mark, key1);
        const rekeyed = await probe.waitForAgent(
          "the health reported on the new connection",
          (a) => a.health?.healthy === false,
          STEP_TIMEOUT_MS,
          mark,
        );
        expect(rekeyed.health).toEqual({ healthy: false, status: "", lastError: "" });
        expect(server.getAgent(first.id)?.health?.healthy).toBe(false);
        expect((await field.enrollment.authenticate(requestWith(key1, "websocket"))).accept).toBe(false);

        // A second config replaces the first (and brings the Collector's health back).
        mark = probe.mark;
        const two = await server.setRemoteConfig(first.id, {
          "collector.yaml": pipelineConfig({ batchTimeout: "2s" }),
        });
        expect(hex(two.hash)).not.toBe(hex(one.hash));
        await remoteConfigStatus(probe, "APPLYING", two.hash, mark);
        await remoteConfigStatus(probe, "APPLIED", two.hash, mark);
        await healthy(probe, mark);
        await probe.waitForAgent(
          "the effective config of the second config",
          (a) => /timeout: 2s/.test(a.effective?.[""] ?? ""),
          STEP_TIMEOUT_MS,
          mark,
        );

        // A config the Collector rejects (an exporter type it does not have): it exits, FAILED.
        mark = probe.mark;
        const bad = await server.setRemoteConfig(first.id, {
          "collector.yaml": pipelineConfig({ exporter: "nonexistent" }),
        });
        await remoteConfigStatus(probe, "APPLYING", bad.hash, mark);
        const failed = await remoteConfigStatus(probe, "FAILED", bad.hash, mark);
        // v0.149.0 reports the exit, not the Collector's reason (see the validate_config scenario).
        expect(failed.remoteConfig?.error).toBe(
          "Agent exited unexpectedly with exit code 1 while applying configuration",
        );
        const down = await probe.waitForAgent(
          "health reporting the Collector's exit",
          (a) => a.health?.healthy === false && /exited unexpectedly, exit code=1/.test(a.health.lastError),
          STEP_TIMEOUT_MS,
          mark,
        );
        expect(down.health?.lastError).toMatch(/Will restart in a bit/);

        // The server recovers it by pushing a good config again.
        mark = probe.mark;
        await server.setRemoteConfig(first.id, { "collector.yaml": pipelineConfig() });
        await remoteConfigStatus(probe, "APPLIED", one.hash, mark);
        await healthy(probe, mark);

        // All along: one enrollment and one rotation, one reconnection each.
        expect(credentialRuns(probe), "accepted credentials, in runs").toEqual([`Bearer ${field.token}`, key1, key2]);
        expect(probe.of("auth").filter((r) => !r.accepted)).toEqual([]);
        if (transport === "ws") {
          // One upgrade with the token, one with each key.
          expect(probe.accepted("Bearer xse_")).toHaveLength(1);
          expect(probe.accepted("Bearer xag_")).toHaveLength(2);
          // opamp-go's WebSocket client says goodbye before it reconnects with new settings.
          expect(probe.of("disconnected").map((r) => r.reason)).toEqual(["agent_disconnect", "agent_disconnect"]);
        } else {
          // (Before the key, a slow first start may let the server's 4 s HTTP silence window pass.)
          expect(probe.records.slice(enrolled).filter((r) => r.kind === "disconnected")).toEqual([]);
        }
        // The supervisor started its OpAMP client three times: the token, then each key.
        expect(sessionStarts(probe)).toBe(3);
        const settings = (await server.deliveries(first.id)).filter((d) => d.kind === "connectionSettings");
        expect(settings).toHaveLength(2);
        expect(probe.of("error")).toEqual([]);
        expect(field.enrollmentErrors).toEqual([]);
      });

      it(`${transport}: a restart keeps the instance UID and enrolls again for a new key; SIGINT says goodbye, SIGTERM closes and leaves the Collector running`, {
        timeout: SCENARIO_TIMEOUT_MS,
      }, async (context) => {
        const { expect } = context;
        const { onFinished, logsOf } = finisher(context);
        const field = await startEnrollmentServer(transport, onFinished);
        const { server, probe, enrollment } = field;
        const sup = await startSupervisor(stack, onFinished, {
          endpoint: field.endpoint,
          enrollmentToken: field.token,
          capabilities: ACCEPTS_SETTINGS,
        });
        logsOf(sup.process, sup.files.storageDir);
        const agent = await connected(probe);
        const key1 = await keyInUse(probe, "Bearer xag_");
        const config = await server.setRemoteConfig(agent.id, { "collector.yaml": pipelineConfig() });
        await remoteConfigStatus(probe, "APPLIED", config.hash, 0);

        // What the supervisor keeps: its instance UID and the config; not the offered headers.
        const state = await readFile(join(sup.files.storageDir, "persistent_state.yaml"), "utf8");
        expect(state).toContain(`instance_id: ${agent.id}`);
        for (const name of await readdir(sup.files.storageDir)) {
          const content = await readFile(join(sup.files.storageDir, name)).catch(() => Buffer.alloc(0));
          expect(content.includes("xag_"), `${name} holds the agent key`).toBe(false);
        }

        // SIGINT: the supervisor shuts down in order (v0.149.0 handles SIGINT only).
        let mark = probe.mark;
        const interrupted = await sup.process.stop("SIGINT");
        expect(interrupted).toEqual({ code: 0, signal: null });
        await waitForGroupGone(sup.process.pid, STEP_TIMEOUT_MS);
        if (transport === "ws") {
          // Over plain HTTP this last report is usually lost: the client is stopped right after.
          await probe.waitForAgent(
            'health "Supervisor is shutdown"',
            (a) => a.health?.healthy === false && a.health.lastError === "Supervisor is shutdown",
            STEP_TIMEOUT_MS,
            mark,
          );
        }
        const gone = await probe.waitFor(
          "the agent to leave",
          (r) => (r.kind === "disconnected" ? r.reason : undefined),
          STEP_TIMEOUT_MS,
          mark,
        );
        // WebSocket: agent_disconnect. Plain HTTP: opamp-go's HTTP client sends none
        // (opamp-go #179), so the server notices the silence.
        expect(gone).toBe(transport === "ws" ? "agent_disconnect" : "heartbeat_timeout");

        // Restarted: same UID, the config it had, and the fleet token again.
        mark = probe.mark;
        const second = sup.restart();
        logsOf(second, sup.files.storageDir);
        const again = await connected(probe, mark);
        expect(again.id).toBe(agent.id);
        const firstAuth = probe.of("auth").filter((r) => probe.records.indexOf(r) >= mark)[0];
        expect(firstAuth?.credential).toBe(`Bearer ${field.token}`);
        expect(again.remoteConfig).toMatchObject({ status: "APPLIED", hash: hex(config.hash) });
        // docs/server.md: a known UID that enrolls again gets a new key, and uses it.
        const key2 = await keyInUse(probe, "Bearer xag_", mark);
        expect(key2).not.toBe(key1);
        expect((await enrollment.authenticate(requestWith(key1, "http"))).accept).toBe(false);
        expect((await enrollment.authenticate(requestWith(key2, "http"))).accept).toBe(true);
        const offered = (await server.deliveries(agent.id)).filter((d) => d.kind === "connectionSettings");
        expect(new Set(offered.map((d) => hex(d.hash))).size).toBe(2);
        // One session with the token and one with the new key; no loop.
        expect(sessionStarts(probe, mark)).toBe(2);

        // SIGTERM: v0.149.0 does not catch it (only SIGINT), so the process dies at once: no
        // goodbye, no last health, and the server sees the connection close.
        mark = probe.mark;
        const agentLog = join(sup.files.storageDir, "agent.log");
        const logBefore = (await readFile(agentLog, "utf8")).length;
        const killedAt = Date.now();
        second.signal("SIGTERM");
        expect(await second.exited).toEqual({ code: null, signal: "SIGTERM" });
        const closed = await probe.waitFor(
          "the agent to leave",
          (r) => (r.kind === "disconnected" ? r.reason : undefined),
          STEP_TIMEOUT_MS,
          mark,
        );
        expect(closed).toBe(transport === "ws" ? "connection_closed" : "heartbeat_timeout");
        const after = probe.records.slice(mark);
        expect(after.some((r) => r.kind === "message" && r.disconnect)).toBe(false);
        expect(after.some((r) => r.kind === "updated" && r.agent.health?.lastError === "Supervisor is shutdown")).toBe(
          false,
        );
        // And its Collector outlives it: the extension's orphan detection (ppid polling every
        // 5 s) reports a fatal status that nothing acts on (contrib issue #48758). The
        // Collector is still trying to reach the dead supervisor more than two poll periods
        // later (its log lines carry their time).
        await waitForFile(
          agentLog,
          (text) =>
            text
              .slice(logBefore)
              .split("\n")
              .some(
                (line) =>
                  /Connection failed \(.*connection refused\), will retry/.test(line) &&
                  Date.parse(/"ts":"([^"]+)"/.exec(line)?.[1] ?? "") - killedAt >= 12_000,
              ),
          60_000,
        );
        expect(processGroupMembers(second.pid)).toHaveLength(1);
        expect(probe.of("error")).toEqual([]);
        expect(field.enrollmentErrors).toEqual([]);
      });

      it(`${transport}: reports available components, rejects configs by validation with the Collector's own message, and relays no custom capabilities`, {
        timeout: SCENARIO_TIMEOUT_MS,
      }, async (context) => {
        const { expect } = context;
        const { onFinished, logsOf } = finisher(context);
        const field = await startEnrollmentServer(transport, onFinished);
        const { server, probe } = field;
        const sup = await startSupervisor(stack, onFinished, {
          endpoint: field.endpoint,
          enrollmentToken: field.token,
          capabilities: { ...ACCEPTS_SETTINGS, reports_available_components: true },
          agent: { validate_config: true },
        });
        logsOf(sup.process, sup.files.storageDir);
        const agent = await connected(probe);
        expect(agent.capabilities).toBe(SEED_CAPABILITIES | AgentCapability.ReportsAvailableComponents);
        // Gathered in bootstrap from the Collector. opamp-go sends the hash first; the full map
        // follows when the server asks for it (ReportAvailableComponents).
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
        await keyInUse(probe, "Bearer xag_");

        // Nothing in this Collector registers a custom capability, so none reaches the server
        // and the server refuses to send a custom message the agent did not ask for.
        expect(server.getAgent(agent.id)?.customCapabilities?.capabilities ?? []).toEqual([]);
        const refusal = (() => {
          try {
            server.sendCustomMessage(agent.id, { capability: "io.example.ping", type: "ping" });
            return undefined;
          } catch (e) {
            return e;
          }
        })();
        expect(refusal).toBeInstanceOf(OpampError);
        expect((refusal as OpampError).code).toBe("capability_missing");

        let mark = probe.mark;
        const good = await server.setRemoteConfig(agent.id, { "collector.yaml": pipelineConfig() });
        await remoteConfigStatus(probe, "APPLIED", good.hash, mark);
        await healthy(probe, mark);

        // validate_config: the supervisor runs `<collector> validate` first and reports FAILED
        // at once with the Collector's own error; the running Collector keeps its config.
        mark = probe.mark;
        const bad = await server.setRemoteConfig(agent.id, {
          "collector.yaml": pipelineConfig({ exporter: "nonexistent" }),
        });
        const failed = await remoteConfigStatus(probe, "FAILED", bad.hash, mark);
        expect(failed.remoteConfig?.error).toMatch(/configuration validation failed/);
        expect(failed.remoteConfig?.error).toMatch(/nonexistent/);
        expect(failed.remoteConfig?.error).toMatch(/unknown type/);
        const statuses = probe.records
          .slice(mark)
          .flatMap((r) =>
            r.kind === "updated" && r.changes.includes("remoteConfigStatus") ? [r.agent.remoteConfig?.status] : [],
          );
        expect(statuses).not.toContain("APPLYING");
        expect(server.getAgent(agent.id)?.health?.healthy).toBe(true);
        expect(probe.of("error")).toEqual([]);
      });

      it(`${transport}: the issue's server, offering the same key from agentConnected on every connection, costs one reconnection`, {
        timeout: SCENARIO_TIMEOUT_MS,
      }, async (context) => {
        const { expect } = context;
        const { onFinished, logsOf } = finisher(context);
        const token = `xse_${Math.random().toString(36).slice(2)}`;
        const agentKey = `xag_${Math.random().toString(36).slice(2)}`;
        const field: FieldServer<string> = await startFieldServer(
          transport,
          ({ headers }) =>
            headers["authorization"] === `Bearer ${token}` || headers["authorization"] === `Bearer ${agentKey}`
              ? { accept: true, principal: headers["authorization"] }
              : { accept: false, status: 401 },
          // It does not bind instance UIDs to credentials (the recipe does, and lets the key
          // take over from the token): what is looked at here is the offers alone.
          { hooks: { principalKey: () => undefined } },
          onFinished,
        );
        const { server, probe } = field;
        const offers: Promise<unknown>[] = [];
        // The naive application of issue 11: the same settings on every connection, headers
        // as a plain record, no destinationEndpoint.
        server.on("agentConnected", (a) => {
          offers.push(
            server.offerConnectionSettings(a.id, {
              opamp: {
                headers: { Authorization: `Bearer ${agentKey}` },
                heartbeatIntervalSeconds: BigInt(TEST_HEARTBEAT_SECONDS),
              },
            }),
          );
        });
        const sup = await startSupervisor(stack, onFinished, {
          endpoint: field.endpoint,
          enrollmentToken: token,
          capabilities: ACCEPTS_SETTINGS,
          // As under systemd, or from a shell that does not export it.
          hostname: null,
        });
        logsOf(sup.process, sup.files.storageDir);
        const agent = await connected(probe);
        // The seed's `host.name: "${HOSTNAME}"` then expands to "" and replaces the host name
        // the Collector reports itself.
        expect(agent.nonIdentifying["host.name"]).toBe("");
        await keyInUse(probe, `Bearer ${agentKey}`);
        // A push in between lands (in the loop it failed with unknown_agent).
        const mark = probe.mark;
        const config = await server.setRemoteConfig(agent.id, { "collector.yaml": pipelineConfig() });
        await remoteConfigStatus(probe, "APPLIED", config.hash, mark);
        await Promise.all(offers);

        expect(credentialRuns(probe)).toEqual([`Bearer ${token}`, `Bearer ${agentKey}`]);
        expect(sessionStarts(probe)).toBe(2);
        if (transport === "ws") {
          expect(probe.accepted("Bearer xag_")).toHaveLength(1);
          expect(probe.of("connected")).toHaveLength(2);
        }
        // The endpoint filled in by the server is the one the supervisor used.
        expect(sup.process.output()).not.toMatch(/server::endpoint must be specified/);
        expect(probe.of("error")).toEqual([]);
      });
    }
  });
});
