/**
 * `opamp-sdk/storage/postgres`: OpAMPServer's store and replica bus on PostgreSQL, or on an
 * embedded PGlite running the same SQL. `pg` and `@electric-sql/pglite` are optional peer
 * dependencies: install the one you use.
 *
 * @module
 */
export {
  DEFAULT_POOL_SIZE,
  type OpenDatabaseOptions,
  openDatabase,
  type PGliteLike,
  type PgClientLike,
  type PgPoolLike,
  pgDatabase,
  pgliteDatabase,
  type SqlDatabase,
  type SqlQueryable,
  type SqlResult,
} from "./database.js";
export { checkSchema, DEFAULT_SCHEMA, migrate, SCHEMA_VERSION } from "./migrations.js";
export {
  DEFAULT_BUS_HEARTBEAT_INTERVAL_MS,
  DEFAULT_BUS_REPLICA_TTL_MS,
  PostgresServerBus,
  type PostgresServerBusOptions,
} from "./postgres-server-bus.js";
export {
  DEFAULT_MAX_DELIVERIES_PER_AGENT,
  DEFAULT_STORE_BATCH_SIZE,
  PostgresServerStore,
  type PostgresServerStoreOptions,
} from "./postgres-server-store.js";
