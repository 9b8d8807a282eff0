// The conformance kit's client checks against the real Collector stack v0.149.0 (built by
// scripts/collector-stack.mjs): the Collector's opampsupervisor, with the seed's config
// plus accepts_opamp_connection_settings (what enrollment needs), and a Collector with the
// opampextension alone. Both connect to the kit's checking server over WebSocket and plain
// HTTP; the four runs go concurrently. Their deviations are recorded as theirs.

import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, it, type TestContext } from "vitest";
import { type ClientChecksSession, startClientChecks } from "../../src/testing/conformance/index.js";
import {
  type CollectorStack,
  collectorStack,
  describeWithCollector,
  STACK_BUILD_TIMEOUT_MS,
} from "../interop/collector-stack.js";
import { extensionConfig, FIELD_HOSTNAME, NO_INTERNAL_METRICS } from "../interop/field.js";
import { type ManagedProcess, startProcess } from "../interop/processes.js";
import { writeSupervisorFiles } from "../interop/supervisor-config.js";
import {
  COLLECTOR_EXTENSION_HTTP,
  COLLECTOR_EXTENSION_WS,
  COLLECTOR_SUPERVISOR_HTTP,
  COLLECTOR_SUPERVISOR_WS,
} from "./deviations.js";
import { type Deviation, deviationNotes, expectConformance, writeMatrixEntry } from "./peers.js";

type Transport = "ws" | "http";

interface Peer {
  readonly implementation: string;
  readonly deviations: Readonly<Record<Transport, readonly Deviation[]>>;
  /** Starts the peer against the checking server, with its files in `dir`; the process is stopped to end the run. */
  start(stack: CollectorStack, url: string, transport: Transport, dir: string): Promise<ManagedProcess>;
  /** How the peer is asked to stop (what its docs and code say ends it in order). */
  readonly stopSignal: NodeJS.Signals;
  /**
   * Start the peer first and the checking server once the peer says it is ready (its client
   * retries the refused connection or poll): see the extension's note.
   */
  readonly afterReady?: RegExp;
}

const PEERS: readonly Peer[] = [
  {
    implementation: "Collector opampsupervisor",
    deviations: { ws: COLLECTOR_SUPERVISOR_WS, http: COLLECTOR_SUPERVISOR_HTTP },
    async start(stack, url, _transport, dir) {
      const nometrics = join(dir, "no-internal-metrics.yaml");
      await writeFile(nometrics, NO_INTERNAL_METRICS);
      const files = await writeSupervisorFiles((_) => ({
        endpoint: url,
        enrollmentToken: "xse_conformance",
        collector: stack.collector,
        capabilities: { accepts_opamp_connection_settings: true },
        agent: { args: ["--config", nometrics] },
      }));
      // Removed with `dir` when the run ends.
      await writeFile(join(dir, ".supervisor-files"), files.dir);
      return startProcess("opampsupervisor", stack.supervisor, ["--config", files.configPath], {
        env: { ...process.env, HOSTNAME: FIELD_HOSTNAME },
      });
    },
    // v0.149.0 shuts down in order on SIGINT only; SIGTERM kills it (see test/interop).
    stopSignal: "SIGINT",
  },
  {
    implementation: "Collector opampextension",
    deviations: { ws: COLLECTOR_EXTENSION_WS, http: COLLECTOR_EXTENSION_HTTP },
    async start(stack, url, transport, dir) {
      const path = join(dir, "collector.yaml");
      await writeFile(path, extensionConfig(transport, url, "conformance"));
      return startProcess("otelcol-opamp", stack.collector, ["--config", path]);
    },
    stopSignal: "SIGTERM",
    // Its client may build its first message before the Collector has handed the extension
    // its config: that message then lacks the effective config. Over WebSocket the message is
    // built once connected, so reaching the kit only once the Collector is ready takes the
    // race out; over HTTP the first request is built at start and retried as it is (the
    // recorded, intermittent deviation).
    afterReady: /Everything is ready/,
  },
];

/** A port nothing listens on right now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address() as AddressInfo;
  await new Promise((done) => server.close(done));
  return port;
}

async function run(context: TestContext, stack: CollectorStack, peer: Peer, transport: Transport): Promise<void> {
  const { expect } = context;
  const dir = await mkdtemp(join(tmpdir(), "conformance-collector-"));
  let session: ClientChecksSession | undefined;
  let agent: ManagedProcess | undefined;
  try {
    const options = { connectTimeoutMs: 60_000, pollWaitMs: 40_000 };
    if (peer.afterReady !== undefined) {
      const port = await freePort();
      agent = await peer.start(stack, `${transport}://127.0.0.1:${port}/v1/opamp`, transport, dir);
      await agent.waitForOutput(peer.afterReady, 60_000);
      session = await startClientChecks({ ...options, port });
    } else {
      session = await startClientChecks(options);
      agent = await peer.start(stack, transport === "ws" ? session.wsUrl : session.httpUrl, transport, dir);
    }
    await session.scriptDone;
    const exit = await agent.stop(peer.stopSignal);
    expect(exit, agent.output().slice(-3000)).toEqual({ code: 0, signal: null });
    const report = await session.finish({ disconnectTimeoutMs: 5_000 });
    const deviations = peer.deviations[transport];
    await writeMatrixEntry({
      implementation: peer.implementation,
      version: `v${stack.version}`,
      ours: false,
      role: "client",
      transport,
      deviations: deviationNotes(deviations),
      report,
    });
    expect(report.results.every((r) => r.transport === transport)).toBe(true);
    expectConformance(report, deviations);
  } finally {
    agent?.killGroup();
    await agent?.exited;
    await session?.close().catch(() => undefined);
    const supervisorDir = await readFile(join(dir, ".supervisor-files"), "utf8").catch(() => undefined);
    if (supervisorDir !== undefined) await rm(supervisorDir, { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  }
}

describeWithCollector("conformance: the Collector stack v0.149.0 (client checks)", () => {
  let stack: CollectorStack;

  beforeAll(async () => {
    stack = await collectorStack();
  }, STACK_BUILD_TIMEOUT_MS);

  describe.concurrent("four peers at once", () => {
    for (const peer of PEERS) {
      for (const transport of ["ws", "http"] as const) {
        it(
          `${peer.implementation} passes the client checks over ${transport}, apart from its recorded deviations`,
          {
            timeout: 360_000,
          },
          (context) => run(context, stack, peer, transport),
        );
      }
    }
  });
});
