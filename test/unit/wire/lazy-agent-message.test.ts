/**
 * decodeAgentToServer: the description and health tree decode on first read, and the result
 * is in every case the message a whole decode gives (or the same error).
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type AgentToServer, AgentToServerSchema } from "../../../src/gen/opamp/v1/opamp_pb.js";
import { isOpampError } from "../../../src/wire/errors.js";
import { agentDescription } from "../../../src/wire/index.js";
import { decodeAgentToServer, hasAgentPart, knownStrict } from "../../../src/wire/lazy-agent-message.js";
import { isValidUtf8 } from "../../../src/wire/strict-encoding.js";
import { agentMessage } from "../../fuzz/generate.js";
import { mutateRaw, mutateTree } from "../../fuzz/mutate.js";
import { Rng } from "../../fuzz/random.js";
import { concat, field } from "../server/hand-encoded.js";

/** A full report like a Collector's: a description and a health tree, well past 256 bytes. */
function fullReport(): AgentToServer {
  const componentHealthMap: Record<string, { healthy: boolean; status: string }> = {};
  for (let i = 0; i < 12; i++) componentHealthMap[`pipeline:${i}`] = { healthy: i % 3 !== 0, status: "StatusOK" };
  return create(AgentToServerSchema, {
    instanceUid: new Uint8Array(16).fill(7),
    sequenceNum: 0n,
    capabilities: 0x3fn,
    agentDescription: agentDescription({
      identifying: { "service.name": "otelcol-contrib", "service.version": "0.149.0" },
      nonIdentifying: { "os.type": "linux", "host.name": "node-ä-1" },
    }),
    health: { healthy: true, status: "StatusOK", componentHealthMap },
    remoteConfigStatus: { status: 1, lastRemoteConfigHash: Uint8Array.of(1, 2, 3) },
  });
}

/** The message's encoding: equal encodings, equal messages (and NaN equals NaN). */
const encoded = (message: AgentToServer) => Buffer.from(toBinary(AgentToServerSchema, message)).toString("hex");

/** The outcome of a decoder: its message's encoding, or its error's code. */
function outcome(decode: () => AgentToServer): string {
  try {
    return encoded(decode());
  } catch (e) {
    return isOpampError(e) ? `error ${e.code}` : `error ${String(e)}`;
  }
}

describe("decodeAgentToServer", () => {
  it("leaves the description and health tree encoded until they are read, then holds them", () => {
    const bytes = toBinary(AgentToServerSchema, fullReport());
    const message = decodeAgentToServer(bytes);
    expect(knownStrict(bytes)).toBe(true);
    for (const property of ["agentDescription", "health"] as const) {
      expect(Object.getOwnPropertyDescriptor(message, property)?.get).toBeTypeOf("function");
      expect(hasAgentPart(message, property)).toBe(true);
      // Asking did not decode it.
      expect(Object.getOwnPropertyDescriptor(message, property)?.get).toBeTypeOf("function");
    }
    // The other fields are there at once.
    expect(message.remoteConfigStatus?.status).toBe(1);
    expect(message.capabilities).toBe(0x3fn);
    const description = message.agentDescription;
    expect(description?.identifyingAttributes[0]?.key).toBe("service.name");
    // Read once, held: the same object on the next read, now a plain data property.
    expect(message.agentDescription).toBe(description);
    expect(Object.getOwnPropertyDescriptor(message, "agentDescription")?.value).toBe(description);
    expect(Object.keys(message.health!.componentHealthMap)).toHaveLength(12);
    expect(encoded(message)).toBe(encoded(fromBinary(AgentToServerSchema, bytes)));
  });

  it("a deferred property can be replaced before it is read, and its replacement holds", () => {
    const message = decodeAgentToServer(toBinary(AgentToServerSchema, fullReport()));
    message.health = undefined;
    expect(message.health).toBeUndefined();
    expect(hasAgentPart(message, "health")).toBe(false);
    expect(hasAgentPart(message, "agentDescription")).toBe(true);
  });

  it("decodes small messages, and messages without either tree, at once", () => {
    const heartbeat = toBinary(AgentToServerSchema, create(AgentToServerSchema, { instanceUid: new Uint8Array(16) }));
    const message = decodeAgentToServer(heartbeat);
    expect(Object.getOwnPropertyDescriptor(message, "agentDescription")).toBeUndefined();
    expect(hasAgentPart(message, "agentDescription")).toBe(false);
    expect(knownStrict(heartbeat)).toBe(false);
  });

  it("decodes at once, like fromBinary, a message whose description comes twice (they merge)", () => {
    const report = fullReport();
    const first = toBinary(AgentToServerSchema, report);
    const second = field(3, new Uint8Array(0));
    const bytes = concat(first, second, field(3, Uint8Array.of(0x0a, 0x03, 0x0a, 0x01, 0x78)));
    const message = decodeAgentToServer(bytes);
    expect(Object.getOwnPropertyDescriptor(message, "agentDescription")?.get).toBeUndefined();
    expect(encoded(message)).toBe(encoded(fromBinary(AgentToServerSchema, bytes)));
  });

  it("throws malformed_message, as a whole decode would, for invalid UTF-8 in the description", () => {
    const report = fullReport();
    report.agentDescription!.identifyingAttributes[0]!.key = "KEY";
    const bytes = toBinary(AgentToServerSchema, report);
    const at = Buffer.from(bytes).indexOf("KEY");
    bytes[at] = 0xff; // not UTF-8
    expect(() => fromBinary(AgentToServerSchema, bytes)).toThrow();
    expect(outcome(() => decodeAgentToServer(bytes))).toBe("error malformed_message");
  });

  it("gives what a whole decode gives, or the same error, for mutated inputs; deferred reads never throw", () => {
    const rng = new Rng(0x1a27, 3);
    const uids: Uint8Array[] = [];
    const pool: Uint8Array[] = [];
    let deferred = 0;
    let failed = 0;
    for (let i = 0; i < 3000; i++) {
      const init = agentMessage(rng, uids);
      const valid = toBinary(AgentToServerSchema, create(AgentToServerSchema, init));
      pool.push(valid);
      const input =
        i % 4 === 0 ? valid : rng.int(2) === 0 ? mutateTree(rng, valid) : mutateRaw(rng, valid, rng.pick(pool));
      let lazy: AgentToServer | undefined;
      try {
        lazy = decodeAgentToServer(input);
      } catch (e) {
        expect(isOpampError(e) && e.code === "malformed_message").toBe(true);
      }
      if (lazy !== undefined && Object.getOwnPropertyDescriptor(lazy, "agentDescription")?.get !== undefined)
        deferred++;
      // Reading every field (toBinary does) must not throw for a message that decoded.
      const got = lazy === undefined ? "error malformed_message" : encoded(lazy);
      const whole = outcome(() => {
        try {
          return fromBinary(AgentToServerSchema, input);
        } catch {
          throw Object.assign(new Error("x"), { code: "malformed_message" });
        }
      });
      if (got.startsWith("error")) failed++;
      expect(got).toBe(whole.startsWith("error") ? "error malformed_message" : whole);
    }
    expect(deferred).toBeGreaterThan(300);
    expect(failed).toBeGreaterThan(100);
  });
});

describe("isValidUtf8", () => {
  const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const decodes = (bytes: Uint8Array) => {
    try {
      fatal.decode(bytes);
      return true;
    } catch {
      return false;
    }
  };

  it("agrees with a fatal TextDecoder on random bytes and on edge sequences", () => {
    const edges = [
      [0xc0, 0x80], // overlong
      [0xc2, 0x80],
      [0xe0, 0x9f, 0xbf], // overlong
      [0xe0, 0xa0, 0x80],
      [0xed, 0x9f, 0xbf],
      [0xed, 0xa0, 0x80], // surrogate
      [0xef, 0xbf, 0xbf],
      [0xf0, 0x8f, 0xbf, 0xbf], // overlong
      [0xf0, 0x90, 0x80, 0x80],
      [0xf4, 0x8f, 0xbf, 0xbf],
      [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
      [0xf5, 0x80, 0x80, 0x80],
      [0xe2, 0x82], // cut short
      [0x61, 0xe2, 0x82, 0xac, 0x62],
    ];
    for (const edge of edges) {
      const bytes = Uint8Array.from(edge);
      expect(isValidUtf8(bytes, 0, bytes.length), edge.join(",")).toBe(decodes(bytes));
    }
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 24 }),
          fc.string({ unit: "binary" }).map((s) => new TextEncoder().encode(s)),
        ),
        (bytes) => {
          expect(isValidUtf8(bytes, 0, bytes.length)).toBe(decodes(bytes));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("checks only the given range", () => {
    const bytes = Uint8Array.of(0xff, 0x61, 0x62, 0xff);
    expect(isValidUtf8(bytes, 1, 3)).toBe(true);
    expect(isValidUtf8(bytes, 0, 3)).toBe(false);
  });
});
