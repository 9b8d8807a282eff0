#!/usr/bin/env node
// Starts agent-api. One command: `npm run agent-api` (after `npm run build`).
//
//   DATABASE_URL           PostgreSQL (postgres://user:pass@host:5432/db); unset: embedded PGlite
//   AGENT_API_DATA_DIR     PGlite only: where to keep the database (unset: in memory)
//   PORT                   default 8082 (OpAMP on /v1/opamp, both transports)
//   AGENT_API_ADMIN_TOKEN  the REST API's and dashboard's token (unset: one is made and printed)
//   AGENT_API_KEK          base64 of the 32-byte key-encryption key for secrets (unset: made and printed)
//   AGENT_API_REPLICA_ID   this replica's id among replicas (unset: random)
//   AGENT_API_BOOTSTRAP    an org name: create it and an enrollment token at start, and print the token

import { randomBytes } from "node:crypto";
import { startAgentApi } from "./app.mjs";

const env = process.env;
let adminToken = env.AGENT_API_ADMIN_TOKEN;
if (!adminToken) {
  adminToken = randomBytes(24).toString("base64url");
  console.log(`AGENT_API_ADMIN_TOKEN not set; this run's admin token: ${adminToken}`);
}
let kek = env.AGENT_API_KEK ? Buffer.from(env.AGENT_API_KEK, "base64") : undefined;
if (kek === undefined) {
  kek = randomBytes(32);
  console.log(`AGENT_API_KEK not set; secrets of this run are sealed with AGENT_API_KEK=${kek.toString("base64")}`);
}

const app = await startAgentApi({
  databaseUrl: env.DATABASE_URL,
  dataDir: env.AGENT_API_DATA_DIR,
  port: Number(env.PORT ?? 8082),
  host: env.HOST ?? "0.0.0.0",
  adminToken,
  kek,
  replicaId: env.AGENT_API_REPLICA_ID,
  heartbeatIntervalSeconds: env.AGENT_API_HEARTBEAT_SECONDS ? Number(env.AGENT_API_HEARTBEAT_SECONDS) : undefined,
});

if (env.AGENT_API_BOOTSTRAP) {
  const name = env.AGENT_API_BOOTSTRAP;
  const { rows } = await app.db.query(
    "INSERT INTO orgs (name) VALUES ($1) ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING id",
    [name],
  );
  const { token } = await app.enrollment.createToken(rows[0].id, { description: "bootstrap" });
  console.log(`org ${name} (${rows[0].id}); enrollment token: ${token}`);
}
console.log(`dashboard: ${app.url}/#token=${encodeURIComponent(adminToken)}`);

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, () => {
    app.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}
