/**
 * Faults around the gateway: the upstream server killed and restarted (agents held, back
 * with their full state, nothing lost), an upstream that sends garbage, and the gateway
 * process itself killed and restarted (SDK clients over both transports come back; the
 * server's desired state is intact). The process test runs the built `opamp-gateway` bin.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { OpAMPClient } from "../../../src/client/index.js";
import { RemoteConfigStatuses } from "../../../src/gen/opamp/v1/opamp_pb.js";
import { InMemoryServerStore, OpAMPServer } from "../../../src/server/index.js";
import { agentDescription, hashEquals, newInstanceUid } from "../../../src/wire/index.js";
import { isAgent, TestAgent, waitFor } from "../server/test-agent.js";
import { FakeUpstream } from "./fake-upstream.js";
import { cleanup, defer, startGateway, TOKENS, waitUpstreams } from "./helpers.js";

afterEach(cleanup);

const A = { headers: { authorization: "Bearer token-a" } };

function tokenAuth() {
  return {
    authenticate: ({ headers }: { headers: Readonly<Record<string, string>> }) => {
      const principal = TOKENS[/^Bearer (.+)$/.exec(headers["authorization"] ?? "")?.[1] ?? ""];
      return principal === undefined ? { accept: false as const, status: 401 } : { accept: true as const, principal };
    },
  };
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
  const port = (probe.address() as { port: number }).port;
  await new Promise<void>((r) => probe.close(() => r()));
  return port;
}

it("the upstream server is killed and restarted: agents stay connected and are back on the new server with full state", async () => {
  const store = new InMemoryServerStore();
  const port = await freePort();
  const first = new OpAMPServer<string>({ hooks: tokenAuth(), store });
  await first.listen({ port, host: "127.0.0.1" });
  const { gateway, url } = await startGateway(`ws://127.0.0.1:${port}/v1/opamp`, {
    upstream: { url: "", connections: 2, retry: { initialDelayMs: 50, maxDelayMs: 200 } },
  });
  gateway.on("error", () => undefined);
  const ws = await TestAgent.connect("websocket", url, A);
  const http = await TestAgent.connect("http", url, A);
  await ws.send(ws.fullState());
  await http.send(http.fullState());
  await first.setRemoteConfig(ws.uid, { "kept.yaml": "kept: true\n" });
  await ws.next((m) => m.remoteConfig !== undefined);
  const dropped = waitFor(first, "agentDisconnected", isAgent(ws.uid));
  await first.stop();
  await dropped;
  expect(gateway.upstreams.every((u) => !u.open)).toBe(true);
  const second = new OpAMPServer<string>({ hooks: tokenAuth(), store });
  defer(() => second.stop());
  const back = waitUpstreams(gateway, 2);
  const wsBack = waitFor(second, "agentConnected", isAgent(ws.uid));
  await second.listen({ port, host: "127.0.0.1" });
  await back;
  // The gateway asks the held WebSocket agent for its state on the server's behalf.
  await ws.next((m) => (m.flags & 1n) !== 0n);
  await ws.send(ws.fullState());
  const [agent] = await wsBack;
  expect(agent.principal).toBe("alice");
  expect(agent.agentDescription).toBeDefined();
  expect(ws.closed).toBeUndefined();
  const httpBack = waitFor(second, "agentConnected", isAgent(http.uid));
  await http.send(http.fullState());
  await httpBack;
  // Nothing lost: the desired config survived in the store and is still owed to the agent.
  expect(second.getAgent(ws.uid)?.desiredConfigHash).toBeDefined();
  ws.close();
});

it("an upstream that sends garbage: each bad message is dropped and reported; the upstream and its agents carry on", async () => {
  const upstream = await FakeUpstream.start();
  defer(() => upstream.stop());
  const { gateway, url } = await startGateway(upstream.url, { upstream: { url: "", connections: 1 } });
  const agent = await TestAgent.connect("websocket", url, A);
  await agent.send(agent.fullState());
  const errors: string[] = [];
  gateway.on("error", (e) => errors.push(e.code));
  const record = upstream.connection("upstream-0");
  record.ws.send(new Uint8Array([0x00, 0xff, 0xff, 0xff, 0xff]));
  record.ws.send(new Uint8Array([0x05, 0x0a]));
  record.ws.send("text is not OpAMP");
  record.ws.send(new Uint8Array([0x00, 0x0a, 0x20, 0x01]));
  const reply = await agent.send(agent.message());
  expect(reply.instanceUid).toEqual(agent.uid);
  expect(errors).toEqual(["malformed_message", "malformed_frame", "malformed_frame", "malformed_message"]);
  expect(record.ws.readyState).toBe(record.ws.OPEN);
  expect(agent.received.every((m) => m.instanceUid.length === 16)).toBe(true);
  agent.close();
});

const BIN = resolve(import.meta.dirname, "../../../dist/cli/gateway.js");

describe.skipIf(!existsSync(BIN))("the gateway process (opamp-gateway, built)", () => {
  function runGateway(config: string): Promise<{ child: ChildProcess; url: string }> {
    const child = spawn(process.execPath, [BIN, "--config", config], { stdio: ["ignore", "pipe", "pipe"] });
    defer(() => {
      if (child.exitCode === null) child.kill("SIGKILL");
    });
    return new Promise((resolve, reject) => {
      let out = "";
      child.stdout!.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        const line = out.split("\n").find((l) => l.includes('"listening"'));
        if (line !== undefined) resolve({ child, url: JSON.parse(line).url as string });
      });
      child.on("exit", (code) => reject(new Error(`opamp-gateway exited with ${code}`)));
    });
  }

  // Two process starts and client backoffs: slow when other suites load the two cores.
  it("killed with SIGKILL and restarted: SDK clients over both transports come back; the server lost nothing", {
    timeout: 90_000,
  }, async () => {
    // Agents take the server's heartbeat interval: the HTTP agent then polls every second.
    const server = new OpAMPServer<string>({ hooks: tokenAuth(), heartbeat: { intervalSeconds: 1 } });
    const { url: serverUrl } = await server.listen({ port: 0, host: "127.0.0.1" });
    defer(() => server.stop());
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "opamp-gateway-"));
    const config = join(dir, "gateway.yaml");
    writeFileSync(
      config,
      [
        "server:",
        `  endpoint: ${serverUrl.replace(/^http/, "ws")}`,
        "  headers:",
        `    Authorization: "Bearer $\{env:GW_TOKEN}"`,
        "  connections: 2",
        "listener:",
        `  endpoint: 127.0.0.1:${port}`,
        "",
      ].join("\n"),
    );
    process.env["GW_TOKEN"] = "token-gw";
    defer(() => {
      delete process.env["GW_TOKEN"];
    });
    let gw = await runGateway(config);
    const uids = [newInstanceUid(), newInstanceUid()] as const;
    const clients = (["ws", "http"] as const).map(
      (scheme, i) =>
        new OpAMPClient({
          transport: {
            url: gw.url.replace(/^http/, scheme),
            headers: { Authorization: "Bearer token-a" },
            heartbeatIntervalMs: 1000,
          },
          retry: { initialDelayMs: 100, maxDelayMs: 500 },
          agent: {
            instanceUid: uids[i]!,
            description: agentDescription({ identifying: { "service.name": `sdk-${scheme}` } }),
          },
          hooks: { onRemoteConfig: async () => ({ status: "applied" }) },
        }),
    );
    for (const client of clients) defer(() => client.stop());
    const connected = uids.map((uid) => waitFor(server, "agentConnected", isAgent(uid)));
    for (const client of clients) await client.start();
    await Promise.all(connected);
    const applied = uids.map((uid) =>
      waitFor(
        server,
        "agentUpdated",
        (a, changes) =>
          isAgent(uid)(a) &&
          changes.includes("remoteConfigStatus") &&
          a.remoteConfigStatus?.status === RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
      ),
    );
    const { hash } = await server.setRemoteConfig(() => true, { "fleet.yaml": "fleet: 1\n" });
    await Promise.all(applied);
    const gone = uids.map((uid) => waitFor(server, "agentDisconnected", isAgent(uid)));
    gw.child.kill("SIGKILL");
    // The WebSocket agent's connection dies with the gateway's; the HTTP one goes silent.
    await gone[0];
    const back = uids.map((uid) => waitFor(server, "agentConnected", isAgent(uid)));
    gw = await runGateway(config);
    for (const [agent] of await Promise.all(back)) {
      expect(agent.principal).toBe("alice");
      expect(agent.agentDescription).toBeDefined();
      expect(hashEquals(agent.remoteConfigStatus?.lastRemoteConfigHash ?? new Uint8Array(), hash)).toBe(true);
    }
    const stopped = new Promise<number | null>((r) => gw.child.once("exit", (code) => r(code)));
    gw.child.kill("SIGTERM");
    expect(await stopped).toBe(0);
  });
});
