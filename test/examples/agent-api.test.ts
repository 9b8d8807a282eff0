// agent-api's behaviour with this SDK's OpAMPClient as the agent, over both transports, on
// PGlite: enrollment (xse_ → xag_, digests only, 401 for revoked credentials, re-enrollment
// rotates the key), label selectors and rendering, secrets sealed at rest, rollback, a
// template that cannot be rendered, the REST API's guards and its OpenAPI description.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { OpAMPClient } from "../../src/client/index.js";
import { configMap, newInstanceUid } from "../../src/wire/index.js";
import {
  ADMIN_TOKEN,
  type AgentApi,
  KEK,
  loadApp,
  restClient,
  setUpOrg,
  type TestDatabase,
  testDatabase,
  until,
} from "./agent-api-harness.js";

let app: AgentApi;
let database: TestDatabase;
let call: ReturnType<typeof restClient>;
const clients: OpAMPClient[] = [];

beforeAll(async () => {
  database = await testDatabase("PGlite");
  const startAgentApi = await loadApp();
  app = await startAgentApi({
    db: database.db,
    port: 0,
    host: "127.0.0.1",
    adminToken: ADMIN_TOKEN,
    kek: KEK,
    heartbeatIntervalSeconds: 1,
    // This file presents revoked and unknown credentials on purpose, all from 127.0.0.1:
    // the authentication throttle would turn later tests' agents away with 429.
    limits: { maxAuthFailures: 0 },
    log: () => undefined,
  });
  call = restClient(app.url);
}, 60_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.stop()));
  await app?.stop();
  await database?.close();
});

/** An agent that records the configs it gets and the keys it is offered. */
function agent(scheme: "ws" | "http", token: string, options: { instanceUid?: Uint8Array; name?: string } = {}) {
  const configs: string[] = [];
  const keys: string[] = [];
  let effective = configMap({ "collector.yaml": "" });
  const client = new OpAMPClient({
    transport: {
      url: app.opampUrl.replace(/^http/, scheme),
      headers: { Authorization: `Bearer ${token}` },
      heartbeatIntervalMs: 200,
    },
    agent: {
      ...(options.instanceUid === undefined ? {} : { instanceUid: options.instanceUid }),
      description: {
        identifyingAttributes: [{ key: "service.name", value: { value: { case: "stringValue", value: "otelcol" } } }],
        nonIdentifyingAttributes: [
          { key: "host.name", value: { value: { case: "stringValue", value: options.name ?? "host" } } },
        ],
      },
      capabilities: { reportsEffectiveConfig: true },
    },
    hooks: {
      onOpampConnectionSettings: async (offer) => {
        const auth = offer.settings.headers?.headers.find((h) => h.key.toLowerCase() === "authorization");
        if (auth !== undefined) keys.push(auth.value.replace(/^Bearer /, ""));
        return true;
      },
      onRemoteConfig: async ({ config }) => {
        configs.push(new TextDecoder().decode(config.configMap["collector.yaml"]?.body));
        effective = config;
        return { status: "applied" };
      },
      getEffectiveConfig: async () => effective,
    },
  });
  clients.push(client);
  return { client, configs, keys };
}

/** A raw OpAMP POST with a credential: its status (401 for refused credentials). */
async function statusWith(credential: string): Promise<number> {
  const res = await fetch(app.opampUrl, {
    method: "POST",
    headers: { authorization: `Bearer ${credential}`, "content-type": "application/x-protobuf" },
    body: new Uint8Array(0),
  });
  await res.arrayBuffer();
  return res.status;
}

const rows = async <R>(sql: string, params: unknown[] = []) => (await database.psql.query<R>(sql, params)).rows;

describe.each(["ws", "http"] as const)("agent-api over %s", (scheme) => {
  it("enrolls with a fleet token, then speaks with its own key; only digests are stored", async () => {
    const { org, token } = await setUpOrg(call, {
      name: `enroll-${scheme}`,
      labels: { env: "prod" },
      selector: "env=prod",
      body: "# for ${agent:name}\n",
    });
    const a = agent(scheme, token, { name: `enroll-${scheme}` });
    await a.client.start();
    await until("the config", async () => a.configs[0]);
    expect(a.configs[0]).toBe(`# for enroll-${scheme}\n`);
    expect(a.keys).toHaveLength(1);
    const key = a.keys[0]!;
    expect(key).toMatch(/^xag_[0-9a-f-]{36}_/);
    const agentId = key.slice(4, 40);
    const [keyRow] = await rows<{ first_used_at: Date | null; key_hash: Uint8Array }>(
      "SELECT first_used_at, key_hash FROM agent_keys WHERE agent_id = $1",
      [agentId],
    );
    expect(keyRow?.first_used_at).not.toBeNull();
    expect(keyRow?.key_hash.length).toBe(32);
    // No table holds a token or a key in clear.
    const dump =
      JSON.stringify(await rows("SELECT * FROM enrollment_tokens")) +
      JSON.stringify(await rows("SELECT * FROM agent_keys"));
    expect(dump).not.toContain(token.slice(4));
    expect(dump).not.toContain(key.slice(41));
    const [agentRow] = await rows<{ org_id: string; labels: unknown }>(
      "SELECT org_id, labels FROM agents WHERE id = $1",
      [agentId],
    );
    expect(agentRow).toMatchObject({ org_id: org.id, labels: { env: "prod" } });

    // Revoked keys and tokens are refused with 401; a key of another shape too.
    expect(await statusWith(key)).not.toBe(401);
    await call("POST", `/agents/${agentId}/revoke-keys`);
    expect(await statusWith(key)).toBe(401);
    expect(await statusWith(`${key.slice(0, -1)}A`)).toBe(401);
    expect(await statusWith("xag_nonsense")).toBe(401);
    const [tokenRow] = await rows<{ id: string }>("SELECT id FROM enrollment_tokens WHERE org_id = $1", [org.id]);
    expect(await statusWith(token)).not.toBe(401);
    await call("POST", `/enrollment-tokens/${tokenRow!.id}/revoke`);
    expect(await statusWith(token)).toBe(401);
  });

  it("re-enrollment under a known UID (a restarted supervisor) rotates the key; the old one stops working", async () => {
    const { token } = await setUpOrg(call, {
      name: `reenroll-${scheme}`,
      labels: { env: "prod" },
      selector: "env=prod",
      body: "a: 1\n",
    });
    const uid = newInstanceUid();
    const first = agent(scheme, token, { instanceUid: uid });
    await first.client.start();
    await until("the first config", async () => first.configs[0]);
    await first.client.stop();
    // It lost its key (the supervisor keeps no offered headers) and comes back with the token.
    const again = agent(scheme, token, { instanceUid: uid });
    await again.client.start();
    await until("a new key", async () => again.keys[0]);
    const [oldKey, newKey] = [first.keys[0]!, again.keys[0]!];
    expect(newKey).not.toBe(oldKey);
    await until("the new key in use", async () => {
      const r = await rows<{ first_used_at: Date | null }>("SELECT first_used_at FROM agent_keys WHERE key_hash = $1", [
        createHash("sha256").update(newKey).digest(),
      ]);
      return r[0]?.first_used_at ? true : undefined;
    });
    expect(await statusWith(oldKey)).toBe(401);
    expect(await statusWith(newKey)).not.toBe(401);
  });
});

describe("agent-api configs", () => {
  it("selects by labels, renders secrets sealed at rest, rolls back, and fails a template it cannot render", async () => {
    const { org, token, template, assignment } = await setUpOrg(call, {
      name: "configs",
      labels: { env: "staging", region: "eu" },
      selector: "env=prod,region in (eu,us)",
      body: "token: ${secret:otlp_token}\nregion: ${label:region}\n",
    });
    await call("PUT", `/orgs/${org.id}/secrets/otlp_token`, { value: "s3cr3t-value" });
    const sealed = JSON.stringify(await rows("SELECT * FROM secrets"));
    expect(sealed).not.toContain("s3cr3t-value");
    expect(JSON.stringify(await call("GET", `/orgs/${org.id}/secrets`))).not.toContain("s3cr3t-value");

    const a = agent("ws", token);
    await a.client.start();
    const agentId = await until(
      "the agent row",
      async () => (await rows<{ id: string }>("SELECT id FROM agents WHERE org_id = $1", [org.id]))[0]?.id,
    );
    // staging does not match env=prod: nothing is pushed, nothing is recorded.
    await until("the agent on its key", async () => (a.keys.length > 0 ? true : undefined));
    expect((await call<unknown[]>("GET", `/deliveries?agent_id=${agentId}`)).length).toBe(0);
    // Its labels change: it matches now (the change is pushed through NOTIFY).
    await call("PATCH", `/agents/${agentId}`, { labels: { env: "prod", region: "eu" } });
    await until("revision 1", async () => a.configs[0]);
    expect(a.configs[0]).toBe("token: s3cr3t-value\nregion: eu\n");

    const rev2 = await call<{ id: string }>("POST", `/templates/${template.id}/revisions`, { body: "v: 2\n" });
    await call("PATCH", `/assignments/${assignment.id}`, { revision_id: rev2.id });
    await until("revision 2", async () => (a.configs[1] === "v: 2\n" ? true : undefined));
    // Rollback: the earlier revision, assigned again.
    await call("PATCH", `/assignments/${assignment.id}`, { revision_id: template.revision.id });
    await until("revision 1 again", async () => (a.configs[2] === a.configs[0] ? true : undefined));
    await until("rollback applied", async () => {
      const d = await call<{ config_revision: number; status: string }[]>("GET", `/deliveries?agent_id=${agentId}`);
      return d[0]?.config_revision === 1 && d[0].status === "applied" ? d : undefined;
    });

    // A template naming a secret that does not exist: failed here, nothing sent.
    const rev3 = await call<{ id: string }>("POST", `/templates/${template.id}/revisions`, {
      body: "token: ${secret:missing}\n",
    });
    await call("PATCH", `/assignments/${assignment.id}`, { revision_id: rev3.id });
    const failed = await until("the render failure", async () => {
      const d = await call<{ config_revision: number; status: string; error: string }[]>(
        "GET",
        `/deliveries?agent_id=${agentId}`,
      );
      return d[0]?.config_revision === 3 ? d[0] : undefined;
    });
    expect(failed.status).toBe("failed");
    expect(failed.error).toMatch(/^render: .*secret:missing/);
    expect(a.configs).toHaveLength(3);
    // Agents filtered by label, health and config status.
    expect((await call<unknown[]>("GET", `/agents?org_id=${org.id}&label=env=prod&config_status=failed`)).length).toBe(
      1,
    );
    expect((await call<unknown[]>("GET", `/agents?org_id=${org.id}&label=env=staging`)).length).toBe(0);
  });
});

describe("agent-api REST API", () => {
  it("needs the admin token, refuses bad input with 4xx, and serves what openapi.yaml describes", async () => {
    expect((await fetch(`${app.url}/api/v1/orgs`)).status).toBe(401);
    expect((await fetch(`${app.url}/api/v1/orgs`, { headers: { authorization: "Bearer wrong" } })).status).toBe(401);
    const org = await call<{ id: string }>("POST", "/orgs", { name: "rest" });
    await expect(call("POST", "/orgs", { name: "rest" })).rejects.toMatchObject({ status: 409 });
    await expect(call("POST", "/orgs", {})).rejects.toMatchObject({ status: 400 });
    const t = await call<{ revision: { id: string } }>("POST", `/orgs/${org.id}/templates`, { name: "t", body: "x" });
    await expect(
      call("POST", `/orgs/${org.id}/assignments`, { selector: "env in (", revision_id: t.revision.id }),
    ).rejects.toMatchObject({ status: 400 });
    await expect(call("GET", `/agents/${crypto.randomUUID()}`)).rejects.toMatchObject({ status: 404 });
    const tooBig = await fetch(`${app.url}/api/v1/orgs`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "x".repeat(2 * 1024 * 1024) }),
    });
    expect(tooBig.status).toBe(413);

    // Every path and method of openapi.yaml is served (a documented route never hits the router's 404/405).
    const spec = parse(readFileSync(new URL("../../examples/agent-api/openapi.yaml", import.meta.url), "utf8")) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const served = await fetch(`${app.url}/openapi.yaml`);
    expect(served.status).toBe(200);
    for (const [path, methods] of Object.entries(spec.paths)) {
      for (const method of Object.keys(methods).filter((m) => m !== "parameters")) {
        if (path === "/events") continue; // a stream; tested by the dashboard test
        const concrete = path.replace("{id}", crypto.randomUUID()).replace("{name}", "n");
        const res = await fetch(`${app.url}/api/v1${concrete}`, {
          method: method.toUpperCase(),
          headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
          ...(method === "get" || method === "delete" ? {} : { body: "{}" }),
        });
        const body = await res.text();
        expect(res.status === 405 || body.includes('"not found"'), `${method} ${path}: ${res.status} ${body}`).toBe(
          false,
        );
      }
    }
  });
});
