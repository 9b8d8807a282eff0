/**
 * Inputs for the fuzzers: valid OpAMP messages with random content, and what the
 * mutations make of them. Each input comes from its own random stream (seed, index).
 */
import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { type AnyValue, AnyValueSchema, type KeyValue, KeyValueSchema } from "../../src/gen/opamp/v1/anyvalue_pb.js";
import { AgentToServerSchema, type ServerToAgent, ServerToAgentSchema } from "../../src/gen/opamp/v1/opamp_pb.js";
import { mutateRaw, mutateTree } from "./mutate.js";
import type { Rng } from "./random.js";

type AgentInit = MessageInitShape<typeof AgentToServerSchema>;
type ServerInit = MessageInitShape<typeof ServerToAgentSchema>;

function anyValue(rng: Rng, depth: number): AnyValue {
  const kind = depth > 3 ? rng.int(5) : rng.int(7);
  let value: AnyValue["value"];
  switch (kind) {
    case 0:
      value = { case: "stringValue", value: rng.string() };
      break;
    case 1:
      value = { case: "intValue", value: BigInt.asIntN(64, rng.u64()) };
      break;
    case 2:
      value = { case: "doubleValue", value: rng.pick([0, -0, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 1e308]) };
      break;
    case 3:
      value = { case: "boolValue", value: rng.chance(0.5) };
      break;
    case 4:
      value = { case: "bytesValue", value: rng.bytes(rng.int(24)) };
      break;
    case 5:
      value = {
        case: "arrayValue",
        value: {
          $typeName: "opamp.proto.v1.ArrayValue",
          values: Array.from({ length: rng.int(4) }, () => anyValue(rng, depth + 1)),
        },
      };
      break;
    default:
      value = {
        case: "kvlistValue",
        value: { $typeName: "opamp.proto.v1.KeyValueList", values: keyValues(rng, depth + 1, 3) },
      };
  }
  return create(AnyValueSchema, { value });
}

function keyValues(rng: Rng, depth: number, max: number): KeyValue[] {
  return Array.from({ length: rng.int(max + 1) }, () =>
    create(KeyValueSchema, { key: rng.string(12), value: anyValue(rng, depth) }),
  );
}

/** An attribute value nested `depth` key-value lists deep. */
export function nestedValue(depth: number): AnyValue {
  let value = create(AnyValueSchema, { value: { case: "stringValue", value: "leaf" } });
  for (let i = 0; i < depth; i++) {
    value = create(AnyValueSchema, {
      value: {
        case: "kvlistValue",
        value: {
          $typeName: "opamp.proto.v1.KeyValueList",
          values: [{ $typeName: "opamp.proto.v1.KeyValue", key: "k", value }],
        },
      },
    });
  }
  return value;
}

function health(rng: Rng, depth: number): NonNullable<AgentInit["health"]> {
  return {
    healthy: rng.chance(0.7),
    startTimeUnixNano: rng.u64(),
    statusTimeUnixNano: rng.u64(),
    lastError: rng.string(),
    status: rng.string(),
    componentHealthMap:
      depth > 2
        ? {}
        : Object.fromEntries(Array.from({ length: rng.int(4) }, () => [rng.string(10), health(rng, depth + 1)])),
  };
}

function uid(rng: Rng, pool: readonly Uint8Array[]): Uint8Array {
  if (rng.chance(0.9)) return rng.pick(pool);
  // spec: 16 bytes; the edges around it.
  return rng.bytes(rng.pick([0, 1, 15, 16, 17, 32]));
}

/** A valid AgentToServer with a random subset of fields, for one of the agents of `pool`. */
export function agentMessage(rng: Rng, pool: readonly Uint8Array[]): AgentInit {
  const init: AgentInit = {
    instanceUid: uid(rng, pool),
    sequenceNum: rng.chance(0.7) ? BigInt(rng.int(8)) : rng.u64(),
    capabilities: rng.chance(0.8) ? BigInt(rng.u32() & 0x7fff) : rng.u64(),
    flags: rng.chance(0.9) ? 0n : rng.u64(),
  };
  if (rng.chance(0.5)) {
    init.agentDescription = {
      identifyingAttributes: keyValues(rng, 0, 4),
      nonIdentifyingAttributes: keyValues(rng, 0, 6),
    };
  }
  if (rng.chance(0.4)) init.health = health(rng, 0);
  if (rng.chance(0.3)) {
    init.effectiveConfig = {
      configMap: {
        configMap: Object.fromEntries(
          Array.from({ length: rng.int(3) }, () => [
            rng.pick(["c.yaml", "d.yaml", rng.string(8)]),
            {
              body: rng.chance(0.5) ? new TextEncoder().encode("receivers: {}\n") : rng.bytes(rng.int(200)),
              contentType: rng.string(10),
            },
          ]),
        ),
      },
    };
  }
  if (rng.chance(0.3)) {
    init.remoteConfigStatus = {
      lastRemoteConfigHash: rng.bytes(rng.pick([0, 32])),
      status: rng.int(5),
      errorMessage: rng.string(),
    };
  }
  if (rng.chance(0.2)) {
    init.packageStatuses = {
      serverProvidedAllPackagesHash: rng.bytes(rng.pick([0, 32])),
      errorMessage: rng.string(),
      packages: Object.fromEntries(
        Array.from({ length: rng.int(4) }, () => [
          rng.string(8),
          {
            name: rng.string(8),
            agentHasVersion: rng.string(6),
            agentHasHash: rng.bytes(8),
            status: rng.int(7),
            errorMessage: rng.string(),
          },
        ]),
      ),
    };
  }
  if (rng.chance(0.2))
    init.customCapabilities = { capabilities: Array.from({ length: rng.int(4) }, () => rng.string(16)) };
  if (rng.chance(0.2)) {
    init.availableComponents = {
      hash: rng.bytes(rng.pick([0, 4, 32])),
      components: rng.chance(0.5)
        ? {}
        : Object.fromEntries(
            Array.from({ length: rng.int(5) }, () => [
              rng.string(10),
              {
                metadata: keyValues(rng, 0, 2),
                subComponentMap: rng.chance(0.3) ? { [rng.string(6)]: { metadata: [] } } : {},
              },
            ]),
          ),
    };
  }
  if (rng.chance(0.15)) {
    init.connectionSettingsStatus = {
      lastConnectionSettingsHash: rng.bytes(rng.pick([0, 32])),
      status: rng.int(5),
      errorMessage: rng.string(),
    };
  }
  if (rng.chance(0.05))
    init.connectionSettingsRequest = { opamp: { certificateRequest: { csr: rng.bytes(rng.int(64)) } } };
  if (rng.chance(0.1))
    init.customMessage = { capability: rng.string(10), type: rng.string(6), data: rng.bytes(rng.int(64)) };
  if (rng.chance(0.05)) init.agentDisconnect = {};
  return init;
}

/** A message with many repeated elements (the decoder's worst case per byte), up to ~`maxBytes`. */
function hugeRepeated(rng: Rng, pool: readonly Uint8Array[], maxBytes: number): Uint8Array {
  const head = toBinary(
    AgentToServerSchema,
    create(AgentToServerSchema, { instanceUid: rng.pick(pool), capabilities: 1n }),
  );
  const element = rng.pick([
    Uint8Array.of(0x12, 0x00), // empty non-identifying attribute
    Uint8Array.of(0x12, 0x02, 0x12, 0x00), // attribute with an empty value
  ]);
  const count = Math.floor(rng.range(maxBytes / 8, maxBytes) / element.length);
  const body = new Uint8Array(count * element.length);
  for (let i = 0; i < count; i++) body.set(element, i * element.length);
  const len: number[] = [];
  let n = body.length;
  while (n >= 0x80) {
    len.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  len.push(n);
  return Buffer.concat([head, Uint8Array.of(0x1a, ...len), body]);
}

/** What one fuzz input is, for the counts printed at the end. */
export type InputKind = "valid" | "tree" | "raw" | "uid-length" | "deep" | "huge" | "random";

/** One input for the server: protobuf bytes of an AgentToServer, valid or not. */
export function serverInput(
  rng: Rng,
  pool: readonly Uint8Array[],
  maxHugeBytes: number,
): { kind: InputKind; bytes: Uint8Array } {
  const roll = rng.int(100);
  const valid = () => toBinary(AgentToServerSchema, create(AgentToServerSchema, agentMessage(rng, pool)));
  if (roll < 25) return { kind: "valid", bytes: valid() };
  if (roll < 55) return { kind: "tree", bytes: mutateTree(rng, valid()) };
  if (roll < 80) return { kind: "raw", bytes: mutateRaw(rng, valid(), valid()) };
  if (roll < 85) {
    const init = agentMessage(rng, pool);
    init.instanceUid = rng.bytes(rng.pick([0, 1, 15, 17]));
    return { kind: "uid-length", bytes: toBinary(AgentToServerSchema, create(AgentToServerSchema, init)) };
  }
  if (roll < 90) {
    const init = agentMessage(rng, pool);
    init.agentDescription = {
      identifyingAttributes: [{ key: "deep", value: nestedValue(rng.range(20, 120)) }],
      nonIdentifyingAttributes: [],
    };
    return { kind: "deep", bytes: toBinary(AgentToServerSchema, create(AgentToServerSchema, init)) };
  }
  // Half a percent: each costs the server tens of milliseconds to decode and check.
  if (roll < 91 && rng.chance(0.5)) return { kind: "huge", bytes: hugeRepeated(rng, pool, maxHugeBytes) };
  return { kind: "random", bytes: rng.bytes(rng.int(rng.chance(0.9) ? 64 : 4096)) };
}

/** A valid ServerToAgent with a random subset of fields, addressed to `uid` most of the time. */
export function serverMessage(rng: Rng, uid: Uint8Array): ServerInit {
  const init: ServerInit = {
    instanceUid: rng.chance(0.9) ? uid : rng.bytes(rng.pick([0, 1, 15, 16, 17])),
    flags: rng.chance(0.8) ? BigInt(rng.int(4)) : rng.u64(),
    capabilities: rng.chance(0.8) ? BigInt(rng.u32() & 0xff) : rng.u64(),
  };
  if (rng.chance(0.1)) {
    init.errorResponse = {
      type: rng.int(4),
      errorMessage: rng.string(),
      Details: rng.chance(0.5)
        ? { case: "retryInfo", value: { retryAfterNanoseconds: rng.pick([0n, 1n, 1_000_000n, 2n ** 64n - 1n]) } }
        : { case: undefined },
    };
    return init;
  }
  if (rng.chance(0.3)) {
    init.remoteConfig = {
      configHash: rng.bytes(rng.pick([0, 32])),
      config: {
        configMap: Object.fromEntries(
          Array.from({ length: rng.int(4) }, () => [
            rng.string(10),
            { body: rng.bytes(rng.int(100)), contentType: rng.string(8) },
          ]),
        ),
      },
    };
  }
  if (rng.chance(0.1)) init.command = { type: rng.int(3) };
  if (rng.chance(0.1)) init.agentIdentification = { newInstanceUid: rng.bytes(rng.pick([0, 1, 15, 16, 17])) };
  if (rng.chance(0.1))
    init.customCapabilities = { capabilities: Array.from({ length: rng.int(3) }, () => rng.string(12)) };
  if (rng.chance(0.2)) {
    init.customMessage = {
      capability: rng.pick(["io.fuzz.echo", rng.string(10)]),
      type: rng.string(6),
      data: rng.bytes(rng.int(64)),
    };
  }
  if (rng.chance(0.1)) {
    init.connectionSettings = {
      hash: rng.bytes(8),
      ownMetrics: {
        destinationEndpoint: `http://127.0.0.1:1/${rng.string(6)}`,
        headers: { headers: [{ key: rng.string(6), value: rng.string(10) }] },
      },
    };
  }
  return init;
}

/** One input for the client: ServerToAgent protobuf bytes, valid or not (no WebSocket header). */
export function clientInput(rng: Rng, uid: Uint8Array): { kind: InputKind; bytes: Uint8Array } {
  const roll = rng.int(100);
  const valid = () => toBinary(ServerToAgentSchema, create(ServerToAgentSchema, serverMessage(rng, uid)));
  if (roll < 35) return { kind: "valid", bytes: valid() };
  if (roll < 65) return { kind: "tree", bytes: mutateTree(rng, valid()) };
  if (roll < 90) return { kind: "raw", bytes: mutateRaw(rng, valid(), valid()) };
  if (roll < 95) {
    const init = serverMessage(rng, uid);
    init.remoteConfig = {
      configHash: rng.bytes(8),
      config: { configMap: { deep: { body: toBinary(AnyValueSchema, nestedValue(rng.range(20, 120))) } } },
    };
    return { kind: "deep", bytes: mutateTree(rng, toBinary(ServerToAgentSchema, create(ServerToAgentSchema, init))) };
  }
  return { kind: "random", bytes: rng.bytes(rng.int(rng.chance(0.9) ? 64 : 4096)) };
}

/** Messages of the fuzzers' probe: a marker the client echoes back (processed in order). */
export function probeMessage(uid: Uint8Array, marker: string): ServerToAgent {
  return create(ServerToAgentSchema, { instanceUid: uid, customCapabilities: { capabilities: [marker] } });
}
