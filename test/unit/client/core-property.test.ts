/**
 * Property: whatever the order of status changes, lost messages and full-state requests,
 * a server that applies every delivered message's sub-messages ends up with exactly the
 * agent's current status, and the messages it receives carry consecutive sequence numbers
 * (a message that never left gives its number to the next one, so the server sees no gap).
 */
import { create } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ClientCore, COMPRESSIBLE_FIELDS } from "../../../src/client/core.js";
import {
  type AgentToServer,
  ComponentHealthSchema,
  CustomCapabilitiesSchema,
  RemoteConfigStatusSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import { agentDescription } from "../../../src/wire/agent-description.js";

type Step =
  | { kind: "health"; value: string }
  | { kind: "description"; value: string }
  | { kind: "custom"; value: string }
  | { kind: "remote"; value: number }
  | { kind: "send"; deliver: boolean }
  | { kind: "heartbeat" }
  | { kind: "fullState" };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant("health" as const), value: fc.constantFrom("a", "b", "c") }),
  fc.record({ kind: fc.constant("description" as const), value: fc.constantFrom("x", "y") }),
  fc.record({ kind: fc.constant("custom" as const), value: fc.constantFrom("io.a", "io.b") }),
  fc.record({ kind: fc.constant("remote" as const), value: fc.integer({ min: 0, max: 3 }) }),
  fc.record({ kind: fc.constant("send" as const), deliver: fc.boolean() }),
  fc.record({ kind: fc.constant("heartbeat" as const) }),
  fc.record({ kind: fc.constant("fullState" as const) }),
);

describe("ClientCore compression (property)", () => {
  it("keeps the server's view equal to the agent's status after every delivered message", () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 40 }), (steps) => {
        const core = new ClientCore(new Uint8Array(16), () => undefined, 8);
        core.setCapabilities(1n);
        const view: Partial<Record<(typeof COMPRESSIBLE_FIELDS)[number], unknown>> = {};
        let expectedSeq = 0n;
        const deliver = (message: AgentToServer) => {
          for (const field of COMPRESSIBLE_FIELDS) if (message[field] !== undefined) view[field] = message[field];
        };
        const first = core.take("connect")!;
        expectedSeq += 1n;
        deliver(first);
        for (const s of [...steps, { kind: "send", deliver: true } as const]) {
          switch (s.kind) {
            case "health":
              core.set("health", create(ComponentHealthSchema, { status: s.value }));
              break;
            case "description":
              core.set("agentDescription", agentDescription({ identifying: { name: s.value } }));
              break;
            case "custom":
              core.set("customCapabilities", create(CustomCapabilitiesSchema, { capabilities: [s.value] }));
              break;
            case "remote":
              core.set(
                "remoteConfigStatus",
                create(RemoteConfigStatusSchema, { lastRemoteConfigHash: new Uint8Array([s.value]) }),
              );
              break;
            case "fullState":
              core.requestFullState();
              break;
            case "heartbeat":
            case "send": {
              const message = core.take(s.kind === "heartbeat" ? "heartbeat" : "pending");
              if (message === undefined) break;
              expect(message.sequenceNum).toBe(expectedSeq);
              if (s.kind === "send" && !s.deliver) core.returned(message);
              else {
                deliver(message);
                expectedSeq += 1n;
              }
            }
          }
        }
        // Drain: after the last delivered message nothing more is pending.
        expect(core.take("pending")).toBeUndefined();
        for (const field of ["health", "agentDescription", "customCapabilities", "remoteConfigStatus"] as const) {
          expect(view[field]).toStrictEqual(core.get(field));
        }
      }),
      { numRuns: 300 },
    );
  });
});
