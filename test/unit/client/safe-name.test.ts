/** The rule for names a server chooses (package names, remote config file names). */
import { describe, expect, it } from "vitest";
import { assertSafeName, unsafeNameReason } from "../../../src/client/safe-name.js";

describe("unsafeNameReason", () => {
  it.each([
    "otelcol-contrib",
    "my.package",
    "conf.d/extra.yaml",
    "a/b/c",
    "..hidden",
    "name..with..dots",
    "ünïcödé",
    "with space",
  ])("accepts %j", (name) => {
    expect(unsafeNameReason(name)).toBeUndefined();
  });

  it.each([
    ["", "is empty"],
    ["..", "climbs"],
    ["../evil", "climbs"],
    ["ok/../../evil", "climbs"],
    ["a/..", "climbs"],
    ["/etc/passwd", "absolute"],
    ["C:\\Windows", "backslash"],
    ["c:evil", "drive"],
    ["..\\evil", "backslash"],
    ["nul\u0000byte", "control"],
    ["line\nbreak", "control"],
    ["del\u007f", "control"],
    [".", "empty or ."],
    ["a//b", "empty or ."],
    ["trailing/", "empty or ."],
    ["./x", "empty or ."],
  ])("refuses %j (%s)", (name, reason) => {
    expect(unsafeNameReason(name)).toContain(reason);
  });

  it("accepts the empty name only when asked (the conventional key of a one-file config)", () => {
    expect(unsafeNameReason("", true)).toBeUndefined();
  });

  it("throws invalid_argument naming the reason", () => {
    expect(() => assertSafeName("../x", "package name")).toThrow(
      expect.objectContaining({
        code: "invalid_argument",
        message: 'package name "../x" climbs out of its directory with ..',
      }),
    );
  });
});
