/**
 * A {@link ServerBus} on PostgreSQL: which replica holds each agent is a table
 * (`bus_presence`), replicas prove they are alive by a heartbeat row (`bus_replicas`), and
 * messages travel by LISTEN/NOTIFY, one channel per replica. A message too large for a
 * NOTIFY payload is parked in `bus_spill` and its id notified instead.
 */
import { createHash } from "node:crypto";
import type { BusMember, BusMessageHandler, ServerBus } from "../../server/bus.js";
import { OpampError } from "../../wire/errors.js";
import type { OpenDatabaseOptions, SqlDatabase } from "./database.js";
import { checkSchema, DEFAULT_SCHEMA, openMigrated } from "./migrations.js";
import { ReadBatch } from "./read-batch.js";

/** Default period of a replica's heartbeat row update: 5 s. */
export const DEFAULT_BUS_HEARTBEAT_INTERVAL_MS = 5_000;
/** Default time after its last heartbeat when a replica counts as gone (its agents as held by none): 15 s. */
export const DEFAULT_BUS_REPLICA_TTL_MS = 15_000;
/**
 * NOTIFY payloads are limited to 8000 bytes; a message whose notification would be larger
 * goes through the `bus_spill` table.
 */
const MAX_NOTIFY_BYTES = 7_500;
/** Spilled messages nobody fetched (their receiver died) are deleted after this long. */
const SPILL_RETENTION = "1 hour";

/** Options of {@link PostgresServerBus}. */
export interface PostgresServerBusOptions {
  /** Schema of the tables, shared with the store. Default {@link DEFAULT_SCHEMA}. */
  readonly schema?: string;
  /** Heartbeat period. Default {@link DEFAULT_BUS_HEARTBEAT_INTERVAL_MS}. */
  readonly heartbeatIntervalMs?: number;
  /** Silence after which a replica counts as gone. Default {@link DEFAULT_BUS_REPLICA_TTL_MS}. */
  readonly replicaTtlMs?: number;
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new OpampError("invalid_argument", `${name} must be a positive integer`);
  }
  return value;
}

/** Lower-case identifier of a replica's channel (any replica id maps to one). */
function channelOf(schema: string, replicaId: string): string {
  return `${schema}_bus_${createHash("sha256").update(replicaId).digest("hex").slice(0, 16)}`;
}

/**
 * {@link ServerBus} on PostgreSQL or PGlite. Pass the same database (or an equal one) as
 * the store's; open it with {@link PostgresServerBus.open}, which runs the migrations.
 */
export class PostgresServerBus implements ServerBus {
  /** The database the bus runs on. */
  readonly db: SqlDatabase;
  /** Schema of its tables (shared with the store). */
  readonly schema: string;
  /** How often this replica says it is alive. */
  readonly heartbeatIntervalMs: number;
  /** Silence after which another replica counts as gone. */
  readonly replicaTtlMs: number;
  readonly #ownsDb: boolean;
  readonly #members = new Set<BusMember>();

  /**
   * Use {@link PostgresServerBus.open}: the constructor does not run the migrations.
   *
   * @throws OpampError `invalid_argument` for a bad option.
   */
  constructor(db: SqlDatabase, options: PostgresServerBusOptions & { readonly ownsDatabase?: boolean } = {}) {
    this.db = db;
    this.schema = checkSchema(options.schema ?? DEFAULT_SCHEMA);
    if (this.schema.length > 42) throw new OpampError("invalid_argument", "a bus schema name is at most 42 characters");
    this.heartbeatIntervalMs = positive(
      options.heartbeatIntervalMs,
      DEFAULT_BUS_HEARTBEAT_INTERVAL_MS,
      "heartbeatIntervalMs",
    );
    this.replicaTtlMs = positive(options.replicaTtlMs, DEFAULT_BUS_REPLICA_TTL_MS, "replicaTtlMs");
    if (this.replicaTtlMs <= this.heartbeatIntervalMs) {
      throw new OpampError("invalid_argument", "replicaTtlMs must be longer than heartbeatIntervalMs");
    }
    this.#ownsDb = options.ownsDatabase === true;
  }

  /**
   * Opens a bus on `db` (a {@link SqlDatabase}, or what `openDatabase` takes) and brings the
   * schema up to date. A database opened here is closed by {@link PostgresServerBus.close}.
   *
   * @throws OpampError `storage_failed` when the database cannot be reached or migrated.
   */
  static async open(
    db: SqlDatabase | OpenDatabaseOptions = {},
    options: PostgresServerBusOptions = {},
  ): Promise<PostgresServerBus> {
    return openMigrated(db, (database, ownsDatabase) => newBus(database, { ...options, ownsDatabase }));
  }

  /** Leaves with every member still joined, then closes the database if the bus opened it. */
  async close(): Promise<void> {
    for (const m of [...this.#members]) await m.leave();
    if (this.#ownsDb) await this.db.close();
  }

  async join(replicaId: string, onMessage: BusMessageHandler): Promise<BusMember> {
    if (typeof replicaId !== "string" || replicaId === "") {
      throw new OpampError("invalid_argument", "a replica id is a non-empty string");
    }
    const member = new PgMember(this, replicaId, onMessage, () => this.#members.delete(member));
    await member.start();
    this.#members.add(member);
    return member;
  }
}

/** One replica on the bus. */
class PgMember implements BusMember {
  readonly #bus: PostgresServerBus;
  readonly #db: SqlDatabase;
  readonly #s: string;
  readonly #onMessage: BusMessageHandler;
  readonly #onLeave: () => void;
  /** Agents claimed and not released: claimed again if this replica's row was removed. */
  readonly #held = new Set<string>();
  readonly #claims: ReadBatch<string>;
  readonly #releases: ReadBatch<true>;
  readonly #locates: ReadBatch<string>;
  #unlisten: (() => Promise<void>) | undefined;
  #heartbeat: ReturnType<typeof setTimeout> | undefined;
  #beats = 0;
  #left = false;
  /** Sends, one after the other: NOTIFYs of one session arrive in the order they were sent. */
  #sending: Promise<void> = Promise.resolve();
  /** Received messages, handled one after the other (a spilled one is fetched first). */
  #receiving: Promise<void> = Promise.resolve();

  constructor(
    bus: PostgresServerBus,
    readonly replicaId: string,
    onMessage: BusMessageHandler,
    onLeave: () => void,
  ) {
    this.#bus = bus;
    this.#db = bus.db;
    this.#s = bus.schema;
    this.#onMessage = onMessage;
    this.#onLeave = onLeave;
    const ttl = bus.replicaTtlMs;
    const s = this.#s;
    this.#claims = new ReadBatch(500, async (uids) => {
      const { rows } = await this.#db.query<{ instance_uid: string; replica_id: string }>(
        `WITH input AS (SELECT DISTINCT unnest($1::uuid[]) AS u),
         previous AS (
           SELECT p.instance_uid, p.replica_id FROM ${s}.bus_presence p
             JOIN input ON p.instance_uid = input.u
             JOIN ${s}.bus_replicas r ON r.replica_id = p.replica_id
            WHERE p.replica_id <> $2 AND r.heartbeat_at > now() - make_interval(secs => $3::float8 / 1000)),
         claimed AS (
           INSERT INTO ${s}.bus_presence (instance_uid, replica_id) SELECT u, $2 FROM input
           ON CONFLICT (instance_uid) DO UPDATE SET replica_id = excluded.replica_id, since = now())
         SELECT instance_uid::text, replica_id FROM previous`,
        [uids, this.replicaId, ttl],
      );
      return new Map(rows.map((r) => [r.instance_uid, r.replica_id]));
    });
    this.#releases = new ReadBatch(500, async (uids) => {
      await this.#db.query(`DELETE FROM ${s}.bus_presence WHERE instance_uid = ANY($1::uuid[]) AND replica_id = $2`, [
        uids,
        this.replicaId,
      ]);
      return new Map();
    });
    this.#locates = new ReadBatch(500, async (uids) => {
      const { rows } = await this.#db.query<{ instance_uid: string; replica_id: string }>(
        `SELECT p.instance_uid::text, p.replica_id FROM ${s}.bus_presence p
           JOIN ${s}.bus_replicas r ON r.replica_id = p.replica_id
          WHERE p.instance_uid = ANY($1::uuid[])
            AND (p.replica_id = $2 OR r.heartbeat_at > now() - make_interval(secs => $3::float8 / 1000))`,
        [uids, this.replicaId, ttl],
      );
      return new Map(rows.map((r) => [r.instance_uid, r.replica_id]));
    });
  }

  async start(): Promise<void> {
    await this.#guard(async () => {
      await this.#register();
      // Whoever had this id before (a crashed process restarted with a fixed id) held agents
      // that are not connected here.
      await this.#db.query(`DELETE FROM ${this.#s}.bus_presence WHERE replica_id = $1`, [this.replicaId]);
      this.#unlisten = await this.#db.listen(channelOf(this.#s, this.replicaId), (payload) => this.#notified(payload));
    });
    this.#scheduleHeartbeat();
  }

  async #register(): Promise<void> {
    await this.#db.query(
      `INSERT INTO ${this.#s}.bus_replicas (replica_id) VALUES ($1)
       ON CONFLICT (replica_id) DO UPDATE SET heartbeat_at = now(), started_at = now()`,
      [this.replicaId],
    );
  }

  #scheduleHeartbeat(): void {
    if (this.#left) return;
    this.#heartbeat = setTimeout(() => void this.#beat(), this.#bus.heartbeatIntervalMs);
    this.#heartbeat.unref?.();
  }

  async #beat(): Promise<void> {
    const s = this.#s;
    try {
      const { rows } = await this.#db.query<{ replica_id: string }>(
        `UPDATE ${s}.bus_replicas SET heartbeat_at = now() WHERE replica_id = $1 RETURNING replica_id`,
        [this.replicaId],
      );
      if (rows.length === 0 && !this.#left) {
        // Taken for dead and removed (the database was out of reach for long): come back,
        // with the agents still connected here.
        await this.#register();
        if (this.#held.size > 0) await this.claim([...this.#held]);
      }
      if (++this.#beats % 12 === 0) {
        await this.#db.query(
          `DELETE FROM ${s}.bus_replicas WHERE heartbeat_at < now() - make_interval(secs => $1::float8 / 100)`,
          [this.#bus.replicaTtlMs],
        );
        await this.#db.query(`DELETE FROM ${s}.bus_spill WHERE created_at < now() - interval '${SPILL_RETENTION}'`);
      }
    } catch {
      // The next beat tries again; until then other replicas may take this one for gone.
    }
    this.#scheduleHeartbeat();
  }

  async #guard<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#left) throw new OpampError("not_running", `replica ${this.replicaId} left the bus`);
    try {
      return await fn();
    } catch (e) {
      throw OpampError.from(e, "storage_failed");
    }
  }

  send(to: string, payload: Uint8Array): Promise<void> {
    const text = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString("base64");
    const channel = channelOf(this.#s, to);
    const next = this.#sending.then(() =>
      this.#guard(async () => {
        if (text.length + this.replicaId.length + 16 <= MAX_NOTIFY_BYTES) {
          await this.#db.query("SELECT pg_notify($1, $2)", [channel, JSON.stringify({ f: this.replicaId, d: text })]);
          return;
        }
        const { rows } = await this.#db.query<{ id: string }>(
          `INSERT INTO ${this.#s}.bus_spill (payload) VALUES ($1) RETURNING id::text AS id`,
          [payload],
        );
        await this.#db.query("SELECT pg_notify($1, $2)", [
          channel,
          JSON.stringify({ f: this.replicaId, s: rows[0]!.id }),
        ]);
      }),
    );
    this.#sending = next.catch(() => undefined);
    return next;
  }

  #notified(text: string): void {
    this.#receiving = this.#receiving.then(async () => {
      if (this.#left) return;
      let message: { f?: unknown; d?: unknown; s?: unknown };
      try {
        message = JSON.parse(text) as typeof message;
      } catch {
        return; // not ours: someone else NOTIFYs on this channel
      }
      if (typeof message.f !== "string") return;
      let payload: Uint8Array | undefined;
      if (typeof message.d === "string") payload = new Uint8Array(Buffer.from(message.d, "base64"));
      else if (typeof message.s === "string") {
        const { rows } = await this.#db
          .query<{ payload: Uint8Array }>(`DELETE FROM ${this.#s}.bus_spill WHERE id = $1::bigint RETURNING payload`, [
            message.s,
          ])
          .catch(() => ({ rows: [] as { payload: Uint8Array }[] }));
        if (rows[0] !== undefined) payload = new Uint8Array(rows[0].payload);
      }
      if (payload === undefined || this.#left) return;
      try {
        this.#onMessage(message.f, payload);
      } catch {
        // The handler's own failures are its to report.
      }
    });
  }

  async claim(instanceUids: readonly string[]): Promise<ReadonlyMap<string, string>> {
    return this.#guard(async () => {
      for (const uid of instanceUids) this.#held.add(uid);
      const previous = await Promise.all(instanceUids.map((uid) => this.#claims.get(uid)));
      const moved = new Map<string, string>();
      instanceUids.forEach((uid, i) => {
        const p = previous[i];
        if (p !== undefined) moved.set(uid, p);
      });
      return moved;
    });
  }

  async release(instanceUids: readonly string[]): Promise<void> {
    await this.#guard(async () => {
      for (const uid of instanceUids) this.#held.delete(uid);
      await Promise.all(instanceUids.map((uid) => this.#releases.get(uid)));
    });
  }

  locate(instanceUid: string): Promise<string | undefined> {
    return this.#guard(() => this.#locates.get(instanceUid));
  }

  async leave(): Promise<void> {
    if (this.#left) return;
    this.#left = true;
    this.#onLeave();
    if (this.#heartbeat !== undefined) clearTimeout(this.#heartbeat);
    await this.#sending;
    await this.#unlisten?.().catch(() => undefined);
    await this.#db
      .query(`DELETE FROM ${this.#s}.bus_replicas WHERE replica_id = $1`, [this.replicaId])
      .catch(() => undefined);
    this.#held.clear();
  }
}

/**
 * `new PostgresServerBus`, outside the class body: a class that names itself inside its own body is
 * renamed `_PostgresServerBus` by the bundler (scripts/check-package.mjs checks exported names).
 */
function newBus(database: SqlDatabase, options: ConstructorParameters<typeof PostgresServerBus>[1]): PostgresServerBus {
  return new PostgresServerBus(database, options);
}
