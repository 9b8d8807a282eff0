// The pieces every Collector-stack test uses: an OpAMPServer on 127.0.0.1 port 0 with a
// probe, the enrollment recipe of docs/server.md (examples/enrollment.ts), and the
// supervisor or Collector processes, all stopped when the test ends, passed or failed.

import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "vitest";
import { Enrollment, type EnrollmentPrincipal } from "../../examples/enrollment.js";
import type { AuthDecision, AuthRequest, OpAMPServerOptions } from "../../src/server/index.js";
import { OpAMPServer } from "../../src/server/index.js";
import type { CollectorStack } from "./collector-stack.js";
import { type ManagedProcess, startProcess } from "./processes.js";
import { ServerProbe } from "./server-probe.js";
import { type SupervisorFiles, writeSupervisorFiles } from "./supervisor-config.js";

export type FieldTransport = "ws" | "http";

/** Seconds of the heartbeat the tests' servers give agents: HTTP agents poll this often. */
export const TEST_HEARTBEAT_SECONDS = 1;

/** How long a Collector (or a supervisor and its Collector) may take for one step. */
export const STEP_TIMEOUT_MS = 30_000;

/** A value unlikely to be the machine's own host name, to see `${HOSTNAME}` expanded. */
export const FIELD_HOSTNAME = `field-interop-${randomBytes(3).toString("hex")}`;

/** Runs cleanups in reverse order when a test finishes. */
export type OnFinished = (cleanup: () => Promise<void> | void) => void;

/** Cleanups run in reverse order when the test ends; on failure the processes' logs are printed. */
export function finisher(context: TestContext): {
  onFinished: OnFinished;
  logsOf: (p: ManagedProcess, storage?: string) => void;
} {
  const cleanups: (() => Promise<void> | void)[] = [];
  const logs: { p: ManagedProcess; storage: string | undefined }[] = [];
  context.onTestFinished(async (ctx) => {
    if (ctx.task.result?.state === "fail") {
      for (const { p, storage } of logs) {
        let agentLog = "";
        if (storage !== undefined) agentLog = await readFile(join(storage, "agent.log"), "utf8").catch(() => "");
        console.error(
          `--- ${ctx.task.name}: ${p.name} (pid ${p.pid}) output, last 6 KB ---\n${p.output().slice(-6000)}` +
            (agentLog ? `\n--- its Collector's agent.log, last 4 KB ---\n${agentLog.slice(-4000)}` : ""),
        );
      }
    }
    for (const cleanup of cleanups.reverse()) await cleanup();
  });
  return {
    onFinished: (cleanup) => cleanups.push(cleanup),
    logsOf: (p, storage) => logs.push({ p, storage }),
  };
}

/** A server built on OpAMPServer for one test, and what it saw. */
export interface FieldServer<P> {
  readonly server: OpAMPServer<P>;
  readonly probe: ServerProbe;
  /** The endpoint agents use for the test's transport (ws://… or http://…). */
  readonly endpoint: string;
  readonly transport: FieldTransport;
}

/** Starts an OpAMPServer whose `authenticate` decisions are recorded by the probe. */
export async function startFieldServer<P>(
  transport: FieldTransport,
  authenticate: (request: AuthRequest) => AuthDecision<P> | Promise<AuthDecision<P>>,
  options: Omit<OpAMPServerOptions<P>, "hooks"> & {
    hooks?: Omit<NonNullable<OpAMPServerOptions<P>["hooks"]>, "authenticate">;
  },
  onFinished: OnFinished,
): Promise<FieldServer<P>> {
  const probe = new ServerProbe();
  const server = new OpAMPServer<P>({
    ...options,
    // HTTP agents that stop (an HTTP client sends no agent_disconnect) leave within seconds.
    heartbeat: { httpAgentTimeoutMs: 4_000, sweepIntervalMs: 250, ...options.heartbeat },
    hooks: { ...options.hooks, authenticate: probe.authenticate(authenticate) },
  });
  probe.observe(server);
  const { url } = await server.listen({ port: 0, host: "127.0.0.1" });
  onFinished(() => server.stop());
  return { server, probe, transport, endpoint: transport === "ws" ? url.replace(/^http/, "ws") : url };
}

/** A fleet enrollment token for one test. */
export function fleetToken(): string {
  return `xse_${randomBytes(16).toString("hex")}`;
}

/** A server running the enrollment recipe (heartbeat {@link TEST_HEARTBEAT_SECONDS} s in the offered settings). */
export async function startEnrollmentServer(
  transport: FieldTransport,
  onFinished: OnFinished,
): Promise<
  FieldServer<EnrollmentPrincipal> & {
    readonly enrollment: Enrollment;
    readonly token: string;
    readonly enrollmentErrors: unknown[];
  }
> {
  const token = fleetToken();
  const enrollmentErrors: unknown[] = [];
  const enrollment = new Enrollment({
    enrollmentTokens: { default: token },
    heartbeatIntervalSeconds: TEST_HEARTBEAT_SECONDS,
    onError: (error) => enrollmentErrors.push(error),
  });
  const field = await startFieldServer(
    transport,
    enrollment.authenticate,
    { hooks: { authorizeMessage: enrollment.authorizeMessage, allowRebind: enrollment.allowRebind } },
    onFinished,
  );
  enrollment.attach(field.server);
  return { ...field, enrollment, token, enrollmentErrors };
}

/**
 * Turns off the Collector's internal metrics listener (Prometheus on localhost:8888 by
 * default). Several Collectors on one host otherwise collide on that port, and a
 * supervised Collector that cannot bind it dies in bootstrap, which the supervisor reports
 * only as "collector's OpAMP client never connected to the Supervisor".
 */
export const NO_INTERNAL_METRICS = `service:
  telemetry:
    metrics:
      level: none
`;

/** What a test adds to the seed's supervisor config. */
export interface SupervisorSetup {
  readonly endpoint: string;
  readonly enrollmentToken: string;
  readonly capabilities?: Readonly<Record<string, boolean>>;
  readonly agent?: Readonly<Record<string, string | number | boolean | readonly string[]>>;
  /** HOSTNAME in the supervisor's environment; null leaves it unset. Default {@link FIELD_HOSTNAME}. */
  readonly hostname?: string | null;
}

/**
 * Writes the seed's supervisor config with the test's endpoint and token, plus
 * `setup.capabilities` / `setup.agent`, plus `agent.args` merging {@link NO_INTERNAL_METRICS}
 * into every Collector start (bootstrap included), and starts the supervisor on it.
 */
export async function startSupervisor(
  stack: CollectorStack,
  onFinished: OnFinished,
  setup: SupervisorSetup,
): Promise<{ files: SupervisorFiles; process: ManagedProcess; restart(): ManagedProcess }> {
  const { hostname = FIELD_HOSTNAME, ...config } = setup;
  const env: NodeJS.ProcessEnv = { ...process.env, HOSTNAME: hostname ?? undefined };
  if (hostname === null) delete env["HOSTNAME"];
  const files = await writeSupervisorFiles(
    (dir) => ({
      ...config,
      collector: stack.collector,
      agent: { args: ["--config", join(dir, "no-internal-metrics.yaml")], ...config.agent },
    }),
    { "no-internal-metrics.yaml": NO_INTERNAL_METRICS },
  );
  onFinished(() => files.remove());
  const launch = (): ManagedProcess => {
    const p = startProcess("opampsupervisor", stack.supervisor, ["--config", files.configPath], { env });
    onFinished(async () => {
      p.killGroup();
      await p.exited;
    });
    return p;
  };
  return { files, process: launch(), restart: launch };
}

/** Writes a Collector config to a temporary directory and starts the Collector on it. */
export async function startCollector(
  stack: CollectorStack,
  onFinished: OnFinished,
  config: string,
): Promise<ManagedProcess> {
  const dir = await mkdtemp(join(tmpdir(), "otelcol-opamp-"));
  onFinished(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, "collector.yaml");
  await writeFile(path, config);
  const p = startProcess("otelcol-opamp", stack.collector, ["--config", path]);
  onFinished(async () => {
    p.killGroup();
    await p.exited;
  });
  return p;
}

/**
 * A pipeline config the Collector accepts: OTLP (gRPC on a free port of 127.0.0.1) →
 * batch → debug, and no internal metrics listener (several Collectors run at once).
 */
export function pipelineConfig(options: { batchTimeout?: string; exporter?: string } = {}): string {
  const exporter = options.exporter ?? "debug";
  const batch = options.batchTimeout === undefined ? "{}" : `{ timeout: ${options.batchTimeout} }`;
  return `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  batch: ${batch}
exporters:
  ${exporter}:
    verbosity: basic
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [${exporter}]
`;
}

/** A Collector config: a pipeline, and the opamp extension pointed at the server. */
export function extensionConfig(transport: FieldTransport, endpoint: string, token: string): string {
  return `extensions:
  opamp:
    server:
      ${transport}:
        endpoint: ${endpoint}
        headers:
          Authorization: "Bearer ${token}"${transport === "http" ? "\n        polling_interval: 1s" : ""}
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  batch: {}
exporters:
  debug: {}
service:
  extensions: [opamp]
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [debug]
`;
}
