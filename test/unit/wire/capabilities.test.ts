import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  AgentCapabilities,
  AgentToServerFlags,
  ServerCapabilities,
  ServerToAgentFlags,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import {
  AgentCapability,
  AgentToServerFlag,
  agentCapabilities,
  agentCapabilityFlags,
  hasBit,
  OpampError,
  ServerCapability,
  ServerToAgentFlag,
  serverCapabilities,
  serverCapabilityFlags,
} from "../../../src/wire/index.js";

/** `{ Name: bit }` from a generated enum, without its `Prefix_` and without the zero value. */
function generatedBits(enumObject: object, prefix: string): Record<string, bigint> {
  const out: Record<string, bigint> = {};
  for (const [name, value] of Object.entries(enumObject)) {
    if (typeof value === "number" && value !== 0) out[name.slice(prefix.length)] = BigInt(value);
  }
  return out;
}

describe("bit constants", () => {
  it.each([
    ["AgentCapability", AgentCapability, AgentCapabilities, "AgentCapabilities_", 16],
    ["ServerCapability", ServerCapability, ServerCapabilities, "ServerCapabilities_", 7],
    ["AgentToServerFlag", AgentToServerFlag, AgentToServerFlags, "AgentToServerFlags_", 1],
    ["ServerToAgentFlag", ServerToAgentFlag, ServerToAgentFlags, "ServerToAgentFlags_", 2],
  ] as const)("%s names every bit of the proto enum with the same value", (_name, ours, generated, prefix, count) => {
    expect(ours).toEqual(generatedBits(generated, prefix));
    expect(Object.keys(ours)).toHaveLength(count);
    for (const bit of Object.values(ours)) {
      expect(typeof bit).toBe("bigint");
      expect(bit & (bit - 1n)).toBe(0n); // exactly one bit each
    }
  });

  it("spells the spec's bit values (spot check)", () => {
    expect(AgentCapability.ReportsStatus).toBe(0x1n);
    expect(AgentCapability.ReportsHealth).toBe(0x800n);
    expect(AgentCapability.ReportsConnectionSettingsStatus).toBe(0x8000n);
    expect(ServerCapability.AcceptsConnectionSettingsRequest).toBe(0x40n);
    expect(ServerToAgentFlag.ReportAvailableComponents).toBe(0x2n);
  });
});

describe("agent capabilities ↔ flags", () => {
  it("builds the spec example mask 0x3807", () => {
    const bits = agentCapabilities({
      reportsStatus: true,
      acceptsRemoteConfig: true,
      reportsEffectiveConfig: true,
      reportsHealth: true,
      reportsRemoteConfig: true,
      reportsHeartbeat: true,
      acceptsPackages: false,
    });
    expect(bits).toBe(0x3807n);
  });

  it("round-trips every subset of capabilities", () => {
    const names = Object.keys(agentCapabilityFlags(0n));
    expect(names).toHaveLength(16);
    fc.assert(
      fc.property(fc.subarray(names), (chosen) => {
        const flags = Object.fromEntries(names.map((name) => [name, chosen.includes(name)]));
        const bits = agentCapabilities(flags);
        expect(agentCapabilityFlags(bits)).toEqual(flags);
        expect(bits.toString(2).replaceAll("0", "")).toHaveLength(chosen.length);
      }),
    );
  });

  it("uses camelCase keys, including the OpAMP acronym", () => {
    expect(agentCapabilities({ acceptsOpAMPConnectionSettings: true })).toBe(0x100n);
    expect(agentCapabilityFlags(0x100n).acceptsOpAMPConnectionSettings).toBe(true);
  });

  it("reports every known capability as a boolean and ignores bits it does not know", () => {
    const flags = agentCapabilityFlags(0x1n | (1n << 16n) | (1n << 63n));
    expect(Object.values(flags).filter(Boolean)).toHaveLength(1);
    expect(flags.reportsStatus).toBe(true);
    expect(Object.keys(flags)).toHaveLength(16);
    // Unknown bits are not turned into flags, so flags → bits drops them: keep the raw bigint.
    expect(agentCapabilities(flags)).toBe(0x1n);
  });

  it("throws invalid_argument for a key that names no capability (a typo from JS)", () => {
    expect(() => agentCapabilities({ reportStatus: true } as never)).toThrow(OpampError);
    expect(() => agentCapabilities({ ReportsStatus: true } as never)).toThrow(
      /unknown agent capability "ReportsStatus"/,
    );
  });
});

describe("server capabilities ↔ flags", () => {
  it("round-trips every subset", () => {
    const names = Object.keys(serverCapabilityFlags(0n));
    expect(names).toHaveLength(7);
    fc.assert(
      fc.property(fc.subarray(names), (chosen) => {
        const flags = Object.fromEntries(names.map((name) => [name, chosen.includes(name)]));
        expect(serverCapabilityFlags(serverCapabilities(flags))).toEqual(flags);
      }),
    );
  });

  it("maps names to the right bits", () => {
    expect(
      serverCapabilities({ acceptsStatus: true, offersRemoteConfig: true, acceptsConnectionSettingsRequest: true }),
    ).toBe(0x43n);
    expect(serverCapabilityFlags(0x20n)).toMatchObject({ offersConnectionSettings: true, acceptsStatus: false });
    expect(() => serverCapabilities({ offersEverything: true } as never)).toThrow(/unknown server capability/);
  });
});

describe("hasBit", () => {
  it("tests single bits, including ones above 32 bits", () => {
    expect(hasBit(0x3807n, AgentCapability.ReportsHeartbeat)).toBe(true);
    expect(hasBit(0x3807n, AgentCapability.AcceptsPackages)).toBe(false);
    expect(hasBit(1n << 63n, 1n << 63n)).toBe(true);
    expect(hasBit(1n << 31n, 1n << 63n)).toBe(false);
  });

  it("requires all bits of a multi-bit mask", () => {
    expect(hasBit(0x3n, 0x3n)).toBe(true);
    expect(hasBit(0x1n, 0x3n)).toBe(false);
  });

  it("refuses the zero mask, which would always be true", () => {
    expect(() => hasBit(0x1n, 0n)).toThrow(OpampError);
  });
});
