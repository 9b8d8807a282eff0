/**
 * Interop: opamp-go's client (the `agent` subcommand of the Go harness) against this
 * server over both transports: connect with full state, remote config APPLIED, compressed
 * heartbeats reconstructed, full state requested after a server restart, disconnect seen.
 * Skipped without Go (fails in CI), like every Go interop test.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeAll, expect, it } from "vitest";
import { RemoteConfigStatuses } from "../../../src/gen/opamp/v1/opamp_pb.js";
import { type Agent, OpAMPServer, type OpAMPServerOptions } from "../../../src/server/index.js";
import { BUILD_TIMEOUT_MS, buildHarness, describeWithGo } from "../../interop/go-harness.js";
import { waitFor } from "./test-agent.js";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const options: OpAMPServerOptions = {
  allowAnonymous: true,
  // opamp-go takes the server's interval (it reports heartbeats), so polls come every second.
  heartbeat: { intervalSeconds: 1, httpAgentTimeoutMs: 3000, sweepIntervalMs: 200 },
};

/** A listener routing both transports to whichever OpAMPServer is current. */
async function swappableListener(): Promise<{ port: number; use(server: OpAMPServer): void }> {
  let current: OpAMPServer | undefined;
  const listener: Server = createServer((req, res) => current?.requestHandler(req, res));
  listener.on("upgrade", (req, socket, head) => {
    if (current) void current.upgradeHandler(req, socket, head);
    else socket.destroy();
  });
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        listener.close(() => resolve());
        listener.closeAllConnections();
      }),
  );
  return {
    port: (listener.address() as AddressInfo).port,
    use(server) {
      current = server;
    },
  };
}

function startAgent(bin: string, url: string): ChildProcess {
  const child = spawn(bin, ["agent", "-url", url, "-heartbeat", "1s", "-service-name", "go-interop"], {
    stdio: "ignore",
  });
  cleanups.push(() => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  return child;
}

describeWithGo("opamp-go client against OpAMPServer", () => {
  // A cold build downloads opamp-go: give it its own time, not the test's.
  beforeAll(() => buildHarness(), BUILD_TIMEOUT_MS);

  for (const transport of ["ws", "http"] as const) {
    it(`${transport}: config applied, compression, restart, disconnect`, async () => {
      const bin = await buildHarness();
      const listener = await swappableListener();
      const first = new OpAMPServer(options);
      await first.start();
      cleanups.push(() => first.stop());
      listener.use(first);

      const connected = waitFor(first, "agentConnected");
      const child = startAgent(bin, `${transport}://127.0.0.1:${listener.port}/v1/opamp`);
      const [agent] = await connected;
      expect(agent.transport).toBe(transport === "ws" ? "websocket" : "http");
      expect(
        agent.agentDescription?.identifyingAttributes.find((a) => a.key === "service.name")?.value?.value.value,
      ).toBe("go-interop");
      expect(agent.effectiveConfig?.configMap?.configMap["local.yaml"]).toBeDefined();

      const applied = waitFor(
        first,
        "agentUpdated",
        (a) => a.remoteConfigStatus?.status === RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
      );
      const { hash } = await first.setRemoteConfig(agent.id, { "remote.yaml": "exporters: {}\n" });
      const [updated] = await applied;
      expect([...(updated.remoteConfigStatus?.lastRemoteConfigHash ?? [])]).toEqual([...hash]);
      // opamp-go reports the new effective config too; the description stays from before.
      const hasRemote = (a: Agent) => a.effectiveConfig?.configMap?.configMap["remote.yaml"] !== undefined;
      if (!hasRemote(updated)) await waitFor(first, "agentUpdated", hasRemote);
      expect(first.getAgent(agent.id)?.agentDescription).toBeDefined();

      // Restart onto a server that never saw the agent: its next (compressed) message gets
      // ReportFullState and the description comes back.
      const second = new OpAMPServer(options);
      await second.start();
      cleanups.push(() => second.stop());
      const full = waitFor(second, "message", (a, m) => a.id === agent.id && m.agentDescription !== undefined);
      listener.use(second);
      await first.stop();
      await full;
      expect(second.getAgent(agent.id)?.agentDescription).toBeDefined();

      const gone = waitFor(second, "agentDisconnected", (a) => a.id === agent.id);
      child.kill("SIGTERM");
      const [, reason] = await gone;
      // WS: opamp-go sends agent_disconnect or just closes; HTTP: the server notices the silence.
      expect(["agent_disconnect", "connection_closed", "heartbeat_timeout"]).toContain(reason);
    });
  }

  it("ws: a 64 KiB config, written as one frame in pieces (64-bit length), is applied whole", async () => {
    const bin = await buildHarness();
    const server = new OpAMPServer(options);
    cleanups.push(() => server.stop());
    const { port } = await server.listen({ port: 0, host: "127.0.0.1" });
    const connected = waitFor(server, "agentConnected");
    startAgent(bin, `ws://127.0.0.1:${port}/v1/opamp`);
    const [agent] = await connected;
    // Past SHARED_PIECE_BYTES and 65,535 bytes: the server writes the frame itself (64-bit
    // length header, the shared config by reference after the agent's own bytes), which
    // opamp-go's WebSocket library must read as one message.
    const body = new Uint8Array(randomBytes(64 * 1024));
    const hasBig = (a: Agent) => a.effectiveConfig?.configMap?.configMap["big.yaml"] !== undefined;
    const applied = waitFor(
      server,
      "agentUpdated",
      (a) => a.id === agent.id && a.remoteConfigStatus?.status === RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
    );
    const reported = waitFor(server, "agentUpdated", (a) => a.id === agent.id && hasBig(a));
    // Received on the same connection: a client that failed to read the push and
    // reconnected would get the config again, whole, in the reply to its first message.
    const reconnects: string[] = [];
    server.on("agentDisconnected", (a, reason) => a.id === agent.id && reconnects.push(reason));
    server.on(
      "agentUpdated",
      (a, changes) => a.id === agent.id && changes.includes("connection") && reconnects.push("connection"),
    );
    const { hash } = await server.setRemoteConfig(agent.id, { "big.yaml": body });
    const [updated] = await applied;
    expect([...(updated.remoteConfigStatus?.lastRemoteConfigHash ?? [])]).toEqual([...hash]);
    // opamp-go's agent reports what it applied as its effective config: the bytes it got.
    const [withConfig] = await reported;
    expect(withConfig.effectiveConfig?.configMap?.configMap["big.yaml"]?.body).toEqual(body);
    expect(reconnects).toEqual([]);
  });
});
