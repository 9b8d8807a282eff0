/**
 * AgentDescription builders: attributes written as plain objects instead of KeyValue lists.
 */
// spec: AgentDescription — identifying attributes follow the resource semantic conventions
// (service.name, service.namespace, service.version, service.instance.id).
import { create } from "@bufbuild/protobuf";
import { type AgentDescription, AgentDescriptionSchema } from "../gen/opamp/v1/opamp_pb.js";
import { type AttributeValue, fromKeyValues, toKeyValues } from "./any-value.js";

/**
 * Builds an AgentDescription from two attribute records. Either may be left out (it then
 * encodes as an empty list). Attribute order follows the records' key order.
 *
 * @throws OpampError `invalid_argument` for a value `toAnyValue` refuses.
 */
export function agentDescription(input: {
  identifying?: Readonly<Record<string, AttributeValue>> | undefined;
  nonIdentifying?: Readonly<Record<string, AttributeValue>> | undefined;
}): AgentDescription {
  return create(AgentDescriptionSchema, {
    identifyingAttributes: toKeyValues(input.identifying ?? {}),
    nonIdentifyingAttributes: toKeyValues(input.nonIdentifying ?? {}),
  });
}

/**
 * Reads an AgentDescription back into two attribute records (see {@link fromKeyValues}
 * for repeated keys and int64 values). Never throws.
 */
export function describeAgent(desc: AgentDescription): {
  /** The identifying attributes, by key. */
  identifying: Record<string, AttributeValue>;
  /** The non-identifying attributes, by key. */
  nonIdentifying: Record<string, AttributeValue>;
} {
  return {
    identifying: fromKeyValues(desc.identifyingAttributes),
    nonIdentifying: fromKeyValues(desc.nonIdentifyingAttributes),
  };
}
