import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import * as anyvaluePb from "../../../src/gen/opamp/v1/anyvalue_pb.js";
import * as opampPb from "../../../src/gen/opamp/v1/opamp_pb.js";
import * as root from "../../../src/index.js";
import * as wire from "../../../src/wire/index.js";

const wireDir = fileURLToPath(new URL("../../../src/wire/", import.meta.url));
const sourceFiles = readdirSync(wireDir).filter((name) => name.endsWith(".ts"));

describe("package root exports", () => {
  it("re-exports every generated schema, enum and file descriptor", () => {
    for (const [name, value] of [...Object.entries(opampPb), ...Object.entries(anyvaluePb)]) {
      expect((root as Record<string, unknown>)[name], name).toBe(value);
    }
  });

  it("re-exports the whole wire API", () => {
    for (const [name, value] of Object.entries(wire)) {
      expect((root as Record<string, unknown>)[name], name).toBe(value);
    }
  });

  it("leaks no internal wire helper", () => {
    for (const internal of ["resolveMaxBytes", "messageTooLarge", "serialize", "parse"]) {
      expect(Object.keys(root)).not.toContain(internal);
      expect(Object.keys(wire)).not.toContain(internal);
    }
  });
});

describe("src/wire runs in a browser", () => {
  it.each(sourceFiles)("%s has no node: imports, no Node globals and no timers", (file) => {
    const code = readFileSync(`${wireDir}${file}`, "utf8").replace(/\/\/.*$|\/\*[\s\S]*?\*\//gm, "");
    expect(code).not.toMatch(/from\s+["']node:|require\(/);
    expect(code).not.toMatch(/\b(setTimeout|setInterval|setImmediate|queueMicrotask)\s*\(/);
    expect(code).not.toMatch(/\b(Buffer|process)\./);
  });

  it("index.ts lists names, no wildcard re-exports", () => {
    expect(readFileSync(`${wireDir}index.ts`, "utf8")).not.toMatch(/export \*/);
    expect(readFileSync(fileURLToPath(new URL("../../../src/index.ts", import.meta.url)), "utf8")).not.toMatch(
      /export \*/,
    );
  });
});
