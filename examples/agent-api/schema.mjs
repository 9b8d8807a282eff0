// agent-api's own tables, in the shape the seed queries them (see README.md, "psql
// exercises"). The SDK's tables (agents' OpAMP state, desired state, the replica bus) live
// in their own schema, `opamp`, created by opamp-sdk/storage/postgres.
//
// Tokens and keys are stored as SHA-256 digests only. Secrets are stored envelope-encrypted
// (see secrets.mjs).

const MIGRATIONS = [
  `
CREATE TABLE orgs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Fleet enrollment tokens (xse_…): only the digest is kept.
CREATE TABLE enrollment_tokens (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  token_hash bytea NOT NULL UNIQUE,
  description text NOT NULL DEFAULT '',
  -- Labels every agent enrolled with this token starts with.
  labels jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz,
  revoked_at timestamptz
);

-- One row per agent: its instance UID is its id.
CREATE TABLE agents (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  name text NOT NULL DEFAULT '',
  labels jsonb NOT NULL DEFAULT '{}',
  -- Identifying and non-identifying attributes, as reported.
  description jsonb NOT NULL DEFAULT '{}',
  -- { healthy, status, last_error } as reported (ComponentHealth, top level).
  health jsonb,
  effective_config text,
  capabilities bigint NOT NULL DEFAULT 0,
  status text NOT NULL DEFAULT 'offline' CHECK (status IN ('online', 'offline')),
  -- The replica holding the agent while online.
  replica_id text,
  enrolled_with uuid REFERENCES enrollment_tokens (id) ON DELETE SET NULL,
  last_seen_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_org ON agents (org_id);
CREATE INDEX agents_labels ON agents USING gin (labels);

-- Per-agent keys (xag_…): only the digest is kept.
CREATE TABLE agent_keys (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agent_id uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
  key_hash bytea NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  first_used_at timestamptz,
  revoked_at timestamptz
);
CREATE INDEX agent_keys_agent ON agent_keys (agent_id);

CREATE TABLE config_templates (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (org_id, name)
);

-- Revisions are never edited: a change is a new revision; rollback assigns an older one.
CREATE TABLE config_revisions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  template_id uuid NOT NULL REFERENCES config_templates (id) ON DELETE CASCADE,
  revision integer NOT NULL,
  body text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (template_id, revision)
);

-- A revision goes to the agents whose labels match the selector; the highest priority wins.
CREATE TABLE config_assignments (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  selector text NOT NULL,
  revision_id uuid NOT NULL REFERENCES config_revisions (id),
  priority integer NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX config_assignments_org ON config_assignments (org_id);

-- One row per config offered to an agent: offered → applying → applied | failed.
CREATE TABLE agent_config_deliveries (
  id bigserial PRIMARY KEY,
  agent_id uuid NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  revision_id uuid REFERENCES config_revisions (id) ON DELETE SET NULL,
  config_revision integer,
  config_hash text NOT NULL,
  status text NOT NULL CHECK (status IN ('offered', 'applying', 'applied', 'failed')),
  offered_at timestamptz NOT NULL DEFAULT now(),
  applying_at timestamptz,
  applied_at timestamptz,
  failed_at timestamptz,
  error text
);
CREATE INDEX agent_config_deliveries_agent ON agent_config_deliveries (agent_id, id DESC);

-- Secrets referenced by templates as \${secret:name}, envelope-encrypted.
CREATE TABLE secrets (
  org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
  name text NOT NULL,
  ciphertext bytea NOT NULL,
  iv bytea NOT NULL,
  tag bytea NOT NULL,
  wrapped_key bytea NOT NULL,
  kek_id text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (org_id, name)
);
`,
];

/** Brings agent-api's tables up to date (once per database, safe with several replicas starting at once). */
export async function migrateAgentApi(db) {
  await db.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock(hashtext('agent-api migrations'))");
    await tx.exec(`CREATE TABLE IF NOT EXISTS agent_api_migrations (
      version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`);
    const { rows } = await tx.query("SELECT version FROM agent_api_migrations");
    const applied = new Set(rows.map((r) => Number(r.version)));
    for (const [i, sql] of MIGRATIONS.entries()) {
      if (applied.has(i + 1)) continue;
      await tx.exec(sql);
      await tx.query("INSERT INTO agent_api_migrations (version) VALUES ($1)", [i + 1]);
    }
  });
}
