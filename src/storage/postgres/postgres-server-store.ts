/**
 * A {@link ServerStore} on PostgreSQL (or PGlite: the same SQL). Agents' states, desired
 * state and delivery histories live in tables of one schema (default `opamp`), so several
 * OpAMPServer replicas can share them and a restarted server finds them again.
 */
import type {
  DeliveryEvent,
  DeliveryKind,
  DeliveryStatus,
  ServerStore,
  StoredAgent,
  StoredDelivery,
  StoredDesired,
} from "../../server/store.js";
import { OpampError } from "../../wire/errors.js";
import { type OpenDatabaseOptions, openDatabase, type SqlDatabase, type SqlQueryable } from "./database.js";
import { checkSchema, DEFAULT_SCHEMA, openMigrated } from "./migrations.js";
import { ReadBatch } from "./read-batch.js";
import { WriteQueue } from "./write-queue.js";

/** Default cap on deliveries kept per agent (oldest dropped first), as in the in-memory store. */
export const DEFAULT_MAX_DELIVERIES_PER_AGENT = 100;
/** Default number of writes (or reads) sent to the database in one batch. */
export const DEFAULT_STORE_BATCH_SIZE = 500;

/** Options of {@link PostgresServerStore}. */
export interface PostgresServerStoreOptions {
  /** PostgreSQL schema holding the tables (a lower-case identifier). Default {@link DEFAULT_SCHEMA}. */
  readonly schema?: string;
  /** Deliveries kept per agent, oldest dropped first. Default {@link DEFAULT_MAX_DELIVERIES_PER_AGENT}. */
  readonly maxDeliveriesPerAgent?: number;
  /** Writes (or reads) per batch. Default {@link DEFAULT_STORE_BATCH_SIZE}. */
  readonly batchSize?: number;
}

type Write =
  | { readonly t: "put"; readonly agent: StoredAgent }
  | { readonly t: "delete"; readonly uid: string }
  | { readonly t: "desired"; readonly uid: string; readonly desired: StoredDesired }
  | {
      readonly t: "event";
      readonly uid: string;
      readonly kind: DeliveryKind;
      readonly hash: Uint8Array;
      readonly event: DeliveryEvent;
    };

interface AgentRow {
  instance_uid: string;
  state: Uint8Array;
  last_seen_ms: number;
  bound_principal: string | null;
}

interface DesiredRow {
  instance_uid: string;
  remote_config: Uint8Array | null;
  packages_available: Uint8Array | null;
  connection_settings: Uint8Array | null;
  sent_connection_settings_hash: Uint8Array | null;
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new OpampError("invalid_argument", `${name} must be a positive integer`);
  }
  return value;
}

/** Copies into a plain Uint8Array (pg returns Buffers from its pool: callers may keep them). */
function bytes(value: Uint8Array): Uint8Array {
  return new Uint8Array(value);
}

/**
 * {@link ServerStore} on PostgreSQL. Open it with {@link PostgresServerStore.open}, which
 * runs the migrations. Writes are grouped into batches (one transaction per batch, in
 * the order they were made); reads of one agent wait for that agent's queued writes, so a
 * store reads back what it was given. Proven by `serverStoreContract`.
 */
export class PostgresServerStore implements ServerStore {
  /** The database the store runs on. */
  readonly db: SqlDatabase;
  /** The schema holding its tables. */
  readonly schema: string;
  readonly #maxDeliveries: number;
  readonly #writes: WriteQueue<Write>;
  readonly #agents: ReadBatch<StoredAgent>;
  readonly #desired: ReadBatch<StoredDesired>;
  readonly #ownsDb: boolean;
  #closed = false;

  /**
   * Use {@link PostgresServerStore.open}: the constructor does not run the migrations.
   *
   * @throws OpampError `invalid_argument` for a bad option.
   */
  constructor(db: SqlDatabase, options: PostgresServerStoreOptions & { readonly ownsDatabase?: boolean } = {}) {
    this.db = db;
    this.schema = checkSchema(options.schema ?? DEFAULT_SCHEMA);
    this.#maxDeliveries = positive(
      options.maxDeliveriesPerAgent,
      DEFAULT_MAX_DELIVERIES_PER_AGENT,
      "maxDeliveriesPerAgent",
    );
    const batch = positive(options.batchSize, DEFAULT_STORE_BATCH_SIZE, "batchSize");
    this.#ownsDb = options.ownsDatabase === true;
    this.#writes = new WriteQueue<Write>(
      batch,
      (writes) => db.transaction((tx) => this.#write(tx, writes)),
      (write) => db.transaction((tx) => this.#write(tx, [write])),
    );
    this.#agents = new ReadBatch(batch, (uids) => this.#loadAgents(uids));
    this.#desired = new ReadBatch(batch, (uids) => this.#loadDesired(uids));
  }

  /**
   * Opens a store on `db` (a {@link SqlDatabase}, or what {@link openDatabase} takes: a
   * PostgreSQL URL, or nothing for an in-memory PGlite) and brings its schema up to date.
   * A database opened here is closed by {@link PostgresServerStore.close}.
   *
   * @throws OpampError `storage_failed` when the database cannot be reached or migrated;
   *   `invalid_argument` for a bad option or a missing optional package (`pg`, `@electric-sql/pglite`).
   */
  static async open(
    db: SqlDatabase | OpenDatabaseOptions = {},
    options: PostgresServerStoreOptions = {},
  ): Promise<PostgresServerStore> {
    return openMigrated(db, (database, ownsDatabase) => newStore(database, { ...options, ownsDatabase }));
  }

  /** Waits for every queued write, then closes the database if the store opened it. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#writes.idle();
    if (this.#ownsDb) await this.db.close();
  }

  /** Resolves once every write queued so far is committed (or failed). */
  flushed(): Promise<void> {
    return this.#writes.idle();
  }

  async getAgent(instanceUid: string): Promise<StoredAgent | undefined> {
    await this.#writes.settled(instanceUid);
    return this.#agents.get(instanceUid);
  }

  putAgent(agent: StoredAgent): Promise<void> {
    return this.#queue(agent.instanceUid, { t: "put", agent });
  }

  deleteAgent(instanceUid: string): Promise<void> {
    return this.#queue(instanceUid, { t: "delete", uid: instanceUid });
  }

  async getDesired(instanceUid: string): Promise<StoredDesired | undefined> {
    await this.#writes.settled(instanceUid);
    return this.#desired.get(instanceUid);
  }

  putDesired(instanceUid: string, desired: StoredDesired): Promise<void> {
    return this.#queue(instanceUid, { t: "desired", uid: instanceUid, desired });
  }

  appendDelivery(instanceUid: string, kind: DeliveryKind, hash: Uint8Array, event: DeliveryEvent): Promise<void> {
    return this.#queue(instanceUid, { t: "event", uid: instanceUid, kind, hash, event });
  }

  async listDeliveries(instanceUid: string): Promise<readonly StoredDelivery[]> {
    await this.#writes.settled(instanceUid);
    const s = this.schema;
    const { rows } = await this.#read(() =>
      this.db.query<{
        id: string;
        kind: DeliveryKind;
        hash: Uint8Array;
        status: DeliveryStatus | null;
        at_ms: number | null;
        error_message: string | null;
      }>(
        `SELECT d.id, d.kind, d.hash, e.status, (extract(epoch FROM e.at) * 1000)::float8 AS at_ms, e.error_message
           FROM ${s}.deliveries d LEFT JOIN ${s}.delivery_events e ON e.delivery_id = d.id
          WHERE d.instance_uid = $1
          ORDER BY d.id, e.id`,
        [instanceUid],
      ),
    );
    const out: { instanceUid: string; kind: DeliveryKind; hash: Uint8Array; history: DeliveryEvent[] }[] = [];
    let currentId: string | undefined;
    for (const row of rows) {
      if (row.id !== currentId) {
        currentId = row.id;
        out.push({ instanceUid, kind: row.kind, hash: bytes(row.hash), history: [] });
      }
      if (row.status === null || row.at_ms === null) continue;
      const event: DeliveryEvent =
        row.error_message === null
          ? { status: row.status, at: Math.round(row.at_ms) }
          : { status: row.status, at: Math.round(row.at_ms), errorMessage: row.error_message };
      out[out.length - 1]!.history.push(event);
    }
    return out;
  }

  #queue(uid: string, write: Write): Promise<void> {
    if (this.#closed) return Promise.reject(new OpampError("not_running", "the store is closed"));
    return this.#writes.push(uid, write).catch((e: unknown) => {
      throw OpampError.from(e, "storage_failed");
    });
  }

  async #read<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new OpampError("not_running", "the store is closed");
    try {
      return await fn();
    } catch (e) {
      throw OpampError.from(e, "storage_failed");
    }
  }

  async #loadAgents(uids: readonly string[]): Promise<ReadonlyMap<string, StoredAgent>> {
    const { rows } = await this.#read(() =>
      this.db.query<AgentRow>(
        `SELECT instance_uid, state, (extract(epoch FROM last_seen) * 1000)::float8 AS last_seen_ms, bound_principal
           FROM ${this.schema}.agents WHERE instance_uid = ANY($1::uuid[])`,
        [uids],
      ),
    );
    const out = new Map<string, StoredAgent>();
    for (const r of rows) {
      const agent = { instanceUid: r.instance_uid, state: bytes(r.state), lastSeen: Math.round(r.last_seen_ms) };
      out.set(r.instance_uid, r.bound_principal === null ? agent : { ...agent, boundPrincipal: r.bound_principal });
    }
    return out;
  }

  async #loadDesired(uids: readonly string[]): Promise<ReadonlyMap<string, StoredDesired>> {
    const { rows } = await this.#read(() =>
      this.db.query<DesiredRow>(
        `SELECT instance_uid, remote_config, packages_available, connection_settings, sent_connection_settings_hash
           FROM ${this.schema}.desired WHERE instance_uid = ANY($1::uuid[])`,
        [uids],
      ),
    );
    const out = new Map<string, StoredDesired>();
    for (const r of rows) {
      const d: { -readonly [K in keyof StoredDesired]: StoredDesired[K] } = {};
      if (r.remote_config !== null) d.remoteConfig = bytes(r.remote_config);
      if (r.packages_available !== null) d.packagesAvailable = bytes(r.packages_available);
      if (r.connection_settings !== null) d.connectionSettings = bytes(r.connection_settings);
      if (r.sent_connection_settings_hash !== null)
        d.sentConnectionSettingsHash = bytes(r.sent_connection_settings_hash);
      out.set(r.instance_uid, d);
    }
    return out;
  }

  /** Writes a batch: each run of writes of one kind as one statement, runs in order. */
  async #write(tx: SqlQueryable, writes: readonly Write[]): Promise<void> {
    let start = 0;
    while (start < writes.length) {
      const kind = writes[start]!.t;
      let end = start + 1;
      while (end < writes.length && writes[end]!.t === kind) end++;
      const run = writes.slice(start, end);
      if (kind === "put") await this.#putAgents(tx, run as Extract<Write, { t: "put" }>[]);
      else if (kind === "delete") await this.#deleteAgents(tx, run as Extract<Write, { t: "delete" }>[]);
      else if (kind === "desired") await this.#putDesired(tx, run as Extract<Write, { t: "desired" }>[]);
      else await this.#appendEvents(tx, run as Extract<Write, { t: "event" }>[]);
      start = end;
    }
  }

  async #putAgents(tx: SqlQueryable, run: readonly Extract<Write, { t: "put" }>[]): Promise<void> {
    // One row per agent (a statement may not update a row twice): the last write wins.
    const last = new Map<string, StoredAgent>();
    for (const w of run) last.set(w.agent.instanceUid, w.agent);
    const agents = [...last.values()];
    await tx.query(
      `INSERT INTO ${this.schema}.agents (instance_uid, state, last_seen, bound_principal)
       SELECT u, st, to_timestamp(ls / 1000), bp
         FROM unnest($1::uuid[], $2::bytea[], $3::float8[], $4::text[]) AS t(u, st, ls, bp)
       ON CONFLICT (instance_uid) DO UPDATE
         SET state = excluded.state, last_seen = excluded.last_seen, bound_principal = excluded.bound_principal,
             updated_at = now()`,
      [
        agents.map((a) => a.instanceUid),
        agents.map((a) => a.state),
        agents.map((a) => a.lastSeen),
        agents.map((a) => a.boundPrincipal ?? null),
      ],
    );
  }

  async #deleteAgents(tx: SqlQueryable, run: readonly Extract<Write, { t: "delete" }>[]): Promise<void> {
    const uids = [...new Set(run.map((w) => w.uid))];
    const s = this.schema;
    await tx.query(`DELETE FROM ${s}.agents WHERE instance_uid = ANY($1::uuid[])`, [uids]);
    await tx.query(`DELETE FROM ${s}.desired WHERE instance_uid = ANY($1::uuid[])`, [uids]);
    await tx.query(`DELETE FROM ${s}.deliveries WHERE instance_uid = ANY($1::uuid[])`, [uids]);
  }

  async #putDesired(tx: SqlQueryable, run: readonly Extract<Write, { t: "desired" }>[]): Promise<void> {
    const last = new Map<string, StoredDesired>();
    for (const w of run) last.set(w.uid, w.desired);
    const uids = [...last.keys()];
    const all = [...last.values()];
    await tx.query(
      `INSERT INTO ${this.schema}.desired
         (instance_uid, remote_config, packages_available, connection_settings, sent_connection_settings_hash)
       SELECT * FROM unnest($1::uuid[], $2::bytea[], $3::bytea[], $4::bytea[], $5::bytea[])
       ON CONFLICT (instance_uid) DO UPDATE
         SET remote_config = excluded.remote_config, packages_available = excluded.packages_available,
             connection_settings = excluded.connection_settings,
             sent_connection_settings_hash = excluded.sent_connection_settings_hash, updated_at = now()`,
      [
        uids,
        all.map((d) => d.remoteConfig ?? null),
        all.map((d) => d.packagesAvailable ?? null),
        all.map((d) => d.connectionSettings ?? null),
        all.map((d) => d.sentConnectionSettingsHash ?? null),
      ],
    );
  }

  async #appendEvents(tx: SqlQueryable, run: readonly Extract<Write, { t: "event" }>[]): Promise<void> {
    const s = this.schema;
    const uids = run.map((w) => w.uid);
    const kinds = run.map((w) => w.kind);
    const hashes = run.map((w) => w.hash);
    // New deliveries first, in the order of their first step (the history lists them so).
    const created = await tx.query<{ instance_uid: string }>(
      `INSERT INTO ${s}.deliveries (instance_uid, kind, hash)
       SELECT u, k, h FROM (
         SELECT u, k, h, min(o) AS o FROM unnest($1::uuid[], $2::text[], $3::bytea[]) WITH ORDINALITY AS t(u, k, h, o)
          GROUP BY u, k, h) AS firsts
        ORDER BY o
       ON CONFLICT (instance_uid, kind, hash) DO NOTHING
       RETURNING instance_uid`,
      [uids, kinds, hashes],
    );
    await tx.query(
      `INSERT INTO ${s}.delivery_events (delivery_id, status, at, error_message)
       SELECT d.id, t.st, to_timestamp(t.at / 1000), t.err
         FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::text[], $5::float8[], $6::text[])
              WITH ORDINALITY AS t(u, k, h, st, at, err, o)
         JOIN ${s}.deliveries d ON d.instance_uid = t.u AND d.kind = t.k AND d.hash = t.h
        ORDER BY t.o`,
      [
        uids,
        kinds,
        hashes,
        run.map((w) => w.event.status),
        run.map((w) => w.event.at),
        run.map((w) => w.event.errorMessage ?? null),
      ],
    );
    if (created.rows.length === 0) return;
    // Only agents that gained a delivery can be over the cap.
    await tx.query(
      `DELETE FROM ${s}.deliveries WHERE id IN (
         SELECT id FROM (
           SELECT id, row_number() OVER (PARTITION BY instance_uid ORDER BY id DESC) AS n
             FROM ${s}.deliveries WHERE instance_uid = ANY($1::uuid[])) AS ranked
          WHERE n > $2)`,
      [[...new Set(created.rows.map((r) => r.instance_uid))], this.#maxDeliveries],
    );
  }
}

/**
 * `new PostgresServerStore`, outside the class body: a class that names itself inside its own body is
 * renamed `_PostgresServerStore` by the bundler (scripts/check-package.mjs checks exported names).
 */
function newStore(
  database: SqlDatabase,
  options: ConstructorParameters<typeof PostgresServerStore>[1],
): PostgresServerStore {
  return new PostgresServerStore(database, options);
}
