/**
 * Client hooks that throw (issue 15), over both transports with a real client and server:
 * each is reported on the client's `error` as `hook_failed` with the hook's error as
 * `cause`, and where the protocol has a status for it the server sees FAILED with the
 * message. Plain (synchronous) throws and async rejections alike.
 */
import { afterEach, describe, expect, it } from "vitest";
import { OpAMPClient } from "../../../src/client/index.js";
import type { OpampError } from "../../../src/wire/errors.js";
import { startServer, stopAll } from "../server/helpers.js";
import { waitFor } from "../server/test-agent.js";

const clients: OpAMPClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.stop()));
  await stopAll();
});

/** Resolves with the next `error` whose cause has `message`. */
function errorCaused(client: OpAMPClient, message: string): Promise<OpampError> {
  return new Promise((resolve) =>
    client.on("error", (e) => {
      if ((e.cause as Error | undefined)?.message === message) resolve(e);
    }),
  );
}

describe.each(["ws", "http"] as const)("throwing client hooks over %s", (scheme) => {
  it("reports each on `error` as hook_failed, and FAILED to the server where there is a status", async () => {
    const { server, url } = await startServer({ customCapabilities: ["io.x"] });
    let effectiveThrows = false;
    const client = new OpAMPClient({
      // An agent that accepts OpAMP settings is not sent the server's interval: over HTTP
      // its own interval is how soon it sees each push.
      transport: { url: url.replace(/^http/, scheme), heartbeatIntervalMs: scheme === "http" ? 100 : 60_000 },
      agent: {
        description: { identifying: { "service.name": "throwing" } },
        capabilities: { reportsEffectiveConfig: true },
        customCapabilities: ["io.x"],
      },
      hooks: {
        onRemoteConfig: () => {
          throw new Error("sync remote config bug");
        },
        getEffectiveConfig: () => {
          if (effectiveThrows) throw new Error("effective config bug");
          return { "e.yaml": "e: 1" };
        },
        onOpampConnectionSettings: async () => {
          throw new Error("settings bug");
        },
        onRestart: async () => {
          throw new Error("restart bug");
        },
        onCustomMessage: () => {
          throw new Error("custom bug");
        },
      },
    });
    clients.push(client);
    const connected = waitFor(server, "agentConnected");
    await client.start();
    const [agent] = await connected;

    const remoteError = errorCaused(client, "sync remote config bug");
    const failed = waitFor(server, "agentUpdated", (a) => a.remoteConfigState?.status === "failed");
    await server.setRemoteConfig(agent.id, { "c.yaml": "a: 1" });
    expect((await remoteError).code).toBe("hook_failed");
    const [after] = await failed;
    expect(after.remoteConfigState?.errorMessage).toContain("sync remote config bug");

    const settingsError = errorCaused(client, "settings bug");
    const settingsFailed = waitFor(server, "agentUpdated", (a) => a.connectionSettingsState?.status === "failed");
    await server.offerConnectionSettings(agent.id, { opamp: { destinationEndpoint: url } });
    expect((await settingsError).code).toBe("hook_failed");
    expect((await settingsFailed)[0].connectionSettingsState?.errorMessage).toContain("settings bug");

    const restartError = errorCaused(client, "restart bug");
    server.sendRestart(agent.id);
    expect((await restartError).code).toBe("hook_failed");

    const customError = errorCaused(client, "custom bug");
    server.sendCustomMessage(agent.id, { capability: "io.x", type: "t" });
    expect((await customError).code).toBe("hook_failed");

    effectiveThrows = true;
    const effectiveError = errorCaused(client, "effective config bug");
    server.requestFullState(agent.id);
    expect((await effectiveError).code).toBe("hook_failed");

    // Through all of it the client stays connected and the server keeps hearing from it.
    expect(client.state.status).toBe("connected");
    expect(server.getAgent(agent.id)).toBeDefined();
  });
});
