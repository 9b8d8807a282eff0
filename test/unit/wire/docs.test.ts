// The error codes and limits are part of the public contract: each must be documented.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { OPAMP_ERROR_CODES } from "../../../src/wire/errors.js";
import * as limits from "../../../src/wire/limits.js";

const doc = (name: string) => readFileSync(fileURLToPath(new URL(`../../../docs/${name}`, import.meta.url)), "utf8");

describe("docs/errors.md", () => {
  const text = doc("errors.md");
  it.each([...OPAMP_ERROR_CODES])("documents `%s` under its own heading", (code) => {
    expect(text).toMatch(new RegExp(`^#{2,3} \`${code}\`\\s*$`, "m"));
  });

  it("documents no code that does not exist", () => {
    const headings = [...text.matchAll(/^#{2,3} `([a-z_]+)`\s*$/gm)].map((match) => match[1]);
    expect(headings.filter((code) => !(OPAMP_ERROR_CODES as readonly string[]).includes(code!))).toEqual([]);
  });
});

describe("docs/limits.md", () => {
  const text = doc("limits.md");
  const defaults = Object.keys(limits).filter((name) => name.startsWith("DEFAULT_"));

  it("src/wire/limits.ts exports at least DEFAULT_MAX_MESSAGE_BYTES", () => {
    expect(defaults).toContain("DEFAULT_MAX_MESSAGE_BYTES");
  });

  it.each(defaults)("documents %s", (name) => {
    expect(text).toContain(`\`${name}\``);
  });
});
