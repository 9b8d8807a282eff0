/** Close reasons fit a close frame (RFC 6455 §5.5) and are never cut inside a character. */
import { describe, expect, it } from "vitest";
import { closeReason, MAX_CLOSE_REASON_BYTES } from "../../../src/internal/close-reason.js";

const bytes = (text: string) => Buffer.byteLength(text, "utf8");

describe("closeReason", () => {
  it("keeps a reason that fits, byte for byte", () => {
    expect(closeReason("")).toBe("");
    expect(closeReason("internal error")).toBe("internal error");
    const exact = "x".repeat(MAX_CLOSE_REASON_BYTES);
    expect(closeReason(exact)).toBe(exact);
    // 41 three-byte characters: exactly 123 bytes, though longer than 41 UTF-16 units allow on the fast path.
    const wide = "€".repeat(41);
    expect(closeReason(wide)).toBe(wide);
  });

  it("cuts a long ASCII reason to at most 123 bytes, ending with an ellipsis", () => {
    const reason = closeReason(`cannot parse AgentToServer: ${"y".repeat(300)}`);
    expect(bytes(reason)).toBeLessThanOrEqual(MAX_CLOSE_REASON_BYTES);
    expect(reason.startsWith("cannot parse AgentToServer: yyy")).toBe(true);
    expect(reason.endsWith("…")).toBe(true);
  });

  it.each([
    ["two-byte", "é"],
    ["three-byte", "€"],
    ["four-byte (surrogate pair)", "𝄞"],
  ])("never splits a %s character", (_name, char) => {
    for (let prefix = 0; prefix < 4; prefix++) {
      const reason = closeReason("a".repeat(prefix) + char.repeat(100));
      expect(bytes(reason)).toBeLessThanOrEqual(MAX_CLOSE_REASON_BYTES);
      // Re-encoding gives back the same text: no replacement character from a cut sequence.
      expect(Buffer.from(reason, "utf8").toString("utf8")).toBe(reason);
      expect(reason).not.toContain("\ufffd");
      expect(reason.slice(prefix, -1)).toBe(char.repeat((reason.length - prefix - 1) / char.length));
    }
  });

  it("counts a lone surrogate as the 3 bytes it is sent as", () => {
    const reason = closeReason("\ud800".repeat(100));
    expect(bytes(reason)).toBeLessThanOrEqual(MAX_CLOSE_REASON_BYTES);
    expect(reason.length).toBe(40 + 1);
  });
});
