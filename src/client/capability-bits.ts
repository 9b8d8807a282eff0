/**
 * The capability bits an agent announces, derived from what the application gave: a hook
 * present declares the capability it serves (spec: Capabilities negotiation).
 */
import { AgentCapability } from "../wire/capabilities.js";
import type { ClientHooks } from "./hooks.js";

/** Inputs to {@link agentCapabilityBits}. */
export interface CapabilitySources {
  readonly hooks: ClientHooks;
  /** A package store was given. */
  readonly packages: boolean;
  /** Health was given or set. */
  readonly health: boolean;
  /** Available components were set. */
  readonly availableComponents: boolean;
  /** Bits the application set explicitly. */
  readonly extra: bigint;
}

/** ReportsStatus and ReportsHeartbeat always, plus one bit per hook or feature in use. */
export function agentCapabilityBits(sources: CapabilitySources): bigint {
  const { hooks } = sources;
  let bits = AgentCapability.ReportsStatus | AgentCapability.ReportsHeartbeat | sources.extra;
  if (hooks.onRemoteConfig !== undefined)
    bits |= AgentCapability.AcceptsRemoteConfig | AgentCapability.ReportsRemoteConfig;
  if (hooks.getEffectiveConfig !== undefined) bits |= AgentCapability.ReportsEffectiveConfig;
  if (hooks.onOpampConnectionSettings !== undefined) bits |= AgentCapability.AcceptsOpAMPConnectionSettings;
  if (hooks.onTelemetryConnectionSettings !== undefined) bits |= AgentCapability.AcceptsOtherConnectionSettings;
  if (hooks.onOpampConnectionSettings !== undefined || hooks.onTelemetryConnectionSettings !== undefined) {
    bits |= AgentCapability.ReportsConnectionSettingsStatus;
  }
  if (hooks.onRestart !== undefined) bits |= AgentCapability.AcceptsRestartCommand;
  if (sources.packages) bits |= AgentCapability.AcceptsPackages | AgentCapability.ReportsPackageStatuses;
  if (sources.health) bits |= AgentCapability.ReportsHealth;
  if (sources.availableComponents) bits |= AgentCapability.ReportsAvailableComponents;
  return bits;
}
