/**
 * What the client does with each ServerToAgent. Fields the agent has no capability for
 * are ignored (spec: Capabilities); nothing here answers the server unless the agent's
 * own state changed (spec: loop avoidance).
 */
import { ServerErrorResponseType, type ServerToAgent } from "../gen/opamp/v1/opamp_pb.js";
import { clampDelay } from "../internal/backoff.js";
import type { ReceiveOutcome } from "../transport/types.js";
import { AgentCapability, hasBit, ServerToAgentFlag } from "../wire/capabilities.js";
import { OpampError } from "../wire/errors.js";
import { isInstanceUid } from "../wire/uid.js";
import { callHook } from "./call-hook.js";
import type { ConnectionSettingsManager } from "./connection-settings.js";
import type { ClientCore } from "./core.js";
import type { ResolvedClientOptions } from "./options.js";
import type { PackageSyncer } from "./package-syncer.js";
import type { RemoteConfigHandler } from "./remote-config.js";

/** What processing needs from the client. */
export interface ReceiveContext {
  readonly core: ClientCore;
  readonly options: ResolvedClientOptions;
  readonly signal: AbortSignal;
  readonly remoteConfig: RemoteConfigHandler | undefined;
  readonly settings: ConnectionSettingsManager;
  readonly packages: PackageSyncer | undefined;
  setServerCapabilities(bits: bigint): void;
  setServerCustomCapabilities(capabilities: readonly string[]): void;
  adoptInstanceUid(uid: Uint8Array): void;
  reportEffectiveConfig(): Promise<void>;
  emitError(error: OpampError): void;
}

const NANOS_PER_MS = 1_000_000n;

/** Handles one message; the outcome tells the transport whether to back off. */
export function processServerMessage(ctx: ReceiveContext, message: ServerToAgent): ReceiveOutcome {
  const { core, options } = ctx;
  const error = message.errorResponse;
  if (error !== undefined) {
    // spec: error_response excludes the other fields; the server did not process our message.
    if (error.type === ServerErrorResponseType.ServerErrorResponseType_Unavailable) {
      core.requestFullState();
      const nanos = error.Details.case === "retryInfo" ? error.Details.value.retryAfterNanoseconds : 0n;
      // Up to 2^64-1 ns (585 years): bounded before it can reach a timer.
      const retryAfterMs = clampDelay(Number(nanos / NANOS_PER_MS), options.maxRetryAfterMs);
      ctx.emitError(
        new OpampError("unavailable", `server unavailable: ${error.errorMessage || "no reason given"}`, {
          details: { retryAfterMs },
        }),
      );
      return { retryAfterMs };
    }
    // spec: BadRequest (and Unknown) are not retried.
    const kind = error.type === ServerErrorResponseType.ServerErrorResponseType_BadRequest ? "bad request" : "error";
    ctx.emitError(new OpampError("server_error", `server reported ${kind}: ${error.errorMessage}`));
    return {};
  }
  // spec: capabilities 0 after the first message means "not restated".
  if (message.capabilities !== 0n) ctx.setServerCapabilities(message.capabilities);
  if (message.customCapabilities !== undefined)
    ctx.setServerCustomCapabilities(message.customCapabilities.capabilities);

  const newUid = message.agentIdentification?.newInstanceUid;
  if (newUid !== undefined && newUid.length > 0) {
    if (isInstanceUid(newUid)) ctx.adoptInstanceUid(newUid);
    else ctx.emitError(new OpampError("invalid_instance_uid", "server assigned an instance UID that is not 16 bytes"));
  }

  const caps = core.capabilities;
  const onRestart = options.hooks.onRestart;
  if (message.command !== undefined && onRestart !== undefined && hasBit(caps, AgentCapability.AcceptsRestartCommand)) {
    // spec: Commands — the agent ignores every other field of a command message.
    callHook(onRestart, ctx.signal).catch((cause: unknown) => {
      if (!ctx.signal.aborted) ctx.emitError(OpampError.from(cause, "hook_failed"));
    });
    return {};
  }

  if (hasBit(message.flags, ServerToAgentFlag.ReportFullState)) {
    core.requestFullState();
    void ctx.reportEffectiveConfig();
  }
  if (hasBit(message.flags, ServerToAgentFlag.ReportAvailableComponents)) core.requestFullComponents();

  if (message.remoteConfig !== undefined && ctx.remoteConfig !== undefined) {
    ctx.remoteConfig.offer(message.remoteConfig);
  }
  if (message.connectionSettings !== undefined) {
    ctx.settings
      .offer(message.connectionSettings, hasBit(caps, AgentCapability.ReportsHeartbeat))
      .catch((cause: unknown) => ctx.emitError(OpampError.from(cause, "internal")));
  }
  if (message.packagesAvailable !== undefined && ctx.packages !== undefined) {
    ctx.packages.offer(message.packagesAvailable);
  }
  const custom = message.customMessage;
  const onCustom = options.hooks.onCustomMessage;
  if (custom !== undefined && onCustom !== undefined) {
    // spec: a receiver ignores custom messages for capabilities it did not announce.
    const announced = core.get("customCapabilities")?.capabilities ?? [];
    if (announced.includes(custom.capability)) {
      callHook(onCustom, custom, ctx.signal).catch((cause: unknown) => {
        if (!ctx.signal.aborted) ctx.emitError(OpampError.from(cause, "hook_failed"));
      });
    }
  }
  return {};
}
