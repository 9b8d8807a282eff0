// A gateway between agents and a server, all in one process: an OpAMPServer that knows
// each agent's token, an OpAMPGateway relaying over two upstream WebSockets with the
// agents' authentication delegated to the server, and two agents behind the gateway (one
// over WebSocket, one over HTTP polling) that apply a pushed config.
//
//   npm run build && node examples/gateway.mjs
//
// In production the three run apart: `opamp-gateway --config gateway.yaml` for the
// gateway (docs/gateway.md), agents pointed at the gateway's URL.

import { agentDescription } from "opamp-sdk";
import { OpAMPClient } from "opamp-sdk/client";
import { OpAMPGateway } from "opamp-sdk/gateway";
import { OpAMPServer } from "opamp-sdk/server";

const TOKENS = { "gw-secret": "gateway", "agent-1": "team-a/agent-1", "agent-2": "team-a/agent-2" };

// 1. The server: one token per agent, and one for the gateway itself.
const server = new OpAMPServer({
  hooks: {
    authenticate: ({ headers, gateway }) => {
      const principal = TOKENS[/^Bearer (.+)$/.exec(headers.authorization ?? "")?.[1] ?? ""];
      if (principal === undefined) return { accept: false, status: 401 };
      // An agent relayed by a gateway is authenticated with its own token, not the gateway's.
      if (gateway !== undefined && principal === "gateway") return { accept: false, status: 403 };
      return { accept: true, principal };
    },
  },
  heartbeat: { intervalSeconds: 1 },
});
const { url: serverUrl } = await server.listen({ port: 0, host: "127.0.0.1" });

// 2. The gateway: two upstream WebSockets, agents' credentials checked by the server.
const gateway = new OpAMPGateway({
  upstream: { url: serverUrl.replace("http", "ws"), headers: { Authorization: "Bearer gw-secret" }, connections: 2 },
});
gateway.on("error", (e) => console.log(`gateway error: ${e.code}: ${e.message}`));
const upstreams = new Promise((resolve) => {
  let open = 0;
  gateway.on("upstreamConnected", () => ++open === 2 && resolve());
});
const { url: gatewayUrl } = await gateway.listen({ port: 0, host: "127.0.0.1" });
await upstreams;
console.log(`server ${serverUrl}, gateway ${gatewayUrl} (2 upstream connections open)`);

// 3. Two agents behind the gateway.
const agents = ["agent-1", "agent-2"].map(
  (token, i) =>
    new OpAMPClient({
      transport: {
        url: gatewayUrl.replace("http", i === 0 ? "ws" : "http"),
        headers: { Authorization: `Bearer ${token}` },
      },
      agent: { description: agentDescription({ identifying: { "service.name": token } }) },
      hooks: {
        onRemoteConfig: async ({ config }) => {
          console.log(`${token} applies ${Object.keys(config.configMap).join(", ")}`);
          return { status: "applied" };
        },
      },
    }),
);
const connected = new Promise((resolve) => {
  let n = 0;
  server.on("agentConnected", (agent) => {
    console.log(`server: ${agent.principal} connected (via the gateway, from ${agent.remoteAddress})`);
    if (++n === 2) resolve();
  });
});
for (const agent of agents) await agent.start();
await connected;

// 4. A config pushed by the server reaches both agents through the gateway.
const appliedBy = new Set();
const applied = new Promise((resolve) => {
  server.on("agentUpdated", (agent) => {
    // RemoteConfigStatuses_APPLIED = 1
    if (agent.remoteConfigStatus?.status !== 1 || appliedBy.has(agent.id)) return;
    appliedBy.add(agent.id);
    console.log(`server: ${agent.principal} reports config APPLIED (relayed by the gateway)`);
    if (appliedBy.size === 2) resolve();
  });
});
await server.setRemoteConfig(() => true, { "collector.yaml": "receivers: {}\n" });
await applied;

const m = gateway.metrics;
console.log(
  `gateway metrics: ${m.messages.upstream} messages up, ${m.messages.downstream} down, ` +
    `${m.connections.upstream} upstream and ${m.connections.downstream} agent connections`,
);

for (const agent of agents) await agent.stop();
await gateway.stop();
await server.stop();
console.log("done: two agents behind one gateway, each authenticated by the server with its own token");
