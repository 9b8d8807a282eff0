// agent-api's dashboard in headless Chromium: the fleet table shows each agent's health and
// config status, the detail shows its description, effective config and delivery history,
// and both follow the fleet live over server-sent events (no reload): a new revision
// reaching `applied`, a failed one with the agent's error, a health change.

import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OpAMPClient } from "../../src/client/index.js";
import { configMap } from "../../src/wire/index.js";
import {
  ADMIN_TOKEN,
  type AgentApi,
  KEK,
  loadApp,
  restClient,
  setUpOrg,
  testDatabase,
  until,
} from "../examples/agent-api-harness.js";

const chromiumPath = [process.env.CHROMIUM_PATH ?? "", "/usr/bin/chromium", "/usr/bin/chromium-browser"].find(
  (p) => p !== "" && existsSync(p),
);
const playwright = await import("playwright-core").catch(() => undefined);
const canRun = chromiumPath !== undefined && playwright !== undefined;
if (!canRun && process.env.CI === "true") {
  describe("agent-api dashboard (headless Chromium)", () => {
    it("has Chromium and playwright-core", () => {
      throw new Error("Chromium or playwright-core is missing; CI is set, so this fails instead of skipping");
    });
  });
} else if (!canRun) console.warn("SKIPPED agent-api dashboard: needs Chromium and playwright-core");

function agent(app: AgentApi, token: string, name: string, scheme: "ws" | "http", fail: boolean): OpAMPClient {
  let effective = configMap({ "collector.yaml": "receivers: {}\n" });
  return new OpAMPClient({
    transport: {
      url: app.opampUrl.replace(/^http/, scheme),
      headers: { Authorization: `Bearer ${token}` },
      heartbeatIntervalMs: 300,
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
      onOpampConnectionSettings: async () => true,
      onRemoteConfig: async ({ config }) => {
        if (fail) return { status: "failed", errorMessage: `${name} refuses this config` };
        effective = config;
        return { status: "applied" };
      },
      getEffectiveConfig: async () => effective,
    },
  });
}

describe.skipIf(!canRun)("agent-api dashboard (headless Chromium)", () => {
  let app: AgentApi;
  let close: () => Promise<void>;
  const clients: OpAMPClient[] = [];
  let browser: import("playwright-core").Browser;

  beforeAll(async () => {
    const database = await testDatabase("PGlite");
    const startAgentApi = await loadApp();
    app = await startAgentApi({
      db: database.db,
      port: 0,
      host: "127.0.0.1",
      adminToken: ADMIN_TOKEN,
      kek: KEK,
      heartbeatIntervalSeconds: 1,
      log: () => undefined,
    });
    close = async () => {
      await app.stop();
      await database.close();
    };
    browser = await playwright!.chromium.launch({ executablePath: chromiumPath!, args: ["--no-sandbox"] });
  }, 60_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.stop()));
    await browser?.close();
    await close?.();
  });

  it("shows the fleet, an agent's detail, and follows changes live", { timeout: 90_000 }, async () => {
    const call = restClient(app.url);
    const { token, template, assignment } = await setUpOrg(call, {
      name: "dashboard",
      labels: { env: "prod" },
      selector: "env=prod",
      body: "receivers: {}\n# ${agent:name}\n",
    });
    const good = agent(app, token, "edge-1", "ws", false);
    const bad = agent(app, token, "edge-2", "http", true);
    clients.push(good, bad);
    await good.start();
    await bad.start();
    const rows = await until("both agents with a config status", async () => {
      const list = await call<{ id: string; name: string; config_status: string | null }[]>("GET", "/agents");
      return list.length === 2 && list.every((a) => a.config_status === "applied" || a.config_status === "failed")
        ? list
        : undefined;
    });
    const goodId = rows.find((r) => r.name === "edge-1")!.id;
    const badId = rows.find((r) => r.name === "edge-2")!.id;

    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(`${app.url}/#token=${encodeURIComponent(ADMIN_TOKEN)}`);
    await page.waitForSelector('#live[data-state="open"]');
    const row = (id: string) => page.locator(`tr[data-agent-id="${id}"]`);
    await row(goodId).and(page.locator('[data-config-status="applied"][data-health="healthy"]')).waitFor();
    await row(badId).and(page.locator('[data-config-status="failed"]')).waitFor();
    expect(await row(goodId).textContent()).toContain("edge-1");
    expect(await row(goodId).textContent()).toContain("env=prod");
    expect(await row(goodId).textContent()).toContain("r1 applied");
    expect(await page.locator("#count").textContent()).toBe("2 online / 2");

    // Detail: description, effective config, deliveries with the agent's error.
    await row(badId).click();
    await page.waitForSelector(`#detail[data-agent-id="${badId}"]`);
    expect(await page.locator("#description").textContent()).toContain("host.name");
    expect(await page.locator("#deliveries").textContent()).toContain("edge-2 refuses this config");
    await row(goodId).click();
    await page.waitForSelector(`#detail[data-agent-id="${goodId}"]`);
    await page.locator("#effective-config", { hasText: "# edge-1" }).waitFor();

    // Live: a new revision is assigned; the page follows without a reload.
    const reloads: string[] = [];
    page.on("framenavigated", (f) => reloads.push(f.url()));
    const rev2 = await call<{ id: string }>("POST", `/templates/${template.id}/revisions`, {
      body: "receivers: {}\n# revision 2 for ${agent:name}\n",
    });
    await call("PATCH", `/assignments/${assignment.id}`, { revision_id: rev2.id });
    await row(goodId)
      .and(page.locator('[data-config-status="applied"]', { hasText: "r2 applied" }))
      .waitFor();
    await page.locator("#effective-config", { hasText: "# revision 2 for edge-1" }).waitFor();
    await page.locator('#deliveries tr[data-status="applied"]').nth(1).waitFor();

    // Live: health.
    good.setHealth({ healthy: false, status: "StatusRecoverableError", lastError: "exporter queue full" });
    await row(goodId).and(page.locator('[data-health="unhealthy"]')).waitFor();
    await page.locator("#detail", { hasText: "exporter queue full" }).waitFor();

    // Live: an agent going offline.
    await bad.stop();
    await page.locator(`tr[data-agent-id="${badId}"][data-status="offline"]`).waitFor({ timeout: 20_000 });
    expect(reloads).toEqual([]);
    await page.screenshot({ path: ".tmp/agent-api-dashboard.png", fullPage: true });
    expect(pageErrors).toEqual([]);

    // Without the token the API and the stream refuse.
    const anonymous = await fetch(`${app.url}/api/v1/agents`);
    expect(anonymous.status).toBe(401);
    expect((await fetch(`${app.url}/api/v1/events?access_token=wrong`)).status).toBe(401);
  });
});
