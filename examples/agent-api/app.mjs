// agent-api: an OpAMP server for a fleet of OpenTelemetry Collectors, built on opamp-sdk.
//
//   /v1/opamp        OpAMP, WebSocket and HTTP polling (what agents connect to)
//   /api/v1/…        the REST API (openapi.yaml), admin token
//   /                the fleet dashboard, live over server-sent events
//
// Storage is PostgreSQL when a URL is given, else an embedded PGlite: the same SQL. Several
// agent-api processes on one PostgreSQL database are replicas of one service (see
// docs/replicas.md): the SDK's bus carries pushes for agents connected to another replica,
// and `NOTIFY agent_config_changed` reaches every replica.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { OpAMPServer } from "opamp-sdk/server";
import { openDatabase, PostgresServerBus, PostgresServerStore } from "opamp-sdk/storage/postgres";
import { Configs } from "./configs.mjs";
import { Enrollment } from "./enrollment.mjs";
import { Fleet } from "./fleet.mjs";
import { isAdmin, restApi } from "./rest.mjs";
import { migrateAgentApi } from "./schema.mjs";
import { localKms, Secrets } from "./secrets.mjs";

const DASHBOARD = readFileSync(new URL("./dashboard.html", import.meta.url));
const OPENAPI = readFileSync(new URL("./openapi.yaml", import.meta.url));

/** Channel of the seed's push trigger: `NOTIFY agent_config_changed, '{"org_id": "…"}'`. */
export const CONFIG_CHANGED = "agent_config_changed";
/** Channel the replicas use to tell every dashboard that an agent changed. */
const AGENT_EVENTS = "agent_api_events";
/** Dashboards connected at once (each holds a socket). */
export const MAX_EVENT_STREAMS = 100;

/**
 * Starts agent-api.
 *
 * @param {{
 *   databaseUrl?: string, dataDir?: string, db?: import("opamp-sdk/storage/postgres").SqlDatabase,
 *   port?: number, host?: string, adminToken: string, kek?: Buffer, kms?: import("./secrets.mjs").Kms,
 *   replicaId?: string, heartbeatIntervalSeconds?: number, log?: (line: string) => void,
 *   limits?: import("opamp-sdk/server").OpAMPServerOptions["limits"],
 * }} options
 */
export async function startAgentApi(options) {
  const log = options.log ?? ((line) => console.log(line));
  if (typeof options.adminToken !== "string" || options.adminToken.length < 16) {
    throw new Error("an admin token of at least 16 characters is required (AGENT_API_ADMIN_TOKEN)");
  }
  const db = options.db ?? (await openDatabase({ url: options.databaseUrl, dataDir: options.dataDir }));
  await migrateAgentApi(db);
  const store = await PostgresServerStore.open(db);
  const bus = await PostgresServerBus.open(db);
  const kms = options.kms ?? localKms(options.kek);
  const secrets = new Secrets(db, kms);
  const onError = (e) => log(`error: ${e?.stack ?? e}`);

  const enrollment = new Enrollment({ db, onError });
  const server = new OpAMPServer({
    store,
    bus,
    ...(options.replicaId ? { replicaId: options.replicaId } : {}),
    heartbeat: { intervalSeconds: options.heartbeatIntervalSeconds ?? 30 },
    ...(options.limits ? { limits: options.limits } : {}),
    hooks: {
      authenticate: enrollment.authenticate,
      authorizeMessage: enrollment.authorizeMessage,
      allowRebind: enrollment.allowRebind,
    },
  });
  server.on("error", (e) => log(`opamp: ${e.code}: ${e.message}`));

  // Live updates: any replica's change reaches every replica's dashboards. Changes within
  // 100 ms go out as one NOTIFY (a fan-out changes thousands of agents at once).
  const streams = new Set();
  let changed = new Set();
  let announceTimer;
  const announce = (agentId) => {
    changed.add(agentId);
    announceTimer ??= setTimeout(() => {
      announceTimer = undefined;
      const ids = [...changed];
      changed = new Set();
      // A NOTIFY payload holds at most 8000 bytes: 150 UUIDs per notification.
      for (let i = 0; i < ids.length; i += 150) {
        const payload = JSON.stringify({ agent_ids: ids.slice(i, i + 150) });
        db.query("SELECT pg_notify($1, $2)", [AGENT_EVENTS, payload]).catch(onError);
      }
    }, 100);
  };
  const configs = new Configs({ db, server, secrets, onChange: announce, onError });
  const fleet = new Fleet({ db, server, configs, replicaId: server.replicaId, onChange: announce, onError });
  enrollment.attach(server);
  fleet.attach();

  const unlisten = [
    await db.listen(CONFIG_CHANGED, (payload) => {
      let orgId;
      try {
        orgId = JSON.parse(payload).org_id;
      } catch {
        log(`${CONFIG_CHANGED}: payload is not JSON: ${payload.slice(0, 200)}`);
        return;
      }
      if (typeof orgId !== "string") return;
      configs.reconcileOrg(orgId).catch(onError);
    }),
    await db.listen(AGENT_EVENTS, (payload) => {
      for (const res of streams) res.write(`event: agent\ndata: ${payload}\n\n`);
    }),
  ];
  const notifyConfigChanged = (orgId) =>
    db.query("SELECT pg_notify($1, $2)", [CONFIG_CHANGED, JSON.stringify({ org_id: orgId })]);
  const api = restApi({ db, server, enrollment, secrets, notifyConfigChanged, adminToken: options.adminToken });

  const http = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://agent-api");
    if (url.pathname === server.options.path) {
      server.requestHandler(req, res);
      return;
    }
    if (url.pathname === "/api/v1/events" && req.method === "GET") {
      eventStream(req, res, url);
      return;
    }
    api(req, res, url)
      .then((handled) => {
        if (handled) return;
        if (req.method === "GET" && (url.pathname === "/" || url.pathname === "/index.html")) {
          res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(DASHBOARD);
        } else if (req.method === "GET" && url.pathname === "/openapi.yaml") {
          res.writeHead(200, { "content-type": "application/yaml" }).end(OPENAPI);
        } else res.writeHead(404).end();
      })
      .catch((e) => {
        onError(e);
        if (!res.headersSent) res.writeHead(500).end();
      });
  });
  http.on("upgrade", (req, socket, head) => {
    void server.upgradeHandler(req, socket, head).then((mine) => {
      if (!mine) socket.destroy();
    });
  });

  const adminDigest = createHash("sha256").update(options.adminToken).digest();
  function eventStream(req, res, url) {
    if (!isAdmin(req, url, adminDigest)) {
      res.writeHead(401).end();
      return;
    }
    if (streams.size >= MAX_EVENT_STREAMS) {
      res.writeHead(503, { "retry-after": "10" }).end();
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    res.write(": agent-api live updates\n\n");
    streams.add(res);
    req.on("close", () => streams.delete(res));
  }

  // A replica that died (kill -9, a lost machine) cannot mark its agents offline: any live
  // replica does it once the bus has taken the dead one for gone. Agents that reconnected
  // elsewhere were rewritten by the replica they reached.
  const sweepDead = setInterval(() => {
    db.query(
      `UPDATE agents SET status = 'offline', replica_id = NULL
        WHERE status = 'online' AND replica_id IS NOT NULL AND replica_id NOT IN (
          SELECT replica_id FROM opamp.bus_replicas
           WHERE heartbeat_at > now() - make_interval(secs => $1::float8 / 1000))`,
      [bus.replicaTtlMs],
    ).catch(onError);
  }, bus.replicaTtlMs);
  sweepDead.unref();

  await server.start();
  await new Promise((resolve, reject) => {
    http.once("error", reject);
    http.listen(options.port ?? 8082, options.host ?? "0.0.0.0", () => {
      http.off("error", reject);
      resolve();
    });
  });
  const address = http.address();
  const base = `http://${address.family === "IPv6" ? `[${address.address}]` : address.address}:${address.port}`;
  log(`agent-api replica ${server.replicaId} on ${base} (OpAMP ${base}${server.options.path}, ${db.kind})`);

  let stopping;
  return {
    url: base,
    opampUrl: `${base}${server.options.path}`,
    port: address.port,
    server,
    db,
    enrollment,
    configs,
    replicaId: server.replicaId,
    /** Stops taking agents, leaves the bus, closes the database (if agent-api opened it). */
    stop() {
      stopping ??= (async () => {
        clearInterval(sweepDead);
        clearTimeout(announceTimer);
        for (const res of streams) res.end();
        await server.stop();
        await new Promise((resolve) => {
          http.close(() => resolve());
          http.closeAllConnections();
        });
        for (const u of unlisten) await u().catch(() => undefined);
        await store.close();
        if (options.db === undefined) await db.close();
      })();
      return stopping;
    },
  };
}
