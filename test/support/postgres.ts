// PostgreSQL for the tests: a real server (Debian's postgresql package) and PGlite, the same
// SQL on both. The server's URL comes from OPAMP_TEST_POSTGRES_URL (.ci/run starts a
// throwaway cluster with scripts/postgres-cluster.sh and exports it); without it, a cluster
// is started here once per test process when the binaries are installed. Without
// PostgreSQL the suites are skipped with a warning, except under CI=true, where a failing
// test takes their place.

import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { PGlite } from "@electric-sql/pglite";
import pg from "pg";
import { describe, it } from "vitest";
import { pgDatabase, pgliteDatabase, type SqlDatabase } from "../../src/storage/postgres/index.js";

const SCRIPT = fileURLToPath(new URL("../../scripts/postgres-cluster.sh", import.meta.url));

function inCI(): boolean {
  return process.env.CI === "true" || process.env.CI === "1";
}

function installed(): boolean {
  if (!existsSync("/usr/lib/postgresql")) return false;
  return readdirSync("/usr/lib/postgresql").some((v) => existsSync(`/usr/lib/postgresql/${v}/bin/initdb`));
}

let url: string | undefined | null;

/** The URL of a PostgreSQL server for tests, or undefined when there is none. */
export function postgresUrl(): string | undefined {
  if (url === undefined) {
    const given = process.env.OPAMP_TEST_POSTGRES_URL;
    if (given !== undefined && given !== "") url = given;
    else if (installed()) {
      try {
        url = execFileSync("bash", [SCRIPT, "start"], { encoding: "utf8", timeout: 120_000 }).trim();
        process.env.OPAMP_TEST_POSTGRES_URL = url;
      } catch (e) {
        console.warn(`could not start a PostgreSQL cluster: ${(e as Error).message}`);
        url = null;
      }
    } else url = null;
  }
  return url ?? undefined;
}

/** `describe` for suites that need a PostgreSQL server (skipped without one, failing in CI). */
export function describeWithPostgres(name: string, body: (url: string) => void): void {
  const found = postgresUrl();
  if (found === undefined) {
    const why = `${name}: PostgreSQL is needed (apt-get install -y postgresql, or set OPAMP_TEST_POSTGRES_URL)`;
    if (inCI()) {
      describe(name, () => {
        it("has PostgreSQL", () => {
          throw new Error(`${why}; CI is set, so this fails instead of skipping.`);
        });
      });
      return;
    }
    console.warn(`SKIPPED ${why}.`);
    describe.skip(name, () => undefined);
    return;
  }
  describe(name, () => body(found));
}

/** A fresh database on the test server, dropped by `drop()`. */
export async function freshPostgres(serverUrl: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `opamp_test_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: serverUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

/** A SqlDatabase on a new pg pool to `databaseUrl`; close() ends the pool. */
export function pgPool(databaseUrl: string, max = 5): SqlDatabase {
  const pool = new pg.Pool({ connectionString: databaseUrl, max });
  pool.on("error", () => undefined);
  return pgDatabase(pool, { ownsPool: true });
}

/** A SqlDatabase on a new in-memory PGlite; close() closes it. */
export async function pglite(): Promise<SqlDatabase> {
  return pgliteDatabase(await PGlite.create(), { ownsDatabase: true });
}

/** A schema name no other test uses. */
export function freshSchema(): string {
  return `t_${randomBytes(5).toString("hex")}`;
}
