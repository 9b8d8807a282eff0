// agent-api end to end with the real Collector: the Collector's opampsupervisor v0.149.0 with
// the seed's supervisor config enrolls with a fleet token, gets a key, gets the config its
// labels select, and the seed's psql exercises show it `applied`. Then a revision changed by
// hand in the database is pushed on `NOTIFY agent_config_changed`, a revision the Collector
// rejects ends `failed` with the Collector's own error, and assigning the earlier revision
// again (a rollback) is applied. On PostgreSQL and on PGlite.

import { readFileSync } from "node:fs";
import { beforeAll, describe, it } from "vitest";
import {
  type CollectorStack,
  collectorStack,
  describeWithCollector,
  STACK_BUILD_TIMEOUT_MS,
} from "../interop/collector-stack.js";
import { postgresUrl } from "../support/postgres.js";
import {
  ADMIN_TOKEN,
  collectorConfig,
  KEK,
  loadApp,
  openDashboard,
  restClient,
  setUpOrg,
  startSupervisor,
  testDatabase,
  until,
} from "./agent-api-harness.js";

const EXERCISES = readFileSync(new URL("../../examples/agent-api/exercises.sql", import.meta.url), "utf8");
/** The exercises, one statement each, comments dropped. */
const STATEMENTS = EXERCISES.split(";")
  .map((s) =>
    s
      .split("\n")
      .filter((l) => !l.trim().startsWith("--"))
      .join("\n")
      .trim(),
  )
  .filter((s) => s !== "");

type Kind = "PGlite" | "PostgreSQL";
// The seed's config speaks WebSocket; the Collector's supervisor polls over HTTP when its
// endpoint is http://, and that run goes on the real server when there is one.
const withPostgres = postgresUrl() !== undefined || process.env.CI === "true";
const cases: [Kind, "WebSocket" | "HTTP"][] = withPostgres
  ? [
      ["PGlite", "WebSocket"],
      ["PostgreSQL", "WebSocket"],
      ["PostgreSQL", "HTTP"],
    ]
  : [
      ["PGlite", "WebSocket"],
      ["PGlite", "HTTP"],
    ];

describeWithCollector("agent-api with the Collector's opampsupervisor (seed config)", () => {
  let stack: CollectorStack;
  beforeAll(async () => {
    stack = await collectorStack();
  }, STACK_BUILD_TIMEOUT_MS);

  describe.concurrent.each(cases)("on %s over %s", (kind, transport) => {
    it("enrolls, applies its config, follows NOTIFY, fails a bad revision with the Collector's error, rolls back", {
      timeout: 240_000,
    }, async ({ expect, onTestFinished }) => {
      // The cases run at once: each test cleans up its own.
      const cleanups: (() => Promise<void>)[] = [];
      onTestFinished(async () => {
        for (const c of cleanups.reverse()) await c().catch(() => undefined);
      });
      const url = postgresUrl();
      if (kind === "PostgreSQL" && url === undefined) throw new Error("CI is set and PostgreSQL is missing");
      const database = await testDatabase(kind, url);
      cleanups.push(() => database.close());
      const startAgentApi = await loadApp();
      const app = await startAgentApi({
        db: database.db,
        port: 0,
        host: "127.0.0.1",
        adminToken: ADMIN_TOKEN,
        kek: KEK,
        heartbeatIntervalSeconds: 5,
        log: () => undefined,
      });
      cleanups.push(() => app.stop());
      const call = restClient(app.url);
      const { org, token, template, assignment } = await setUpOrg(call, {
        name: `acme-${kind}-${transport}`,
        labels: { env: "prod", region: "eu" },
        selector: "env=prod,region in (eu,us)",
        // Rendered per agent: its label and its host name end up in the Collector's config.
        body: collectorConfig({ resource: { region: "${label:region}", agent: "${agent:name}" } }),
      });
      const hostname = `collector-${kind.toLowerCase()}-${transport.toLowerCase()}`;
      const endpoint = transport === "WebSocket" ? app.opampUrl.replace(/^http/, "ws") : app.opampUrl;
      const supervisor = await startSupervisor(stack, endpoint, token, hostname);
      cleanups.push(() => supervisor.kill());
      const psql = (sql: string) =>
        database.psql.query<Record<string, unknown>>(sql.replaceAll(":'org_id'", `'${org.id}'`)).then((r) => r.rows);
      const deliveries = () => psql(STATEMENTS[1]!);
      const newest = async (revision: number, status: string) => {
        const rows = await deliveries();
        const row = rows.find((r) => r.config_revision === revision);
        return row?.status === status ? row : undefined;
      };

      // Enrolled with the fleet token, then on a key of its own; config rendered and applied.
      const applied = await until("revision 1 applied", () => newest(1, "applied"), 120_000).catch((e) => {
        throw new Error(`${e.message}\n--- supervisor output ---\n${supervisor.output().slice(-4000)}`);
      });
      expect(applied.applied_at).not.toBeNull();
      const agents = await psql(STATEMENTS[0]!);
      expect(agents).toHaveLength(1);
      expect(agents[0]).toMatchObject({ org_id: org.id, labels: { env: "prod", region: "eu" }, status: "online" });
      const agentId = agents[0]!.id as string;
      const keys = await psql(`SELECT first_used_at, revoked_at FROM agent_keys WHERE agent_id = '${agentId}'`);
      expect(keys.filter((k) => k.first_used_at !== null && k.revoked_at === null)).toHaveLength(1);
      const detail = await call<{ name: string; effective_config: string }>("GET", `/agents/${agentId}`);
      expect(detail.name).toBe(hostname);
      // The effective config the Collector reports holds the rendered template.
      await until("the rendered config in the effective config", async () => {
        const a = await call<{ effective_config: string | null }>("GET", `/agents/${agentId}`);
        const config = a.effective_config ?? "";
        return /region: "?eu"?/.test(config) && config.includes(hostname) ? a : undefined;
      });
      const health = await until("health reported", async () => {
        const rows = await psql(STATEMENTS[2]!);
        return rows[0]?.healthy === "true" ? rows[0] : undefined;
      });
      expect(health.name).toBe(hostname);

      // By hand, as an operator with psql would: a new revision, assigned, then NOTIFY.
      const [rev2] = await psql(
        `INSERT INTO config_revisions (template_id, revision, body)
         VALUES ('${template.id}', 2, '${collectorConfig({ batchTimeout: "2s" })}') RETURNING id`,
      );
      await psql(
        `UPDATE config_assignments SET revision_id = '${rev2!.id}', updated_at = now() WHERE id = '${assignment.id}'`,
      );
      await psql(STATEMENTS[3]!);
      await until("revision 2 applied after NOTIFY", () => newest(2, "applied"), 90_000);

      // A revision the Collector rejects: failed, with the Collector's own words.
      const rev3 = await call<{ id: string }>("POST", `/templates/${template.id}/revisions`, {
        body: collectorConfig({ exporter: "nonexistent" }),
      });
      await call("PATCH", `/assignments/${assignment.id}`, { revision_id: rev3.id });
      const failed = await until("revision 3 failed", () => newest(3, "failed"), 90_000);
      expect(failed.error).toMatch(/nonexistent/);
      expect(failed.error).toMatch(/unknown type|validation/);

      // The dashboard shows it: the agent with the failed revision and the Collector's error.
      const dashboard = await openDashboard(app.url);
      if (dashboard !== undefined) cleanups.push(() => dashboard.close());
      const page = dashboard?.page;
      const row = page?.locator(`tr[data-agent-id="${agentId}"]`);
      if (page !== undefined && row !== undefined) {
        await row.and(page.locator('[data-config-status="failed"][data-status="online"]')).waitFor();
        expect(await row.textContent()).toContain(hostname);
        await row.click();
        await page.locator("#deliveries", { hasText: "nonexistent" }).waitFor();
        await page.locator("#effective-config", { hasText: hostname }).waitFor();
      }

      // Rollback: assign revision 2 again.
      await call("PATCH", `/assignments/${assignment.id}`, { revision_id: rev2!.id });
      await until(
        "revision 2 applied again",
        async () => {
          const rows = await deliveries();
          return rows[0]?.config_revision === 2 && rows[0]?.status === "applied" ? rows[0] : undefined;
        },
        90_000,
      );
      const history = (await deliveries()).map((r) => `${r.config_revision}:${r.status}`);
      expect(history).toEqual(["2:applied", "3:failed", "2:applied", "1:applied"]);
      // … and follows the rollback live.
      if (page !== undefined && row !== undefined) {
        await row.and(page.locator('[data-config-status="applied"]', { hasText: "r2 applied" })).waitFor();
        await page.locator('#deliveries tr[data-status="failed"]').waitFor();
      }
    });
  });
});
