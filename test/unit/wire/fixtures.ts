// Fully populated OpAMP messages for codec tests. `coverage()` proves mechanically that
// these fixtures set every field of every message reachable from AgentToServer and
// ServerToAgent, so a new field in the proto fails the tests until it is added here.
import { create, type DescField, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { type AnyValue, AnyValueSchema, KeyValueSchema } from "../../../src/gen/opamp/v1/anyvalue_pb.js";
import {
  type AgentToServer,
  AgentToServerSchema,
  CommandType,
  ConnectionSettingsStatuses,
  type Headers,
  PackageStatusEnum,
  PackageType,
  RemoteConfigStatuses,
  ServerErrorResponseType,
  type ServerToAgent,
  ServerToAgentSchema,
  type TLSConnectionSettings,
} from "../../../src/gen/opamp/v1/opamp_pb.js";

export const U64_MAX = 2n ** 64n - 1n;
export const bytes = (...values: number[]): Uint8Array => new Uint8Array(values);
/** Byte equality without the per-element cost of a deep `toEqual`. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);

/** An AnyValue tree that uses every case of the oneof, nested. */
export function everyAnyValue(): AnyValue {
  const kv = (key: string, value: AnyValue) => create(KeyValueSchema, { key, value });
  const any = (value: NonNullable<MessageInitShape<typeof AnyValueSchema>["value"]>) =>
    create(AnyValueSchema, { value });
  return any({
    case: "kvlistValue",
    value: {
      values: [
        kv("s", any({ case: "stringValue", value: "text ✓" })),
        kv("b", any({ case: "boolValue", value: true })),
        kv("i", any({ case: "intValue", value: -(2n ** 63n) })),
        kv("d", any({ case: "doubleValue", value: 1.5 })),
        kv("bytes", any({ case: "bytesValue", value: bytes(0, 255, 7) })),
        kv("arr", any({ case: "arrayValue", value: { values: [any({ case: "intValue", value: 2n ** 62n })] } })),
        kv("null", create(AnyValueSchema)),
      ],
    },
  });
}

const headers = (prefix: string): Headers =>
  ({ headers: [{ key: `${prefix}-key`, value: `${prefix}-value` }] }) as Headers;

const tls = (): TLSConnectionSettings =>
  ({
    caPemContents: "-----BEGIN CERTIFICATE-----",
    includeSystemCaCertsPool: true,
    insecureSkipVerify: true,
    minVersion: "1.2",
    maxVersion: "1.3",
    cipherSuites: ["TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"],
  }) as TLSConnectionSettings;

const certificate = () => ({ cert: utf8("cert"), privateKey: utf8("key"), caCert: utf8("ca") });
const proxy = () => ({ url: "https://proxy:8443", connectHeaders: headers("proxy") });

export function fullAgentToServer(): AgentToServer {
  const attrs = [
    { key: "service.name", value: { value: { case: "stringValue" as const, value: "io.example.agent" } } },
    { key: "all", value: everyAnyValue() },
  ];
  return create(AgentToServerSchema, {
    instanceUid: bytes(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16),
    sequenceNum: U64_MAX,
    agentDescription: { identifyingAttributes: attrs, nonIdentifyingAttributes: [attrs[1]!] },
    capabilities: U64_MAX - 1n,
    health: {
      healthy: true,
      startTimeUnixNano: U64_MAX,
      lastError: "none",
      status: "running",
      statusTimeUnixNano: 1_700_000_000_123_456_789n,
      componentHealthMap: {
        receiver: { healthy: false, lastError: "port busy", startTimeUnixNano: 2n ** 53n + 1n, componentHealthMap: {} },
      },
    },
    effectiveConfig: {
      configMap: { configMap: { "": { body: utf8("a: 1"), contentType: "text/yaml" }, other: { body: bytes(0) } } },
    },
    remoteConfigStatus: {
      lastRemoteConfigHash: bytes(9, 9),
      status: RemoteConfigStatuses.RemoteConfigStatuses_FAILED,
      errorMessage: "bad yaml",
    },
    packageStatuses: {
      packages: {
        pkg: {
          name: "pkg",
          agentHasVersion: "1.0.0",
          agentHasHash: bytes(1),
          serverOfferedVersion: "1.1.0",
          serverOfferedHash: bytes(2),
          status: PackageStatusEnum.PackageStatusEnum_Downloading,
          errorMessage: "slow",
          downloadDetails: { downloadPercent: 42.5, downloadBytesPerSecond: 1e6 },
        },
      },
      serverProvidedAllPackagesHash: bytes(3),
      errorMessage: "general",
    },
    agentDisconnect: {},
    flags: U64_MAX,
    connectionSettingsRequest: { opamp: { certificateRequest: { csr: utf8("-----BEGIN CERTIFICATE REQUEST-----") } } },
    customCapabilities: { capabilities: ["com.example.cap/v2", "io.other"] },
    customMessage: { capability: "com.example.cap/v2", type: "ping", data: bytes(0, 1, 0) },
    availableComponents: {
      components: {
        receivers: {
          metadata: [{ key: "code.namespace", value: { value: { case: "stringValue", value: "x" } } }],
          subComponentMap: { otlp: { metadata: [], subComponentMap: {} } },
        },
      },
      hash: bytes(4, 4),
    },
    connectionSettingsStatus: {
      lastConnectionSettingsHash: bytes(5),
      status: ConnectionSettingsStatuses.ConnectionSettingsStatuses_APPLYING,
      errorMessage: "pending",
    },
  });
}

/**
 * Every ServerToAgent field at once. A real server never sends `error_response` together
 * with the other fields; the codec does not care, and one fixture keeps coverage simple.
 */
export function fullServerToAgent(): ServerToAgent {
  const telemetry = (name: string) => ({
    destinationEndpoint: `https://otlp:4318/v1/${name}`,
    headers: headers(name),
    certificate: certificate(),
    tls: tls(),
    proxy: proxy(),
  });
  return create(ServerToAgentSchema, {
    instanceUid: bytes(16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1),
    errorResponse: {
      type: ServerErrorResponseType.ServerErrorResponseType_Unavailable,
      errorMessage: "busy",
      Details: { case: "retryInfo", value: { retryAfterNanoseconds: U64_MAX } },
    },
    remoteConfig: {
      config: { configMap: { "collector.yaml": { body: utf8("receivers: {}"), contentType: "text/yaml" } } },
      configHash: bytes(0xaa, 0xbb),
    },
    connectionSettings: {
      hash: bytes(0xcc),
      opamp: {
        destinationEndpoint: "wss://example.com:4320/v1/opamp",
        headers: headers("opamp"),
        certificate: certificate(),
        heartbeatIntervalSeconds: U64_MAX,
        tls: tls(),
        proxy: proxy(),
      },
      ownMetrics: telemetry("metrics"),
      ownTraces: telemetry("traces"),
      ownLogs: telemetry("logs"),
      otherConnections: {
        exporter: {
          destinationEndpoint: "backend:4317",
          headers: headers("other"),
          certificate: certificate(),
          otherSettings: { compression: "zstd", "": "empty key" },
          tls: tls(),
          proxy: proxy(),
        },
      },
    },
    packagesAvailable: {
      packages: {
        addon: {
          type: PackageType.PackageType_Addon,
          version: "2.0.0",
          file: {
            downloadUrl: "https://example.com/addon.tgz",
            contentHash: bytes(1, 2),
            signature: bytes(3, 4),
            headers: headers("download"),
          },
          hash: bytes(5, 6),
        },
      },
      allPackagesHash: bytes(7),
    },
    flags: U64_MAX,
    capabilities: U64_MAX - 2n,
    agentIdentification: { newInstanceUid: bytes(1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2) },
    command: { type: CommandType.CommandType_Restart },
    customCapabilities: { capabilities: ["com.example.cap/v2"] },
    customMessage: { capability: "com.example.cap/v2", type: "pong", data: utf8("{}") },
  });
}

/** Field keys "Type.field" of every field reachable from `schema`. */
export function allFields(schema: DescMessage, out = new Set<string>(), visited = new Set<string>()): Set<string> {
  if (visited.has(schema.typeName)) return out;
  visited.add(schema.typeName);
  for (const field of schema.fields) {
    out.add(`${schema.typeName}.${field.name}`);
    const nested = nestedMessage(field);
    if (nested !== undefined) allFields(nested, out, visited);
  }
  return out;
}

function nestedMessage(field: DescField): DescMessage | undefined {
  if (field.fieldKind === "message") return field.message;
  if (field.fieldKind === "list" && field.listKind === "message") return field.message;
  if (field.fieldKind === "map" && field.mapKind === "message") return field.message;
  return undefined;
}

/**
 * Field keys set to a non-default value somewhere in `message`. An enum with a single
 * value (CommandType) counts when its message is present, since 0 is all it can be.
 */
export function setFields(schema: DescMessage, message: unknown, out = new Set<string>()): Set<string> {
  const record = message as Record<string, unknown>;
  for (const field of schema.fields) {
    let value: unknown;
    if (field.oneof !== undefined) {
      const oneof = record[field.oneof.localName] as { case?: string; value?: unknown };
      value = oneof.case === field.localName ? oneof.value : undefined;
    } else {
      value = record[field.localName];
    }
    const key = `${schema.typeName}.${field.name}`;
    const nested = nestedMessage(field);
    switch (field.fieldKind) {
      case "scalar":
        if (value !== undefined && !isDefaultScalar(value)) out.add(key);
        break;
      case "enum":
        if (value !== 0 || field.enum.values.length === 1) out.add(key);
        break;
      case "message":
        if (value !== undefined) {
          out.add(key);
          setFields(nested!, value, out);
        }
        break;
      case "list":
        if ((value as unknown[]).length > 0) out.add(key);
        if (nested !== undefined) for (const item of value as unknown[]) setFields(nested, item, out);
        break;
      case "map": {
        const entries = Object.values(value as Record<string, unknown>);
        if (entries.length > 0) out.add(key);
        if (nested !== undefined) for (const item of entries) setFields(nested, item, out);
        break;
      }
    }
  }
  return out;
}

function isDefaultScalar(value: unknown): boolean {
  if (value instanceof Uint8Array) return value.length === 0;
  return value === 0 || value === 0n || value === "" || value === false;
}
