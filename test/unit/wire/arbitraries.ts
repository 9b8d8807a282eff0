// fast-check arbitraries for OpAMP messages, shared by the codec property tests.
import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import type { AnyValue } from "../../../src/gen/opamp/v1/anyvalue_pb.js";
import { AnyValueSchema } from "../../../src/gen/opamp/v1/anyvalue_pb.js";
import {
  type AgentToServer,
  AgentToServerSchema,
  type ServerToAgent,
  ServerToAgentSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import type { OpampErrorCode } from "../../../src/wire/errors.js";
import { OpampError } from "../../../src/wire/errors.js";

const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const bytes = (maxLength = 32) => fc.uint8Array({ maxLength });
const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });

const anyValue: fc.Arbitrary<AnyValue> = fc.letrec<{ any: AnyValue }>((tie) => ({
  any: fc
    .oneof(
      { depthSize: "small", withCrossShrink: true },
      fc.constant({ case: undefined }),
      fc.string().map((value) => ({ case: "stringValue" as const, value })),
      fc.boolean().map((value) => ({ case: "boolValue" as const, value })),
      fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map((value) => ({ case: "intValue" as const, value })),
      fc.double({ noNaN: true }).map((value) => ({ case: "doubleValue" as const, value })),
      bytes().map((value) => ({ case: "bytesValue" as const, value })),
      fc.array(tie("any"), { maxLength: 3 }).map((values) => ({ case: "arrayValue" as const, value: { values } })),
      fc
        .array(fc.record({ key: fc.string(), value: tie("any") }), { maxLength: 3 })
        .map((values) => ({ case: "kvlistValue" as const, value: { values } })),
    )
    .map((value) => create(AnyValueSchema, { value } as never)),
})).any;

const keyValues = fc.array(fc.record({ key: fc.string(), value: anyValue }), { maxLength: 4 });

/** AgentToServer messages with a random subset of fields, including nested and 64-bit ones. */
export const agentToServer: fc.Arbitrary<AgentToServer> = fc
  .record(
    {
      instanceUid: bytes(16),
      sequenceNum: u64,
      capabilities: u64,
      flags: u64,
      agentDescription: optional(fc.record({ identifyingAttributes: keyValues, nonIdentifyingAttributes: keyValues })),
      health: optional(
        fc.record({
          healthy: fc.boolean(),
          startTimeUnixNano: u64,
          statusTimeUnixNano: u64,
          lastError: fc.string(),
          componentHealthMap: fc.dictionary(fc.string(), fc.record({ healthy: fc.boolean(), status: fc.string() })),
        }),
      ),
      effectiveConfig: optional(
        fc.record({
          configMap: fc.record({
            configMap: fc.dictionary(fc.string(), fc.record({ body: bytes(), contentType: fc.string() })),
          }),
        }),
      ),
      remoteConfigStatus: optional(
        fc.record({ lastRemoteConfigHash: bytes(), status: fc.integer({ min: 0, max: 3 }), errorMessage: fc.string() }),
      ),
      agentDisconnect: optional(fc.constant({})),
      customCapabilities: optional(fc.record({ capabilities: fc.array(fc.string(), { maxLength: 3 }) })),
      customMessage: optional(fc.record({ capability: fc.string(), type: fc.string(), data: bytes() })),
    },
    { requiredKeys: ["instanceUid", "sequenceNum", "capabilities", "flags"] },
  )
  .map((init) => create(AgentToServerSchema, init as never));

/** ServerToAgent messages with a random subset of fields. */
export const serverToAgent: fc.Arbitrary<ServerToAgent> = fc
  .record(
    {
      instanceUid: bytes(16),
      flags: u64,
      capabilities: u64,
      errorResponse: optional(
        fc.record({
          type: fc.integer({ min: 0, max: 2 }),
          errorMessage: fc.string(),
          Details: fc.oneof(
            fc.constant({ case: undefined }),
            u64.map((retryAfterNanoseconds) => ({ case: "retryInfo" as const, value: { retryAfterNanoseconds } })),
          ),
        }),
      ),
      remoteConfig: optional(
        fc.record({
          config: fc.record({
            configMap: fc.dictionary(fc.string(), fc.record({ body: bytes(), contentType: fc.string() })),
          }),
          configHash: bytes(),
        }),
      ),
      command: optional(fc.constant({})),
      agentIdentification: optional(fc.record({ newInstanceUid: bytes(16) })),
      customMessage: optional(fc.record({ capability: fc.string(), type: fc.string(), data: bytes() })),
    },
    { requiredKeys: ["instanceUid", "flags", "capabilities"] },
  )
  .map((init) => create(ServerToAgentSchema, init as never));

/**
 * Runs `fn` and accepts either success or an OpampError with one of `codes`; anything
 * else (a TypeError, a RangeError, a non-Error) fails the property.
 */
export async function decodesOrThrowsTyped(fn: () => unknown, codes: readonly OpampErrorCode[]): Promise<void> {
  try {
    await fn();
  } catch (error) {
    if (!(error instanceof OpampError)) throw new Error(`untyped error: ${String(error)}`, { cause: error });
    if (!codes.includes(error.code)) throw new Error(`unexpected code ${error.code}: ${error.message}`);
  }
}
