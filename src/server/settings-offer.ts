/**
 * Connection-settings offers: what the application may pass (plain header records, an
 * endpoint left out), turned into the protobuf message the agent gets.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type {
  ConnectionSettingsOffersSchema,
  HeadersSchema,
  OpAMPConnectionSettingsSchema,
  OtherConnectionSettingsSchema,
  TelemetryConnectionSettingsSchema,
} from "../gen/opamp/v1/opamp_pb.js";
import { OpampError } from "../wire/index.js";

/**
 * Headers of an offer: the protobuf shape (`{ headers: [{ key, value }] }`), or a plain
 * record of names to values (`{ Authorization: "Bearer …" }`; an array value gives the
 * header once per element). A header literally named `headers` needs the protobuf shape.
 */
export type HeadersInput =
  | MessageInitShape<typeof HeadersSchema>
  | Readonly<Record<string, string | readonly string[]>>;

/** A settings message whose `headers` may also be a plain record. */
type WithHeaders<T> = T extends unknown ? Omit<T, "headers"> & { readonly headers?: HeadersInput } : never;

type OffersInit = MessageInitShape<typeof ConnectionSettingsOffersSchema>;

/**
 * Connection settings to offer. `hash` is computed (SHA-256 of the encoded offer) when left
 * out. `opamp.destinationEndpoint` left out means, for each agent, the endpoint that agent
 * connected to. Headers may be plain records.
 */
export type ConnectionSettingsInput = OffersInit extends unknown
  ? Omit<OffersInit, "opamp" | "ownMetrics" | "ownTraces" | "ownLogs" | "otherConnections"> & {
      /** Where and how the agent connects to the OpAMP server (needs AcceptsOpAMPConnectionSettings). */
      readonly opamp?: WithHeaders<MessageInitShape<typeof OpAMPConnectionSettingsSchema>>;
      /** Where the agent sends its own metrics (needs ReportsOwnMetrics). */
      readonly ownMetrics?: WithHeaders<MessageInitShape<typeof TelemetryConnectionSettingsSchema>>;
      /** Where the agent sends its own traces (needs ReportsOwnTraces). */
      readonly ownTraces?: WithHeaders<MessageInitShape<typeof TelemetryConnectionSettingsSchema>>;
      /** Where the agent sends its own logs (needs ReportsOwnLogs). */
      readonly ownLogs?: WithHeaders<MessageInitShape<typeof TelemetryConnectionSettingsSchema>>;
      /** Other destinations by name, e.g. an exporter's endpoint (needs AcceptsOtherConnectionSettings). */
      readonly otherConnections?: Readonly<
        Record<string, WithHeaders<MessageInitShape<typeof OtherConnectionSettingsSchema>>>
      >;
    }
  : never;

/** RFC 9110 field-name: a token. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** CR, LF and NUL would split or end the header block of the agent's next request. */
const UNSAFE_VALUE = /[\r\n\0]/;

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string")
    return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  return `a ${typeof value}`;
}

function invalid(path: string, expected: string, value: unknown): OpampError {
  return new OpampError("invalid_argument", `${path} must be ${expected}, got ${describe(value)}`);
}

/**
 * Headers in the protobuf init shape, from either accepted form.
 *
 * @throws OpampError `invalid_argument` for another shape, a name that is not an HTTP token,
 *   or a value holding CR, LF or NUL.
 */
export function normalizeHeaders(value: unknown, path: string): MessageInitShape<typeof HeadersSchema> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw invalid(path, "a record of header names to values, or { headers: [{ key, value }] }", value);
  }
  const pairs: [string, string][] = [];
  const list = (value as { headers?: unknown }).headers;
  if (Array.isArray(list)) {
    list.forEach((entry: unknown, i) => {
      const { key, value: v } = (entry ?? {}) as { key?: unknown; value?: unknown };
      if (typeof key !== "string" || typeof v !== "string") {
        throw invalid(`${path}.headers[${i}]`, "{ key: string, value: string }", entry);
      }
      pairs.push([key, v]);
    });
  } else {
    for (const [name, v] of Object.entries(value)) {
      if (name === "$typeName") continue;
      if (typeof v === "string") pairs.push([name, v]);
      else if (Array.isArray(v) && v.every((s) => typeof s === "string")) for (const s of v) pairs.push([name, s]);
      else throw invalid(`${path}.${name}`, "a string or an array of strings", v);
    }
  }
  for (const [name, v] of pairs) {
    if (!HEADER_NAME.test(name)) throw invalid(`${path} name`, "an HTTP token", name);
    if (UNSAFE_VALUE.test(v)) {
      throw new OpampError("invalid_argument", `${path} value of "${name}" holds CR, LF or NUL`);
    }
  }
  return { headers: pairs.map(([key, v]) => ({ key, value: v })) };
}

function withHeaders<T extends object>(settings: T | undefined, path: string): T | undefined {
  if (settings === undefined) return undefined;
  if (settings === null || typeof settings !== "object") throw invalid(path, "an object", settings);
  const headers = (settings as { headers?: unknown }).headers;
  if (headers === undefined) return settings;
  // A decoded message (a forwarded offer) is turned back into an init shape: `create` takes
  // an object with `$typeName` as a finished message and would not convert the new headers.
  const { $typeName: _, ...rest } = settings as T & { $typeName?: string };
  return { ...rest, headers: normalizeHeaders(headers, `${path}.headers`) } as T;
}

/**
 * The offer in protobuf init shape: every `headers` normalised (see {@link HeadersInput}).
 *
 * @throws OpampError `invalid_argument` for a malformed part (see {@link normalizeHeaders}).
 */
export function normalizeSettingsInput(input: ConnectionSettingsInput): OffersInit {
  if (input === null || typeof input !== "object") throw invalid("connection settings", "an object", input);
  const { $typeName: _, ...plain } = input as ConnectionSettingsInput & { $typeName?: string };
  const out: Record<string, unknown> = { ...plain };
  for (const key of ["opamp", "ownMetrics", "ownTraces", "ownLogs"] as const) {
    if (input[key] !== undefined) out[key] = withHeaders(input[key] as object, key);
  }
  const others = input.otherConnections;
  if (others !== undefined) {
    if (others === null || typeof others !== "object") throw invalid("otherConnections", "a record", others);
    out["otherConnections"] = Object.fromEntries(
      Object.entries(others).map(([name, s]) => [name, withHeaders(s as object, `otherConnections.${name}`)]),
    );
  }
  return out as OffersInit;
}
