// The default identity a UID is bound to.
import { describe, expect, it } from "vitest";
import { defaultPrincipalKey } from "../../../src/server/index.js";

describe("defaultPrincipalKey", () => {
  it("keys strings, ids and other objects, and leaves undefined and null unkeyed", () => {
    expect(defaultPrincipalKey(undefined)).toBeUndefined();
    expect(defaultPrincipalKey(null)).toBeUndefined();
    expect(defaultPrincipalKey("alice")).toBe("alice");
    expect(defaultPrincipalKey({ id: "a1", name: "x" })).toBe("a1");
    expect(defaultPrincipalKey({ id: 7 })).toBe("7");
    expect(defaultPrincipalKey(42)).toBe("number:42");
    // Objects without an id: the same content in any key order is the same principal.
    expect(defaultPrincipalKey({ org: "acme", kind: "enrolling" })).toBe(
      defaultPrincipalKey({ kind: "enrolling", org: "acme" }),
    );
    expect(defaultPrincipalKey({ org: "acme" })).not.toBe(defaultPrincipalKey({ org: "other" }));
    expect(defaultPrincipalKey({ n: 1n, nested: { b: 1, a: 2 } })).toBe('{"n":"1","nested":{"a":2,"b":1}}');
  });

  it("refuses a principal it cannot write as JSON", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic["self"] = cyclic;
    expect(() => defaultPrincipalKey(cyclic)).toThrow(expect.objectContaining({ code: "invalid_argument" }));
  });
});
