// opamp-sdk's supervisor with the real OpenTelemetry Collector (v0.149.0 with the
// opampextension, built by scripts/collector-stack.mjs), against opamp-sdk's OpAMPServer
// and opamp-go's server, over WebSocket and HTTP. It re-does the Collector supervisor's
// e2e list where it applies (research A5): bootstrap (description, components), remote
// config APPLIED, a bad config FAILED with the Collector's error and rolled back, restart
// command, empty config map, instance UID and last config across restarts, and kill -9 of
// the supervisor leaving no Collector behind. One supervisor (one Collector) per
// transport is shared by the tests that allow it. Waits are on events.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RemoteConfigStatuses } from "../../src/gen/opamp/v1/opamp_pb.js";
import type { OpAMPServer } from "../../src/server/index.js";
import type { Supervisor } from "../../src/supervisor/index.js";
import { processExists, processStartTime } from "../../src/supervisor/process/agent-process.js";
import { type GoProcess, startGo } from "../conformance/peers.js";
import { collectorStack, describeWithCollector } from "../interop/collector-stack.js";
import { BUILD_TIMEOUT_MS } from "../interop/go-harness.js";
import {
  agentWhere,
  attribute,
  cleanup,
  defer,
  effectiveText,
  once,
  REPO,
  startSupervisor,
  tempDir,
  upstream,
} from "./helpers.js";

const TIMEOUT = 90_000;
const APPLIED = RemoteConfigStatuses.RemoteConfigStatuses_APPLIED;
const FAILED = RemoteConfigStatuses.RemoteConfigStatuses_FAILED;
const hex = (b: Uint8Array | undefined) => Buffer.from(b ?? new Uint8Array(0)).toString("hex");

/** A config the Collector runs: OTLP gRPC on a free port into the debug exporter. */
const GOOD = (name: string) => `receivers:
  otlp/${name}:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
exporters:
  debug: {}
service:
  pipelines:
    traces:
      receivers: [otlp/${name}]
      exporters: [debug]
`;
/** A config the Collector refuses at start (unknown exporter field). */
const BAD = GOOD("bad").replace("debug: {}", "debug:\n    no_such_setting: 1");

/** The seed's supervisor config, as written, with the test's endpoint and token (and a local file keeping :8888 free). */
async function seedConfig(endpoint: string, dir: string, collector: string, extra = ""): Promise<string> {
  const local = join(dir, "local.yaml");
  await writeFile(local, "service:\n  telemetry:\n    metrics:\n      level: none\n");
  return `server:
  endpoint: ${endpoint}
  headers:
    Authorization: "Bearer xse_fleet"
  heartbeat_interval: 1s
capabilities:
  reports_effective_config: true
  reports_health: true
  accepts_remote_config: true
  reports_remote_config: true
  reports_available_components: true
  accepts_restart_command: true
agent:
  executable: ${collector}
  description:
    non_identifying_attributes:
      host.name: "\${HOSTNAME}"
  config_files: [${local}]
  bootstrap_timeout: 20s
  config_apply_timeout: 20s
  orphan_detection_interval: 1s
${extra}
storage:
  directory: ${dir}/state
`;
}

describeWithCollector("the supervisor with the real Collector", () => {
  let collector = "";
  beforeAll(async () => {
    collector = (await collectorStack()).collector;
    process.env["HOSTNAME"] ??= "supervisor-e2e-host";
  }, BUILD_TIMEOUT_MS);
  afterAll(cleanup);

  for (const transport of ["ws", "http"] as const) {
    describe(`against OpAMPServer over ${transport === "ws" ? "WebSocket" : "HTTP"}`, () => {
      let server: OpAMPServer;
      let supervisor: Supervisor;
      let dir = "";
      let id = "";
      let endpoint = "";

      beforeAll(async () => {
        dir = await tempDir();
        const up = await upstream({
          heartbeat: { intervalSeconds: 1 },
          allowAnonymous: false,
          hooks: {
            authenticate: ({ headers }) =>
              headers["authorization"] === "Bearer xse_fleet" ? { accept: true } : { accept: false, status: 401 },
          },
        });
        server = up.server;
        endpoint = up[transport];
        supervisor = await startSupervisor(await seedConfig(endpoint, dir, collector));
        id = supervisor.instanceUid;
        await agentWhere(server, (a) => a.id === id && a.health?.healthy === true);
      }, TIMEOUT);

      it("bootstraps: the Collector's description with the config's overrides, and its components", () => {
        const agent = server.getAgent(id)!;
        expect(attribute(agent, "service.name")).toBe("otelcol-opamp");
        expect(attribute(agent, "service.version")).toBe("0.149.0");
        expect(attribute(agent, "service.instance.id")).toBe(id);
        expect(attribute(agent, "host.name")).toBe(process.env["HOSTNAME"]);
        const kinds = Object.keys(agent.availableComponents?.components ?? {}).sort();
        expect(kinds).toEqual(["connectors", "exporters", "extensions", "processors", "receivers"]);
        const extensions = agent.availableComponents!.components["extensions"]!.subComponentMap;
        expect(Object.keys(extensions)).toContain("opamp");
      });

      it("applies a pushed config: APPLYING then APPLIED with its hash, and the Collector's effective config", {
        timeout: TIMEOUT,
      }, async () => {
        const statuses: number[] = [];
        const listener = (s: { status: number }) => statuses.push(s.status);
        supervisor.on("remoteConfigStatus", listener);
        const { hash } = await server.setRemoteConfig(id, { "config.yaml": GOOD("first") });
        const agent = await agentWhere(
          server,
          (a) =>
            a.remoteConfigStatus?.status === APPLIED && hex(a.remoteConfigStatus.lastRemoteConfigHash) === hex(hash),
        );
        supervisor.off("remoteConfigStatus", listener);
        expect(statuses).toEqual([RemoteConfigStatuses.RemoteConfigStatuses_APPLYING, APPLIED]);
        await agentWhere(server, (a) => effectiveText(a).includes("otlp/first"));
        expect(agent.health?.healthy).toBe(true);
        expect(readFileSync(join(dir, "state/effective.yaml"), "utf8")).toContain("otlp/first");
      });

      it("reports a config the Collector refuses as FAILED with its error, and rolls back to the last working one", {
        timeout: TIMEOUT,
      }, async () => {
        const { hash } = await server.setRemoteConfig(id, { "config.yaml": BAD });
        const failed = await agentWhere(
          server,
          (a) =>
            a.remoteConfigStatus?.status === FAILED && hex(a.remoteConfigStatus.lastRemoteConfigHash) === hex(hash),
        );
        const message = failed.remoteConfigStatus!.errorMessage;
        expect(message).toMatch(/exited with exit code 1/);
        expect(message).toMatch(/no_such_setting/);
        expect(message).toMatch(/Rolled back to the last working config/);
        const back = await agentWhere(
          server,
          (a) => a.health?.healthy === true && effectiveText(a).includes("otlp/first"),
        );
        expect(effectiveText(back)).not.toContain("no_such_setting");
        expect(readFileSync(join(dir, "state/effective.yaml"), "utf8")).toContain("otlp/first");
      });

      it("restarts the Collector on a restart command", { timeout: TIMEOUT }, async () => {
        const before = supervisor.agentPid;
        const started = once(supervisor, "agentStarted");
        server.sendRestart(id);
        const [pid] = (await started) as [number];
        expect(pid).not.toBe(before);
        await agentWhere(server, (a) => a.health?.healthy === true);
      });

      it("stops the Collector for an empty config map, APPLIED and healthy", { timeout: TIMEOUT }, async () => {
        const exited = once(supervisor, "agentExited");
        const { hash } = await server.setRemoteConfig(id, {});
        await exited;
        await agentWhere(
          server,
          (a) =>
            a.remoteConfigStatus?.status === APPLIED && hex(a.remoteConfigStatus.lastRemoteConfigHash) === hex(hash),
        );
        expect(supervisor.agentPid).toBeUndefined();
        // Back to a running config for the restart test below.
        await server.setRemoteConfig(id, { "config.yaml": GOOD("again") });
        await agentWhere(
          server,
          (a) => a.remoteConfigStatus?.status === APPLIED && effectiveText(a).includes("otlp/again"),
        );
      });

      it("keeps its instance UID and comes back on the last working config after a restart", {
        timeout: TIMEOUT,
      }, async () => {
        await supervisor.stop();
        const again = await startSupervisor(await seedConfig(endpoint, dir, collector));
        expect(again.instanceUid).toBe(id);
        const agent = await agentWhere(
          server,
          (a) => a.id === id && a.health?.healthy === true && effectiveText(a).includes("otlp/again"),
        );
        expect(agent.remoteConfigStatus?.status).toBe(APPLIED);
        supervisor = again;
      });
    });
  }

  for (const transport of ["ws", "http"] as const) {
    describe(`against opamp-go's server over ${transport === "ws" ? "WebSocket" : "HTTP"}`, () => {
      let go: GoProcess;
      let url = "";
      let adminUrl = "";
      beforeAll(async () => {
        go = await startGo(["server", "-admin", "127.0.0.1:0"]);
        const listening = await go.waitFor((e) => e.event === "listening", 30_000);
        url = String(listening[transport === "ws" ? "wsUrl" : "httpUrl"]);
        adminUrl = String(listening["adminUrl"]);
      }, BUILD_TIMEOUT_MS);
      afterAll(async () => {
        await go?.stop();
      });

      it("applies a config (APPLIED) and fails a bad one (FAILED), then runs the good one again", {
        timeout: TIMEOUT,
      }, async () => {
        const dir = await tempDir();
        const supervisor = await startSupervisor(await seedConfig(url, dir, collector));
        const uid = supervisor.instanceUid;
        await go.waitFor((e) => e.event === "message" && e["uid"] === uid, 30_000);
        const admin = async (body: string): Promise<string> => {
          const r = await fetch(`${adminUrl}/command`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ cmd: "config", uid, body }),
          });
          return String(((await r.json()) as { hash: string }).hash);
        };
        const good = await admin(GOOD("go"));
        await go.waitFor((e) => e.event === "config_applied" && e["hash"] === good, 60_000);
        await go.waitFor(
          (e) => e.event === "effective_config" && JSON.stringify(e["files"]).includes("otlp/go"),
          30_000,
        );
        const failed = new Promise<string>((resolve) => {
          supervisor.on("remoteConfigStatus", (s) => {
            if (s.status === FAILED) resolve(s.errorMessage);
          });
        });
        const bad = await admin(BAD);
        await go.waitFor(
          (e) => e.event === "config_status" && e["hash"] === bad && e["status"] === "RemoteConfigStatuses_FAILED",
          60_000,
        );
        expect(await failed).toMatch(/no_such_setting/);
        expect(readFileSync(join(dir, "state/effective.yaml"), "utf8")).toContain("otlp/go");
      });
    });
  }

  describe("settings of the Collector's supervisor", () => {
    it("reloads with SIGHUP (use_hup_config_reload): APPLIED with the same Collector process", {
      timeout: TIMEOUT,
    }, async () => {
      const dir = await tempDir();
      const { server, ws } = await upstream({ heartbeat: { intervalSeconds: 1 } });
      const supervisor = await startSupervisor(await seedConfig(ws, dir, collector, "  use_hup_config_reload: true"));
      const id = supervisor.instanceUid;
      await server.setRemoteConfig(id, { "config.yaml": GOOD("hup1") });
      await agentWhere(
        server,
        (a) => a.remoteConfigStatus?.status === APPLIED && effectiveText(a).includes("otlp/hup1"),
      );
      const pid = supervisor.agentPid;
      const { hash } = await server.setRemoteConfig(id, { "config.yaml": GOOD("hup2") });
      await agentWhere(
        server,
        (a) =>
          a.remoteConfigStatus?.status === APPLIED &&
          hex(a.remoteConfigStatus.lastRemoteConfigHash) === hex(hash) &&
          effectiveText(a).includes("otlp/hup2"),
      );
      expect(supervisor.agentPid).toBe(pid);
    });

    it("validates a config first (validate_config): FAILED with the validator's message, and no restart", {
      timeout: TIMEOUT,
    }, async () => {
      const dir = await tempDir();
      const { server, ws } = await upstream({ heartbeat: { intervalSeconds: 1 } });
      const supervisor = await startSupervisor(await seedConfig(ws, dir, collector, "  validate_config: true"));
      const id = supervisor.instanceUid;
      await server.setRemoteConfig(id, { "config.yaml": GOOD("valid") });
      await agentWhere(
        server,
        (a) => a.remoteConfigStatus?.status === APPLIED && effectiveText(a).includes("otlp/valid"),
      );
      const pid = supervisor.agentPid;
      const starts: number[] = [];
      supervisor.on("agentStarted", (p) => starts.push(p));
      const { hash } = await server.setRemoteConfig(id, { "config.yaml": BAD });
      const failed = await agentWhere(
        server,
        (a) => a.remoteConfigStatus?.status === FAILED && hex(a.remoteConfigStatus.lastRemoteConfigHash) === hex(hash),
      );
      expect(failed.remoteConfigStatus?.errorMessage).toMatch(/failed validation[\s\S]*no_such_setting/);
      expect(starts).toEqual([]);
      expect(supervisor.agentPid).toBe(pid);
      expect(readFileSync(join(dir, "state/effective.yaml"), "utf8")).toContain("otlp/valid");
    });

    it("runs a local config alone, and the persisted last config while the server is unreachable", {
      timeout: TIMEOUT,
    }, async () => {
      const dir = await tempDir();
      const pipeline = join(dir, "pipeline.yaml");
      await writeFile(pipeline, GOOD("local"));
      const up = await upstream({ heartbeat: { intervalSeconds: 1 } });
      const yaml = (endpoint: string) =>
        seedConfig(endpoint, dir, collector).then((text) =>
          text.replace(/config_files: \[(.*)\]/, `config_files: [$1, ${pipeline}]`),
        );
      const first = await startSupervisor(await yaml(up.ws));
      const id = first.instanceUid;
      await agentWhere(
        up.server,
        (a) => a.id === id && a.health?.healthy === true && effectiveText(a).includes("otlp/local"),
      );
      await up.server.setRemoteConfig(id, { "config.yaml": GOOD("remote") });
      await agentWhere(
        up.server,
        (a) => a.remoteConfigStatus?.status === APPLIED && effectiveText(a).includes("otlp/remote"),
      );
      await first.stop();
      await up.server.stop();
      // Nobody listens there any more: the supervisor starts anyway, on what it had.
      const second = await startSupervisor(await yaml(up.ws));
      expect(second.agentPid).toBeDefined();
      const effective = readFileSync(join(dir, "state/effective.yaml"), "utf8");
      expect(effective).toContain("otlp/remote");
      expect(effective).toContain("otlp/local");
    });
  });

  it("leaves no Collector behind when the supervisor is killed with SIGKILL", { timeout: TIMEOUT }, async () => {
    const dir = await tempDir();
    const { server, ws } = await upstream({ heartbeat: { intervalSeconds: 1 } });
    const file = join(dir, "supervisor.yaml");
    await writeFile(file, await seedConfig(ws, dir, collector));
    const child = spawn(process.execPath, [join(REPO, "dist/cli/supervisor.js"), "--config", file], {
      stdio: "ignore",
    });
    defer(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    });
    const agent = await agentWhere(server, (a) => a.health?.healthy === true, 60_000);
    await server.setRemoteConfig(agent.id, { "config.yaml": GOOD("kill") });
    await agentWhere(server, (a) => a.remoteConfigStatus?.status === APPLIED, 60_000);
    const pid = Number(readFileSync(join(dir, "state/agent.pid"), "utf8").split(" ")[0]);
    const start = processStartTime(pid);
    expect(start).toBeDefined();
    child.kill("SIGKILL");
    await once(child, "exit");
    // The Collector's extension polls the supervisor's pid every second and exits.
    await new Promise<void>((resolve, reject) => {
      const deadline = Date.now() + 30_000;
      const check = () => {
        if (!processExists(pid) || processStartTime(pid) !== start) resolve();
        else if (Date.now() > deadline) reject(new Error(`Collector ${pid} still runs 30 s after its supervisor died`));
        else setTimeout(check, 100);
      };
      check();
    });
  });
});
