// Fully-populated messages built by opamp-sdk (protobuf-es), for opamp-go to
// decode. Independent of the Go fixtures on purpose (other values, other
// shapes); `opamp-interop verify -coverage` fails unless, together, they set
// every field and use every enum value of the schema.

import { create } from "@bufbuild/protobuf";
import type { AnyValue, KeyValue } from "../../src/gen/opamp/v1/anyvalue_pb.js";
import {
  AnyValueSchema,
  ArrayValueSchema,
  KeyValueListSchema,
  KeyValueSchema,
} from "../../src/gen/opamp/v1/anyvalue_pb.js";
import {
  AgentCapabilities,
  type AgentToServer,
  AgentToServerFlags,
  AgentToServerSchema,
  CommandType,
  ConnectionSettingsStatuses,
  type Headers,
  HeadersSchema,
  PackageStatusEnum,
  PackageType,
  RemoteConfigStatuses,
  ServerCapabilities,
  ServerErrorResponseType,
  type ServerToAgent,
  ServerToAgentFlags,
  ServerToAgentSchema,
  type TelemetryConnectionSettings,
  TelemetryConnectionSettingsSchema,
  type TLSCertificate,
  TLSCertificateSchema,
  type TLSConnectionSettings,
  TLSConnectionSettingsSchema,
} from "../../src/gen/opamp/v1/opamp_pb.js";

export type TsFixture =
  | { name: string; type: "AgentToServer"; msg: AgentToServer }
  | { name: string; type: "ServerToAgent"; msg: ServerToAgent };

export const MAX_U64 = 2n ** 64n - 1n;
const enc = new TextEncoder();

const uid = Uint8Array.from([
  0x01, 0x9a, 0xb3, 0x44, 0x12, 0x00, 0x7c, 0x01, 0x8e, 0xff, 0x00, 0x10, 0x20, 0x30, 0x40, 0xfe,
]);

/** An AnyValue; without an argument, one whose oneof is unset. */
function val(value?: AnyValue["value"]): AnyValue {
  return value === undefined ? create(AnyValueSchema) : create(AnyValueSchema, { value });
}

function kv(key: string, value?: AnyValue): KeyValue {
  return value === undefined ? create(KeyValueSchema, { key }) : create(KeyValueSchema, { key, value });
}

function str(s: string): AnyValue {
  return val({ case: "stringValue", value: s });
}

/** Sum of every named bit of a capability enum. */
function allBits(e: Record<string, string | number>): bigint {
  let all = 0n;
  for (const v of Object.values(e)) if (typeof v === "number") all |= BigInt(v);
  return all;
}

function headers(): Headers {
  return create(HeadersSchema, {
    headers: [
      { key: "X-Tenant", value: "acme" },
      { key: "X-Multi", value: "1" },
      { key: "X-Multi", value: "2" },
    ],
  });
}

function cert(): TLSCertificate {
  return create(TLSCertificateSchema, {
    cert: enc.encode("cert-pem"),
    privateKey: enc.encode("key-pem"),
    caCert: Uint8Array.from([0xff, 0x00, 0xee]),
  });
}

function tls(): TLSConnectionSettings {
  return create(TLSConnectionSettingsSchema, {
    caPemContents: "ca-pem",
    includeSystemCaCertsPool: true,
    insecureSkipVerify: true,
    minVersion: "1.3",
    maxVersion: "1.3",
    cipherSuites: ["TLS_AES_256_GCM_SHA384"],
  });
}

function telemetry(endpoint: string): TelemetryConnectionSettings {
  return create(TelemetryConnectionSettingsSchema, {
    destinationEndpoint: endpoint,
    headers: headers(),
    certificate: cert(),
    tls: tls(),
    proxy: { url: "https://proxy:8443", connectHeaders: headers() },
  });
}

function agentFull(): AgentToServer {
  return create(AgentToServerSchema, {
    instanceUid: uid,
    sequenceNum: MAX_U64 - 1n,
    agentDescription: {
      identifyingAttributes: [kv("service.name", str("ts-agent")), kv("service.version", str("1.2.3"))],
      nonIdentifyingAttributes: [
        kv("s", str("ünïcødé ✓")),
        kv("b", val({ case: "boolValue", value: true })),
        kv("i", val({ case: "intValue", value: -(2n ** 63n) })),
        kv("d", val({ case: "doubleValue", value: 2.5e-300 })),
        kv("by", val({ case: "bytesValue", value: Uint8Array.from([0, 255]) })),
        kv(
          "arr",
          val({
            case: "arrayValue",
            value: create(ArrayValueSchema, {
              values: [str("x"), val(), val({ case: "intValue", value: 9007199254740993n })],
            }),
          }),
        ),
        kv(
          "kvl",
          val({
            case: "kvlistValue",
            value: create(KeyValueListSchema, { values: [kv("nested", str("y")), kv("bare")] }),
          }),
        ),
        kv("unset", val()),
      ],
    },
    capabilities: allBits(AgentCapabilities),
    health: {
      healthy: true,
      startTimeUnixNano: 1_700_000_000_000_000_001n,
      lastError: "",
      status: "ok",
      statusTimeUnixNano: MAX_U64,
      componentHealthMap: {
        receiver: {
          healthy: false,
          lastError: "boom",
          status: "degraded",
          startTimeUnixNano: 1n,
          statusTimeUnixNano: 2n,
          componentHealthMap: { inner: { healthy: true }, blank: {} },
        },
      },
    },
    effectiveConfig: {
      configMap: {
        configMap: {
          "": { body: enc.encode("a: 1\n"), contentType: "text/yaml" },
          "other.conf": { body: Uint8Array.from([0, 1, 2]) },
        },
      },
    },
    remoteConfigStatus: {
      lastRemoteConfigHash: Uint8Array.from([9, 9]),
      status: RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
      errorMessage: "not really",
    },
    packageStatuses: {
      packages: {
        a: {
          name: "a",
          agentHasVersion: "1",
          agentHasHash: Uint8Array.from([1]),
          serverOfferedVersion: "2",
          serverOfferedHash: Uint8Array.from([2]),
          status: PackageStatusEnum.PackageStatusEnum_Installed,
          errorMessage: "",
        },
        b: { name: "b", status: PackageStatusEnum.PackageStatusEnum_InstallPending },
        c: { name: "c", status: PackageStatusEnum.PackageStatusEnum_Installing },
        d: { name: "d", status: PackageStatusEnum.PackageStatusEnum_InstallFailed, errorMessage: "disk full" },
        e: {
          name: "e",
          status: PackageStatusEnum.PackageStatusEnum_Downloading,
          downloadDetails: { downloadPercent: 99.5, downloadBytesPerSecond: 12345.75 },
        },
      },
      serverProvidedAllPackagesHash: Uint8Array.from([7, 7, 7]),
      errorMessage: "partial",
    },
    agentDisconnect: {},
    flags: BigInt(AgentToServerFlags.AgentToServerFlags_RequestInstanceUid),
    connectionSettingsRequest: { opamp: { certificateRequest: { csr: enc.encode("csr-pem") } } },
    customCapabilities: { capabilities: ["com.example.ts"] },
    customMessage: { capability: "com.example.ts", type: "hello", data: Uint8Array.from([0xc0, 0xff, 0xee]) },
    availableComponents: {
      components: {
        exporters: {
          metadata: [kv("k", str("v"))],
          subComponentMap: {
            otlphttp: { metadata: [kv("v", str("1"))], subComponentMap: { leaf: {} } },
          },
        },
      },
      hash: Uint8Array.from([0xab]),
    },
    connectionSettingsStatus: {
      lastConnectionSettingsHash: Uint8Array.from([3]),
      status: ConnectionSettingsStatuses.ConnectionSettingsStatuses_FAILED,
      errorMessage: "bad cert",
    },
  });
}

function serverFull(): ServerToAgent {
  return create(ServerToAgentSchema, {
    instanceUid: uid,
    errorResponse: {
      type: ServerErrorResponseType.ServerErrorResponseType_Unavailable,
      errorMessage: "busy",
      Details: { case: "retryInfo", value: { retryAfterNanoseconds: MAX_U64 } },
    },
    remoteConfig: {
      config: { configMap: { "": { body: enc.encode("b: 2\n"), contentType: "text/yaml" } } },
      configHash: Uint8Array.from([0x12, 0x34]),
    },
    connectionSettings: {
      hash: Uint8Array.from([0x56]),
      opamp: {
        destinationEndpoint: "wss://ts.example/v1/opamp",
        headers: headers(),
        certificate: cert(),
        heartbeatIntervalSeconds: 15n,
        tls: tls(),
        proxy: { url: "http://p:3128", connectHeaders: headers() },
      },
      ownMetrics: telemetry("https://m"),
      ownTraces: telemetry("https://t"),
      ownLogs: telemetry("https://l"),
      otherConnections: {
        db: {
          destinationEndpoint: "postgres://db",
          headers: headers(),
          certificate: cert(),
          otherSettings: { pool: "10", "": "empty-key" },
          tls: tls(),
          proxy: { url: "socks5://s" },
        },
      },
    },
    packagesAvailable: {
      packages: {
        agent: {
          type: PackageType.PackageType_TopLevel,
          version: "9.9.9",
          file: {
            downloadUrl: "https://d/agent.tgz",
            contentHash: Uint8Array.from([1, 2]),
            signature: Uint8Array.from([3, 4]),
            headers: headers(),
          },
          hash: Uint8Array.from([5]),
        },
        plugin: { type: PackageType.PackageType_Addon, version: "0.1" },
      },
      allPackagesHash: Uint8Array.from([6]),
    },
    flags:
      BigInt(ServerToAgentFlags.ServerToAgentFlags_ReportFullState) |
      BigInt(ServerToAgentFlags.ServerToAgentFlags_ReportAvailableComponents),
    capabilities: allBits(ServerCapabilities),
    agentIdentification: { newInstanceUid: uid.slice().reverse() },
    command: { type: CommandType.CommandType_Restart },
    customCapabilities: { capabilities: ["com.example.ts", "com.example.other"] },
    customMessage: { capability: "com.example.ts", type: "reply", data: enc.encode("✓") },
  });
}

/** Every message our encoder writes for opamp-go to check. */
export function tsFixtures(): TsFixture[] {
  const out: TsFixture[] = [
    { name: "ts_agent_full", type: "AgentToServer", msg: agentFull() },
    { name: "ts_agent_empty", type: "AgentToServer", msg: create(AgentToServerSchema) },
    {
      name: "ts_agent_empty_submessages",
      type: "AgentToServer",
      msg: create(AgentToServerSchema, {
        instanceUid: uid,
        agentDescription: {},
        health: {},
        effectiveConfig: {},
        remoteConfigStatus: {},
        packageStatuses: {},
        agentDisconnect: {},
        connectionSettingsRequest: {},
        customCapabilities: {},
        customMessage: {},
        availableComponents: {},
        connectionSettingsStatus: {},
      }),
    },
    {
      name: "ts_agent_open_enum",
      type: "AgentToServer",
      msg: create(AgentToServerSchema, {
        remoteConfigStatus: { status: 77 as RemoteConfigStatuses },
        capabilities: MAX_U64,
      }),
    },
    { name: "ts_server_full", type: "ServerToAgent", msg: serverFull() },
    { name: "ts_server_empty", type: "ServerToAgent", msg: create(ServerToAgentSchema) },
    {
      name: "ts_server_error_no_details",
      type: "ServerToAgent",
      msg: create(ServerToAgentSchema, {
        errorResponse: { type: ServerErrorResponseType.ServerErrorResponseType_BadRequest, errorMessage: "no" },
      }),
    },
    {
      name: "ts_server_error_retry_empty",
      type: "ServerToAgent",
      msg: create(ServerToAgentSchema, {
        errorResponse: { Details: { case: "retryInfo", value: {} } },
      }),
    },
    {
      name: "ts_server_empty_submessages",
      type: "ServerToAgent",
      msg: create(ServerToAgentSchema, {
        errorResponse: {},
        remoteConfig: {},
        connectionSettings: {},
        packagesAvailable: {},
        agentIdentification: {},
        command: {},
        customCapabilities: {},
        customMessage: {},
      }),
    },
  ];
  // Every value of both status enums, the zero value included.
  const statuses = [
    RemoteConfigStatuses.RemoteConfigStatuses_UNSET,
    RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
    RemoteConfigStatuses.RemoteConfigStatuses_APPLYING,
    RemoteConfigStatuses.RemoteConfigStatuses_FAILED,
  ];
  for (const s of statuses) {
    out.push({
      name: `ts_agent_status_${s}`,
      type: "AgentToServer",
      msg: create(AgentToServerSchema, {
        instanceUid: uid,
        sequenceNum: BigInt(s),
        remoteConfigStatus: { status: s, lastRemoteConfigHash: Uint8Array.from([s]) },
        connectionSettingsStatus: { status: s as number as ConnectionSettingsStatuses },
      }),
    });
  }
  return out;
}
