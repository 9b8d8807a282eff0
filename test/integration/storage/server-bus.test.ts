// The ServerBus contract on the in-memory bus, on PostgreSQL and on PGlite.
import * as vitest from "vitest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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

describe("PostgresServerBus: a replica that stops its heartbeat", () => {
  it("counts as gone after replicaTtlMs: its claims no longer locate; a replica coming back re-registers", async () => {
    const db = await pglite();
    const schema = freshSchema();
    const live = await PostgresServerBus.open(db, { schema, heartbeatIntervalMs: 100, replicaTtlMs: 600 });
    const other = await live.join("live", () => undefined);
    const uid = "018f2c6e-0000-7000-8000-00000000c0de";
    // A replica that dies: its heartbeat row is the last thing it wrote.
    await db.query(`INSERT INTO ${schema}.bus_replicas (replica_id, heartbeat_at) VALUES ('dead', now())`);
    await db.query(`INSERT INTO ${schema}.bus_presence (instance_uid, replica_id) VALUES ($1, 'dead')`, [uid]);
    expect(await other.locate(uid)).toBe("dead");
    await db.query(
      `UPDATE ${schema}.bus_replicas SET heartbeat_at = now() - interval '1 second' WHERE replica_id = 'dead'`,
    );
    expect(await other.locate(uid)).toBeUndefined();
    // Claiming it elsewhere does not name the dead replica as the one it moved from.
    expect([...(await other.claim([uid]))]).toEqual([]);
    // The live member's own row is kept fresh by its heartbeat; removed (taken for dead), it comes back.
    await db.query(`DELETE FROM ${schema}.bus_replicas WHERE replica_id = 'live'`);
    expect(await other.locate(uid)).toBeUndefined(); // its claims went with its row
    const back = async () => {
      const { rows } = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${schema}.bus_presence WHERE replica_id = 'live'`,
      );
      return rows[0]!.n === 1;
    };
    const end = Date.now() + 5_000;
    while (!(await back())) {
      if (Date.now() > end) throw new Error("the replica did not come back with its claims");
      // Waiting on the next heartbeat (every 100 ms here): a row in a table sends no event.
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await other.locate(uid)).toBe("live");
    await live.close();
    await db.close();
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
