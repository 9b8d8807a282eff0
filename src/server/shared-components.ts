/**
 * Available components (spec: Available components): an agent sends its components in full
 * once, then only their hash. The server holds each distinct set once per server, encoded,
 * and remembers recent sets by hash so that agents reporting only the hash need not be
 * asked for the whole set again.
 */
import { createHash } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  type AvailableComponents,
  AvailableComponentsSchema,
  type ComponentDetails,
} from "../gen/opamp/v1/opamp_pb.js";
import { encodeField, Interner, STATE_FIELD } from "./shared-state.js";

/** An agent's available components as the server holds them: encoded, read-only. */
export interface SharedComponents {
  /** The agent's hash of the set (a copy). */
  readonly hash: Uint8Array;
  /** True when the components are known; false when only the hash is. */
  readonly full: boolean;
  /**
   * AgentToServer field 14, encoded by the server (map entries in key order), never taken
   * from what an agent sent: the agents sharing the entry may belong to other principals.
   */
  readonly encoded: Uint8Array;
}

/** A cache entry's bookkeeping cost on top of the encoding (map entry, key string, object). */
const ENTRY_OVERHEAD_BYTES = 200;

/**
 * The component sets of one server's agents. Sets equal in content are one object, shared
 * by every agent holding them (dropped once none does). On top of that, a cache by
 * principal and hash answers agents that report only the hash. It is scoped by principal
 * because the hash is the agent's claim, which the server cannot check: an agent of one
 * principal must not decide which components another principal's agents appear to have.
 * Principals are compared as the `authenticate` hook returns them: primitives by value,
 * objects by identity.
 *
 * The cache drops its least recently used entries once their bytes (encodings, keys and a
 * fixed overhead each) pass `maxCacheBytes`; a dropped set is asked for again
 * (ReportAvailableComponents). A set larger than `maxCacheBytes` is never cached.
 */
export class ComponentTable {
  readonly #sets = new Interner<SharedComponents>();
  readonly #cache = new Map<string, SharedComponents>();
  readonly #objectIds = new WeakMap<object, number>();
  #nextObjectId = 0;
  #cacheBytes = 0;

  constructor(readonly maxCacheBytes: number) {}

  /** Bytes the cache accounts for now (at most `maxCacheBytes`). */
  get cacheBytes(): number {
    return this.#cacheBytes;
  }

  /** Sets in the cache. */
  get cacheSize(): number {
    return this.#cache.size;
  }

  /**
   * The shared entry for a set reported in full: the same object for every agent reporting
   * the same components, whatever the order of their map entries. A new set is copied and
   * encoded once (work proportional to its size). Does not touch the cache.
   */
  shareFull(reported: AvailableComponents): SharedComponents {
    const canonical = sortedComponents(reported);
    const encoded = encodeField(STATE_FIELD.availableComponents, toBinary(AvailableComponentsSchema, canonical));
    const key = createHash("sha256").update(encoded).digest("base64");
    let shared = this.#sets.get(key);
    if (shared === undefined) {
      shared = { hash: new Uint8Array(reported.hash), full: true, encoded };
      this.#sets.set(key, shared);
    }
    return shared;
  }

  /** The state of an agent that reported only `hash` and whose components are not known. */
  hashOnly(hash: Uint8Array): SharedComponents {
    const message = create(AvailableComponentsSchema, { hash: new Uint8Array(hash) });
    return {
      hash: message.hash,
      full: false,
      encoded: encodeField(STATE_FIELD.availableComponents, toBinary(AvailableComponentsSchema, message)),
    };
  }

  /** The full set `principal` last reported with `hash`, if still cached (marks it recently used). */
  cached(principal: unknown, hash: Uint8Array): SharedComponents | undefined {
    const key = this.#key(principal, hash);
    const shared = this.#cache.get(key);
    if (shared !== undefined) {
      // Re-inserted last: the map's order is least recently used first.
      this.#cache.delete(key);
      this.#cache.set(key, shared);
    }
    return shared;
  }

  /** Caches a full set under the principal that reported it and the set's hash. */
  remember(principal: unknown, shared: SharedComponents): void {
    if (!shared.full) return;
    const key = this.#key(principal, shared.hash);
    const previous = this.#cache.get(key);
    if (previous !== undefined) {
      this.#cache.delete(key);
      this.#cacheBytes -= costOf(key, previous);
    }
    const cost = costOf(key, shared);
    if (cost > this.maxCacheBytes) return;
    this.#cache.set(key, shared);
    this.#cacheBytes += cost;
    for (const [oldest, entry] of this.#cache) {
      if (this.#cacheBytes <= this.maxCacheBytes) break;
      this.#cache.delete(oldest);
      this.#cacheBytes -= costOf(oldest, entry);
    }
  }

  #key(principal: unknown, hash: Uint8Array): string {
    let scope: string;
    if ((typeof principal === "object" && principal !== null) || typeof principal === "function") {
      let id = this.#objectIds.get(principal);
      if (id === undefined) {
        id = ++this.#nextObjectId;
        this.#objectIds.set(principal, id);
      }
      scope = `o${id}`;
    } else {
      // Typed, so that the string "1" and the number 1 stay apart.
      scope = `${typeof principal}:${String(principal)}`;
    }
    return `${Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength).toString("base64")}/${scope}`;
  }
}

function costOf(key: string, shared: SharedComponents): number {
  return shared.encoded.length + key.length * 2 + ENTRY_OVERHEAD_BYTES;
}

/**
 * `reported` with its maps listing their entries in key order, at every depth, so that
 * equal sets encode to equal bytes whatever order the agent sent them in. Shallow: new map
 * objects over the same entries (unknown fields kept), the received message unchanged.
 */
function sortedComponents(reported: AvailableComponents): AvailableComponents {
  return { ...reported, components: sortedMap(reported.components) };
}

function sortedMap(map: { [key: string]: ComponentDetails }): { [key: string]: ComponentDetails } {
  const out: { [key: string]: ComponentDetails } = {};
  for (const name of Object.keys(map).sort()) {
    const details = map[name]!;
    out[name] = { ...details, subComponentMap: sortedMap(details.subComponentMap) };
  }
  return out;
}
