/**
 * Content hashes for AgentConfigMap. The server puts one in `AgentRemoteConfig.config_hash`
 * and the agent echoes it in `RemoteConfigStatus.last_remote_config_hash`.
 */
// spec: AgentRemoteConfig.config_hash — MUST be set; the hash must be collision-resistant.
// Hashing a serialized message would not do: protobuf map order is not defined.
import { create } from "@bufbuild/protobuf";
import { type AgentConfigFile, type AgentConfigMap, AgentConfigMapSchema } from "../gen/opamp/v1/opamp_pb.js";
import { concatBytes } from "./bytes.js";
import { OpampError } from "./errors.js";

/** Versions the canonical encoding, so a future change cannot collide with today's hashes. */
const DOMAIN = "opamp-sdk/config-map/v1";

const utf8 = new TextEncoder();

/**
 * SHA-256 (Web Crypto `crypto.subtle`) of a canonical encoding of the map, so the same
 * files give the same 32-byte hash whatever the key insertion order:
 *
 * `field(DOMAIN) u64(count)` then, for each entry in UTF-8 byte order of its key,
 * `field(key) field(content_type) field(body)`, where `field(x) = u64be(len(x)) x` and
 * strings are UTF-8. Length prefixes make the encoding unambiguous (no two different
 * maps encode alike). `undefined` hashes as an empty map; a missing file as an empty one.
 *
 * @throws OpampError `internal` when Web Crypto is unavailable (it is global in Node 20
 *   and in browsers on secure origins).
 */
export async function configMapHash(map: AgentConfigMap | undefined): Promise<Uint8Array> {
  const subtle = globalThis.crypto?.subtle;
  if (subtle === undefined) throw new OpampError("internal", "crypto.subtle is not available for SHA-256");
  const entries = Object.entries(map?.configMap ?? {}).map(([key, file]: [string, AgentConfigFile | undefined]) => ({
    key: utf8.encode(key),
    contentType: utf8.encode(file?.contentType ?? ""),
    body: file?.body ?? new Uint8Array(0),
  }));
  entries.sort((a, b) => compareBytes(a.key, b.key));
  const parts: Uint8Array[] = [field(utf8.encode(DOMAIN)), u64(entries.length)];
  for (const entry of entries) parts.push(field(entry.key), field(entry.contentType), field(entry.body));
  const digest = await subtle.digest("SHA-256", concatBytes(parts));
  return new Uint8Array(digest);
}

/**
 * True when both hashes hold the same bytes. `undefined` counts as an empty hash, as an
 * unset proto `bytes` field reads as empty. Never throws.
 */
export function hashEquals(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  const x = a ?? new Uint8Array(0);
  const y = b ?? new Uint8Array(0);
  if (x.length !== y.length) return false;
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i]! ^ y[i]!;
  return diff === 0;
}

/**
 * Builds an AgentConfigMap from `name → body`. A string body is stored as UTF-8; a file
 * given as an object may carry a `contentType` (e.g. `"text/yaml"`, default empty). A
 * single-file agent may use the key `""`.
 *
 * @throws OpampError `invalid_argument` for a body that is neither string nor Uint8Array.
 */
export function configMap(
  files: Readonly<
    Record<string, string | Uint8Array | { body: string | Uint8Array; contentType?: string | undefined }>
  >,
): AgentConfigMap {
  const entries = Object.entries(files).map(([name, file]) => {
    const { body, contentType } =
      typeof file === "string" || file instanceof Uint8Array ? { body: file, contentType: "" } : file;
    if (typeof body !== "string" && !(body instanceof Uint8Array)) {
      throw new OpampError("invalid_argument", `config file "${name}" needs a string or Uint8Array body`);
    }
    return [name, { body: typeof body === "string" ? utf8.encode(body) : body, contentType: contentType ?? "" }];
  });
  return create(AgentConfigMapSchema, { configMap: Object.fromEntries(entries) });
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

function u64(n: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
}

function field(bytes: Uint8Array): Uint8Array {
  return concatBytes([u64(bytes.length), bytes]);
}
