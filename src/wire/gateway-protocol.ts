/**
 * The gateway ↔ server control messages: Bindplane's auth delegation (`connect` /
 * `connectResult` under the custom capability `com.bindplane.opamp-gateway`), byte for
 * byte, plus opamp-sdk's own extension (`attach` / `refused` under
 * `io.opamp-sdk.gateway`) that ties each relayed instance UID to the request that
 * authenticated it. Both the server and the gateway use these; neither imports the other.
 *
 * Every control message travels as an ordinary OpAMP message whose `instance_uid` is empty
 * (gateway → server) or names the agent concerned (server → gateway), carrying one
 * `custom_message` whose `data` is UTF-8 JSON.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { AgentToServerSchema, type CustomMessage, ServerToAgentSchema } from "../gen/opamp/v1/opamp_pb.js";
import { OpampError } from "./errors.js";
import { encodeWsFrame } from "./frame.js";

/** Bindplane's custom capability for auth delegation through a gateway. */
export const GATEWAY_CAPABILITY = "com.bindplane.opamp-gateway";
/** Gateway → server: authenticate one agent request (its headers and address). */
export const GATEWAY_CONNECT = "connect";
/** Server → gateway: the answer to a {@link GATEWAY_CONNECT}. */
export const GATEWAY_CONNECT_RESULT = "connectResult";
/**
 * opamp-sdk's extension capability. A server lists it (next to
 * {@link GATEWAY_CAPABILITY}) in the `custom_capabilities` of its `connectResult`
 * replies when it understands {@link GATEWAY_ATTACH}; a gateway sends extension messages
 * only to such a server.
 */
export const GATEWAY_EXTENSION_CAPABILITY = "io.opamp-sdk.gateway";
/** Gateway → server: the instance UID that an authenticated request now speaks for. */
export const GATEWAY_ATTACH = "attach";
/** Server → gateway: the server refused a relayed agent; the gateway closes its connection. */
export const GATEWAY_REFUSED = "refused";

/** Go `http.Header`: canonical names to value lists. */
export type GoHeaders = Readonly<Record<string, readonly string[]>>;

/** The `connect` JSON (Bindplane's `OpampGatewayConnect`). */
export interface GatewayConnect {
  /** The gateway's id for this agent request; the `connectResult` carries it back. */
  readonly requestUid: string;
  /** The agent's socket address as the gateway saw it, Go style (`10.0.0.7:53122`, `[::1]:5000`). */
  readonly remoteAddress: string;
  /** The agent request's headers, Go style (canonical names, value lists). */
  readonly headers: GoHeaders;
}

/** The `connectResult` JSON (Bindplane's `OpampGatewayConnectResult`). */
export interface GatewayConnectResult {
  /** The `requestUid` of the `connect` this answers. */
  readonly requestUid: string;
  /** Whether the server lets the agent in. */
  readonly accept: boolean;
  /** The status the gateway answers the agent with when refused; 0 means 401. */
  readonly httpStatusCode: number;
  /** Headers the gateway writes on a refusal (e.g. `Retry-After`, `WWW-Authenticate`). */
  readonly responseHeaders: Readonly<Record<string, string>>;
}

/** The `attach` JSON (extension). */
export interface GatewayAttach {
  /** The `requestUid` of the `connect` that authenticated the request now speaking for the UID. */
  readonly requestUid: string;
  /** Canonical UUID string. */
  readonly instanceUid: string;
}

/** The `refused` JSON (extension), sent with the agent's UID as the message's `instance_uid`. */
export interface GatewayRefused {
  /** What a direct HTTP agent would have got (403, 401, 500…). */
  readonly httpStatusCode: number;
  /** What a direct WebSocket agent would have been closed with (1008, 1011…). */
  readonly wsCloseCode: number;
  /** Why, for logs and the agent's close reason or response body. */
  readonly reason: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function malformed(what: string, cause?: unknown): OpampError {
  return new OpampError("malformed_message", `gateway ${what}`, cause === undefined ? undefined : { cause });
}

function parseJson(data: Uint8Array, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(data));
  } catch (e) {
    throw malformed(`${what}: data is not UTF-8 JSON`, e);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw malformed(`${what}: data is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

function optionalString(obj: Record<string, unknown>, key: string, what: string): string {
  const value = obj[key];
  if (value === undefined || value === null) return "";
  if (typeof value !== "string") throw malformed(`${what}: "${key}" is not a string`);
  return value;
}

/**
 * The `request_uid` of a control message's JSON, or "" when the data holds none. Used to
 * route an answer even when the rest of the message is malformed.
 */
export function peekRequestUid(data: Uint8Array): string {
  try {
    const value = parseJson(data, "message")["request_uid"];
    return typeof value === "string" ? value : "";
  } catch {
    return "";
  }
}

/**
 * Parses a `connect`. Header values may be lists (Go) or single strings (lenient).
 *
 * @throws OpampError `malformed_message` for anything that is not the documented JSON.
 */
export function decodeGatewayConnect(data: Uint8Array): GatewayConnect {
  const obj = parseJson(data, "connect");
  const requestUid = optionalString(obj, "request_uid", "connect");
  if (requestUid === "") throw malformed('connect: "request_uid" is missing');
  const remoteAddress = optionalString(obj, "remote_address", "connect");
  const raw = obj["headers"] ?? {};
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw malformed('connect: "headers" is not an object');
  const headers: Record<string, string[]> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (typeof value === "string") headers[name] = [value];
    else if (Array.isArray(value) && value.every((v) => typeof v === "string")) headers[name] = value as string[];
    else throw malformed(`connect: header "${name}" is not a list of strings`);
  }
  return { requestUid, remoteAddress, headers };
}

/** The JSON of a `connect`, as Bindplane's gateway writes it. */
export function encodeGatewayConnect(connect: GatewayConnect): Uint8Array {
  return encoder.encode(
    JSON.stringify({
      request_uid: connect.requestUid,
      remote_address: connect.remoteAddress,
      headers: connect.headers,
    }),
  );
}

/**
 * Parses a `connectResult`.
 *
 * @throws OpampError `malformed_message` for anything that is not the documented JSON, or
 *   a result without `request_uid` (Bindplane's gateway ignores those too).
 */
export function decodeGatewayConnectResult(data: Uint8Array): GatewayConnectResult {
  const obj = parseJson(data, "connectResult");
  const requestUid = optionalString(obj, "request_uid", "connectResult");
  if (requestUid === "") throw malformed('connectResult: "request_uid" is missing');
  const accept = obj["accept"] ?? false;
  if (typeof accept !== "boolean") throw malformed('connectResult: "accept" is not a boolean');
  const status = obj["http_status_code"] ?? 0;
  if (typeof status !== "number" || !Number.isInteger(status)) {
    throw malformed('connectResult: "http_status_code" is not an integer');
  }
  const raw = obj["response_headers"] ?? {};
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw malformed('connectResult: "response_headers" is not an object');
  }
  const responseHeaders: Record<string, string> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (typeof value !== "string") throw malformed(`connectResult: header "${name}" is not a string`);
    responseHeaders[name] = value;
  }
  return { requestUid, accept, httpStatusCode: status, responseHeaders };
}

/** The JSON of a `connectResult`. */
export function encodeGatewayConnectResult(result: GatewayConnectResult): Uint8Array {
  return encoder.encode(
    JSON.stringify({
      request_uid: result.requestUid,
      accept: result.accept,
      http_status_code: result.httpStatusCode,
      response_headers: result.responseHeaders,
    }),
  );
}

/**
 * Parses an `attach`.
 *
 * @throws OpampError `malformed_message` when a field is missing or not a string.
 */
export function decodeGatewayAttach(data: Uint8Array): GatewayAttach {
  const obj = parseJson(data, "attach");
  const requestUid = optionalString(obj, "request_uid", "attach");
  const instanceUid = optionalString(obj, "instance_uid", "attach");
  if (requestUid === "" || instanceUid === "") throw malformed('attach: "request_uid" and "instance_uid" are required');
  return { requestUid, instanceUid };
}

/** The JSON of an `attach`. */
export function encodeGatewayAttach(attach: GatewayAttach): Uint8Array {
  return encoder.encode(JSON.stringify({ request_uid: attach.requestUid, instance_uid: attach.instanceUid }));
}

/**
 * Parses a `refused`; missing fields take the values of a plain refusal (403, 1008).
 *
 * @throws OpampError `malformed_message` when the data is not a JSON object of that shape.
 */
export function decodeGatewayRefused(data: Uint8Array): GatewayRefused {
  const obj = parseJson(data, "refused");
  const status = obj["http_status_code"] ?? 403;
  const code = obj["ws_close_code"] ?? 1008;
  if (typeof status !== "number" || typeof code !== "number") throw malformed("refused: codes are not numbers");
  return { httpStatusCode: status, wsCloseCode: code, reason: optionalString(obj, "reason", "refused") };
}

/** The JSON of a `refused`. */
export function encodeGatewayRefused(refused: GatewayRefused): Uint8Array {
  return encoder.encode(
    JSON.stringify({
      http_status_code: refused.httpStatusCode,
      ws_close_code: refused.wsCloseCode,
      reason: refused.reason,
    }),
  );
}

/**
 * A gateway → server control frame: the WebSocket header byte and an `AgentToServer` with
 * an empty `instance_uid`, `sequence_num` 0 and only `custom_message` set, as Bindplane's
 * gateway sends `connect`.
 */
export function agentControlFrame(capability: string, type: string, data: Uint8Array): Uint8Array {
  return encodeWsFrame(
    toBinary(AgentToServerSchema, create(AgentToServerSchema, { customMessage: { capability, type, data } })),
  );
}

/**
 * A server → gateway control message (`ServerToAgent` protobuf, no header byte): the
 * custom message, the agent's UID when it is about one agent, and the server's custom
 * capabilities when given (a `connectResult` carries them, as opamp-go's first reply does).
 */
export function serverControlMessage(
  capability: string,
  type: string,
  data: Uint8Array,
  options: { instanceUid?: Uint8Array; customCapabilities?: readonly string[] } = {},
): Uint8Array {
  return toBinary(
    ServerToAgentSchema,
    create(ServerToAgentSchema, {
      instanceUid: options.instanceUid ?? new Uint8Array(0),
      customMessage: { capability, type, data },
      ...(options.customCapabilities === undefined
        ? {}
        : { customCapabilities: { capabilities: [...options.customCapabilities] } }),
    }),
  );
}

/** True when the custom message belongs to the gateway protocol (Bindplane's or the extension). */
export function isGatewayControl(message: CustomMessage | undefined): message is CustomMessage {
  return (
    message !== undefined &&
    (message.capability === GATEWAY_CAPABILITY || message.capability === GATEWAY_EXTENSION_CAPABILITY)
  );
}
