// Which config each agent gets, and the record of its delivery.
//
// An agent's config is the revision of the highest-priority assignment of its org whose
// label selector matches the agent's labels (the newest one on a tie), rendered for that
// agent. It is pushed when an agent connects, when an assignment changes, and when anyone
// runs `NOTIFY agent_config_changed, '{"org_id": "…"}'` (every replica then reconciles the
// agents connected to it). Rolling back is assigning an earlier revision.
//
// Each config offered to an agent is a row of agent_config_deliveries, moving
// offered → applying → applied | failed as the agent reports its remote-config status.

import { RemoteConfigStatuses } from "opamp-sdk";
import { render } from "./render.mjs";
import { matches, parseSelector } from "./selectors.mjs";

const CONFIG_FILE = "collector.yaml";
const hex = (bytes) => Buffer.from(bytes).toString("hex");

const STATUS = {
  [RemoteConfigStatuses.RemoteConfigStatuses_APPLYING]: "applying",
  [RemoteConfigStatuses.RemoteConfigStatuses_APPLIED]: "applied",
  [RemoteConfigStatuses.RemoteConfigStatuses_FAILED]: "failed",
};

/** Attributes (AnyValue key-values) as a plain object of strings; nested values are left out. */
export function attributesOf(list) {
  const out = {};
  for (const kv of list ?? []) {
    const v = kv.value?.value;
    if (v?.case !== undefined && v.case !== "kvlistValue" && v.case !== "arrayValue") out[kv.key] = String(v.value);
  }
  return out;
}

export class Configs {
  /**
   * @param {{ db: import("opamp-sdk/storage/postgres").SqlDatabase,
   *           server: import("opamp-sdk/server").OpAMPServer,
   *           secrets: import("./secrets.mjs").Secrets, onChange: (agentId: string) => void,
   *           onError: (error: unknown) => void }} options
   */
  constructor({ db, server, secrets, onChange, onError }) {
    this.db = db;
    this.server = server;
    this.secrets = secrets;
    this.onChange = onChange;
    this.onError = onError;
  }

  /** The assignment and revision for an agent row, or undefined when none matches. */
  async assignmentFor(agent) {
    const { rows } = await this.db.query(
      `SELECT a.id, a.selector, a.priority, r.id AS revision_id, r.revision, r.body, t.name AS template
         FROM config_assignments a
         JOIN config_revisions r ON r.id = a.revision_id
         JOIN config_templates t ON t.id = r.template_id
        WHERE a.org_id = $1
        ORDER BY a.priority DESC, a.updated_at DESC, a.created_at DESC`,
      [agent.org_id],
    );
    return rows.find((row) => {
      try {
        return matches(parseSelector(row.selector), agent.labels ?? {});
      } catch {
        return false; // refused at creation; a row edited by hand must not stop the others
      }
    });
  }

  /**
   * Works out the agent's config and pushes it. A new delivery row is written only when
   * the config differs from the one last offered to the agent; pushing the same config again
   * is harmless (the server does not resend what the agent reports it runs).
   */
  async reconcile(agentId) {
    const { rows } = await this.db.query("SELECT id, org_id, name, labels, description FROM agents WHERE id = $1", [
      agentId,
    ]);
    const agent = rows[0];
    if (agent === undefined) return;
    const assignment = await this.assignmentFor(agent);
    if (assignment === undefined) return;
    const last = (
      await this.db.query(
        "SELECT config_hash, status, revision_id FROM agent_config_deliveries WHERE agent_id = $1 ORDER BY id DESC LIMIT 1",
        [agentId],
      )
    ).rows[0];
    let body;
    try {
      body = await render(
        assignment.body,
        {
          id: agent.id,
          name: agent.name,
          labels: agent.labels ?? {},
          attributes: { ...agent.description?.identifying, ...agent.description?.nonIdentifying },
        },
        (name) => this.secrets.get(agent.org_id, name),
      );
    } catch (error) {
      // Nothing is sent; the delivery fails here with the reason, once per revision.
      const failedHere = last?.revision_id === assignment.revision_id && last?.config_hash === "";
      if (!failedHere) {
        await this.db.query(
          `INSERT INTO agent_config_deliveries (agent_id, org_id, revision_id, config_revision, config_hash, status, failed_at, error)
           VALUES ($1, $2, $3, $4, '', 'failed', now(), $5)`,
          [agentId, agent.org_id, assignment.revision_id, assignment.revision, `render: ${error.message}`],
        );
        this.onChange(agentId);
      }
      return;
    }
    const prepared = await this.server.prepareRemoteConfig({
      [CONFIG_FILE]: { body, contentType: "text/yaml" },
    });
    const hash = hex(prepared.hash);
    if (last?.config_hash !== hash) {
      // Written before the push: the agent's APPLYING may come back within milliseconds.
      await this.db.query(
        `INSERT INTO agent_config_deliveries (agent_id, org_id, revision_id, config_revision, config_hash, status)
         VALUES ($1, $2, $3, $4, $5, 'offered')`,
        [agentId, agent.org_id, assignment.revision_id, assignment.revision, hash],
      );
      this.onChange(agentId);
    }
    // Connected here or to another replica (forwarded over the bus).
    await this.server.setRemoteConfig(agentId, prepared);
  }

  /** Reconciles the agents of an org connected to this replica (each replica does its own). */
  async reconcileOrg(orgId) {
    const local = [...this.server.agents.keys()];
    if (local.length === 0) return;
    const { rows } = await this.db.query("SELECT id FROM agents WHERE org_id = $1 AND id = ANY($2::uuid[])", [
      orgId,
      local,
    ]);
    await Promise.all(rows.map((r) => this.reconcile(r.id).catch((e) => this.onError(e))));
  }

  /** Records what the agent reported about a config it was given. */
  async recordStatus(agentId, status) {
    const next = STATUS[status.status];
    if (next === undefined || status.lastRemoteConfigHash.length === 0) return;
    const column = { applying: "applying_at", applied: "applied_at", failed: "failed_at" }[next];
    const { rows } = await this.db.query(
      `UPDATE agent_config_deliveries SET status = $3, ${column} = now(), error = $4
        WHERE id = (SELECT id FROM agent_config_deliveries WHERE agent_id = $1 AND config_hash = $2 ORDER BY id DESC LIMIT 1)
          AND NOT (status = $3 AND error IS NOT DISTINCT FROM $4)
        RETURNING id`,
      [agentId, hex(status.lastRemoteConfigHash), next, next === "failed" ? status.errorMessage || "failed" : null],
    );
    if (rows.length > 0) this.onChange(agentId);
  }
}
