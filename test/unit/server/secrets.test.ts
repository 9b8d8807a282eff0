/** safeEqual and bearerToken, the helpers authenticate hooks use for secrets. */
import { describe, expect, it } from "vitest";
import { bearerToken, safeEqual } from "../../../src/server/index.js";

describe("safeEqual", () => {
  it("is true only for the same bytes, strings compared as UTF-8", () => {
    expect(safeEqual("s3cret", "s3cret")).toBe(true);
    expect(safeEqual("s3cret", "s3creT")).toBe(false);
    expect(safeEqual("s3cret", "s3cret ")).toBe(false);
    expect(safeEqual("", "")).toBe(true);
    expect(safeEqual("", "x")).toBe(false);
    expect(safeEqual("é", new Uint8Array([0xc3, 0xa9]))).toBe(true);
    expect(safeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2, 0]))).toBe(false);
  });

  it("compares inputs of any lengths without throwing (timingSafeEqual alone throws on a length mismatch)", () => {
    expect(() => safeEqual("a".repeat(10_000), "b")).not.toThrow();
    expect(safeEqual("a".repeat(10_000), "a".repeat(10_000))).toBe(true);
  });
});

describe("bearerToken", () => {
  it("reads the token of a Bearer credential, whatever the scheme's and the header name's case", () => {
    expect(bearerToken({ authorization: "Bearer abc.DEF-123_~+/==" })).toBe("abc.DEF-123_~+/==");
    expect(bearerToken({ authorization: "bearer   tok" })).toBe("tok");
    expect(bearerToken({ Authorization: "BEARER tok" })).toBe("tok");
    expect(bearerToken(new Headers({ Authorization: "Bearer tok" }))).toBe("tok");
  });

  it.each([
    ["no header", {}],
    ["another scheme", { authorization: "Basic dXNlcjpwYXNz" }],
    ["an empty token", { authorization: "Bearer " }],
    ["a scheme alone", { authorization: "Bearer" }],
    ["two credentials joined", { authorization: "Bearer a, Bearer b" }],
    ["a token with a space", { authorization: "Bearer a b" }],
    ["a repeated header", { authorization: ["Bearer a", "Bearer b"] }],
  ])("gives undefined for %s", (_what, headers) => {
    expect(bearerToken(headers)).toBeUndefined();
  });
});
