/**
 * The supervisor's connection to the management server: an OpAMPClient built from the
 * `server:` and `capabilities:` sections. Enrollment comes from the client's own
 * connection-settings handling: an offered agent key is verified by connecting, then
 * committed atomically to `opamp_client.json` and used at every later start, so the
 * enrollment token in `server.headers` is only sent until the first key arrives.
 */
import { createHash } from "node:crypto";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import type { ClientHooks, PackageSignatureCheck, RemoteConfigResult } from "../client/hooks.js";
import type { OpAMPClientOptions } from "../client/options.js";
import type { PackageStore } from "../client/package-store.js";
import type { ClientStateStore } from "../client/state-store.js";
import {
  type AgentConfigMap,
  type AgentDescriptionSchema,
  type AgentRemoteConfig,
  AgentRemoteConfigSchema,
  type ConnectionSettingsOffers,
  ConnectionSettingsOffersSchema,
  type CustomMessage,
} from "../gen/opamp/v1/opamp_pb.js";
import type { Clock } from "../internal/clock.js";
import type { Logger } from "../internal/logger.js";
import { nodeTlsFetch } from "../transport/node-tls-fetch.js";
import type { SupervisorConfig } from "./config/supervisor-config.js";
import type { SupervisorLogger } from "./options.js";

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
  /** Where the client logs: the supervisor's own logger. */
  readonly log: SupervisorLogger;
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
    logger: clientLogger(input.log),
  };
}

/**
 * The supervisor's logger (message first) in the client's pino shape (fields first), so
 * what the client logs goes where the supervisor's own lines go, not to the console;
 * the client's `component` binding is kept as a field. The client's `info` lines
 * ("connected") repeat what the supervisor logs at `info` itself: they go to `debug`.
 */
export function clientLogger(log: SupervisorLogger, bindings: Readonly<Record<string, unknown>> = {}): Logger {
  const at =
    (write: (message: string, fields?: Readonly<Record<string, unknown>>) => void) =>
    (fields: Readonly<Record<string, unknown>>, message: string): void =>
      write.call(log, message, { ...bindings, ...fields });
  return {
    trace: () => undefined,
    debug: at(log.debug),
    info: at(log.debug),
    warn: at(log.warn),
    error: at(log.error),
    child: (more) => clientLogger(log, { ...bindings, ...more }),
  };
}

/** What the client's hooks call in the supervisor. */
export interface UpstreamHost {
  readonly config: SupervisorConfig;
  readonly log: SupervisorLogger;
  /** Applies a remote config (queued with every other agent operation). */
  applyRemote(remote: AgentRemoteConfig): Promise<RemoteConfigResult>;
  /** The effective config to report. */
  effectiveConfig(): AgentConfigMap;
  /** Takes new own-telemetry destinations (saved, composed in). */
  ownTelemetry(offers: ConnectionSettingsOffers): Promise<void>;
  /** Restarts the agent (restart command). */
  restart(): Promise<void>;
  /** Forwards a custom message to the agent; false when it could not. */
  forward(message: CustomMessage): boolean;
  /** Checks a package signature; undefined when packages are off. */
  readonly verifySignature: ((check: PackageSignatureCheck) => Promise<boolean>) | undefined;
}

/** The client hooks, one per capability the config turns on. */
export function upstreamHooks(host: UpstreamHost): ClientHooks {
  const caps = host.config.capabilities;
  const hooks: { -readonly [K in keyof ClientHooks]: ClientHooks[K] } = {};
  if (caps.acceptsRemoteConfig) {
    hooks.onRemoteConfig = ({ config, hash }) =>
      host.applyRemote(create(AgentRemoteConfigSchema, { config, configHash: hash }));
  }
  if (caps.reportsEffectiveConfig) hooks.getEffectiveConfig = async () => host.effectiveConfig();
  if (caps.acceptsOpampConnectionSettings) {
    // Accepted, then verified by the client by connecting with them before they are committed.
    hooks.onOpampConnectionSettings = async ({ settings }) => {
      host.log.info("connection settings offered; verifying them by connecting", {
        endpoint: settings.destinationEndpoint,
      });
      return true;
    };
  }
  if (caps.reportsOwnMetrics || caps.reportsOwnLogs || caps.reportsOwnTraces) {
    hooks.onTelemetryConnectionSettings = (offer) =>
      host.ownTelemetry(
        create(ConnectionSettingsOffersSchema, {
          hash: offer.hash,
          ...(offer.ownMetrics === undefined ? {} : { ownMetrics: offer.ownMetrics }),
          ...(offer.ownLogs === undefined ? {} : { ownLogs: offer.ownLogs }),
          ...(offer.ownTraces === undefined ? {} : { ownTraces: offer.ownTraces }),
        }),
      );
  }
  if (caps.acceptsRestartCommand) hooks.onRestart = () => host.restart();
  hooks.onCustomMessage = async (message) => {
    if (!host.forward(message)) {
      host.log.warn("custom message not forwarded: the agent is not connected or did not announce it", {
        capability: message.capability,
      });
    }
  };
  if (host.verifySignature !== undefined) hooks.verifyPackageSignature = host.verifySignature;
  return hooks;
}
