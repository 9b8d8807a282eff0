/**
 * Hooks: functions the client waits on to decide something. Giving a hook
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

/**
 * The files of an effective config: an AgentConfigMap message, or a plain record of
 * `name → body` where a body is a string (sent as UTF-8), bytes, or
 * `{ body, contentType }` (as `setRemoteConfig` on the server and `configMap()` take them).
 */
export type EffectiveConfigInput =
  | AgentConfigMap
  | Readonly<
      Record<
        string,
        | string
        | Uint8Array
        | {
            /** The file's content; a string is sent as UTF-8. */
            readonly body: string | Uint8Array;
            /** Its MIME type, e.g. `text/yaml`. Default "". */
            readonly contentType?: string;
          }
      >
    >;

/** A value, or a promise of it: every hook may answer either way. */
export type MaybePromise<T> = T | Promise<T>;

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
  | {
      /** The config is in use. */
      readonly status: "applied";
    }
  | {
      /** The config was refused or could not be applied. */
      readonly status: "failed";
      /** Why, as the server will show it. */
      readonly errorMessage: string;
    };

/** An OpAMP connection settings offer (new endpoint, headers, certificate, heartbeat). */
export interface OpampSettingsOffer {
  /** The offered settings: destination endpoint, headers, certificate, heartbeat interval, TLS. */
  readonly settings: OpAMPConnectionSettings;
  /** Hash of the whole ConnectionSettingsOffers. */
  readonly hash: Uint8Array;
  /** Fires when the client stops. */
  readonly signal: AbortSignal;
}

/** Own-telemetry and other-connection settings offered by the server. */
export interface TelemetrySettingsOffer {
  /** Where to send the agent's own metrics; absent when not offered. */
  readonly ownMetrics?: TelemetryConnectionSettings;
  /** Where to send the agent's own traces; absent when not offered. */
  readonly ownTraces?: TelemetryConnectionSettings;
  /** Where to send the agent's own logs; absent when not offered. */
  readonly ownLogs?: TelemetryConnectionSettings;
  /** Other destinations by name; empty when none are offered. */
  readonly otherConnections: Readonly<Record<string, OtherConnectionSettings>>;
  /** Hash of the whole ConnectionSettingsOffers; reported back in ConnectionSettingsStatus. */
  readonly hash: Uint8Array;
  /** Fires when the client stops. */
  readonly signal: AbortSignal;
}

/** A downloaded package file to check before it is installed. */
export interface PackageSignatureCheck {
  /** The package's name (its key in PackagesAvailable). */
  readonly name: string;
  /** The offered file: URL, content hash, signature, headers. */
  readonly file: DownloadableFile;
  /** The downloaded bytes, already checked against the offered `content_hash` when there is one. */
  readonly content: Uint8Array;
  /** The offered signature (`file.signature`), never empty here. */
  readonly signature: Uint8Array;
  /** Fires when the client stops. */
  readonly signal: AbortSignal;
}

/**
 * The hooks an application may give. All are optional. Each may be async or return its
 * answer directly; a hook that throws or rejects is reported on `error` (`hook_failed`)
 * and, where the protocol has a status for it, as FAILED with its message.
 */
export interface ClientHooks {
  /**
   * Applies a remote config. Called once per new config hash (a hash already applied,
   * failed or being applied is not offered again). Resolve (or return `{status:
   * "applied"}`) → APPLIED; `{status: "failed"}` or a rejection → FAILED with its message.
   * Declares AcceptsRemoteConfig and ReportsRemoteConfig. Default: none (configs ignored).
   */
  // biome-ignore lint/suspicious/noConfusingVoidType: an async hook that returns nothing means applied.
  readonly onRemoteConfig?: (offer: RemoteConfigOffer) => MaybePromise<RemoteConfigResult | undefined | void>;
  /**
   * Returns the config the agent runs with: a plain record of files
   * (`{ "collector.yaml": yamlText }`, see {@link EffectiveConfigInput}) or an
   * AgentConfigMap. Called at start, after each remote config, on ReportFullState and on
   * `reportEffectiveConfig()`. Declares ReportsEffectiveConfig.
   */
  readonly getEffectiveConfig?: (signal: AbortSignal) => MaybePromise<EffectiveConfigInput>;
  /**
   * Accepts (true/undefined) or refuses (false) new OpAMP connection settings before the
   * client tries them. Declares AcceptsOpAMPConnectionSettings. Default: none (offers refused).
   */
  // biome-ignore lint/suspicious/noConfusingVoidType: a hook that returns nothing accepts.
  readonly onOpampConnectionSettings?: (offer: OpampSettingsOffer) => MaybePromise<boolean | undefined | void>;
  /**
   * Receives own-telemetry and other-connection settings; resolve → APPLIED, reject →
   * FAILED. Declares AcceptsOtherConnectionSettings (set ReportsOwnMetrics etc. through
   * `agent.capabilities`).
   */
  readonly onTelemetryConnectionSettings?: (offer: TelemetrySettingsOffer) => MaybePromise<void>;
  /** Restarts the agent. Declares AcceptsRestartCommand. */
  readonly onRestart?: (signal: AbortSignal) => MaybePromise<void>;
  /** Receives a custom message for one of `agent.customCapabilities`. */
  readonly onCustomMessage?: (message: CustomMessage, signal: AbortSignal) => MaybePromise<void>;
  /**
   * Checks a package signature; resolve true to install, false to fail it. Called only
   * when the offer carries a signature. Default: a signed package is refused
   * (`verification_failed`) because an unchecked signature proves nothing.
   */
  readonly verifyPackageSignature?: (check: PackageSignatureCheck) => MaybePromise<boolean>;
}
