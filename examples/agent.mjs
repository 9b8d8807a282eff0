// A minimal OpAMP agent: connects, reports its description and health, applies remote
// config (keeping it as its effective config) and stops cleanly on Ctrl-C.
//
//   npm run build
//   OPAMP_URL=ws://127.0.0.1:4320/v1/opamp node examples/agent.mjs
//
// OPAMP_URL may be ws(s):// (WebSocket) or http(s):// (HTTP polling).
// OPAMP_TOKEN, if set, is sent as "Authorization: Bearer <token>".
import { hostname } from "node:os";
import { agentDescription, configMap } from "opamp-sdk";
import { OpAMPClient } from "opamp-sdk/client";

const url = process.env.OPAMP_URL ?? "ws://127.0.0.1:4320/v1/opamp";
const token = process.env.OPAMP_TOKEN;
const started = BigInt(Date.now()) * 1_000_000n;

// What the agent runs with: a local default until the server sends something.
let effective = configMap({ "agent.yaml": { body: "log_level: info\n", contentType: "text/yaml" } });

const client = new OpAMPClient({
  transport: { url, ...(token ? { headers: { Authorization: `Bearer ${token}` } } : {}) },
  agent: {
    description: agentDescription({
      identifying: { "service.name": "example-agent", "service.instance.id": hostname() },
      nonIdentifying: { "os.type": process.platform, "host.name": hostname() },
    }),
    health: { healthy: true, startTimeUnixNano: started, status: "running" },
  },
  hooks: {
    // Declares AcceptsRemoteConfig: called once per new config hash.
    async onRemoteConfig({ config, hash }) {
      const files = Object.keys(config.configMap);
      if (files.length === 0) return { status: "failed", errorMessage: "empty config" };
      for (const name of files) {
        const body = new TextDecoder().decode(config.configMap[name].body);
        console.log(`--- ${name} (hash ${Buffer.from(hash).toString("hex").slice(0, 12)}) ---\n${body}`);
      }
      effective = config;
      return { status: "applied" };
    },
    // Declares ReportsEffectiveConfig: called at start, after each config and on request.
    async getEffectiveConfig() {
      return effective;
    },
    async onRestart() {
      console.log("the server asked for a restart (ignored by this example)");
    },
  },
});

client.on("connect", () => console.log(`connected to ${url}`));
client.on("connectFailed", (error) => console.log(`connect failed: ${error.code}: ${error.message}`));
client.on("disconnect", (error) => console.log(`disconnected: ${error.message}`));
client.on("error", (error) => console.log(`error: ${error.code}: ${error.message}`));
client.on("remoteConfigStatus", (status) => console.log(`remote config status: ${status.status}`));

await client.start();
console.log(`agent ${Buffer.from(client.instanceUid).toString("hex")} started`);

let stopping = false;
process.on("SIGINT", async () => {
  if (stopping) return;
  stopping = true;
  await client.stop(); // sends agent_disconnect, then closes
  console.log("stopped");
});
