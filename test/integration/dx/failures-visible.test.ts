/**
 * Failures must be visible (issue 15), over both transports with a real client and server:
 * async listeners that reject are reported on `error`, an `error` nobody listens to is a
 * warning through the logger, and `whenConnected()` / `state.status` read as they should.
 */
import { afterEach, describe, expect, it } from "vitest";
import { OpAMPClient } from "../../../src/client/index.js";
import type { Logger } from "../../../src/internal/logger.js";
import type { Agent } from "../../../src/server/index.js";
import type { OpampError } from "../../../src/wire/errors.js";
import { startServer, stopAll } from "../server/helpers.js";

interface Line {
  readonly level: string;
  readonly fields: Readonly<Record<string, unknown>>;
  readonly message: string;
}

/** A pino-shaped logger that keeps every line; `child` records its bindings. */
function memoryLogger(lines: Line[], bindings: Readonly<Record<string, unknown>> = {}): Logger {
  const at =
    (level: string) =>
    (fields: Readonly<Record<string, unknown>>, message: string): void => {
      lines.push({ level, fields: { ...bindings, ...fields }, message });
    };
  return {
    trace: at("trace"),
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: (more) => memoryLogger(lines, { ...bindings, ...more }),
  };
}

function firstEvent<T extends unknown[]>(
  subscribe: (listener: (...args: T) => void) => void,
  predicate: (...args: T) => boolean = () => true,
): Promise<T> {
  return new Promise((resolve) => subscribe((...args) => predicate(...args) && resolve(args)));
}

const clients: OpAMPClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.stop()));
  await stopAll();
});

function clientFor(url: string, kind: "ws" | "http", logger?: Logger): OpAMPClient {
  const client = new OpAMPClient({
    transport: { url: kind === "ws" ? url.replace(/^http/, "ws") : url, heartbeatIntervalMs: 60_000 },
    agent: { description: { identifying: { "service.name": "dx-agent" } } },
    ...(logger === undefined ? {} : { logger }),
  });
  clients.push(client);
  return client;
}

describe.each(["ws", "http"] as const)("visible failures over %s", (kind) => {
  it("reports an async server listener's rejection on `error` and keeps serving the agent", async () => {
    const { server, url } = await startServer();
    // The agent has no AcceptsRemoteConfig: setRemoteConfig rejects with capability_missing.
    server.on("agentConnected", async (agent: Agent) => {
      await server.setRemoteConfig(agent.id, { "c.yaml": "a: 1" });
    });
    const reported = firstEvent<[OpampError]>((l) => server.on("error", l));
    const client = clientFor(url, kind);
    await client.start();
    const [error] = await reported;
    expect(error.code).toBe("capability_missing");
    // The process is alive and the agent still talks to the server.
    const updated = firstEvent<[Agent, readonly string[]]>((l) => server.on("agentUpdated", l));
    client.setAgentDescription({ identifying: { "service.name": "dx-agent-2" } });
    const [agent] = await updated;
    expect(agent.agentDescription?.identifyingAttributes[0]?.value?.value).toEqual({
      case: "stringValue",
      value: "dx-agent-2",
    });
  });

  it("reports an async client listener's rejection on the client's `error` (hook_failed)", async () => {
    const { url } = await startServer();
    const client = clientFor(url, kind);
    client.on("connect", async () => {
      await Promise.resolve();
      throw new Error("connect listener failed");
    });
    const reported = firstEvent<[OpampError]>((l) => client.on("error", l));
    await client.start();
    const [error] = await reported;
    expect(error).toMatchObject({ code: "hook_failed", message: "connect listener failed" });
    expect(client.state.status).toBe("connected");
  });

  it("logs an `error` nobody listens to as a warning through the given logger", async () => {
    const serverLines: Line[] = [];
    const { server, url } = await startServer({ logger: memoryLogger(serverLines) });
    server.on("agentConnected", () => {
      throw new Error("listener bug");
    });
    const clientLines: Line[] = [];
    const client = clientFor(url, kind, memoryLogger(clientLines));
    client.on("connect", () => {
      throw new Error("client listener bug");
    });
    await client.start();
    await client.whenConnected();
    await expect
      .poll(() => serverLines.filter((l) => l.level === "warn").map((l) => l.message))
      .toEqual([expect.stringContaining("listener bug")]);
    await expect
      .poll(() => clientLines.filter((l) => l.level === "warn").map((l) => l.message))
      .toEqual([expect.stringContaining("client listener bug")]);
    expect(serverLines.find((l) => l.level === "warn")?.fields).toMatchObject({
      component: "opamp-server",
      code: "hook_failed",
    });
    // Connection changes are logged too, with the client's component.
    expect(clientLines).toContainEqual(
      expect.objectContaining({
        level: "info",
        message: "connected",
        fields: expect.objectContaining({ component: "opamp-client" }),
      }),
    );
  });

  it("whenConnected() resolves once connected, at once afterwards, and rejects when stopped first", async () => {
    const { url } = await startServer();
    const client = clientFor(url, kind);
    expect(client.state).toMatchObject({ status: "idle", t: "idle" });
    const connected = client.whenConnected();
    await client.start();
    await connected;
    expect(client.state.status).toBe("connected");
    await client.whenConnected();

    const unreachable = clientFor("http://127.0.0.1:9/v1/opamp", kind);
    await unreachable.start();
    const waiting = unreachable.whenConnected();
    await unreachable.stop();
    await expect(waiting).rejects.toMatchObject({ code: "not_running" });
    await expect(unreachable.whenConnected()).rejects.toMatchObject({ code: "not_running" });
    const never = clientFor("http://127.0.0.1:9/v1/opamp", kind);
    await expect(never.whenConnected({ signal: AbortSignal.abort() })).rejects.toMatchObject({ code: "aborted" });
  });
});
