// Enrollment, all in one place: who may connect, and how a fleet token becomes an agent key.
//
//  1. A new agent connects with its org's fleet enrollment token: `Authorization: Bearer xse_…`.
//  2. agent-api records the agent in the token's org and gives it a key of its own, `xag_…`,
//     in an OpAMP connection-settings offer (new headers). The agent reconnects with it.
//  3. Every later connection uses the key. A key speaks only for its own agent.
//
// Tokens and keys are random (256 bits), stored as SHA-256 digests only, and compared in
// constant time. A revoked token or key, or an agent that was deleted, gets 401.
//
// Re-enrollment. The Collector's opampsupervisor does not persist offered headers: after a
// restart it comes back with the fleet token under its old instance UID. agent-api answers
// by rotating: it issues a new key (a new offer, so a new hash: the supervisor takes it and
// reconnects once) and the agent's older keys are revoked as soon as the new key is first
// used. An agent whose key was just issued and not yet used is not given another one for
// `pendingKeyMs`, so polls still carrying the fleet token do not pile up keys.
//
// OpAMPServer binds each instance UID to the principal that first spoke for it (its `id`
// here: the agent's UID for a key, `enroll:<token id>` for a fleet token). The binding moves
// where this file says a UID may change hands (`allowRebind`): to the key issued for the
// UID, and to a fleet token of the agent's own org (re-enrollment).

import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { AgentCapability, hasBit, instanceUidToString } from "opamp-sdk";

const TOKEN = /^xse_([0-9a-f-]{36})_([A-Za-z0-9_-]{43})$/;
const KEY = /^xag_([0-9a-f-]{36})_([A-Za-z0-9_-]{43})$/;

export const sha256 = (text) => createHash("sha256").update(text).digest();

function bearer(headers) {
  return /^Bearer +(\S+)$/i.exec(headers.authorization ?? "")?.[1];
}

/** True when `digest` equals one of `stored` (each compared in constant time). */
function anyEqual(stored, digest) {
  let found = false;
  for (const s of stored) if (s.length === digest.length && timingSafeEqual(s, digest)) found = true;
  return found;
}

const UNAUTHORIZED = { accept: false, status: 401, headers: { "WWW-Authenticate": 'Bearer realm="agent-api"' } };

export class Enrollment {
  /**
   * @param {{ db: import("opamp-sdk/storage/postgres").SqlDatabase, pendingKeyMs?: number,
   *           onError?: (error: unknown) => void }} options
   */
  constructor({ db, pendingKeyMs = 60_000, onError = (e) => console.error("enrollment:", e) }) {
    this.db = db;
    this.pendingKeyMs = pendingKeyMs;
    this.onError = onError;
    /** Agents being given a key by this replica right now (one offer at a time). */
    this.issuing = new Set();
  }

  /** Creates a fleet enrollment token for an org. The token is returned once and never stored. */
  async createToken(orgId, { labels = {}, description = "", expiresAt = null } = {}) {
    const id = crypto.randomUUID();
    const token = `xse_${id}_${randomBytes(32).toString("base64url")}`;
    await this.db.query(
      "INSERT INTO enrollment_tokens (id, org_id, token_hash, labels, description, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
      [id, orgId, sha256(token), JSON.stringify(labels), description, expiresAt],
    );
    return { id, token };
  }

  /** `hooks.authenticate`: an agent key or a fleet token; anything else is 401. */
  authenticate = async ({ headers }) => {
    const credential = bearer(headers);
    if (credential === undefined) return UNAUTHORIZED;
    const digest = sha256(credential);
    const key = KEY.exec(credential);
    if (key !== null) {
      const { rows } = await this.db.query(
        `SELECT k.id, k.key_hash, k.first_used_at, a.org_id FROM agent_keys k JOIN agents a ON a.id = k.agent_id
          WHERE k.agent_id = $1 AND k.revoked_at IS NULL`,
        [key[1]],
      );
      const match = rows.find((r) => anyEqual([Buffer.from(r.key_hash)], digest));
      if (match === undefined) return UNAUTHORIZED;
      if (match.first_used_at === null) await this.#firstUse(key[1], match.id);
      return { accept: true, principal: { kind: "agent", id: key[1], agentId: key[1], orgId: match.org_id } };
    }
    const token = TOKEN.exec(credential);
    if (token !== null) {
      const { rows } = await this.db.query(
        `SELECT id, org_id, token_hash, labels FROM enrollment_tokens
          WHERE id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`,
        [token[1]],
      );
      const row = rows[0];
      if (row === undefined || !anyEqual([Buffer.from(row.token_hash)], digest)) return UNAUTHORIZED;
      return {
        accept: true,
        principal: {
          kind: "enrolling",
          id: `enroll:${row.id}`,
          orgId: row.org_id,
          tokenId: row.id,
          labels: row.labels,
        },
      };
    }
    return UNAUTHORIZED;
  };

  /** The agent used a new key: it has it, so the keys issued before it are revoked. */
  async #firstUse(agentId, keyId) {
    await this.db.transaction(async (tx) => {
      await tx.query("UPDATE agent_keys SET first_used_at = now() WHERE id = $1 AND first_used_at IS NULL", [keyId]);
      await tx.query(
        `UPDATE agent_keys SET revoked_at = now()
          WHERE agent_id = $1 AND revoked_at IS NULL AND created_at < (SELECT created_at FROM agent_keys WHERE id = $2)`,
        [agentId, keyId],
      );
    });
  }

  /**
   * `hooks.authorizeMessage`: a key speaks only for its own agent; a fleet token speaks for a
   * new agent, or for a known agent of the same org (re-enrollment).
   */
  authorizeMessage = async ({ message, principal }) => {
    const uid = instanceUidToString(message.instanceUid);
    if (principal?.kind === "agent") return uid === principal.agentId;
    if (principal?.kind !== "enrolling") return false;
    const { rows } = await this.db.query("SELECT org_id FROM agents WHERE id = $1", [uid]);
    return rows.length === 0 || rows[0].org_id === principal.orgId;
  };

  /**
   * `hooks.allowRebind`: a UID bound to one principal may be taken over by another exactly
   * when `authorizeMessage` would let that principal speak for it: the key issued for the
   * UID, or a fleet token of its org.
   */
  allowRebind = ({ message, principal }) => this.authorizeMessage({ message, principal });

  /** Gives every agent that speaks with a fleet token a key of its own (see the top of this file). */
  attach(server) {
    server.on("message", (agent) => {
      const principal = agent.principal;
      if (principal?.kind !== "enrolling") return;
      if (this.issuing.has(agent.id)) return;
      this.issuing.add(agent.id);
      this.enroll(server, agent, principal)
        .catch((e) => this.onError(e))
        .finally(() => this.issuing.delete(agent.id));
    });
  }

  /** Records the agent in the token's org and, when it can take new headers, offers it a key. */
  async enroll(server, agent, principal) {
    await this.db.query(
      `INSERT INTO agents (id, org_id, labels, enrolled_with) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING`,
      [agent.id, principal.orgId, JSON.stringify(principal.labels ?? {}), principal.tokenId],
    );
    // An agent that cannot take connection settings stays on the fleet token.
    if (!hasBit(agent.capabilities, AgentCapability.AcceptsOpAMPConnectionSettings)) return;
    const { rows } = await this.db.query(
      `SELECT 1 FROM agent_keys WHERE agent_id = $1 AND revoked_at IS NULL AND first_used_at IS NULL
          AND created_at > now() - make_interval(secs => $2::float8 / 1000)`,
      [agent.id, this.pendingKeyMs],
    );
    if (rows.length > 0) return; // a key is on its way to it
    await this.rotate(server, agent.id);
  }

  /**
   * Issues a new key to a connected agent and offers it. The agent reconnects with it; its
   * older keys are revoked when it first does. Use it to rotate keys on a schedule too.
   */
  async rotate(server, agentId) {
    const key = `xag_${agentId}_${randomBytes(32).toString("base64url")}`;
    await this.db.query("INSERT INTO agent_keys (agent_id, key_hash) VALUES ($1, $2)", [agentId, sha256(key)]);
    // The endpoint and the heartbeat interval left out are filled in by the server for this agent.
    await server.offerConnectionSettings(agentId, { opamp: { headers: { Authorization: `Bearer ${key}` } } });
  }

  /** Revokes every key of an agent: its next connection is refused (401) until it enrolls again. */
  async revokeKeys(agentId) {
    const { rowCount } = await this.db
      .query("UPDATE agent_keys SET revoked_at = now() WHERE agent_id = $1 AND revoked_at IS NULL RETURNING id", [
        agentId,
      ])
      .then((r) => ({ rowCount: r.rows.length }));
    return rowCount;
  }

  /** Revokes a fleet token: agents that already have keys keep working, new enrollments are refused. */
  async revokeToken(tokenId) {
    const { rows } = await this.db.query(
      "UPDATE enrollment_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING id",
      [tokenId],
    );
    return rows.length > 0;
  }
}
