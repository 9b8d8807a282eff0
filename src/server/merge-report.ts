/**
 * Merging one AgentToServer into an agent's record (spec: Status Compression): which parts
 * changed, what each part's stored encoding is, and whether the result fits the agent's
 * state budget. Nothing is merged unless everything fits.
 */
import { clone, type DescMessage, equals, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import {
  type AgentToServer,
  AgentToServerSchema,
  ConnectionSettingsStatusSchema,
  CustomCapabilitiesSchema,
  RemoteConfigStatusSchema,
} from "../gen/opamp/v1/opamp_pb.js";
import { sameBytes } from "../wire/bytes.js";
import { isStrictEncoding } from "../wire/strict-encoding.js";
import { type AgentRecord, type EncodedOnlyPart, fieldPayload, PART_SCHEMA } from "./agent-record.js";
import { ComponentTable, type SharedComponents } from "./shared-components.js";
import {
  detachConnectionSettingsStatus,
  detachRemoteConfigStatus,
  EffectiveConfigTable,
  encodedEffectiveConfig,
  encodeField,
  rawStateFields,
  STATE_FIELD,
  type StatePart,
} from "./shared-state.js";
import type { AgentPart } from "./types.js";

/** What one server shares between its agents' records. */
export interface StateTables {
  readonly effectiveConfigs: EffectiveConfigTable;
  readonly components: ComponentTable;
}

/** New, empty tables for one server; `maxComponentCacheBytes` bounds its components cache. */
export function newStateTables(maxComponentCacheBytes: number): StateTables {
  return { effectiveConfigs: new EffectiveConfigTable(), components: new ComponentTable(maxComponentCacheBytes) };
}

/** How to merge. */
export interface MergeOptions {
  /**
   * The binary `message` was decoded from, when at hand: each changed part's received
   * encoding is then kept (once checked) instead of being encoded again.
   */
  readonly raw?: Uint8Array | undefined;
  /** Who sent the message; the components cache is scoped by it. */
  readonly principal?: unknown;
  /** Largest encoded state the record may hold after the merge; default no limit. */
  readonly maxStateBytes?: number | undefined;
}

/** Result of merging one report into a record. */
export interface MergeResult {
  readonly changes: AgentPart[];
  /** The agent sent an available-components hash whose components the server does not know. */
  readonly needComponents: boolean;
  /**
   * Set when the merged state would have taken this many bytes, over `maxStateBytes`:
   * then nothing was merged and the record is as it was.
   */
  readonly refusedStateBytes?: number;
}

/** One part's new value, worked out before anything is changed. */
interface Planned {
  readonly part: StatePart;
  /** Its encoded AgentToServer field: checked received bytes (a view), or encoded here. */
  readonly bytes: Uint8Array;
  readonly apply?: () => void;
}

/**
 * Merges the compressible fields present in `message` into `record` and reports which
 * parts changed. Absent fields keep their last value (spec: Status Compression). Kept
 * parts hold nothing of the received buffer, and the effective config and components are
 * shared with the server's other agents reporting the same ones. Work is proportional to
 * the size of the message, not of the fleet.
 *
 * A received part's bytes are kept as its stored encoding only when the part came once,
 * length-delimited, and the whole message is a strict encoding (src/wire/strict-encoding.ts),
 * so that they decode on their own to the decoded part: protobuf-es lets a nested message
 * run past its parent's declared length (and reads a message field of another wire type as
 * length-delimited), so the bytes a field's length delimits may not be what the decoder
 * read. Otherwise the part is encoded again from the decoded value.
 *
 * When `options.maxStateBytes` is given and the state would grow past it, nothing is
 * merged (`refusedStateBytes` says how large it would have been).
 */
export function mergeReport(
  record: AgentRecord,
  message: AgentToServer,
  tables: StateTables,
  options: MergeOptions = {},
): MergeResult {
  // Worked out on the first part that needs it (a heartbeat needs none).
  let fields: Map<number, Uint8Array> | undefined | null = null;
  const received = (part: StatePart) => {
    if (fields === null) fields = strictRawFields(options.raw);
    return fields?.get(STATE_FIELD[part]);
  };
  const planned: Planned[] = [];

  // The description, health and package statuses are held only encoded: compared by their
  // received bytes, and decoded for a deep comparison only when the bytes differ (map
  // entries may come in another order).
  const encodedOnly = <P extends EncodedOnlyPart>(
    part: P,
    next: MessageShape<(typeof PART_SCHEMA)[P]> | undefined,
    apply?: () => void,
  ) => {
    if (next === undefined) return; // spec: left out = unchanged
    const schema = PART_SCHEMA[part] as DescMessage;
    const current = record.encodedPart(part);
    const bytes = received(part);
    if (current !== undefined) {
      if (bytes !== undefined && sameEncoding(current, bytes)) return;
      if (sameContent(schema, current, next)) return;
    }
    planned.push({ part, bytes: checkedEncoding(part, schema, bytes, next), ...(apply && { apply }) });
  };
  // The statuses without repeated fields are held decoded (small), compared by value.
  const decoded = <D extends DescMessage>(
    part: StatePart,
    schema: D,
    current: MessageShape<D> | undefined,
    next: MessageShape<D> | undefined,
    apply: (value: MessageShape<D>) => void,
  ) => {
    if (next === undefined) return; // spec: left out = unchanged
    if (current !== undefined && equals(schema, current, next)) return;
    planned.push({ part, bytes: checkedEncoding(part, schema, received(part), next), apply: () => apply(next) });
  };

  encodedOnly("agentDescription", message.agentDescription);
  encodedOnly("health", message.health);
  if (message.effectiveConfig !== undefined) {
    const shared = tables.effectiveConfigs.share(message.effectiveConfig, received("effectiveConfig"));
    if (shared.key !== record.sharedEffectiveConfig?.key) {
      planned.push({
        part: "effectiveConfig",
        bytes: encodedEffectiveConfig(shared),
        apply: () => {
          record.sharedEffectiveConfig = shared;
        },
      });
    }
  }
  decoded(
    "remoteConfigStatus",
    RemoteConfigStatusSchema,
    record.remoteConfigStatus,
    message.remoteConfigStatus,
    (v) => {
      record.remoteConfigStatus = detachRemoteConfigStatus(v);
    },
  );
  const packages = message.packageStatuses;
  encodedOnly("packageStatuses", packages, () => {
    record.reportedPackagesHash = new Uint8Array(packages!.serverProvidedAllPackagesHash);
  });
  decoded(
    "customCapabilities",
    CustomCapabilitiesSchema,
    record.customCapabilities,
    message.customCapabilities,
    (v) => {
      // Strings are copies already; only unknown fields would be views into the message.
      record.customCapabilities = hasUnknown(v) ? clone(CustomCapabilitiesSchema, v) : v;
    },
  );
  decoded(
    "connectionSettingsStatus",
    ConnectionSettingsStatusSchema,
    record.connectionSettingsStatus,
    message.connectionSettingsStatus,
    (v) => {
      record.connectionSettingsStatus = detachConnectionSettingsStatus(v);
    },
  );
  const components = plannedComponents(record, message, tables.components, options.principal);
  if (components.shared !== undefined) {
    const shared = components.shared;
    planned.push({
      part: "availableComponents",
      bytes: shared.encoded,
      apply: () => {
        record.sharedComponents = shared;
      },
    });
  }

  // spec: capabilities MUST always be set; a poll carrying 0 is tolerated as "unchanged".
  const capabilities = message.capabilities !== 0n ? message.capabilities : record.capabilities;
  const max = options.maxStateBytes;
  if (max !== undefined && planned.length > 0) {
    const size = record.stateBytes(new Map(planned.map((p) => [p.part, p.bytes.length])), capabilities);
    if (size > max) return { changes: [], needComponents: false, refusedStateBytes: size };
  }

  const changes: AgentPart[] = [];
  if (capabilities !== record.capabilities) {
    record.capabilities = capabilities;
    changes.push("capabilities");
  }
  for (const { part, bytes, apply } of planned) {
    record.forgetEncoded(part);
    // A view into the received message for now: packEncoded() below copies it out.
    if (part !== "effectiveConfig" && part !== "availableComponents") record.encoded[part] = bytes;
    apply?.();
    changes.push(part);
  }
  if (components.remember !== undefined) tables.components.remember(options.principal, components.remember);
  if (planned.length > 0) record.packEncoded();
  return { changes, needComponents: components.ask };
}

/** What a report does to the agent's available components. */
interface ComponentsPlan {
  /** The record's new components; undefined when unchanged. */
  readonly shared: SharedComponents | undefined;
  /** A full set to cache for the sender's principal once merged. */
  readonly remember: SharedComponents | undefined;
  /** The server knows only the hash: ask for the components. */
  readonly ask: boolean;
}

function plannedComponents(
  record: AgentRecord,
  message: AgentToServer,
  table: ComponentTable,
  principal: unknown,
): ComponentsPlan {
  const reported = message.availableComponents;
  const current = record.sharedComponents;
  if (reported === undefined) return { shared: undefined, remember: undefined, ask: false };
  if (Object.keys(reported.components).length > 0) {
    const shared = table.shareFull(reported);
    return { shared: shared === current ? undefined : shared, remember: shared, ask: false };
  }
  // spec: Available components — after the first report, only the hash.
  if (current?.full === true && sameBytes(current.hash, reported.hash)) {
    return { shared: undefined, remember: undefined, ask: false };
  }
  const cached = table.cached(principal, reported.hash);
  if (cached !== undefined) return { shared: cached === current ? undefined : cached, remember: undefined, ask: false };
  const ask = reported.hash.length > 0;
  if (current !== undefined && !current.full && sameBytes(current.hash, reported.hash)) {
    return { shared: undefined, remember: undefined, ask };
  }
  return { shared: table.hashOnly(reported.hash), remember: undefined, ask };
}

/**
 * The received message's state fields by number, each with its tag and length, when the
 * whole message is a strict encoding (see isStrictEncoding) — then the decoder read every
 * top-level field exactly where its declared length puts it, and each kept field decodes
 * on its own to the decoded part. Undefined otherwise, and every changed part is encoded
 * again. Checked without decoding: a decode and deep comparison per part cost more than
 * the rest of a full report's handling.
 *
 * Checking a part's bytes alone would not do: an earlier field that runs past its end can
 * make the decoder read a later part from other bytes than the ones its length delimits.
 */
function strictRawFields(raw: Uint8Array | undefined): Map<number, Uint8Array> | undefined {
  if (raw === undefined) return undefined;
  return isStrictEncoding(AgentToServerSchema, raw) ? rawStateFields(raw) : undefined;
}

/** The encoded field to keep for a changed part: its received bytes, or `next` encoded. */
function checkedEncoding<D extends DescMessage>(
  part: StatePart,
  schema: D,
  receivedBytes: Uint8Array | undefined,
  next: MessageShape<D>,
): Uint8Array {
  return receivedBytes ?? encodeField(STATE_FIELD[part], toBinary(schema, next));
}

/** True when the encoded field parses on its own into a message equal to `next`. */
function sameContent<D extends DescMessage>(schema: D, field: Uint8Array, next: MessageShape<D>): boolean {
  try {
    return equals(schema, fromBinary(schema, fieldPayload(field)), next);
  } catch {
    return false;
  }
}

/** True when both hold the same bytes (native memcmp). */
function sameEncoding(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

function hasUnknown(message: object): boolean {
  const unknown = (message as { $unknown?: unknown[] }).$unknown;
  return unknown !== undefined && unknown.length > 0;
}
