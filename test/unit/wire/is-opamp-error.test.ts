/** isOpampError recognises an OpampError by its Symbol.for brand, not by class identity. */
import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { isOpampError, OpampError } from "../../../src/wire/index.js";

/** What an OpampError from another copy of the package (the CJS build) looks like here. */
function foreignOpampError(): Error {
  class OpampError extends Error {
    code = "timeout";
  }
  Object.defineProperty(OpampError.prototype, Symbol.for("opamp-sdk.OpampError"), { value: true });
  return new OpampError("from elsewhere");
}

describe("isOpampError", () => {
  it("is true for an OpampError and for a subclass", () => {
    expect(isOpampError(new OpampError("timeout", "t"))).toBe(true);
    class Mine extends OpampError {}
    expect(isOpampError(new Mine("internal", "m"))).toBe(true);
  });

  it("is true for an error of another copy of the class, where instanceof fails", () => {
    const foreign = foreignOpampError();
    expect(foreign instanceof OpampError).toBe(false);
    expect(isOpampError(foreign)).toBe(true);
    // OpampError.from keeps it as it is instead of wrapping it as `internal`.
    expect(OpampError.from(foreign)).toBe(foreign);
  });

  it("is false for anything else, without throwing", () => {
    for (const value of [
      new Error("plain"),
      { name: "OpampError", code: "timeout", message: "look-alike" },
      { [Symbol.for("opamp-sdk.OpampError")]: "yes" },
      null,
      undefined,
      "OpampError",
      42,
    ]) {
      expect(isOpampError(value), String(value)).toBe(false);
    }
  });

  it("keeps the brand off the instance: inspect() and own keys show only the error's fields", () => {
    const error = new OpampError("timeout", "t");
    expect(Object.getOwnPropertySymbols(error)).toEqual([]);
    expect(inspect(error)).not.toContain("Symbol");
  });
});
