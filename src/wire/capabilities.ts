/**
 * Capability and flag bits. On the wire they are uint64 bitmasks, so every bit here is a
 * `bigint`: a mask is never an enum value, and 32-bit JS bitwise ops would drop high bits.
 */
// spec: AgentToServer.capabilities, ServerToAgent.capabilities, the two flags fields.
import { OpampError } from "./errors.js";

/** Every AgentCapabilities bit, named as in the proto without the `AgentCapabilities_` prefix. */
export const AgentCapability = {
  /** Reports status. Every agent MUST set it. */
  ReportsStatus: 0x1n,
  /** Accepts remote configs (`ServerToAgent.remote_config`). */
  AcceptsRemoteConfig: 0x2n,
  /** Reports its effective config. */
  ReportsEffectiveConfig: 0x4n,
  /** Accepts packages offered by the server. */
  AcceptsPackages: 0x8n,
  /** Reports the status of offered packages. */
  ReportsPackageStatuses: 0x10n,
  /** Sends its own traces to a destination the server offers. */
  ReportsOwnTraces: 0x20n,
  /** Sends its own metrics to a destination the server offers. */
  ReportsOwnMetrics: 0x40n,
  /** Sends its own logs to a destination the server offers. */
  ReportsOwnLogs: 0x80n,
  /** Accepts new OpAMP connection settings (endpoint, headers, TLS, heartbeat). */
  AcceptsOpAMPConnectionSettings: 0x100n,
  /** Accepts settings for other connections (e.g. its exporters). */
  AcceptsOtherConnectionSettings: 0x200n,
  /** Restarts on the server's Restart command. */
  AcceptsRestartCommand: 0x400n,
  /** Reports its health (`ComponentHealth`). */
  ReportsHealth: 0x800n,
  /** Reports the status of the remote config it was given (`RemoteConfigStatus`). */
  ReportsRemoteConfig: 0x1000n,
  /** Sends heartbeats at the interval the server offers. */
  ReportsHeartbeat: 0x2000n,
  /** Reports the components it can run (`AvailableComponents`). */
  ReportsAvailableComponents: 0x4000n,
  /** Reports whether offered connection settings were applied (`ConnectionSettingsStatus`). */
  ReportsConnectionSettingsStatus: 0x8000n,
} as const;

/** Every ServerCapabilities bit, named as in the proto without the `ServerCapabilities_` prefix. */
export const ServerCapability = {
  /** Accepts status reports. Every server MUST set it. */
  AcceptsStatus: 0x1n,
  /** Offers remote configs. */
  OffersRemoteConfig: 0x2n,
  /** Accepts effective config reports. */
  AcceptsEffectiveConfig: 0x4n,
  /** Offers packages. */
  OffersPackages: 0x8n,
  /** Accepts package status reports. */
  AcceptsPackagesStatus: 0x10n,
  /** Offers connection settings. */
  OffersConnectionSettings: 0x20n,
  /** Accepts connection settings requests (e.g. certificate signing requests). */
  AcceptsConnectionSettingsRequest: 0x40n,
} as const;

/** Bits of `AgentToServer.flags`. */
export const AgentToServerFlag = {
  /** The agent asks the server to assign it a new instance UID. */
  RequestInstanceUid: 0x1n,
} as const;

/** Bits of `ServerToAgent.flags`. */
export const ServerToAgentFlag = {
  /** The agent must send every compressible status field again. */
  ReportFullState: 0x1n,
  /** The agent must send the full `available_components.components` map. */
  ReportAvailableComponents: 0x2n,
} as const;

/** A PascalCase agent capability name, e.g. `"ReportsHealth"`. */
export type AgentCapabilityName = keyof typeof AgentCapability;
/** A PascalCase server capability name, e.g. `"OffersRemoteConfig"`. */
export type ServerCapabilityName = keyof typeof ServerCapability;

/** Agent capabilities as booleans with camelCase keys, e.g. `{ reportsStatus: true }`. Missing means false. */
export type AgentCapabilityFlags = { [K in AgentCapabilityName as Uncapitalize<K>]?: boolean };
/** Server capabilities as booleans with camelCase keys, e.g. `{ acceptsStatus: true }`. Missing means false. */
export type ServerCapabilityFlags = { [K in ServerCapabilityName as Uncapitalize<K>]?: boolean };

function camel(name: string): string {
  return name.charAt(0).toLowerCase() + name.slice(1);
}

function toBits(table: Readonly<Record<string, bigint>>, flags: object, what: string): bigint {
  let bits = 0n;
  for (const [key, on] of Object.entries(flags)) {
    const bit = table[key];
    // A typo in a plain-JS caller would otherwise silently drop a capability.
    if (bit === undefined) throw new OpampError("invalid_argument", `unknown ${what} capability "${key}"`);
    if (on === true) bits |= bit;
  }
  return bits;
}

function toFlags(table: Readonly<Record<string, bigint>>, bits: bigint): Record<string, boolean> {
  const flags: Record<string, boolean> = {};
  for (const [key, bit] of Object.entries(table)) flags[key] = (bits & bit) !== 0n;
  return flags;
}

const AGENT_BY_CAMEL: Readonly<Record<string, bigint>> = Object.fromEntries(
  Object.entries(AgentCapability).map(([name, bit]) => [camel(name), bit]),
);
const SERVER_BY_CAMEL: Readonly<Record<string, bigint>> = Object.fromEntries(
  Object.entries(ServerCapability).map(([name, bit]) => [camel(name), bit]),
);

/**
 * Builds an AgentCapabilities bitmask from named booleans. Keys that are `false` or
 * missing leave their bit clear. `reportsStatus` is not added for you: the caller (the
 * client) decides, because the spec makes it mandatory only on the wire.
 *
 * @throws OpampError `invalid_argument` for a key that names no capability.
 */
export function agentCapabilities(flags: AgentCapabilityFlags): bigint {
  return toBits(AGENT_BY_CAMEL, flags, "agent");
}

/**
 * Splits an AgentCapabilities bitmask into one boolean per known capability. Bits this
 * SDK does not know (capabilities added by a later spec) are not reported here; keep the
 * raw bigint when they matter. Never throws.
 */
export function agentCapabilityFlags(bits: bigint): Required<AgentCapabilityFlags> {
  return toFlags(AGENT_BY_CAMEL, bits) as Required<AgentCapabilityFlags>;
}

/**
 * Builds a ServerCapabilities bitmask from named booleans.
 *
 * @throws OpampError `invalid_argument` for a key that names no capability.
 */
export function serverCapabilities(flags: ServerCapabilityFlags): bigint {
  return toBits(SERVER_BY_CAMEL, flags, "server");
}

/**
 * Splits a ServerCapabilities bitmask into one boolean per known capability; unknown bits
 * are ignored, as in {@link agentCapabilityFlags}. Never throws.
 */
export function serverCapabilityFlags(bits: bigint): Required<ServerCapabilityFlags> {
  return toFlags(SERVER_BY_CAMEL, bits) as Required<ServerCapabilityFlags>;
}

/**
 * True when every bit set in `bit` is also set in `bits`, e.g.
 * `hasBit(caps, AgentCapability.ReportsHealth)`. A mask of several bits asks for all of them.
 *
 * @throws OpampError `invalid_argument` when `bit` is `0n`, which would always be true.
 */
export function hasBit(bits: bigint, bit: bigint): boolean {
  if (bit === 0n) throw new OpampError("invalid_argument", "hasBit needs a non-zero bit");
  return (bits & bit) === bit;
}
