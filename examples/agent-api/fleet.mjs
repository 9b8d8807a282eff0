// Keeps the `agents` table in step with what the OpAMP server sees, and tells dashboards.
//
// Every replica writes the rows of the agents connected to it. An agent that moves to
// another replica is marked offline only by the replica that still holds it: the
// `replica_id = $me` condition keeps a late "disconnected" from a replica it left from
// overwriting the "online" written by the one it went to.

import { AgentCapability, hasBit } from "opamp-sdk";
import { attributesOf } from "./configs.mjs";

/** How often a connected agent's last_seen_at is written at most (heartbeats are frequent). */
const LAST_SEEN_EVERY_MS = 15_000;

function healthOf(agent) {
  const h = agent.health;
  return h === undefined ? null : { healthy: h.healthy, status: h.status, last_error: h.lastError };
}

function descriptionOf(agent) {
  const d = agent.agentDescription;
  return {
    identifying: attributesOf(d?.identifyingAttributes),
    nonIdentifying: attributesOf(d?.nonIdentifyingAttributes),
  };
}

function effectiveConfigOf(agent) {
  const files = agent.effectiveConfig?.configMap?.configMap ?? {};
  return Object.entries(files)
    .map(([name, file]) => (name === "" ? "" : `# ${name}\n`) + new TextDecoder().decode(file.body))
    .join("\n");
}

export class Fleet {
  constructor({ db, server, configs, replicaId, onChange, onError }) {
    this.db = db;
    this.server = server;
    this.configs = configs;
    this.replicaId = replicaId;
    this.onChange = onChange;
    this.onError = onError;
    this.lastSeenWritten = new Map();
    /** The tail of each agent's chain of writes. */
    this.queues = new Map();
  }

  attach() {
    const { server } = this;
    server.on("agentConnected", (agent) => this.#run(agent.id, () => this.#connected(agent)));
    server.on("agentUpdated", (agent, changes) => this.#run(agent.id, () => this.#updated(agent, changes)));
    server.on("agentDisconnected", (agent, reason) => this.#run(agent.id, () => this.#disconnected(agent, reason)));
    server.on("message", (agent, message) => {
      if (message.remoteConfigStatus !== undefined) {
        this.#run(agent.id, () => this.configs.recordStatus(agent.id, message.remoteConfigStatus));
      }
      const now = Date.now();
      if (now - (this.lastSeenWritten.get(agent.id) ?? 0) >= LAST_SEEN_EVERY_MS) {
        this.lastSeenWritten.set(agent.id, now);
        this.#run(agent.id, () =>
          this.db.query("UPDATE agents SET last_seen_at = now() WHERE id = $1", [agent.id]).then(() => undefined),
        );
      }
    });
  }

  /** One agent's writes run in order (a status must not overtake the row it updates). */
  #run(agentId, fn) {
    const previous = this.queues.get(agentId) ?? Promise.resolve();
    const next = previous.then(fn).catch((e) => this.onError(e));
    this.queues.set(agentId, next);
    next.then(() => {
      if (this.queues.get(agentId) === next) this.queues.delete(agentId);
    });
  }

  async #connected(agent) {
    const description = descriptionOf(agent);
    const principal = agent.principal;
    // The row exists for agents with a key; an agent still on the fleet token gets it here
    // or from enrollment, whichever runs first.
    await this.db.query(
      `INSERT INTO agents (id, org_id, labels, name, description, health, effective_config, capabilities, status,
                           replica_id, last_seen_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'online', $9, now())
       ON CONFLICT (id) DO UPDATE SET name = excluded.name, description = excluded.description,
         health = COALESCE(excluded.health, agents.health), effective_config = COALESCE(excluded.effective_config, agents.effective_config),
         capabilities = excluded.capabilities, status = 'online', replica_id = excluded.replica_id, last_seen_at = now()`,
      [
        agent.id,
        principal.orgId,
        JSON.stringify(principal.kind === "enrolling" ? (principal.labels ?? {}) : {}),
        description.nonIdentifying["host.name"] ?? description.identifying["host.name"] ?? "",
        JSON.stringify(description),
        JSON.stringify(healthOf(agent)),
        agent.effectiveConfig === undefined ? null : effectiveConfigOf(agent),
        agent.capabilities.toString(),
        this.replicaId,
      ],
    );
    this.lastSeenWritten.set(agent.id, Date.now());
    this.onChange(agent.id);
    // Agents still on the fleet token get their key first; their config follows on the key.
    // One that cannot take a key stays on the token, and gets its config there.
    const staysOnToken = !hasBit(agent.capabilities, AgentCapability.AcceptsOpAMPConnectionSettings);
    if (principal.kind === "agent" || staysOnToken) await this.configs.reconcile(agent.id);
  }

  async #updated(agent, changes) {
    // An HTTP agent's first poll with its new key: no new connection shows it over HTTP.
    if (changes.includes("principal") && agent.principal?.kind === "agent") await this.#connected(agent);
    const sets = [];
    const values = [agent.id];
    const set = (column, value) => {
      values.push(value);
      sets.push(`${column} = $${values.length}`);
    };
    if (changes.includes("health")) set("health", JSON.stringify(healthOf(agent)));
    if (changes.includes("agentDescription")) set("description", JSON.stringify(descriptionOf(agent)));
    if (changes.includes("effectiveConfig")) set("effective_config", effectiveConfigOf(agent));
    if (changes.includes("capabilities")) set("capabilities", agent.capabilities.toString());
    if (sets.length === 0) return;
    await this.db.query(`UPDATE agents SET ${sets.join(", ")} WHERE id = $1`, values);
    this.onChange(agent.id);
  }

  async #disconnected(agent, reason) {
    this.lastSeenWritten.delete(agent.id);
    if (reason === "moved") return; // the replica it moved to holds the row now
    await this.db.query(
      "UPDATE agents SET status = 'offline', replica_id = NULL, last_seen_at = now() WHERE id = $1 AND replica_id = $2",
      [agent.id, this.replicaId],
    );
    this.onChange(agent.id);
  }
}
