// PostgresServerStore: the ServerStore contract on a real PostgreSQL server and on PGlite
// (the same SQL), then what the contract does not say: batching keeps order, one bad write
// fails alone, the delivery cap, migrations under concurrent starts, and a server restart.
import * as vitest from "vitest";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrate, PostgresServerStore, SCHEMA_VERSION, type SqlDatabase } from "../../../src/storage/postgres/index.js";
import { serverStoreContract } from "../../../src/testing/index.js";
import { OpampError } from "../../../src/wire/index.js";
import { describeWithPostgres, freshSchema, pglite, pgPool } from "../../support/postgres.js";

const UID = (n: number) => `018f2c6e-0000-7000-8000-${n.toString(16).padStart(12, "0")}`;

function suite(name: string, database: () => SqlDatabase) {
  serverStoreContract(vitest, name, async () => {
    const store = await PostgresServerStore.open(database(), { schema: freshSchema() });
    return { store, dispose: () => store.close() };
  });

  describe(`${name}: beyond the contract`, () => {
    it("writes made in one turn go in one batch, in order, and read back", async () => {
      const store = await PostgresServerStore.open(database(), { schema: freshSchema() });
      const writes: Promise<void>[] = [];
      for (let i = 0; i < 1200; i++) {
        writes.push(store.putAgent({ instanceUid: UID(i % 300), state: new Uint8Array([i & 0xff]), lastSeen: i }));
      }
      writes.push(store.appendDelivery(UID(1), "remoteConfig", new Uint8Array([1]), { status: "offered", at: 5 }));
      writes.push(store.appendDelivery(UID(1), "remoteConfig", new Uint8Array([1]), { status: "applying", at: 6 }));
      writes.push(store.appendDelivery(UID(1), "remoteConfig", new Uint8Array([1]), { status: "applied", at: 7 }));
      await Promise.all(writes);
      // The last of the four writes of each agent wins.
      for (const n of [0, 1, 299]) {
        const a = await store.getAgent(UID(n));
        expect(a?.lastSeen).toBe(900 + n);
        expect([...(a?.state ?? [])]).toEqual([(900 + n) & 0xff]);
      }
      const d = await store.listDeliveries(UID(1));
      expect(d[0]?.history.map((h) => h.status)).toEqual(["offered", "applying", "applied"]);
      await store.close();
    });

    it("a bad write fails alone with storage_failed; the rest of its batch lands", async () => {
      const store = await PostgresServerStore.open(database(), { schema: freshSchema() });
      const good = store.putAgent({ instanceUid: UID(1), state: new Uint8Array([1]), lastSeen: 1 });
      const bad = store
        .putAgent({ instanceUid: "not-a-uuid", state: new Uint8Array([2]), lastSeen: 1 })
        .catch((e: unknown) => e);
      const good2 = store.putDesired(UID(2), { remoteConfig: new Uint8Array([3]) });
      await expect(good).resolves.toBeUndefined();
      await expect(good2).resolves.toBeUndefined();
      const error = await bad;
      expect(error).toBeInstanceOf(OpampError);
      expect((error as OpampError).code).toBe("storage_failed");
      expect((await store.getAgent(UID(1)))?.lastSeen).toBe(1);
      expect([...((await store.getDesired(UID(2)))?.remoteConfig ?? [])]).toEqual([3]);
      await store.close();
    });

    it("keeps at most maxDeliveriesPerAgent deliveries per agent, dropping the oldest", async () => {
      const store = await PostgresServerStore.open(database(), { schema: freshSchema(), maxDeliveriesPerAgent: 3 });
      for (let i = 1; i <= 5; i++) {
        await store.appendDelivery(UID(1), "remoteConfig", new Uint8Array([i]), { status: "offered", at: i });
      }
      await store.appendDelivery(UID(2), "remoteConfig", new Uint8Array([9]), { status: "offered", at: 1 });
      const kept = await store.listDeliveries(UID(1));
      expect(kept.map((d) => d.hash[0])).toEqual([3, 4, 5]);
      expect((await store.listDeliveries(UID(2))).length).toBe(1);
      await store.close();
    });

    it("migrations run once, also when several stores open the same schema at once", async () => {
      const schema = freshSchema();
      const db = database();
      const stores = await Promise.all([1, 2, 3].map(() => PostgresServerStore.open(db, { schema })));
      const { rows } = await db.query<{ version: number }>(`SELECT version FROM ${schema}.schema_migrations`);
      expect(rows.map((r) => Number(r.version)).sort()).toEqual(
        Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1),
      );
      await migrate(db, schema); // again: nothing to do
      await Promise.all(stores.map((s) => s.close()));
    });

    it("refuses a schema name that is not a plain identifier", async () => {
      await expect(PostgresServerStore.open(database(), { schema: "x; drop table y" })).rejects.toMatchObject({
        code: "invalid_argument",
      });
    });

    it("a second store on the same schema (a restarted server) reads what the first wrote", async () => {
      const schema = freshSchema();
      const first = await PostgresServerStore.open(database(), { schema });
      await first.putAgent({ instanceUid: UID(7), state: new Uint8Array([7, 7]), lastSeen: 1_733_222_222_123 });
      await first.putDesired(UID(7), { sentConnectionSettingsHash: new Uint8Array([4, 2]) });
      await first.close();
      const second = await PostgresServerStore.open(database(), { schema });
      expect((await second.getAgent(UID(7)))?.lastSeen).toBe(1_733_222_222_123);
      expect([...((await second.getDesired(UID(7)))?.sentConnectionSettingsHash ?? [])]).toEqual([4, 2]);
      await second.close();
    });
  });
}

describeWithPostgres("PostgresServerStore on PostgreSQL", (url) => {
  const pools: SqlDatabase[] = [];
  let shared: SqlDatabase;
  beforeAll(() => {
    shared = pgPool(url);
    pools.push(shared);
  });
  afterAll(async () => {
    for (const p of pools) await p.close();
  });
  suite("PostgreSQL", () => shared);
});

describe("PostgresServerStore on PGlite", () => {
  let db: SqlDatabase;
  beforeAll(async () => {
    db = await pglite();
  });
  afterAll(async () => {
    await db.close();
  });
  suite("PGlite", () => db);
});
