/**
 * Keeping tens of thousands of agents' state small and cheap to store: reported parts are
 * detached from the received buffer without a reflective clone, identical effective
 * configs (usually the same pushed config on every agent) are held once per server, and
 * each part's encoding is cached so writing an agent's full state is a concatenation, not
 * a toBinary.
 */
import { createHash } from "node:crypto";
import { clone, toBinary } from "@bufbuild/protobuf";
import {
  type ConnectionSettingsStatus,
  type EffectiveConfig,
  EffectiveConfigSchema,
  type RemoteConfigStatus,
} from "../gen/opamp/v1/opamp_pb.js";

/**
 * A map from content key to a value that is dropped once nothing else holds the value:
 * entries cost nothing after the last agent holding them went away.
 */
export class Interner<T extends object> {
  readonly #entries = new Map<string, WeakRef<T>>();
  readonly #registry = new FinalizationRegistry<string>((key) => {
    if (this.#entries.get(key)?.deref() === undefined) this.#entries.delete(key);
  });

  /** The live value for `key`, or undefined. */
  get(key: string): T | undefined {
    return this.#entries.get(key)?.deref();
  }

  /** Remembers `value` under `key` (replacing a dead entry). */
  set(key: string, value: T): void {
    this.#entries.set(key, new WeakRef(value));
    this.#registry.register(value, key);
  }

  /** Live and not yet collected entries. */
  get size(): number {
    return this.#entries.size;
  }
}

/** An effective config held once for every agent of one server that reports the same one. */
export interface SharedEffectiveConfig {
  /** Content key (SHA-256 over names, content types and bodies). */
  readonly key: string;
  /** The config, with bodies copied out of any received buffer. Read-only. */
  readonly message: EffectiveConfig;
  /**
   * Its encoding as AgentToServer field 6. Made by the server from `message`, never taken
   * from what an agent sent: the agents sharing the entry may belong to other principals.
   */
  encoded: Uint8Array | undefined;
}

function has<T extends object>(message: T): boolean {
  const unknown = (message as { $unknown?: unknown[] }).$unknown;
  return unknown !== undefined && unknown.length > 0;
}

/** The content key of an effective config: files in name order, lengths framed. */
function effectiveConfigKey(config: EffectiveConfig): string {
  const hash = createHash("sha256");
  const files = config.configMap?.configMap ?? {};
  for (const name of Object.keys(files).sort()) {
    const file = files[name]!;
    hash.update(`${name.length}:${name}\0${file.contentType.length}:${file.contentType}\0${file.body.length}:`);
    hash.update(file.body);
  }
  return hash.digest("base64");
}

/**
 * The effective configs of one server's agents, each distinct one held once. One table per
 * server: nothing an agent of one server reports can reach the state of another server's
 * agents, and what is shared between agents of one server is made by the server (the
 * decoded content and the server's own encoding of it), never an agent's received bytes.
 */
export class EffectiveConfigTable {
  readonly #entries = new Interner<SharedEffectiveConfig>();
  /** The config shared last (one held strongly): after a fan-out every agent reports it. */
  #last: SharedEffectiveConfig | undefined;

  /**
   * The shared copy of `config`: the same object for every agent reporting the same files.
   * Work is one SHA-256 over the bodies; a config not seen before is copied and encoded
   * once. `raw` (the received field, tag included) only serves a fast path: when it is
   * byte for byte the encoding of the config shared last, that entry is the answer.
   */
  share(config: EffectiveConfig, raw?: Uint8Array): SharedEffectiveConfig {
    const last = this.#last;
    if (raw !== undefined && last?.encoded !== undefined && memEqual(last.encoded, raw)) return last;
    const key = effectiveConfigKey(config);
    // A config with unknown fields is the agent's own: its key does not cover them.
    if (has(config)) return { key, message: detachedConfig(config), encoded: undefined };
    let shared = this.#entries.get(key);
    if (shared === undefined) {
      const message = detachedConfig(config);
      shared = {
        key,
        message,
        encoded: encodeField(STATE_FIELD.effectiveConfig, toBinary(EffectiveConfigSchema, message)),
      };
      this.#entries.set(key, shared);
    }
    this.#last = shared;
    return shared;
  }

  /** Distinct effective configs held (for tests and stats). */
  get size(): number {
    return this.#entries.size;
  }
}

/**
 * A copy of `config` that holds nothing of the received buffer: clone alone would not do,
 * as it copies bytes with .slice(), a view on a Buffer.
 */
function detachedConfig(config: EffectiveConfig): EffectiveConfig {
  const message = clone(EffectiveConfigSchema, config);
  for (const file of Object.values(message.configMap?.configMap ?? {})) file.body = new Uint8Array(file.body);
  return message;
}

/**
 * True when both hold the same bytes. Native memcmp rather than the byte loop of
 * `sameBytes` (src/wire/bytes.ts): it runs on every effective-config report, over ~8 KiB.
 */
function memEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/**
 * Decoded bytes fields are views into the whole received message; a part kept for the
 * agent's lifetime must not pin that buffer (it may hold an 8 KiB config). These copy the
 * few bytes fields each part has instead of cloning the whole part reflectively. Copies
 * are `new Uint8Array(view)`: on a Buffer (what `ws` hands over) `.slice()` is a view.
 */
export function detachRemoteConfigStatus(s: RemoteConfigStatus): RemoteConfigStatus {
  s.lastRemoteConfigHash = new Uint8Array(s.lastRemoteConfigHash);
  return s;
}

/** See {@link detachRemoteConfigStatus}. */
export function detachConnectionSettingsStatus(s: ConnectionSettingsStatus): ConnectionSettingsStatus {
  s.lastConnectionSettingsHash = new Uint8Array(s.lastConnectionSettingsHash);
  return s;
}

/** AgentToServer field numbers of the parts of an agent's state. */
export const STATE_FIELD = {
  agentDescription: 3,
  health: 5,
  effectiveConfig: 6,
  remoteConfigStatus: 7,
  packageStatuses: 8,
  customCapabilities: 12,
  availableComponents: 14,
  connectionSettingsStatus: 15,
} as const;

/** A part of the state with its own cached encoding. */
export type StatePart = keyof typeof STATE_FIELD;

/** Bytes a varint of `value` takes. */
export function varintSize(value: bigint | number): number {
  if (typeof value === "number" && value < 0x80) return 1;
  let v = BigInt(value);
  let n = 1;
  while (v >= 0x80n) {
    v >>= 7n;
    n++;
  }
  return n;
}

/** Writes `value` as a varint at `offset`; returns the offset after it. */
export function putVarint(out: Uint8Array, offset: number, value: bigint | number): number {
  if (typeof value === "number" && value < 0x80) {
    out[offset] = value;
    return offset + 1;
  }
  let v = BigInt(value);
  while (v >= 0x80n) {
    out[offset++] = Number(v & 0x7fn) | 0x80;
    v >>= 7n;
  }
  out[offset++] = Number(v);
  return offset;
}

/** One length-delimited field: tag, length, bytes. */
export function encodeField(fieldNumber: number, bytes: Uint8Array): Uint8Array {
  const tag = (fieldNumber << 3) | 2;
  const out = new Uint8Array(varintSize(tag) + varintSize(bytes.length) + bytes.length);
  const offset = putVarint(out, putVarint(out, 0, tag), bytes.length);
  out.set(bytes, offset);
  return out;
}

/**
 * The scalar fields of an agent's stored state (instance_uid, sequence_num, capabilities)
 * as binary AgentToServer fields; the parts' cached encodings follow them in the state.
 */
export function encodeStateHead(instanceUid: Uint8Array, sequenceNum: bigint, capabilities: bigint): Uint8Array {
  let size = 2 + instanceUid.length;
  if (sequenceNum !== 0n) size += 1 + varintSize(sequenceNum);
  if (capabilities !== 0n) size += 1 + varintSize(capabilities);
  const out = new Uint8Array(size);
  out[0] = (1 << 3) | 2;
  out[1] = instanceUid.length;
  out.set(instanceUid, 2);
  let offset = 2 + instanceUid.length;
  if (sequenceNum !== 0n) {
    out[offset++] = 2 << 3;
    offset = putVarint(out, offset, sequenceNum);
  }
  if (capabilities !== 0n) {
    out[offset++] = 4 << 3;
    putVarint(out, offset, capabilities);
  }
  return out;
}

/** The encoded field of the shared effective config, made once for all agents holding it. */
export function encodedEffectiveConfig(shared: SharedEffectiveConfig): Uint8Array {
  shared.encoded ??= encodeField(STATE_FIELD.effectiveConfig, toBinary(EffectiveConfigSchema, shared.message));
  return shared.encoded;
}

function varint(bytes: Uint8Array, offset: number): [value: number, next: number] | undefined {
  let value = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    if (offset >= bytes.length) return undefined;
    const b = bytes[offset++]!;
    value += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) return [value, offset];
  }
  return undefined;
}

/** One top-level field of binary protobuf: its number, wire type and bytes (tag included). */
export interface RawField {
  readonly field: number;
  readonly wireType: number;
  readonly bytes: Uint8Array;
}

/**
 * Splits binary protobuf into its top-level fields (views, not copies), in order;
 * undefined when it does not parse.
 */
export function splitFields(bytes: Uint8Array): RawField[] | undefined {
  const fields: RawField[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const start = offset;
    const tag = varint(bytes, offset);
    if (tag === undefined) return undefined;
    offset = tag[1];
    switch (tag[0] & 7) {
      case 0: {
        const v = varint(bytes, offset);
        if (v === undefined) return undefined;
        offset = v[1];
        break;
      }
      case 1:
        offset += 8;
        break;
      case 5:
        offset += 4;
        break;
      case 2: {
        const len = varint(bytes, offset);
        if (len === undefined) return undefined;
        offset = len[1] + len[0];
        break;
      }
      default:
        return undefined;
    }
    if (offset > bytes.length) return undefined;
    fields.push({ field: Math.floor(tag[0] / 8), wireType: tag[0] & 7, bytes: bytes.subarray(start, offset) });
  }
  return fields;
}

/**
 * The received bytes of each state part, by field number, when the message had each at
 * most once and length-delimited (a repeated sub-message field is merged by decoders, so
 * its bytes alone would not match the decoded value; and protobuf-es reads a message field
 * sent with another wire type as if it were length-delimited, reading on past what a
 * splitter delimits). Views into `raw`: copy what is kept.
 */
export function rawStateFields(raw: Uint8Array | undefined): Map<number, Uint8Array> | undefined {
  if (raw === undefined) return undefined;
  const fields = splitFields(raw);
  if (fields === undefined) return undefined;
  const out = new Map<number, Uint8Array>();
  const unusable = new Set<number>();
  for (const { field, wireType, bytes } of fields) {
    if (out.has(field) || wireType !== 2) unusable.add(field);
    out.set(field, bytes);
  }
  for (const field of unusable) out.delete(field);
  return out;
}
