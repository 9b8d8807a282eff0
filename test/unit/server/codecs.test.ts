/**
 * Small pure pieces: options resolution, Accept-Encoding parsing, part concatenation and
 * report merging.
 */
import { create, equals, fromBinary, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  AgentRemoteConfigSchema,
  AgentToServerSchema,
  CustomMessageSchema,
  PackagesAvailableSchema,
  ServerToAgentSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import { AgentRecord, needsFullState } from "../../../src/server/agent-record.js";
import { flattenHeaders } from "../../../src/server/auth.js";
import { acceptsGzip, isProtobufRequest } from "../../../src/server/http-exchange.js";
import { DEFAULT_OPAMP_PATH, DEFAULT_SERVER_CAPABILITIES } from "../../../src/server/index.js";
import { mergeReport, newStateTables } from "../../../src/server/merge-report.js";
import { type OpAMPServerOptions, resolveServerOptions } from "../../../src/server/options.js";
import {
  baseReply,
  encodePieces,
  encodeWithParts,
  makePart,
  type Part,
  SHARED_PIECE_BYTES,
} from "../../../src/server/outbound.js";
import { agentDescription, newInstanceUid, ServerCapability, serverCapabilities } from "../../../src/wire/index.js";

describe("resolveServerOptions", () => {
  it("fills defaults and always advertises AcceptsStatus", () => {
    const o = resolveServerOptions({
      allowAnonymous: true,
      capabilities: { acceptsStatus: false, offersPackages: false },
    });
    expect(o.path).toBe(DEFAULT_OPAMP_PATH);
    expect(o.capabilities & ServerCapability.AcceptsStatus).toBe(ServerCapability.AcceptsStatus);
    expect(o.capabilities & ServerCapability.OffersPackages).toBe(0n);
    expect(resolveServerOptions({ allowAnonymous: true }).capabilities).toBe(
      serverCapabilities(DEFAULT_SERVER_CAPABILITIES),
    );
    expect(Object.isFrozen(o)).toBe(true);
  });

  it("rejects bad values with invalid_argument", () => {
    for (const bad of [
      {},
      { allowAnonymous: true, path: "v1" },
      { allowAnonymous: true, limits: { maxConnections: 0 } },
      { allowAnonymous: true, heartbeat: { intervalSeconds: 1.5 } },
      { allowAnonymous: true, capabilities: { nope: true } as never },
    ]) {
      expect(() => resolveServerOptions(bad as OpAMPServerOptions)).toThrow(
        expect.objectContaining({ code: "invalid_argument" }),
      );
    }
  });
});

describe("acceptsGzip", () => {
  it("reads codings and q-values", () => {
    expect(acceptsGzip(undefined)).toBe(false);
    expect(acceptsGzip("gzip")).toBe(true);
    expect(acceptsGzip("deflate, gzip;q=0.5")).toBe(true);
    expect(acceptsGzip("gzip;q=0")).toBe(false);
    expect(acceptsGzip("*")).toBe(true);
    expect(acceptsGzip("gzip;q=0, *")).toBe(false);
    expect(acceptsGzip("identity")).toBe(false);
  });
});

describe("isProtobufRequest", () => {
  it("takes the protobuf type in any letter case and with parameters, nothing else", () => {
    expect(isProtobufRequest("application/x-protobuf")).toBe(true);
    expect(isProtobufRequest("Application/X-Protobuf")).toBe(true);
    expect(isProtobufRequest("application/x-protobuf; charset=binary")).toBe(true);
    expect(isProtobufRequest(" application/x-protobuf ;proto=opamp.proto.AgentToServer")).toBe(true);
    expect(isProtobufRequest("application/json")).toBe(false);
    expect(isProtobufRequest("application/x-protobufs")).toBe(false);
    expect(isProtobufRequest("")).toBe(false);
    expect(isProtobufRequest(undefined)).toBe(false);
  });
});

describe("flattenHeaders", () => {
  it("gives every header one string value, joining set-cookie's list", () => {
    // Node lower-cases names and joins repeats itself, except set-cookie, kept as a list.
    const plain = { host: "x", authorization: "Bearer t", "x-forwarded-for": "a, b" };
    expect(flattenHeaders(plain)).toEqual(plain);
    expect(flattenHeaders({ host: "x", "set-cookie": ["a=1", "b=2"], accept: undefined })).toEqual({
      host: "x",
      "set-cookie": "a=1, b=2",
    });
  });
});

describe("encodeWithParts", () => {
  it("decodes as the message with the parts set, for any config size", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 70_000 }), fc.boolean(), (body, header) => {
        const config = create(AgentRemoteConfigSchema, {
          config: { configMap: { f: { body } } },
          configHash: new Uint8Array([1]),
        });
        const part = makePart("remoteConfig", toBinary(AgentRemoteConfigSchema, config));
        const base = baseReply(newInstanceUid());
        base.flags = 1n;
        const bytes = encodeWithParts(base, [part], header);
        const decoded = fromBinary(ServerToAgentSchema, header ? bytes.subarray(1) : bytes);
        expect(decoded.flags).toBe(1n);
        expect(decoded.instanceUid).toEqual(base.instanceUid);
        expect(decoded.remoteConfig?.config?.configMap["f"]?.body.length).toBe(body.length);
        if (header) expect(bytes[0]).toBe(0);
      }),
      { numRuns: 30 },
    );
  });

  it("encodes an empty sub-message (Restart command) as present", () => {
    const bytes = encodeWithParts(baseReply(newInstanceUid()), [makePart("command", new Uint8Array(0))], false);
    expect(fromBinary(ServerToAgentSchema, bytes).command).toBeDefined();
  });
});

describe("encodePieces", () => {
  const join = (pieces: readonly Uint8Array[]) => Uint8Array.from(pieces.flatMap((p) => [...p]));
  const config = (size: number) =>
    makePart(
      "remoteConfig",
      toBinary(
        AgentRemoteConfigSchema,
        create(AgentRemoteConfigSchema, {
          config: { configMap: { "c.yaml": { body: new Uint8Array(size).fill(0x61) } } },
          configHash: new Uint8Array([1, 2]),
        }),
      ),
    );
  const packages = (size: number) =>
    makePart(
      "packagesAvailable",
      toBinary(
        PackagesAvailableSchema,
        create(PackagesAvailableSchema, {
          packages: { p: { version: "v".repeat(size) } },
          allPackagesHash: new Uint8Array([3]),
        }),
      ),
    );
  const custom = (size: number) =>
    makePart(
      "customMessage",
      toBinary(CustomMessageSchema, create(CustomMessageSchema, { capability: "io.x", data: new Uint8Array(size) })),
    );
  const base = () => {
    const reply = baseReply(newInstanceUid());
    reply.flags = 5n;
    reply.capabilities = 0x3fn;
    return reply;
  };
  /** The WebSocket payload decoded: header byte 0, then a ServerToAgent. */
  const decode = (message: Uint8Array) => {
    expect(message[0]).toBe(0);
    return fromBinary(ServerToAgentSchema, message.subarray(1));
  };

  it("concatenates to the same message as encodeWithParts, for any mix of part sizes", () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 3 * SHARED_PIECE_BYTES }),
        fc.nat({ max: 3 * SHARED_PIECE_BYTES }),
        fc.option(fc.nat({ max: 2 * SHARED_PIECE_BYTES }), { nil: undefined }),
        (configSize, packagesSize, customSize) => {
          const reply = base();
          const parts = [config(configSize), packages(packagesSize)];
          if (customSize !== undefined) parts.splice(1, 0, custom(customSize));
          const pieces = encodePieces(reply, parts);
          const whole = encodeWithParts(reply, parts, true);
          // Field order may differ (large parts go last): compare decoded.
          const got = decode(join(pieces));
          expect(equals(ServerToAgentSchema, got, decode(whole))).toBe(true);
          expect(got.remoteConfig?.config?.configMap["c.yaml"]?.body.length).toBe(configSize);
          expect(got.flags).toBe(5n);
          expect(pieces.length).toBe(1 + parts.filter((p) => p.bytes.length >= SHARED_PIECE_BYTES).length);
        },
      ),
      { numRuns: 40 },
    );
  });

  it("sends parts of SHARED_PIECE_BYTES or more by reference, and copies smaller ones into the first piece", () => {
    const reply = base();
    const large = config(64 * 1024);
    const small = custom(100);
    const bytesOf = (size: number): Part => {
      // Exactly `size` bytes: field tag and 2-byte length (3), capability "io.x" (6), data's
      // tag and 2-byte length (3), then the data.
      const part = custom(size - 12);
      expect(part.bytes.length).toBe(size);
      return part;
    };
    const atLimit = bytesOf(SHARED_PIECE_BYTES);
    const belowLimit = packages(10);
    const justBelow = bytesOf(SHARED_PIECE_BYTES - 1);
    const pieces = encodePieces(reply, [large, small, atLimit, justBelow, belowLimit]);
    expect(pieces.length).toBe(3);
    // The very arrays, in order: nothing copied.
    expect(pieces[1]).toBe(large.bytes);
    expect(pieces[2]).toBe(atLimit.bytes);
    // The first piece: header byte, the reply's own fields and the small parts, copied.
    const first = pieces[0]!;
    for (const part of [small, justBelow, belowLimit]) expect(pieces).not.toContain(part.bytes);
    const head = encodeWithParts(reply, [], true);
    expect(first.length).toBe(head.length + small.bytes.length + justBelow.bytes.length + belowLimit.bytes.length);
    const firstOnly = decode(first);
    expect(firstOnly.remoteConfig).toBeUndefined();
    expect(firstOnly.packagesAvailable?.packages["p"]?.version).toBe("v".repeat(10));
    expect(firstOnly.customMessage).toBeDefined();
    expect(firstOnly.instanceUid).toEqual(reply.instanceUid);
    // Nothing large: one piece, the same bytes as encodeWithParts.
    const alone = encodePieces(reply, [small]);
    expect(alone.length).toBe(1);
    expect(alone[0]).toEqual(encodeWithParts(reply, [small], true));
    expect(encodePieces(reply, [])).toEqual([head]);
  });
});

describe("mergeReport", () => {
  it("keeps absent fields, replaces present ones, reports only real changes", () => {
    const record = new AgentRecord("id", newInstanceUid(), "http", 0);
    const components = newStateTables(1 << 24);
    const full = create(AgentToServerSchema, {
      capabilities: 1n,
      agentDescription: agentDescription({ identifying: { a: "1" } }),
      health: { healthy: true },
    });
    expect(mergeReport(record, full, components).changes).toEqual(["capabilities", "agentDescription", "health"]);
    expect(mergeReport(record, create(AgentToServerSchema, { capabilities: 1n }), components).changes).toEqual([]);
    expect(record.health?.healthy).toBe(true);
    // Same content again is not a change.
    expect(mergeReport(record, full, components).changes).toEqual([]);
    const sick = create(AgentToServerSchema, { capabilities: 1n, health: { healthy: false } });
    expect(mergeReport(record, sick, components).changes).toEqual(["health"]);
    expect(record.agentDescription).toBeDefined();
  });
});

describe("needsFullState", () => {
  const compressed = (seq: bigint) => create(AgentToServerSchema, { sequenceNum: seq });
  const full = (seq: bigint) =>
    create(AgentToServerSchema, { sequenceNum: seq, agentDescription: agentDescription({}) });
  it("asks on a gap, not on the next number", () => {
    expect(needsFullState(true, 4n, compressed(5n))).toBe(false);
    expect(needsFullState(true, 4n, compressed(7n))).toBe(true);
    expect(needsFullState(true, 4n, compressed(4n))).toBe(true); // a duplicate: harmless to ask
  });
  it("accepts a restarted agent's full report at 0", () => {
    expect(needsFullState(true, 40n, full(0n))).toBe(false);
    expect(needsFullState(true, 40n, compressed(0n))).toBe(true);
  });
  it("asks an unknown agent unless it sent its description", () => {
    expect(needsFullState(false, 0n, compressed(9n))).toBe(true);
    expect(needsFullState(false, 0n, full(9n))).toBe(false);
  });
});
