#!/usr/bin/env node

// npm run demo:agent-api — agent-api on an in-memory PGlite with a few simulated agents
// (opamp-sdk's own OpAMPClient, over WebSocket and HTTP polling). They enroll with a fleet
// token, get their own keys, get the config their labels select, and the deliveries reach
// `applied`; then revision 2 rolls out and is rolled back. Pass --keep to leave it running
// and open the dashboard (the URL is printed).

import { configMap } from "opamp-sdk";
import { OpAMPClient } from "opamp-sdk/client";
import { startAgentApi } from "./app.mjs";

const keep = process.argv.includes("--keep");
const adminToken = "demo-admin-token-0123456789";
const app = await startAgentApi({
  port: keep ? Number(process.env.PORT ?? 8082) : 0,
  host: "127.0.0.1",
  adminToken,
  kek: Buffer.alloc(32, 42),
  heartbeatIntervalSeconds: 1,
  log: () => undefined,
});

async function api(method, path, body) {
  const res = await fetch(`${app.url}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return res.status === 204 ? undefined : res.json();
}

// An org, a fleet token for production agents in the EU, a secret, a template, an assignment.
const org = await api("POST", "/orgs", { name: "acme" });
const { token } = await api("POST", `/orgs/${org.id}/enrollment-tokens`, { labels: { env: "prod", region: "eu" } });
await api("PUT", `/orgs/${org.id}/secrets/backend_token`, { value: "demo-secret" });
const template = await api("POST", `/orgs/${org.id}/templates`, {
  name: "edge-collector",
  body: `exporters:
  otlphttp:
    endpoint: https://otlp.\${label:region}.example.com
    headers: { authorization: "Bearer \${secret:backend_token}" }
service:
  telemetry:
    resource: { host: "\${agent:name}" }
`,
});
const assignment = await api("POST", `/orgs/${org.id}/assignments`, {
  selector: "env=prod,region in (eu,us)",
  revision_id: template.revision.id,
});

// The simulated agents.
const agents = ["edge-1", "edge-2", "edge-3", "edge-4"].map((name, i) => {
  let effective = configMap({});
  const client = new OpAMPClient({
    transport: {
      url: app.opampUrl.replace(/^http/, i % 2 === 0 ? "ws" : "http"),
      headers: { Authorization: `Bearer ${token}` },
      heartbeatIntervalMs: 500,
    },
    agent: {
      description: {
        identifyingAttributes: [{ key: "service.name", value: { value: { case: "stringValue", value: "otelcol" } } }],
        nonIdentifyingAttributes: [{ key: "host.name", value: { value: { case: "stringValue", value: name } } }],
      },
      health: { healthy: true, status: "StatusOK" },
      capabilities: { reportsHealth: true, reportsEffectiveConfig: true },
    },
    hooks: {
      onOpampConnectionSettings: async () => true, // takes its xag_ key
      onRemoteConfig: async ({ config }) => {
        effective = config;
        return { status: "applied" };
      },
      getEffectiveConfig: async () => effective,
    },
  });
  return client;
});
for (const a of agents) await a.start();

async function waitForApplied(revision) {
  const end = Date.now() + 30_000;
  for (;;) {
    const list = await api("GET", "/agents");
    if (
      list.length === agents.length &&
      list.every((a) => a.config_status === "applied" && a.config_revision === revision)
    ) {
      return list;
    }
    if (Date.now() > end) throw new Error(`revision ${revision} did not reach applied: ${JSON.stringify(list)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function table(rows) {
  for (const r of rows) {
    console.log(
      `  ${r.agent_name.padEnd(7)} r${r.config_revision}  ${r.status.padEnd(8)} offered ${r.offered_at.slice(11, 23)}  applied ${r.applied_at?.slice(11, 23) ?? "-"}`,
    );
  }
}

await waitForApplied(1);
console.log(`${agents.length} agents enrolled (2 over WebSocket, 2 over HTTP) and applied revision 1:`);
table(await api("GET", "/deliveries"));

const rev2 = await api("POST", `/templates/${template.id}/revisions`, {
  body: `exporters:\n  debug: {}\nservice:\n  telemetry:\n    resource: { host: "\${agent:name}", revision: "2" }\n`,
});
await api("PATCH", `/assignments/${assignment.id}`, { revision_id: rev2.id });
await waitForApplied(2);
console.log("revision 2 rolled out: every delivery applied");
await api("PATCH", `/assignments/${assignment.id}`, { revision_id: template.revision.id });
await waitForApplied(1);
console.log("rolled back to revision 1: every delivery applied");
table((await api("GET", "/deliveries")).slice(0, agents.length));

if (keep) {
  console.log(`dashboard: ${app.url}/#token=${adminToken}  (Ctrl-C to stop)`);
  process.once("SIGINT", async () => {
    for (const a of agents) await a.stop();
    await app.stop();
    process.exit(0);
  });
} else {
  for (const a of agents) await a.stop();
  await app.stop();
}
