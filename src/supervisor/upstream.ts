/**
 * The supervisor's connection to the management server: an OpAMPClient built from the
 * `server:` and `capabilities:` sections. Enrollment comes from the client's own
 * connection-settings handling: an offered agent key is verified by connecting, then
 * committed atomically to `opamp_client.json` and used at every later start, so the
 * enrollment token in `server.headers` is only sent until the first key arrives.
 */
import { createHash } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ClientHooks } from "../client/hooks.js";
import type { OpAMPClientOptions } from "../client/options.js";
import type { PackageStore } from "../client/package-store.js";
import type { ClientStateStore } from "../client/state-store.js";
import type { AgentDescriptionSchema } from "../gen/opamp/v1/opamp_pb.js";
import type { Clock } from "../internal/clock.js";
import { nodeTlsFetch } from "../transport/node-tls-fetch.js";
import type { SupervisorConfig } from "./config/supervisor-config.js";

/** Identifies the `server:` block, so offered settings are dropped when an operator edits it. */
export function serverConfigHash(config: SupervisorConfig): string {
  const { endpoint, headers, tls } = config.server;
  return createHash("sha256").update(JSON.stringify({ endpoint, headers, tls })).digest("hex").slice(0, 32);
}

/** Builds the OpAMPClient options. */
export function upstreamClientOptions(input: {
  readonly config: SupervisorConfig;
  readonly instanceUid: Uint8Array;
  readonly store: ClientStateStore;
  readonly packages: PackageStore | undefined;
  readonly description: MessageInitShape<typeof AgentDescriptionSchema>;
  readonly hooks: ClientHooks;
  readonly clock: Clock;
}): OpAMPClientOptions {
  const { config } = input;
  const caps = config.capabilities;
  const tls = config.server.tls;
  const secure = /^(wss|https):/.test(config.server.endpoint);
  const tlsOptions = secure
    ? {
        ...(tls.ca === undefined ? {} : { ca: tls.ca }),
        ...(tls.cert === undefined ? {} : { cert: tls.cert }),
        ...(tls.key === undefined ? {} : { key: tls.key }),
        ...(tls.serverName === undefined ? {} : { servername: tls.serverName }),
        ...(tls.insecureSkipVerify ? { rejectUnauthorized: false } : {}),
      }
    : {};
  return {
    transport: {
      url: config.server.endpoint,
      headers: config.server.headers,
      heartbeatIntervalMs: config.server.heartbeatIntervalMs,
      // https polling with TLS settings (and offered certificates) needs node:https.
      tlsFetch: nodeTlsFetch,
    },
    tls: tlsOptions,
    agent: {
      instanceUid: input.instanceUid,
      description: input.description,
      // spec: health starts unhealthy until the agent reports (as the Collector's supervisor).
      ...(caps.reportsHealth ? { health: { healthy: false } } : {}),
      capabilities: {
        reportsOwnMetrics: caps.reportsOwnMetrics,
        reportsOwnLogs: caps.reportsOwnLogs,
        reportsOwnTraces: caps.reportsOwnTraces,
        reportsConnectionSettingsStatus: caps.reportsConnectionSettingsStatus,
      },
    },
    storage: { state: input.store, ...(input.packages === undefined ? {} : { packages: input.packages }) },
    limits: { maxPackageBytes: config.agent.package.maxBytes },
    hooks: input.hooks,
    clock: input.clock,
  };
}
