/**
 * Short human-readable descriptions of messages, for check evidence.
 */
import type { AgentToServer, ServerToAgent } from "../../gen/opamp/v1/opamp_pb.js";

/** The first `max` bytes as hex, e.g. `0a 10 ff…`. */
export function hex(bytes: Uint8Array, max = 16): string {
  const shown = Array.from(bytes.subarray(0, max), (b) => b.toString(16).padStart(2, "0")).join(" ");
  return bytes.length > max ? `${shown} …` : shown || "(empty)";
}

/** Which fields of a ServerToAgent are set. */
export function describeServerToAgent(m: ServerToAgent): string {
  const parts: string[] = [`capabilities=0x${m.capabilities.toString(16)}`, `flags=0x${m.flags.toString(16)}`];
  if (m.errorResponse !== undefined)
    parts.push(`error_response{type=${m.errorResponse.type}, "${m.errorResponse.errorMessage}"}`);
  if (m.remoteConfig !== undefined) parts.push("remote_config");
  if (m.connectionSettings !== undefined) parts.push("connection_settings");
  if (m.packagesAvailable !== undefined) parts.push("packages_available");
  if (m.agentIdentification !== undefined) parts.push("agent_identification");
  if (m.command !== undefined) parts.push("command");
  if (m.customMessage !== undefined) parts.push("custom_message");
  return parts.join(" ");
}

/** Which fields of an AgentToServer are set. */
export function describeAgentToServer(m: AgentToServer): string {
  const parts: string[] = [`seq=${m.sequenceNum}`, `capabilities=0x${m.capabilities.toString(16)}`];
  if (m.flags !== 0n) parts.push(`flags=0x${m.flags.toString(16)}`);
  const present: [unknown, string][] = [
    [m.agentDescription, "agent_description"],
    [m.health, "health"],
    [m.effectiveConfig, "effective_config"],
    [m.remoteConfigStatus, "remote_config_status"],
    [m.packageStatuses, "package_statuses"],
    [m.agentDisconnect, "agent_disconnect"],
    [m.customCapabilities, "custom_capabilities"],
    [m.availableComponents, "available_components"],
    [m.connectionSettingsStatus, "connection_settings_status"],
    [m.customMessage, "custom_message"],
  ];
  for (const [value, name] of present) if (value !== undefined) parts.push(name);
  return parts.join(" ");
}
