// Helpers for the agent-api example's tests: agent-api on PGlite or on a fresh PostgreSQL
// database, a REST client with the admin token, "psql" (a connection of its own), and the
// Collector's opampsupervisor with the seed's config.

import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SqlDatabase } from "../../src/storage/postgres/index.js";
import { COLLECTOR_TEST_ARGS, type CollectorStack } from "../interop/collector-stack.js";
import { startProcess } from "../interop/processes.js";
import { supervisorConfigYaml } from "../interop/supervisor-config.js";
import { freshPostgres, pglite, pgPool } from "../support/postgres.js";

export const ADMIN_TOKEN = "test-admin-token-0123456789";
export const KEK = Buffer.alloc(32, 7);

/** What startAgentApi returns (examples/agent-api/app.mjs is JavaScript). */
export interface AgentApi {
  readonly url: string;
  readonly opampUrl: string;
  readonly port: number;
  readonly replicaId: string;
  readonly db: SqlDatabase;
  readonly server: import("../../src/server/index.js").OpAMPServer;
  stop(): Promise<void>;
}

export type StartAgentApi = (options: Record<string, unknown>) => Promise<AgentApi>;

export async function loadApp(): Promise<StartAgentApi> {
  // @ts-expect-error JavaScript module without types
  const mod = (await import("../../examples/agent-api/app.mjs")) as { startAgentApi: StartAgentApi };
  return mod.startAgentApi;
}

/** A database for one test: PGlite in this process, or a fresh PostgreSQL database. */
export interface TestDatabase {
  readonly kind: "PGlite" | "PostgreSQL";
  /** PostgreSQL only: the URL replicas connect to. */
  readonly url: string | undefined;
  /** The database agent-api runs on in this process (PGlite: the only one there is). */
  readonly db: SqlDatabase;
  /** Another connection, as psql would be (PGlite: the same instance). */
  readonly psql: SqlDatabase;
  close(): Promise<void>;
}

export async function testDatabase(kind: "PGlite" | "PostgreSQL", serverUrl?: string): Promise<TestDatabase> {
  if (kind === "PGlite") {
    const db = await pglite();
    return { kind, url: undefined, db, psql: db, close: () => db.close() };
  }
  const fresh = await freshPostgres(serverUrl!);
  const db = pgPool(fresh.url, 10);
  const psql = pgPool(fresh.url, 1);
  return {
    kind,
    url: fresh.url,
    db,
    psql,
    async close() {
      await db.close();
      await psql.close();
      await fresh.drop();
    },
  };
}

/** Calls the REST API as the admin. */
export function restClient(baseUrl: string, token = ADMIN_TOKEN) {
  return async function call<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${baseUrl}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (!res.ok) throw Object.assign(new Error(`${method} ${path}: ${res.status} ${text}`), { status: res.status });
    return (text === "" ? undefined : JSON.parse(text)) as T;
  };
}

/** An org, a fleet token with labels, a template with one revision, and an assignment of it. */
export async function setUpOrg(
  call: ReturnType<typeof restClient>,
  options: { name: string; labels: Record<string, string>; body: string; selector: string },
) {
  const org = await call<{ id: string }>("POST", "/orgs", { name: options.name });
  const token = await call<{ token: string }>("POST", `/orgs/${org.id}/enrollment-tokens`, { labels: options.labels });
  const template = await call<{ id: string; revision: { id: string } }>("POST", `/orgs/${org.id}/templates`, {
    name: "collector",
    body: options.body,
  });
  const assignment = await call<{ id: string }>("POST", `/orgs/${org.id}/assignments`, {
    selector: options.selector,
    revision_id: template.revision.id,
  });
  return { org, token: token.token, template, assignment };
}

/** A Collector config the Collector accepts; `exporter` another type to make one it rejects. */
export function collectorConfig(
  options: { exporter?: string; batchTimeout?: string; resource?: Record<string, string> } = {},
): string {
  const exporter = options.exporter ?? "debug";
  return `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:0
processors:
  batch: ${options.batchTimeout === undefined ? "{}" : `{ timeout: ${options.batchTimeout} }`}
exporters:
  ${exporter}:
    verbosity: basic
service:
  telemetry:
    metrics:
      level: none${Object.entries(options.resource ?? {})
        .map(([k, v], i) => `${i === 0 ? "\n    resource:" : ""}\n      ${k}: "${v}"`)
        .join("")}
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [${exporter}]
`;
}

/**
 * The seed's supervisor config (test/interop/supervisor-config.ts), with the test's endpoint,
 * token, Collector and storage, plus what the tests need: accepts_opamp_connection_settings
 * (enrollment), validate_config (a config the Collector rejects fails with its own message),
 * the Collector arguments that let several Collectors run at once, and a bootstrap timeout
 * for a loaded machine.
 */
export function seedSupervisorConfig(o: { endpoint: string; token: string; collector: string; storage: string }) {
  return supervisorConfigYaml({
    endpoint: o.endpoint,
    enrollmentToken: o.token,
    collector: o.collector,
    storageDir: o.storage,
    capabilities: { accepts_opamp_connection_settings: true },
    agent: { validate_config: true, bootstrap_timeout: "30s", args: COLLECTOR_TEST_ARGS },
  });
}

export interface Supervisor {
  readonly output: () => string;
  kill(): Promise<void>;
}

/** Starts the supervisor in a process group of its own (killed with its Collector). */
export async function startSupervisor(
  stack: CollectorStack,
  endpoint: string,
  token: string,
  hostname: string,
): Promise<Supervisor> {
  const dir = await mkdtemp(join(tmpdir(), "agent-api-supervisor-"));
  const storage = join(dir, "storage");
  const config = join(dir, "supervisor.yaml");
  await writeFile(config, seedSupervisorConfig({ endpoint, token, collector: stack.collector, storage }));
  const sup = startProcess("opampsupervisor", stack.supervisor, ["--config", config], {
    env: { ...process.env, HOSTNAME: hostname },
  });
  return {
    output: () => sup.output(),
    async kill() {
      sup.killGroup();
      await sup.exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Waits until `check` returns a value, looking every 100 ms (database rows give no event). */
export async function until<T>(what: string, check: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const CHROMIUM = [process.env.CHROMIUM_PATH ?? "", "/usr/bin/chromium", "/usr/bin/chromium-browser"].find(
  (p) => p !== "" && existsSync(p),
);

/**
 * agent-api's dashboard in headless Chromium, logged in with the admin token. Undefined when
 * Chromium or playwright-core is missing (test/browser fails for that under CI=true).
 */
export async function openDashboard(
  baseUrl: string,
): Promise<{ page: import("playwright-core").Page; close(): Promise<void> } | undefined> {
  const playwright = await import("playwright-core").catch(() => undefined);
  if (CHROMIUM === undefined || playwright === undefined) return undefined;
  const browser = await playwright.chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  const page = await browser.newPage();
  await page.goto(`${baseUrl}/#token=${encodeURIComponent(ADMIN_TOKEN)}`);
  await page.waitForSelector('#live[data-state="open"]');
  return { page, close: () => browser.close() };
}
