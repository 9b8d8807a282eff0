// The ServerBus contract on the in-memory bus, on PostgreSQL and on PGlite.
import * as vitest from "vitest";
import { afterAll, beforeAll, describe } from "vitest";
import { InMemoryServerBus } from "../../../src/server/index.js";
import { PostgresServerBus, type SqlDatabase } from "../../../src/storage/postgres/index.js";
import { serverBusContract } from "../../../src/testing/index.js";
import { describeWithPostgres, freshSchema, pglite, pgPool } from "../../support/postgres.js";

serverBusContract(vitest, "InMemoryServerBus", () => new InMemoryServerBus());

describeWithPostgres("PostgresServerBus on PostgreSQL", (url) => {
  let db: SqlDatabase;
  beforeAll(() => {
    db = pgPool(url);
  });
  afterAll(() => db.close());
  serverBusContract(vitest, "PostgreSQL", async () => {
    const bus = await PostgresServerBus.open(db, { schema: freshSchema() });
    return { bus, dispose: () => bus.close() };
  });
});

describe("PostgresServerBus on PGlite", () => {
  let db: SqlDatabase;
  beforeAll(async () => {
    db = await pglite();
  });
  afterAll(() => db.close());
  serverBusContract(vitest, "PGlite", async () => {
    const bus = await PostgresServerBus.open(db, { schema: freshSchema() });
    return { bus, dispose: () => bus.close() };
  });
});
