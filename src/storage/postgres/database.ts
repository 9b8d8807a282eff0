/**
 * The one thing the PostgreSQL store and bus need from a database: run SQL, run it in a
 * transaction, and LISTEN. Two adapters give it: node-postgres (`pg`, a real server) and
 * PGlite (`@electric-sql/pglite`, PostgreSQL compiled to WebAssembly, in the process). The
 * same SQL runs on both. Neither package is imported here: the caller passes its own pool or
 * PGlite instance (both are optional peer dependencies), or {@link openDatabase} loads the
 * one it needs.
 */
import { OpampError } from "../../wire/errors.js";

/** Rows of one query. */
export interface SqlResult<R> {
  /** The rows returned (none for statements without RETURNING), keyed by column name. */
  readonly rows: R[];
}

/** Something that runs SQL: the database, or a transaction. */
export interface SqlQueryable {
  /** Runs one statement with `$1…` parameters. */
  query<R = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<SqlResult<R>>;
  /** Runs several statements without parameters (migrations). */
  exec(text: string): Promise<void>;
}

/** A database the PostgreSQL store and bus run on. */
export interface SqlDatabase extends SqlQueryable {
  /** `"pg"` for a PostgreSQL server, `"pglite"` for an embedded PGlite. */
  readonly kind: "pg" | "pglite";
  /** Runs `fn` in a transaction: committed when it resolves, rolled back when it rejects. */
  transaction<T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T>;
  /**
   * Calls `onNotify` with the payload of every NOTIFY on `channel` (a plain lower-case
   * identifier) until the returned function is called. With `pg` one dedicated connection
   * carries every channel; it is re-established when lost (after a loss, notifications sent
   * meanwhile are gone: `onReconnect` hears of it).
   */
  listen(channel: string, onNotify: (payload: string) => void, onReconnect?: () => void): Promise<() => Promise<void>>;
  /** Closes what this adapter opened (a pool made by {@link openDatabase}, the listening connection). */
  close(): Promise<void>;
}

/** The part of a node-postgres client the adapter uses (a `pg.PoolClient`). */
export interface PgClientLike {
  /** Runs one statement with `$1…` parameters. */
  query(
    text: string,
    params?: unknown[],
  ): Promise<{
    /** The rows returned, one object per row keyed by column name. */
    rows: unknown[];
  }>;
  /** Gives the client back to the pool; a truthy `error` destroys it instead (a broken LISTEN connection). */
  release(error?: Error | boolean): void;
  /** `"notification"` listeners get `{ channel, payload }`, `"error"` an Error, `"end"` nothing. */
  on(event: "notification" | "error" | "end", listener: (value: never) => void): unknown;
}

/** A NOTIFY as node-postgres reports it. */
interface PgNotification {
  readonly channel: string;
  readonly payload?: string;
}

/** The part of a node-postgres pool the adapter uses (a `pg.Pool`). */
export interface PgPoolLike {
  /** Runs one statement with `$1…` parameters. */
  query(
    text: string,
    params?: unknown[],
  ): Promise<{
    /** The rows returned, one object per row keyed by column name. */
    rows: unknown[];
  }>;
  /** Checks a client out of the pool: transactions and the LISTEN connection use one. */
  connect(): Promise<PgClientLike>;
  /** Closes every client of the pool; called by `close()` only when the adapter owns the pool. */
  end(): Promise<void>;
}

/** The part of a PGlite instance the adapter uses (`@electric-sql/pglite`'s `PGlite`). */
export interface PGliteLike {
  /** Runs one statement with `$1…` parameters. */
  query(
    text: string,
    params?: unknown[],
  ): Promise<{
    /** The rows returned, one object per row keyed by column name. */
    rows: unknown[];
  }>;
  /** Runs several statements without parameters (migrations). */
  exec(text: string): Promise<unknown>;
  /** Runs `fn` in a transaction: committed when it resolves, rolled back when it rejects. */
  transaction<T>(
    fn: (tx: {
      query(text: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
      exec(text: string): Promise<unknown>;
    }) => Promise<T>,
  ): Promise<T>;
  /** Calls `callback` with the payload of every NOTIFY on `channel`; resolves with the function that stops it. */
  listen(channel: string, callback: (payload: string) => void): Promise<() => Promise<void>>;
  /** Closes the database; called by `close()` only when the adapter opened it. */
  close(): Promise<void>;
  /** True once closed; the adapter then neither unlistens nor closes it again. */
  readonly closed?: boolean;
}

const CHANNEL = /^[a-z_][a-z0-9_]{0,62}$/;

function checkChannel(channel: string): void {
  if (!CHANNEL.test(channel)) {
    throw new OpampError("invalid_argument", `a LISTEN channel must be a lower-case identifier, got "${channel}"`);
  }
}

/** Delay before the n-th attempt to re-establish a lost LISTEN connection: 0.25 s doubling up to 10 s. */
function reconnectDelay(attempt: number): number {
  return Math.min(10_000, 250 * 2 ** attempt);
}

/**
 * A {@link SqlDatabase} on a node-postgres pool. `ownsPool`: whether `close()` ends the pool
 * (default false: the caller's pool stays the caller's).
 */
export function pgDatabase(pool: PgPoolLike, options: { readonly ownsPool?: boolean } = {}): SqlDatabase {
  const channels = new Map<string, Set<{ onNotify: (p: string) => void; onReconnect: (() => void) | undefined }>>();
  let listener: Promise<PgClientLike> | undefined;
  /** Releases each listening client once (a released client still emits `end`). */
  const released = new WeakSet<PgClientLike>();
  const releaseOnce = (client: PgClientLike) => {
    if (released.has(client)) return;
    released.add(client);
    client.release(true);
  };
  let closed = false;
  let attempt = 0;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;

  const connectListener = (): Promise<PgClientLike> => {
    const made = (async () => {
      const client = await pool.connect();
      let lost = false;
      const onLost = () => {
        if (lost) return;
        lost = true;
        releaseOnce(client);
        if (listener === made) listener = undefined;
        if (closed || channels.size === 0) return;
        // Re-listen after a pause; whoever listens hears that notifications may be lost.
        retryTimer = setTimeout(() => {
          retryTimer = undefined;
          void ensureListener().then(
            () => {
              attempt = 0;
              for (const set of channels.values()) for (const h of set) h.onReconnect?.();
            },
            () => undefined,
          );
        }, reconnectDelay(attempt++));
      };
      client.on("error", onLost);
      client.on("end", onLost);
      client.on("notification", (message: PgNotification) => {
        const set = channels.get(message.channel);
        if (set === undefined) return;
        for (const h of [...set]) h.onNotify(message.payload ?? "");
      });
      for (const channel of channels.keys()) await client.query(`LISTEN ${channel}`);
      return client;
    })();
    return made;
  };

  const ensureListener = (): Promise<PgClientLike> => {
    if (listener === undefined) {
      const attemptMade = connectListener();
      listener = attemptMade;
      attemptMade.catch(() => {
        if (listener === attemptMade) listener = undefined;
        if (!closed && channels.size > 0 && retryTimer === undefined) {
          retryTimer = setTimeout(() => {
            retryTimer = undefined;
            void ensureListener().catch(() => undefined);
          }, reconnectDelay(attempt++));
        }
      });
    }
    return listener;
  };

  const wrap = (q: { query(text: string, params?: unknown[]): Promise<{ rows: unknown[] }> }): SqlQueryable => ({
    async query<R>(text: string, params?: readonly unknown[]) {
      const result = await q.query(text, params === undefined ? undefined : [...params]);
      return { rows: result.rows as R[] };
    },
    async exec(text: string) {
      await q.query(text);
    },
  });
  const base = wrap(pool);

  return {
    kind: "pg",
    query: base.query,
    exec: base.exec,
    async transaction<T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      let broken = false;
      try {
        await client.query("BEGIN");
        const result = await fn(wrap(client));
        await client.query("COMMIT");
        return result;
      } catch (e) {
        await client.query("ROLLBACK").catch(() => {
          broken = true;
        });
        throw e;
      } finally {
        client.release(broken);
      }
    },
    async listen(channel, onNotify, onReconnect) {
      checkChannel(channel);
      if (closed) throw new OpampError("not_running", "the database is closed");
      let set = channels.get(channel);
      const handler = { onNotify, onReconnect };
      const first = set === undefined;
      if (set === undefined) {
        set = new Set();
        channels.set(channel, set);
      }
      set.add(handler);
      const client = await ensureListener();
      if (first) await client.query(`LISTEN ${channel}`);
      return async () => {
        const current = channels.get(channel);
        if (current === undefined || !current.delete(handler) || current.size > 0) return;
        channels.delete(channel);
        const c = listener === undefined ? undefined : await listener.catch(() => undefined);
        await c?.query(`UNLISTEN ${channel}`).catch(() => undefined);
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      if (retryTimer !== undefined) clearTimeout(retryTimer);
      channels.clear();
      const c = listener === undefined ? undefined : await listener.catch(() => undefined);
      listener = undefined;
      if (c !== undefined) releaseOnce(c);
      if (options.ownsPool === true) await pool.end();
    },
  };
}

/**
 * A {@link SqlDatabase} on a PGlite instance. `ownsDatabase`: whether `close()` closes the
 * instance (default false).
 */
export function pgliteDatabase(db: PGliteLike, options: { readonly ownsDatabase?: boolean } = {}): SqlDatabase {
  const wrap = (q: {
    query(text: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
    exec(text: string): Promise<unknown>;
  }): SqlQueryable => ({
    async query<R>(text: string, params?: readonly unknown[]) {
      const result = await q.query(text, params === undefined ? undefined : [...params]);
      return { rows: result.rows as R[] };
    },
    async exec(text: string) {
      await q.exec(text);
    },
  });
  const base = wrap(db);
  let closed = false;
  return {
    kind: "pglite",
    query: base.query,
    exec: base.exec,
    transaction: (fn) => db.transaction((tx) => fn(wrap(tx))),
    async listen(channel, onNotify) {
      checkChannel(channel);
      if (closed) throw new OpampError("not_running", "the database is closed");
      const unlisten = await db.listen(channel, onNotify);
      return async () => {
        if (!closed && db.closed !== true) await unlisten();
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      if (options.ownsDatabase === true && db.closed !== true) await db.close();
    },
  };
}

/** What {@link openDatabase} opens. */
export interface OpenDatabaseOptions {
  /**
   * A PostgreSQL connection URL (`postgres://user:pass@host:5432/db`): opens a `pg` pool.
   * Without it, an embedded PGlite database opens instead.
   */
  readonly url?: string;
  /** PGlite only: a directory to keep the database in. Default: in memory (gone on exit). */
  readonly dataDir?: string;
  /** `pg` only: connections in the pool. Default {@link DEFAULT_POOL_SIZE}. */
  readonly poolSize?: number;
}

/** Default number of connections {@link openDatabase} puts in a `pg` pool. */
export const DEFAULT_POOL_SIZE = 10;

/**
 * Opens a database: PostgreSQL through `pg` when `url` is given, else an embedded PGlite
 * (in `dataDir`, or in memory). The package needed is loaded on demand; `close()` closes
 * what was opened.
 *
 * @throws OpampError `invalid_argument` when the package needed is not installed (`npm i pg`
 *   or `npm i @electric-sql/pglite`), `storage_failed` when the database cannot be reached.
 */
export async function openDatabase(options: OpenDatabaseOptions = {}): Promise<SqlDatabase> {
  if (options.url !== undefined && options.url !== "") {
    const pg = await importOptional<{ default?: { Pool: PgPoolCtor }; Pool?: PgPoolCtor }>("pg");
    const Pool = pg.Pool ?? pg.default?.Pool;
    if (Pool === undefined) throw new OpampError("invalid_argument", "the pg package does not export Pool");
    const pool = new Pool({ connectionString: options.url, max: options.poolSize ?? DEFAULT_POOL_SIZE });
    // An idle client that loses its connection emits on the pool; without a listener Node would throw.
    pool.on("error", () => undefined);
    try {
      await pool.query("SELECT 1");
    } catch (e) {
      await pool.end().catch(() => undefined);
      throw new OpampError("storage_failed", `cannot reach PostgreSQL: ${(e as Error).message}`, { cause: e });
    }
    return pgDatabase(pool, { ownsPool: true });
  }
  const mod = await importOptional<{ PGlite: { create(dataDir?: string): Promise<PGliteLike> } }>(
    "@electric-sql/pglite",
  );
  const db = await mod.PGlite.create(options.dataDir);
  return pgliteDatabase(db, { ownsDatabase: true });
}

type PgPoolCtor = new (config: {
  connectionString: string;
  max: number;
}) => PgPoolLike & { on(event: "error", listener: (e: Error) => void): unknown };

async function importOptional<T>(name: string): Promise<T> {
  try {
    return (await import(name)) as T;
  } catch (e) {
    throw new OpampError("invalid_argument", `the optional package "${name}" is needed: npm install ${name}`, {
      cause: e,
    });
  }
}
