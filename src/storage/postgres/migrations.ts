/**
 * The schema of the PostgreSQL store and bus, as numbered migrations. They run on start
 * (`PostgresServerStore.open`, `PostgresServerBus.open`), each once, in order, under an
 * advisory lock so that replicas starting together do not race. A migration, once
 * released, is never edited: a change is a new migration.
 */
import { OpampError } from "../../wire/errors.js";
import { type OpenDatabaseOptions, openDatabase, type SqlDatabase } from "./database.js";

/** Default PostgreSQL schema holding the tables. */
export const DEFAULT_SCHEMA = "opamp";

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Checks a schema name: it is spliced into SQL, so only a plain lower-case identifier is taken.
 *
 * @throws OpampError `invalid_argument` otherwise.
 */
export function checkSchema(schema: string): string {
  if (!IDENTIFIER.test(schema)) {
    throw new OpampError("invalid_argument", `schema must be a lower-case SQL identifier, got "${schema}"`);
  }
  return schema;
}

interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: (s: string) => string;
}

/** The migrations, oldest first. */
const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "store: agents, desired state, deliveries",
    sql: (s) => `
CREATE TABLE ${s}.agents (
  instance_uid uuid PRIMARY KEY,
  -- The reconstructed full state: a binary AgentToServer.
  state bytea NOT NULL,
  last_seen timestamptz NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE ${s}.desired (
  instance_uid uuid PRIMARY KEY,
  remote_config bytea,
  packages_available bytea,
  connection_settings bytea,
  sent_connection_settings_hash bytea,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE ${s}.deliveries (
  id bigserial PRIMARY KEY,
  instance_uid uuid NOT NULL,
  kind text NOT NULL CHECK (kind IN ('remoteConfig', 'packages', 'connectionSettings')),
  hash bytea NOT NULL,
  UNIQUE (instance_uid, kind, hash)
);
CREATE TABLE ${s}.delivery_events (
  id bigserial PRIMARY KEY,
  delivery_id bigint NOT NULL REFERENCES ${s}.deliveries (id) ON DELETE CASCADE,
  status text NOT NULL CHECK (status IN ('offered', 'applying', 'applied', 'failed')),
  at timestamptz NOT NULL,
  error_message text
);
CREATE INDEX delivery_events_delivery ON ${s}.delivery_events (delivery_id, id);
`,
  },
  {
    version: 2,
    name: "bus: replicas, presence, large messages",
    sql: (s) => `
CREATE TABLE ${s}.bus_replicas (
  replica_id text PRIMARY KEY,
  started_at timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE ${s}.bus_presence (
  instance_uid uuid PRIMARY KEY,
  replica_id text NOT NULL REFERENCES ${s}.bus_replicas (replica_id) ON DELETE CASCADE,
  since timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bus_presence_replica ON ${s}.bus_presence (replica_id);
CREATE TABLE ${s}.bus_spill (
  id bigserial PRIMARY KEY,
  payload bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
`,
  },
  {
    version: 3,
    name: "store: the principal each instance UID is bound to",
    sql: (s) => `
ALTER TABLE ${s}.agents ADD COLUMN bound_principal text;
`,
  },
];

/** The newest schema version the migrations bring a database to. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

const migrated = new WeakMap<SqlDatabase, Map<string, Promise<void>>>();

/**
 * Brings `schema` to {@link SCHEMA_VERSION}: creates it when missing and runs the
 * migrations not yet applied, all in one transaction under a transaction-scoped advisory
 * lock. Runs once per database object and schema; safe to call from several
 * processes at once.
 *
 * @throws OpampError `storage_failed` when a migration fails, or when the database holds
 *   a newer schema version than this release knows (an older replica must not write to it).
 */
export function migrate(db: SqlDatabase, schema: string = DEFAULT_SCHEMA): Promise<void> {
  checkSchema(schema);
  let bySchema = migrated.get(db);
  if (bySchema === undefined) {
    bySchema = new Map();
    migrated.set(db, bySchema);
  }
  let done = bySchema.get(schema);
  if (done === undefined) {
    done = runMigrations(db, schema);
    bySchema.set(schema, done);
    done.catch(() => bySchema.delete(schema));
  }
  return done;
}

/**
 * What `PostgresServerStore.open` and `PostgresServerBus.open` share: opens the database
 * unless one is given, makes the store or bus on it (owning the database only when opened
 * here), and migrates its schema; a database opened here is closed again when that fails.
 */
export async function openMigrated<T extends { readonly schema: string }>(
  db: SqlDatabase | OpenDatabaseOptions,
  make: (database: SqlDatabase, ownsDatabase: boolean) => T,
): Promise<T> {
  const given = "query" in db;
  const database = given ? db : await openDatabase(db);
  const made = make(database, !given);
  try {
    await migrate(database, made.schema);
  } catch (e) {
    if (!given) await database.close();
    throw e;
  }
  return made;
}

async function runMigrations(db: SqlDatabase, s: string): Promise<void> {
  try {
    await db.transaction(async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`opamp-sdk migrations ${s}`]);
      await tx.exec(`CREATE SCHEMA IF NOT EXISTS ${s};
CREATE TABLE IF NOT EXISTS ${s}.schema_migrations (
  version integer PRIMARY KEY,
  name text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);`);
      const { rows } = await tx.query<{ version: number }>(`SELECT version FROM ${s}.schema_migrations`);
      const applied = new Set(rows.map((r) => Number(r.version)));
      const newest = Math.max(0, ...applied);
      if (newest > SCHEMA_VERSION) {
        throw new OpampError(
          "storage_failed",
          `schema "${s}" is at version ${newest}, newer than this opamp-sdk knows (${SCHEMA_VERSION}): upgrade opamp-sdk`,
        );
      }
      for (const m of MIGRATIONS) {
        if (applied.has(m.version)) continue;
        await tx.exec(m.sql(s));
        await tx.query(`INSERT INTO ${s}.schema_migrations (version, name) VALUES ($1, $2)`, [m.version, m.name]);
      }
    });
  } catch (e) {
    throw OpampError.from(e, "storage_failed");
  }
}
