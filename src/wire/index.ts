/**
 * The wire layer: bytes ↔ OpAMP messages. Runs anywhere (no `node:` imports, no timers).
 * Every public name is listed here; helpers that other SDK layers share stay in their
 * modules.
 *
 * @module
 */
export { agentDescription, describeAgent } from "./agent-description.js";
export { type AttributeValue, fromAnyValue, fromKeyValues, toAnyValue, toKeyValues } from "./any-value.js";
export {
  AgentCapability,
  type AgentCapabilityFlags,
  type AgentCapabilityName,
  AgentToServerFlag,
  agentCapabilities,
  agentCapabilityFlags,
  hasBit,
  ServerCapability,
  type ServerCapabilityFlags,
  type ServerCapabilityName,
  ServerToAgentFlag,
  serverCapabilities,
  serverCapabilityFlags,
} from "./capabilities.js";
export { configFileText } from "./config-files.js";
export { configMap, configMapHash, hashEquals } from "./config-hash.js";
export {
  isOpampError,
  isOpampErrorCode,
  OPAMP_ERROR_CODES,
  OpampError,
  type OpampErrorCode,
  type OpampErrorDetails,
} from "./errors.js";
export { decodeWsFrame, decodeWsMessage, encodeWsFrame, encodeWsMessage, WS_HEADER } from "./frame.js";
export {
  decodeHttpBody,
  encodeHttpBody,
  type GzipCodec,
  gunzip,
  gzip,
  type HttpBodyOptions,
  PROTOBUF_CONTENT_TYPE,
  readHttpBody,
  webGzip,
} from "./http-body.js";
export { DEFAULT_GZIP_MIN_BYTES, DEFAULT_MAX_MESSAGE_BYTES } from "./limits.js";
export {
  type ConnectionSettingsStatusName,
  connectionSettingsStatusName,
  type PackageStatusName,
  packageStatusName,
  type RemoteConfigStatusName,
  remoteConfigStatusName,
} from "./status-names.js";
export {
  assertInstanceUid,
  INSTANCE_UID_BYTES,
  instanceUidEquals,
  instanceUidFromString,
  instanceUidToString,
  isInstanceUid,
  newInstanceUid,
} from "./uid.js";
