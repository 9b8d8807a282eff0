// The JSON REST API (described in openapi.yaml), under /api/v1, for an admin holding the
// admin token (`Authorization: Bearer <token>`, compared in constant time). Every change to
// what agents should run ends with `NOTIFY agent_config_changed`, so every replica pushes to
// the agents connected to it.

import { createHash, timingSafeEqual } from "node:crypto";
import { placeholders } from "./render.mjs";
import { parseSelector, SelectorError } from "./selectors.mjs";

/** Largest JSON body the API reads (a template revision fits comfortably). */
export const MAX_BODY_BYTES = 1024 * 1024;

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const UUID = "([0-9a-fA-F-]{36})";
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

function digest(text) {
  return createHash("sha256").update(text).digest();
}

/** True when the request carries the admin token (header, or ?access_token= for EventSource). */
export function isAdmin(req, url, adminDigest) {
  const header = /^Bearer +(\S+)$/i.exec(req.headers.authorization ?? "")?.[1];
  const given = header ?? url.searchParams.get("access_token") ?? "";
  return timingSafeEqual(digest(given), adminDigest);
}

async function readJson(req) {
  if ((req.headers["content-type"] ?? "").split(";")[0].trim() !== "application/json") {
    throw new HttpError(415, "send application/json");
  }
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `bodies are limited to ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  try {
    const value = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("not an object");
    return value;
  } catch {
    throw new HttpError(400, "the body is not a JSON object");
  }
}

function labelsOf(value) {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new HttpError(400, "labels is an object");
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string") throw new HttpError(400, `label ${k} must be a string`);
    parseSelector(`${k}=${v}`); // same rules as selectors
  }
  return value;
}

function checkSelector(text) {
  try {
    parseSelector(text);
  } catch (e) {
    if (e instanceof SelectorError) throw new HttpError(400, `selector: ${e.message}`);
    throw e;
  }
}

/** Builds the API's request handler. Resolves true when it answered the request. */
export function restApi({ db, server, enrollment, secrets, notifyConfigChanged, adminToken }) {
  const adminDigest = digest(adminToken);
  const routes = [];
  const route = (method, pattern, handler) => routes.push({ method, re: new RegExp(`^/api/v1${pattern}$`), handler });
  const one = async (sql, params, what) => {
    const { rows } = await db.query(sql, params);
    if (rows[0] === undefined) throw new HttpError(404, `no such ${what}`);
    return rows[0];
  };

  // Orgs
  route("GET", "/orgs", async () => (await db.query("SELECT id, name, created_at FROM orgs ORDER BY name")).rows);
  route("POST", "/orgs", async ({ body }) => {
    if (typeof body.name !== "string" || body.name.trim() === "") throw new HttpError(400, "name is required");
    const { rows } = await db.query(
      "INSERT INTO orgs (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id, name, created_at",
      [body.name.trim()],
    );
    if (rows[0] === undefined) throw new HttpError(409, "an org with that name exists");
    return [201, rows[0]];
  });

  // Enrollment tokens (the token itself is shown once, at creation)
  route("GET", `/orgs/${UUID}/enrollment-tokens`, async ({ params }) => {
    const { rows } = await db.query(
      `SELECT id, description, labels, created_at, expires_at, revoked_at FROM enrollment_tokens
        WHERE org_id = $1 ORDER BY created_at`,
      [params[0]],
    );
    return rows;
  });
  route("POST", `/orgs/${UUID}/enrollment-tokens`, async ({ params, body }) => {
    await one("SELECT id FROM orgs WHERE id = $1", [params[0]], "org");
    const labels = labelsOf(body.labels);
    const made = await enrollment.createToken(params[0], {
      labels,
      description: typeof body.description === "string" ? body.description : "",
      expiresAt: typeof body.expires_at === "string" ? body.expires_at : null,
    });
    return [201, { id: made.id, token: made.token, labels }];
  });
  route("POST", `/enrollment-tokens/${UUID}/revoke`, async ({ params }) => {
    if (!(await enrollment.revokeToken(params[0]))) throw new HttpError(404, "no such active token");
    return { revoked: true };
  });

  // Agents
  route("GET", "/agents", async ({ url }) => {
    const where = [];
    const values = [];
    const add = (sql, value) => {
      values.push(value);
      where.push(sql.replace("?", `$${values.length}`));
    };
    const q = url.searchParams;
    if (q.get("org_id")) add("a.org_id = ?", q.get("org_id"));
    if (q.get("status")) add("a.status = ?", q.get("status"));
    if (q.get("health") === "healthy") where.push("(a.health->>'healthy')::boolean IS TRUE");
    if (q.get("health") === "unhealthy") where.push("(a.health->>'healthy')::boolean IS NOT TRUE");
    if (q.get("config_status")) add("d.status = ?", q.get("config_status"));
    for (const label of q.getAll("label")) {
      const [k, ...v] = label.split("=");
      add("a.labels @> ?::jsonb", JSON.stringify({ [k]: v.join("=") }));
    }
    const { rows } = await db.query(
      `SELECT a.id, a.org_id, a.name, a.labels, a.health, a.status, a.replica_id, a.last_seen_at, a.created_at,
              d.status AS config_status, d.config_revision, d.error AS config_error
         FROM agents a
         LEFT JOIN LATERAL (SELECT status, config_revision, error FROM agent_config_deliveries
                             WHERE agent_id = a.id ORDER BY id DESC LIMIT 1) d ON true
        ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
        ORDER BY a.created_at`,
      values,
    );
    return rows;
  });
  route("GET", `/agents/${UUID}`, async ({ params }) => {
    const agent = await one(
      `SELECT id, org_id, name, labels, description, health, effective_config, capabilities::text, status, replica_id,
              last_seen_at, created_at FROM agents WHERE id = $1`,
      [params[0].toLowerCase()],
      "agent",
    );
    const deliveries = (
      await db.query(
        `SELECT id, revision_id, config_revision, config_hash, status, offered_at, applying_at, applied_at, failed_at, error
           FROM agent_config_deliveries WHERE agent_id = $1 ORDER BY id DESC LIMIT 50`,
        [agent.id],
      )
    ).rows;
    return { ...agent, deliveries };
  });
  route("PATCH", `/agents/${UUID}`, async ({ params, body }) => {
    const labels = labelsOf(body.labels);
    const row = await one(
      "UPDATE agents SET labels = $2 WHERE id = $1 RETURNING id, org_id, labels",
      [params[0].toLowerCase(), JSON.stringify(labels)],
      "agent",
    );
    await notifyConfigChanged(row.org_id);
    return row;
  });
  route("DELETE", `/agents/${UUID}`, async ({ params }) => {
    await one("DELETE FROM agents WHERE id = $1 RETURNING id", [params[0].toLowerCase()], "agent");
    return [204, undefined];
  });
  route("POST", `/agents/${UUID}/revoke-keys`, async ({ params }) => ({
    revoked: await enrollment.revokeKeys(params[0].toLowerCase()),
  }));
  route("POST", `/agents/${UUID}/restart`, async ({ params }) => {
    // Forwarded to the replica holding the agent when it is not connected here.
    const result = server.sendRestart(params[0].toLowerCase());
    for (const f of result.forwarded) await f.done;
    return { sent: true, via: result.forwarded.length > 0 ? "another replica" : "this replica" };
  });

  // Templates and revisions
  route("GET", `/orgs/${UUID}/templates`, async ({ params }) => {
    const { rows } = await db.query(
      `SELECT t.id, t.name, t.created_at, max(r.revision) AS latest_revision FROM config_templates t
         LEFT JOIN config_revisions r ON r.template_id = t.id WHERE t.org_id = $1 GROUP BY t.id ORDER BY t.name`,
      [params[0]],
    );
    return rows;
  });
  route("POST", `/orgs/${UUID}/templates`, async ({ params, body }) => {
    if (typeof body.name !== "string" || !NAME.test(body.name))
      throw new HttpError(400, "name: letters, digits, . _ -");
    if (typeof body.body !== "string") throw new HttpError(400, "body (the first revision) is required");
    return db.transaction(async (tx) => {
      const t = (
        await tx.query("INSERT INTO config_templates (org_id, name) VALUES ($1, $2) RETURNING id, name", [
          params[0],
          body.name,
        ])
      ).rows[0];
      const r = (
        await tx.query(
          "INSERT INTO config_revisions (template_id, revision, body) VALUES ($1, 1, $2) RETURNING id, revision",
          [t.id, body.body],
        )
      ).rows[0];
      return [201, { ...t, revision: r, placeholders: placeholders(body.body) }];
    });
  });
  route("GET", `/templates/${UUID}/revisions`, async ({ params }) => {
    const { rows } = await db.query(
      "SELECT id, revision, body, created_at FROM config_revisions WHERE template_id = $1 ORDER BY revision",
      [params[0]],
    );
    return rows;
  });
  route("POST", `/templates/${UUID}/revisions`, async ({ params, body }) => {
    if (typeof body.body !== "string") throw new HttpError(400, "body is required");
    await one("SELECT id FROM config_templates WHERE id = $1", [params[0]], "template");
    const { rows } = await db.query(
      `INSERT INTO config_revisions (template_id, revision, body)
       SELECT $1, coalesce(max(revision), 0) + 1, $2 FROM config_revisions WHERE template_id = $1
       RETURNING id, revision, created_at`,
      [params[0], body.body],
    );
    return [201, { ...rows[0], placeholders: placeholders(body.body) }];
  });

  // Assignments (label selector → revision). Rollback: point an assignment at an older revision.
  route("GET", `/orgs/${UUID}/assignments`, async ({ params }) => {
    const { rows } = await db.query(
      `SELECT a.id, a.selector, a.priority, a.revision_id, r.revision, t.name AS template, a.updated_at
         FROM config_assignments a JOIN config_revisions r ON r.id = a.revision_id
         JOIN config_templates t ON t.id = r.template_id
        WHERE a.org_id = $1 ORDER BY a.priority DESC, a.updated_at DESC`,
      [params[0]],
    );
    return rows;
  });
  const revisionOfOrg = async (orgId, revisionId) => {
    if (typeof revisionId !== "string") throw new HttpError(400, "revision_id is required");
    await one(
      `SELECT r.id FROM config_revisions r JOIN config_templates t ON t.id = r.template_id
        WHERE r.id = $1 AND t.org_id = $2`,
      [revisionId, orgId],
      "revision in this org",
    );
  };
  route("POST", `/orgs/${UUID}/assignments`, async ({ params, body }) => {
    const selector = typeof body.selector === "string" ? body.selector : "";
    checkSelector(selector);
    await revisionOfOrg(params[0], body.revision_id);
    const { rows } = await db.query(
      `INSERT INTO config_assignments (org_id, selector, revision_id, priority) VALUES ($1, $2, $3, $4)
       RETURNING id, selector, revision_id, priority`,
      [params[0], selector, body.revision_id, Number.isInteger(body.priority) ? body.priority : 0],
    );
    await notifyConfigChanged(params[0]);
    return [201, rows[0]];
  });
  route("PATCH", `/assignments/${UUID}`, async ({ params, body }) => {
    const current = await one(
      "SELECT org_id, selector, revision_id, priority FROM config_assignments WHERE id = $1",
      [params[0]],
      "assignment",
    );
    const selector = typeof body.selector === "string" ? body.selector : current.selector;
    checkSelector(selector);
    const revisionId = body.revision_id ?? current.revision_id;
    await revisionOfOrg(current.org_id, revisionId);
    const { rows } = await db.query(
      `UPDATE config_assignments SET selector = $2, revision_id = $3, priority = $4, updated_at = now()
        WHERE id = $1 RETURNING id, selector, revision_id, priority`,
      [params[0], selector, revisionId, Number.isInteger(body.priority) ? body.priority : current.priority],
    );
    await notifyConfigChanged(current.org_id);
    return rows[0];
  });
  route("DELETE", `/assignments/${UUID}`, async ({ params }) => {
    const row = await one("DELETE FROM config_assignments WHERE id = $1 RETURNING org_id", [params[0]], "assignment");
    await notifyConfigChanged(row.org_id);
    return [204, undefined];
  });

  // Deliveries
  route("GET", "/deliveries", async ({ url }) => {
    const q = url.searchParams;
    const { rows } = await db.query(
      `SELECT d.id, d.agent_id, a.name AS agent_name, d.config_revision, d.config_hash, d.status, d.offered_at,
              d.applying_at, d.applied_at, d.failed_at, d.error
         FROM agent_config_deliveries d JOIN agents a ON a.id = d.agent_id
        WHERE ($1::uuid IS NULL OR d.agent_id = $1) AND ($2::text IS NULL OR d.status = $2)
          AND ($3::uuid IS NULL OR d.org_id = $3)
        ORDER BY d.id DESC LIMIT 500`,
      [q.get("agent_id"), q.get("status"), q.get("org_id")],
    );
    return rows;
  });

  // Secrets (values are write-only)
  route("GET", `/orgs/${UUID}/secrets`, async ({ params }) => secrets.list(params[0]));
  route("PUT", `/orgs/${UUID}/secrets/([A-Za-z0-9._-]{1,63})`, async ({ params, body }) => {
    if (typeof body.value !== "string") throw new HttpError(400, "value is required");
    await one("SELECT id FROM orgs WHERE id = $1", [params[0]], "org");
    await secrets.put(params[0], params[1], body.value);
    await notifyConfigChanged(params[0]);
    return { name: params[1] };
  });

  return async function handle(req, res, url) {
    if (!url.pathname.startsWith("/api/v1/")) return false;
    const send = (status, value) => {
      if (value === undefined) {
        res.writeHead(status).end();
        return;
      }
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(value));
    };
    if (!isAdmin(req, url, adminDigest)) {
      send(401, { error: "the admin token is required (Authorization: Bearer …)" });
      return true;
    }
    const candidates = routes.filter((r) => r.re.test(url.pathname));
    const match = candidates.find((r) => r.method === req.method);
    if (match === undefined) {
      send(candidates.length > 0 ? 405 : 404, { error: candidates.length > 0 ? "method not allowed" : "not found" });
      return true;
    }
    try {
      const params = match.re.exec(url.pathname).slice(1);
      const body = req.method === "POST" || req.method === "PUT" || req.method === "PATCH" ? await readJson(req) : {};
      const out = await match.handler({ params, body, url });
      if (Array.isArray(out) && typeof out[0] === "number" && out.length === 2) send(out[0], out[1]);
      else send(200, out);
    } catch (e) {
      // The rest of a body too large is not read: the connection cannot carry another request.
      if (e instanceof HttpError && e.status === 413) res.setHeader("connection", "close");
      if (e instanceof HttpError) send(e.status, { error: e.message });
      else if (e?.code === "unknown_agent") send(404, { error: e.message });
      else if (e?.code === "22P02" || e?.code === "23503") send(400, { error: e.message });
      else if (e?.code === "23505") send(409, { error: e.message });
      else {
        send(500, { error: "internal error" });
        throw e;
      }
    }
    return true;
  };
}
