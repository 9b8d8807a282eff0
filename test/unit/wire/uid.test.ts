import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  assertInstanceUid,
  INSTANCE_UID_BYTES,
  instanceUidEquals,
  instanceUidFromString,
  instanceUidToString,
  isInstanceUid,
  newInstanceUid,
  OpampError,
} from "../../../src/wire/index.js";

const timestampOf = (uid: Uint8Array) => uid.subarray(0, 6).reduce((ms, byte) => ms * 256 + byte, 0);

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    if (error instanceof OpampError) return error.code;
    throw error;
  }
  return "none";
}

describe("newInstanceUid", () => {
  it("makes 16 bytes with UUID version 7 and variant 10", () => {
    for (let i = 0; i < 200; i++) {
      const uid = newInstanceUid();
      expect(uid).toHaveLength(INSTANCE_UID_BYTES);
      expect(uid[6]! >> 4).toBe(7);
      expect(uid[8]! >> 6).toBe(0b10);
      expect(instanceUidToString(uid)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    }
  });

  it("starts with the current Unix time in milliseconds, big-endian", () => {
    const before = Date.now();
    const uid = newInstanceUid();
    const after = Date.now();
    expect(timestampOf(uid)).toBeGreaterThanOrEqual(before);
    expect(timestampOf(uid)).toBeLessThanOrEqual(after);
  });

  it("has a non-decreasing timestamp prefix across calls and never repeats", () => {
    const uids = Array.from({ length: 1000 }, () => newInstanceUid());
    for (let i = 1; i < uids.length; i++)
      expect(timestampOf(uids[i]!)).toBeGreaterThanOrEqual(timestampOf(uids[i - 1]!));
    expect(new Set(uids.map(instanceUidToString)).size).toBe(uids.length);
  });

  it("fills the random part: two UIDs of the same millisecond differ outside the timestamp", () => {
    const a = newInstanceUid();
    const b = newInstanceUid();
    expect(instanceUidEquals(a.subarray(6), b.subarray(6))).toBe(false);
  });
});

describe("isInstanceUid / assertInstanceUid", () => {
  it.each([
    ["15 bytes", new Uint8Array(15)],
    ["17 bytes", new Uint8Array(17)],
    ["an empty array", new Uint8Array(0)],
    ["a number array", Array<number>(16).fill(1)],
    ["a 36-char string", "f81d4fae-7dec-11d0-a765-00a0c91e6bf6"],
    ["undefined", undefined],
  ])("rejects %s", (_name, value) => {
    expect(isInstanceUid(value)).toBe(false);
    expect(codeOf(() => assertInstanceUid(value))).toBe("invalid_instance_uid");
  });

  it("accepts any 16 bytes, not only v7 (peers may use other versions)", () => {
    expect(isInstanceUid(new Uint8Array(16))).toBe(true);
    expect(() => assertInstanceUid(new Uint8Array(16).fill(0xff))).not.toThrow();
  });

  it("says what it found", () => {
    expect(() => assertInstanceUid(new Uint8Array(36))).toThrow(/36 bytes/);
  });
});

describe("UID strings", () => {
  it("formats lower-case 8-4-4-4-12 (the OpAMP-Instance-UID header form)", () => {
    // RFC 9562 Appendix A.6 example UUIDv7
    const uid = Uint8Array.from([
      0x01, 0x7f, 0x22, 0xe2, 0x79, 0xb0, 0x7c, 0xc3, 0x98, 0xc4, 0xdc, 0x0c, 0x0c, 0x07, 0x39, 0x8f,
    ]);
    expect(instanceUidToString(uid)).toBe("017f22e2-79b0-7cc3-98c4-dc0c0c07398f");
    expect(instanceUidFromString("017F22E2-79B0-7CC3-98C4-DC0C0C07398F")).toEqual(uid);
    expect(instanceUidFromString("017f22e279b07cc398c4dc0c0c07398f")).toEqual(uid);
  });

  it("round-trips any 16 bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (uid) => {
        const text = instanceUidToString(uid);
        expect(text).toHaveLength(36);
        expect(instanceUidFromString(text)).toEqual(uid);
        expect(instanceUidFromString(text.toUpperCase())).toEqual(uid);
      }),
    );
  });

  it("refuses to format a UID that is not 16 bytes", () => {
    expect(codeOf(() => instanceUidToString(new Uint8Array(15)))).toBe("invalid_instance_uid");
  });

  it.each([
    "",
    "f81d4fae-7dec-11d0-a765-00a0c91e6bf",
    "f81d4fae-7dec-11d0-a765-00a0c91e6bf66",
    "f81d4fae7dec-11d0-a765-00a0c91e6bf6",
    "f81d4fae-7dec-11d0-a765-00a0c91e6bfg",
    "{f81d4fae-7dec-11d0-a765-00a0c91e6bf6}",
    "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
    " f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
    "f81d4fae-7dec-11d0-a765-00a0c91e6bf6\\n",
    "f81d4fae_7dec_11d0_a765_00a0c91e6bf6",
    "f81d4fae7dec11d0a76500a0c91e6bf",
  ])("rejects %j", (text) => {
    expect(codeOf(() => instanceUidFromString(text))).toBe("invalid_instance_uid");
  });

  it("rejects a non-string from plain JS callers with the typed error", () => {
    expect(codeOf(() => instanceUidFromString(42 as unknown as string))).toBe("invalid_instance_uid");
  });
});

describe("instanceUidEquals", () => {
  it("compares bytes, not identity", () => {
    const uid = newInstanceUid();
    expect(instanceUidEquals(uid, uid.slice())).toBe(true);
    const other = uid.slice();
    other[15] = other[15]! ^ 1;
    expect(instanceUidEquals(uid, other)).toBe(false);
    expect(instanceUidEquals(uid, uid.subarray(0, 15))).toBe(false);
  });
});
