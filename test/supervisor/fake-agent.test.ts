// The supervisor with a fake agent (test/supervisor/fixtures/fake-agent.mjs, a small node
// script that speaks OpAMP to the local server as the Collector's extension does), where
// the real Collector is not needed: crash loops and their backoff, packages (good, bad
// hash, bad signature, unhealthy), enrollment across restarts, kill -9 of the supervisor.
// Over both transports where the upstream connection matters. Waits are on events.
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, generateKeyPairSync, sign } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { PackageStatusEnum, RemoteConfigStatuses } from "../../src/gen/opamp/v1/opamp_pb.js";
import { processExists } from "../../src/supervisor/process/agent-process.js";
import { instanceUidToString } from "../../src/wire/uid.js";
import {
  agentWhere,
  attribute,
  cleanup,
  defer,
  effectiveText,
  FAKE_AGENT,
  once,
  REPO,
  startSupervisor,
  tempDir,
  upstream,
} from "./helpers.js";

const TIMEOUT = 60_000;

afterEach(cleanup);

beforeAll(() => {
  if (!existsSync(join(REPO, "dist/client/index.js")))
    throw new Error("run `npm run build` first: the fake agent imports dist/");
});

function config(endpoint: string, dir: string, extra = ""): string {
  return `
server:
  endpoint: ${endpoint}
capabilities:
  accepts_remote_config: true
  reports_remote_config: true
agent:
  executable: ${FAKE_AGENT}
  env: { FAKE_AGENT_REPO: "${REPO}" }
  bootstrap_timeout: 10s
  config_apply_timeout: 10s
  stop_timeout: 2s
${extra}
storage:
  directory: ${dir}/state
`;
}

describe("crash loop", () => {
  it("restarts with exponential backoff and jitter, and reports the crash upstream", { timeout: TIMEOUT }, async () => {
    const dir = await tempDir();
    const { server, ws } = await upstream();
    const local = join(dir, "crash.yaml");
    await writeFile(local, "fake: { exit: 3 }\n");
    const starts: number[] = [];
    const supervisor = await startSupervisor(
      config(
        ws,
        dir,
        `  config_files: [${local}]
  restart: { initial_delay: 200ms, max_delay: 1600ms, multiplier: 2, jitter: 0.25, stable_after: 1m }`,
      ),
      { start: false },
    );
    supervisor.on("agentStarted", () => starts.push(performance.now()));
    const delays: number[] = [];
    supervisor.on("restartScheduled", (delay) => delays.push(delay));
    await supervisor.start();
    await new Promise<void>((resolve) => {
      const check = () => {
        if (starts.length >= 6) {
          supervisor.off("agentStarted", check);
          resolve();
        }
      };
      supervisor.on("agentStarted", check);
      check();
    });
    // Scheduled delays: ceiling 200, 400, 800, 1600, 1600 ms, each at most 25 % shorter.
    const ceilings = [200, 400, 800, 1600, 1600];
    for (const [i, ceiling] of ceilings.entries()) {
      expect(delays[i]).toBeGreaterThanOrEqual(ceiling * 0.75);
      expect(delays[i]).toBeLessThanOrEqual(ceiling);
    }
    // The timestamps show it: no restart comes before its delay. (A gap is the delay plus
    // a node start, which a loaded CI machine stretches, so only the lower bound is exact.)
    const gaps = starts.slice(1).map((t, i) => t - starts[i]!);
    for (const [i, delay] of delays.slice(0, 5).entries()) {
      expect(gaps[i]).toBeGreaterThanOrEqual(delay - 5);
      expect(gaps[i]).toBeLessThan(delay + 10_000);
    }
    const agent = await agentWhere(server, (a) => a.health?.lastError.includes("exiting with code 3") === true);
    expect(agent.health?.healthy).toBe(false);
    expect(agent.health?.lastError).toMatch(/exited unexpectedly, exit code 3/);
  });
});

describe("rollback", () => {
  it("rolls the first remote config that fails back to the local config the agent ran healthy on", {
    timeout: TIMEOUT,
  }, async () => {
    const dir = await tempDir();
    const { server, ws } = await upstream();
    const supervisor = await startSupervisor(config(ws, dir));
    await agentWhere(server, (a) => a.health?.healthy === true);
    const { hash } = await server.setRemoteConfig(supervisor.instanceUid, { "config.yaml": "fake: { exit: 5 }\n" });
    const failed = await agentWhere(
      server,
      (a) =>
        a.remoteConfigStatus?.status === RemoteConfigStatuses.RemoteConfigStatuses_FAILED &&
        Buffer.from(a.remoteConfigStatus.lastRemoteConfigHash).equals(Buffer.from(hash)),
    );
    expect(failed.remoteConfigStatus?.errorMessage).toMatch(
      /exit code 5[\s\S]*exiting with code 5 as configured[\s\S]*Rolled back to the last working config \(the local config/,
    );
    await agentWhere(server, (a) => a.health?.healthy === true);
    expect(readFileSync(join(dir, "state/effective.yaml"), "utf8")).not.toContain("exit: 5");
  });
});

describe("kill -9 of the supervisor", () => {
  it("the next supervisor stops the agent the killed one left and comes back on the last working config", {
    timeout: TIMEOUT,
  }, async () => {
    const dir = await tempDir();
    const { server, ws } = await upstream();
    const file = join(dir, "supervisor.yaml");
    // A long orphan_detection_interval: the agent the killed supervisor leaves must be
    // stopped by the next supervisor's sweep, not by its own ppid polling.
    await writeFile(
      file,
      config(ws, dir).replace("config_apply_timeout: 10s", "config_apply_timeout: 3s\n  orphan_detection_interval: 1m"),
    );
    const cli = join(REPO, "dist/cli/supervisor.js");
    const run = (): ChildProcess => {
      const child = spawn(process.execPath, [cli, "--config", file], { stdio: "ignore" });
      defer(async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      });
      return child;
    };
    const first = run();
    const agent = await agentWhere(server, (a) => a.health?.healthy === true);
    await server.setRemoteConfig(agent.id, { "config.yaml": "good: 1\n" });
    const applied = await agentWhere(
      server,
      (a) => a.remoteConfigStatus?.status === RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
    );
    const firstHash = Buffer.from(applied.remoteConfigStatus!.lastRemoteConfigHash).toString("hex");
    const [pidText] = readFileSync(join(dir, "state/agent.pid"), "utf8").split(" ");
    const orphan = Number(pidText);
    expect(processExists(orphan)).toBe(true);
    // Mid-apply: the next config (whose agent never turns healthy) is saved, written and
    // running, and the supervisor waits for health, when it dies.
    await server.setRemoteConfig(agent.id, { "config.yaml": "good: 2\nfake: { unhealthy: true }\n" });
    await agentWhere(
      server,
      (a) => a.remoteConfigStatus?.status === RemoteConfigStatuses.RemoteConfigStatuses_APPLYING,
    );
    const secondHash = Buffer.from(agent.desiredConfigHash!).toString("hex");
    // The server must see the old connection gone first: a new one for a UID it still
    // holds online would be the same session to it (nothing offered again).
    const gone = once(server, "agentDisconnected");
    first.kill("SIGKILL");
    await once(first, "exit");
    await gone;
    // The restarted supervisor's first status report says what really runs: the first
    // config, APPLIED (its first message carries its whole state).
    const firstReport = new Promise<{ status: number; lastRemoteConfigHash: Uint8Array }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the restarted supervisor reported no config status")), 20_000);
      server.on("message", (_agent, m) => {
        if (m.remoteConfigStatus === undefined) return;
        clearTimeout(timer);
        resolve(m.remoteConfigStatus);
      });
    });
    const second = run();
    const report = await firstReport;
    expect(report.status).toBe(RemoteConfigStatuses.RemoteConfigStatuses_APPLIED);
    expect(Buffer.from(report.lastRemoteConfigHash).toString("hex")).toBe(firstHash);
    // The orphan was stopped by the sweep before anything else ran.
    expect(processExists(orphan) && readFileSync(`/proc/${orphan}/stat`, "utf8").split(" ")[2] !== "Z").toBe(false);
    // The server offers the second config again; it fails properly this time and the
    // supervisor rolls back to the first, which runs healthy.
    const failed = await agentWhere(
      server,
      (a) =>
        a.remoteConfigStatus?.status === RemoteConfigStatuses.RemoteConfigStatuses_FAILED &&
        Buffer.from(a.remoteConfigStatus.lastRemoteConfigHash).toString("hex") === secondHash,
    );
    expect(failed.remoteConfigStatus?.errorMessage).toMatch(
      /did not report healthy[\s\S]*Rolled back to the last working config/,
    );
    await agentWhere(server, (a) => a.health?.healthy === true);
    const effective = readFileSync(join(dir, "state/effective.yaml"), "utf8");
    expect(effective).toMatch(/good: 1/);
    expect(effective).not.toMatch(/good: 2/);
    second.kill("SIGTERM");
    await once(second, "exit");
    expect(existsSync(join(dir, "state/agent.pid"))).toBe(false);
  });
});

for (const transport of ["ws", "http"] as const) {
  describe(`packages over ${transport === "ws" ? "WebSocket" : "HTTP"}`, () => {
    const keys = generateKeyPairSync("ed25519");
    const publicPem = keys.publicKey.export({ type: "spki", format: "pem" }).toString();
    const fakeSource = readFileSync(FAKE_AGENT, "utf8");
    const version = (v: string) =>
      new TextEncoder().encode(fakeSource.replace('const VERSION = "1.0.0";', `const VERSION = "${v}";`));

    async function setup() {
      const dir = await tempDir();
      const files = new Map<string, Uint8Array>();
      const http = createServer((req, res) => {
        const body = files.get(req.url ?? "");
        if (body === undefined) res.writeHead(404).end();
        else res.writeHead(200, { "content-length": body.length }).end(body);
      });
      await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
      defer(() => new Promise((resolve) => http.close(() => resolve())));
      const base = `http://127.0.0.1:${(http.address() as { port: number }).port}`;
      // HTTP agents hear of a push at their next poll: poll every second.
      const up = await upstream({ heartbeat: { intervalSeconds: 1 } });
      const supervisor = await startSupervisor(
        config(
          up[transport],
          dir,
          `  package:
    public_key: |
${publicPem
  .trim()
  .split("\n")
  .map((l) => `      ${l}`)
  .join("\n")}`,
        ).replace("capabilities:", "capabilities:\n  accepts_packages: true"),
      );
      const agent = await agentWhere(up.server, (a) => attribute(a, "service.version") === "1.0.0");
      const offer = async (
        name: string,
        content: Uint8Array,
        opts: { hash?: Uint8Array; signature?: Uint8Array } = {},
      ) => {
        files.set(`/${name}`, content);
        await up.server.offerPackages(agent.id, {
          packages: {
            agent: {
              type: 0,
              version: name,
              hash: createHash("sha256").update(name).digest(),
              file: {
                downloadUrl: `${base}/${name}`,
                contentHash: opts.hash ?? createHash("sha256").update(content).digest(),
                signature: opts.signature ?? sign(null, content, keys.privateKey),
              },
            },
          },
        });
      };
      const statusOf = (a: typeof agent) => a.packageStatuses?.packages["agent"];
      return { dir, supervisor, server: up.server, agent, offer, statusOf };
    }

    it("installs a signed package, restarts the agent on it, and reports Installed", { timeout: TIMEOUT }, async () => {
      const { dir, server, supervisor, offer, statusOf } = await setup();
      const before = supervisor.agentPid;
      await offer("2.0.0", version("2.0.0"));
      const agent = await agentWhere(
        server,
        (a) =>
          statusOf(a)?.status === PackageStatusEnum.PackageStatusEnum_Installed &&
          attribute(a, "service.version") === "2.0.0",
      );
      expect(statusOf(agent)?.agentHasVersion).toBe("2.0.0");
      expect(supervisor.agentPid).not.toBe(before);
      const state = JSON.parse(readFileSync(join(dir, "state/packages/state.json"), "utf8"));
      expect(state.current.version).toBe("2.0.0");
      expect(readFileSync(state.current.executable, "utf8")).toContain('const VERSION = "2.0.0";');
    });

    for (const [what, opts] of [
      ["a wrong SHA-256", { hash: new Uint8Array(32) }],
      ["a bad signature", { signature: new Uint8Array(64) }],
    ] as const) {
      it(`installs nothing for ${what}`, { timeout: TIMEOUT }, async () => {
        const { dir, server, supervisor, offer, statusOf } = await setup();
        const before = supervisor.agentPid;
        await offer("3.0.0", version("3.0.0"), opts);
        const agent = await agentWhere(
          server,
          (a) => statusOf(a)?.status === PackageStatusEnum.PackageStatusEnum_InstallFailed,
        );
        expect(statusOf(agent)?.errorMessage).toMatch(what === "a wrong SHA-256" ? /SHA-256/ : /signature/);
        expect(existsSync(join(dir, "state/packages/agent"))).toBe(false);
        expect(supervisor.agentPid).toBe(before);
        expect(attribute(agent, "service.version")).toBe("1.0.0");
      });
    }

    it("rolls back to the previous agent when the new one does not become healthy", { timeout: TIMEOUT }, async () => {
      const { dir, server, offer, statusOf } = await setup();
      const broken = new TextEncoder().encode(
        `#!/usr/bin/env node\nconsole.error("broken build");\nprocess.exit(7);\n`,
      );
      await offer("4.0.0", broken);
      const agent = await agentWhere(
        server,
        (a) => statusOf(a)?.status === PackageStatusEnum.PackageStatusEnum_InstallFailed,
      );
      expect(statusOf(agent)?.errorMessage).toMatch(/exit code 7[\s\S]*broken build[\s\S]*rolled back/);
      await agentWhere(server, (a) => a.health?.healthy === true && attribute(a, "service.version") === "1.0.0");
      expect(readdirSync(join(dir, "state/packages")).filter((n) => n !== "state.json" && n !== "agent")).toEqual([]);
      expect(JSON.parse(readFileSync(join(dir, "state/packages/state.json"), "utf8")).current).toBeUndefined();
    });
  });

  describe(`enrollment over ${transport === "ws" ? "WebSocket" : "HTTP"}`, () => {
    it("uses the offered agent key at every later start, the token only at the first, and re-enrolls once on 401", {
      timeout: TIMEOUT,
    }, async () => {
      const dir = await tempDir();
      const seen: string[] = [];
      const revoked = new Set<string>();
      let issued = 0;
      const up = await upstream({
        heartbeat: { intervalSeconds: 1 },
        allowAnonymous: false,
        hooks: {
          authenticate: ({ headers }) => {
            const auth = headers["authorization"] ?? "";
            seen.push(auth);
            if (auth === "Bearer xse_fleet" || (auth.startsWith("Bearer xag_") && !revoked.has(auth))) {
              return { accept: true, principal: auth };
            }
            return { accept: false, status: 401 };
          },
          // The server binds the UID to the fleet token first: the keys it issues, and the
          // fleet token again (re-enrollment), may take it over.
          allowRebind: ({ principal }) => typeof principal === "string" && principal.startsWith("Bearer x"),
        },
      });
      up.server.on("agentConnected", (agent) => {
        if (agent.principal !== "Bearer xse_fleet") return;
        issued += 1;
        void up.server.offerConnectionSettings(agent.id, {
          opamp: {
            headers: { headers: [{ key: "Authorization", value: `Bearer xag_${issued}` }] },
            heartbeatIntervalSeconds: 30n,
          },
        });
      });
      const yaml = `${config(up[transport], dir)}`
        .replace("capabilities:", "capabilities:\n  accepts_opamp_connection_settings: true")
        .replace(
          `  endpoint: ${up[transport]}`,
          `  endpoint: ${up[transport]}\n  headers: { Authorization: "Bearer xse_fleet" }\n  reenroll_on_unauthorized: true`,
        );
      const started = async (event: string) => {
        const supervisor = await startSupervisor(yaml, { start: false });
        const happened = once(supervisor, event);
        await supervisor.start();
        await happened;
        return supervisor;
      };
      const first = await started("connectionSettings");
      expect(seen[0]).toBe("Bearer xse_fleet");
      await first.stop();
      const firstSeen = seen.length;
      const second = await started("connect");
      expect(seen.length).toBeGreaterThan(firstSeen);
      expect(seen.slice(firstSeen).every((a) => a === "Bearer xag_1")).toBe(true);
      await second.stop();
      // The key is revoked: the third start is refused once, enrolls again, and gets a new key.
      revoked.add("Bearer xag_1");
      const thirdFrom = seen.length;
      await started("connectionSettings");
      expect(seen.slice(thirdFrom)[0]).toBe("Bearer xag_1");
      expect(seen.slice(thirdFrom)).toContain("Bearer xse_fleet");
      expect(issued).toBe(2);
      const persisted = readFileSync(join(dir, "state/opamp_client.json"), "utf8");
      expect(persisted).toContain("xag_2");
    });
  });
}

for (const transport of ["ws", "http"] as const) {
  describe(`relaying over ${transport === "ws" ? "WebSocket" : "HTTP"}`, () => {
    it("carries custom messages both ways, and reports the agent's effective config", {
      timeout: TIMEOUT,
    }, async () => {
      const dir = await tempDir();
      const { server, ...urls } = await upstream({ heartbeat: { intervalSeconds: 1 } });
      const local = join(dir, "custom.yaml");
      await writeFile(local, "fake: { custom: io.example.echo }\n");
      await startSupervisor(config(urls[transport], dir, `  config_files: [${local}]`));
      const agent = await agentWhere(
        server,
        (a) =>
          a.customCapabilities?.capabilities.includes("io.example.echo") === true &&
          effectiveText(a).includes("io.example.echo"),
      );
      // The effective config the agent reported (its own file) is what the server sees.
      expect(effectiveText(agent)).toContain("instance_uid:");
      const echoed = new Promise<{ capability: string; data: Uint8Array }>((resolve) => {
        server.on("message", (_agent, m) => {
          if (m.customMessage?.type === "echo") resolve(m.customMessage);
        });
      });
      const sent = server.sendCustomMessage(agent.id, {
        capability: "io.example.echo",
        type: "ping",
        data: new TextEncoder().encode("hello"),
      });
      expect(sent.sent).toHaveLength(1);
      const message = await echoed;
      expect(message.capability).toBe("io.example.echo");
      expect(new TextDecoder().decode(message.data)).toBe("hello");
    });

    it("adopts an instance UID the server assigns: persisted, and the agent restarted with it", {
      timeout: TIMEOUT,
    }, async () => {
      const dir = await tempDir();
      const { server, ...urls } = await upstream({ heartbeat: { intervalSeconds: 1 } });
      const supervisor = await startSupervisor(config(urls[transport], dir));
      const old = supervisor.instanceUid;
      await agentWhere(server, (a) => a.id === old && a.health?.healthy === true);
      const restarted = once(supervisor, "agentStarted");
      const fresh = server.assignInstanceUid(old);
      const freshId = instanceUidToString(fresh);
      await restarted;
      await agentWhere(
        server,
        (a) => a.id === freshId && a.health?.healthy === true && attribute(a, "service.instance.id") === freshId,
      );
      expect(supervisor.instanceUid).toBe(freshId);
      expect(readFileSync(join(dir, "state/persistent_state.yaml"), "utf8")).toContain(`instance_id: ${freshId}`);
      expect(readFileSync(join(dir, "state/effective.yaml"), "utf8")).toContain(freshId);
    });
  });
}

describe("the state directory and the health endpoint", () => {
  it("refuses a second live supervisor on the same directory, and serves /health while running", {
    timeout: TIMEOUT,
  }, async () => {
    const dir = await tempDir();
    const { ws } = await upstream();
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const yaml = `${config(ws, dir)}healthcheck:\n  endpoint: 127.0.0.1:${port}\n`;
    const first = await startSupervisor(yaml);
    const health = await fetch(`http://127.0.0.1:${port}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({
      status: "ok",
      instance_uid: first.instanceUid,
      agent: { healthy: true },
    });
    const second = await startSupervisor(yaml.replace(/healthcheck:[\s\S]*$/, ""), { start: false });
    await expect(second.start()).rejects.toMatchObject({
      code: "storage_failed",
      message: expect.stringMatching(/in use by another supervisor/),
    });
    expect(first.agentPid).toBeDefined();
    await first.stop();
    expect(existsSync(join(dir, "state/supervisor.pid"))).toBe(false);
  });
});
