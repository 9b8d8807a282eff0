// The opamp-sdk demo: an OpAMP server and two agents in one process, on loopback.
//
//   npm ci && npm run build && npm run demo
//
// The server (default in-memory store, anonymous access on 127.0.0.1 only) pushes one
// remote config to every agent that connects. One agent speaks WebSocket, the other HTTP
// polling. Each applies the config, reports APPLIED and its new effective config, and the
// server shows the state it reconstructed. Then everything stops cleanly. Exit code 0
// means the whole round trip worked over both transports.

import { agentDescription, configMap, RemoteConfigStatuses } from "opamp-sdk";
import { OpAMPClient } from "opamp-sdk/client";
import { OpAMPServer } from "opamp-sdk/server";

const started = Date.now();
const log = (who, text) => console.log(`${String(Date.now() - started).padStart(5)} ms  ${who.padEnd(10)} ${text}`);
const text = (bytes) => new TextDecoder().decode(bytes);
const statusName = (status) => (RemoteConfigStatuses[status] ?? String(status)).replace("RemoteConfigStatuses_", "");

// --- the server -------------------------------------------------------------------------
const server = new OpAMPServer({ allowAnonymous: true });
const prepared = await server.prepareRemoteConfig({
  "collector.yaml": {
    contentType: "text/yaml",
    body: "receivers:\n  otlp: {}\nexporters:\n  debug: {}\nservice:\n  pipelines:\n    traces: { receivers: [otlp], exporters: [debug] }\n",
  },
});
const hashHex = Buffer.from(prepared.hash).toString("hex").slice(0, 16);

const applied = new Map(); // agent id -> transport
let allApplied;
const done = new Promise((resolve) => {
  allApplied = resolve;
});

server.on("agentConnected", (agent) => {
  log("server", `agent ${agent.id} connected over ${agent.transport}; pushing config ${hashHex}…`);
  server.setRemoteConfig(agent.id, prepared).catch((error) => log("server", `push failed: ${error.code}`));
});
server.on("agentUpdated", (agent, changes) => {
  const status = agent.remoteConfigStatus;
  if (changes.includes("remoteConfigStatus") && status !== undefined) {
    log("server", `agent ${agent.id} reports config ${statusName(status.status)}`);
    if (status.status === RemoteConfigStatuses.RemoteConfigStatuses_APPLIED) {
      applied.set(agent.id, agent.transport);
      if (applied.size === 2) allApplied();
    }
  }
});
server.on("agentDisconnected", (agent, reason) => log("server", `agent ${agent.id} disconnected (${reason})`));
server.on("error", (error) => log("server", `error ${error.code}: ${error.message}`));

const { url } = await server.listen({ port: 0, host: "127.0.0.1" });
log("server", `listening on ${url} (WebSocket and HTTP on one endpoint)`);

// --- two agents -------------------------------------------------------------------------
function agent(name, agentUrl) {
  let effective = configMap({ "collector.yaml": { body: "# local default\n", contentType: "text/yaml" } });
  const client = new OpAMPClient({
    transport: { url: agentUrl },
    agent: {
      description: agentDescription({
        identifying: { "service.name": "io.opentelemetry.collector", "service.instance.id": name },
        nonIdentifying: { "os.type": process.platform },
      }),
    },
    hooks: {
      async onRemoteConfig({ config }) {
        for (const [file, { body }] of Object.entries(config.configMap)) {
          log(name, `applying ${file} (${body.length} bytes)`);
        }
        effective = config;
        return { status: "applied" };
      },
      async getEffectiveConfig() {
        return effective;
      },
    },
  });
  client.on("connect", () => log(name, `connected to ${agentUrl}`));
  client.on("error", (error) => log(name, `error ${error.code}: ${error.message}`));
  return client;
}

const wsAgent = agent("ws-agent", url.replace(/^http/, "ws"));
const httpAgent = agent("http-agent", url);
await Promise.all([wsAgent.start(), httpAgent.start()]);

const timeout = setTimeout(() => {
  console.error("demo: agents did not report APPLIED within 20 s");
  process.exit(1);
}, 20_000);
await done;
clearTimeout(timeout);

// --- what the server knows ----------------------------------------------------------------
console.log("\nWhat the server reconstructed for each agent:");
for (const held of server.agents.values()) {
  const files = Object.entries(held.effectiveConfig?.configMap?.configMap ?? {});
  const [file, content] = files[0] ?? ["(none)", { body: new Uint8Array() }];
  console.log(
    `  ${held.id}  ${held.transport.padEnd(9)}  config ${statusName(held.remoteConfigStatus?.status ?? 0)}` +
      `  effective ${file}: ${JSON.stringify(text(content.body).split("\n")[0])}…`,
  );
}

await Promise.all([wsAgent.stop(), httpAgent.stop()]);
await server.stop();
log("demo", `done: config applied over ${[...applied.values()].sort().join(" and ")}`);
