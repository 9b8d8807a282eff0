/**
 * Hooks: async functions the client waits on to decide something. Giving a hook
 * declares the capability it serves (spec: Capabilities). Every hook receives an
 * AbortSignal that fires at stop(); a hook that throws is reported as `hook_failed`.
 */
import type {
  AgentConfigMap,
  CustomMessage,
  DownloadableFile,
  OpAMPConnectionSettings,
  OtherConnectionSettings,
  TelemetryConnectionSettings,
} from "../gen/opamp/v1/opamp_pb.js";

/** A remote config offered by the server. */
export interface RemoteConfigOffer {
  /** The files offered (name → body and content type). */
  readonly config: AgentConfigMap;
  /** The server's hash of the config; reported back in RemoteConfigStatus. */
  readonly hash: Uint8Array;
  /** Fires when the client stops. */
  readonly signal: AbortSignal;
}

/** What a remote-config hook decided. Returning nothing means applied. */
export type RemoteConfigResult =
  | { readonly status: "applied" }
  | { readonly status: "failed"; readonly errorMessage: string };

/** An OpAMP connection settings offer (new endpoint, headers, certificate, heartbeat). */
export interface OpampSettingsOffer {
  readonly settings: OpAMPConnectionSettings;
  /** Hash of the whole ConnectionSettingsOffers. */
  readonly hash: Uint8Array;
  readonly signal: AbortSignal;
}

/** Own-telemetry and other-connection settings offered by the server. */
export interface TelemetrySettingsOffer {
  readonly ownMetrics?: TelemetryConnectionSettings;
  readonly ownTraces?: TelemetryConnectionSettings;
  readonly ownLogs?: TelemetryConnectionSettings;
  readonly otherConnections: Readonly<Record<string, OtherConnectionSettings>>;
  readonly hash: Uint8Array;
  readonly signal: AbortSignal;
}

/** A downloaded package file to check before it is installed. */
export interface PackageSignatureCheck {
  readonly name: string;
  readonly file: DownloadableFile;
  readonly content: Uint8Array;
  readonly signature: Uint8Array;
  readonly signal: AbortSignal;
}

/** The hooks an application may give. All are optional. */
export interface ClientHooks {
  /**
   * Applies a remote config. Called once per new config hash (a hash already applied,
   * failed or being applied is not offered again). Resolve (or return `{status:
   * "applied"}`) → APPLIED; `{status: "failed"}` or a rejection → FAILED with its message.
   * Declares AcceptsRemoteConfig and ReportsRemoteConfig. Default: none (configs ignored).
   */
  readonly onRemoteConfig?: (offer: RemoteConfigOffer) => Promise<RemoteConfigResult | undefined>;
  /**
   * Returns the config the agent runs with. Called at start, after each remote config,
   * on ReportFullState and on `reportEffectiveConfig()`. Declares ReportsEffectiveConfig.
   */
  readonly getEffectiveConfig?: (signal: AbortSignal) => Promise<AgentConfigMap>;
  /**
   * Accepts (true/undefined) or refuses (false) new OpAMP connection settings before the
   * client tries them. Declares AcceptsOpAMPConnectionSettings. Default: none (offers refused).
   */
  readonly onOpampConnectionSettings?: (offer: OpampSettingsOffer) => Promise<boolean | undefined>;
  /**
   * Receives own-telemetry and other-connection settings; resolve → APPLIED, reject →
   * FAILED. Declares AcceptsOtherConnectionSettings (set ReportsOwnMetrics etc. through
   * `agent.capabilities`).
   */
  readonly onTelemetryConnectionSettings?: (offer: TelemetrySettingsOffer) => Promise<void>;
  /** Restarts the agent. Declares AcceptsRestartCommand. */
  readonly onRestart?: (signal: AbortSignal) => Promise<void>;
  /** Receives a custom message for one of `agent.customCapabilities`. */
  readonly onCustomMessage?: (message: CustomMessage, signal: AbortSignal) => Promise<void>;
  /**
   * Checks a package signature; resolve true to install, false to fail it. Called only
   * when the offer carries a signature. Default: a signed package is refused
   * (`verification_failed`) because an unchecked signature proves nothing.
   */
  readonly verifyPackageSignature?: (check: PackageSignatureCheck) => Promise<boolean>;
}
