// agent-api's pure parts: label selectors, template rendering, envelope encryption.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";

// @ts-expect-error JavaScript module without types
const { matches, parseSelector, SelectorError } = await import("../../examples/agent-api/selectors.mjs");
// @ts-expect-error JavaScript module without types
const { render, RenderError } = await import("../../examples/agent-api/render.mjs");
// @ts-expect-error JavaScript module without types
const { localKms } = await import("../../examples/agent-api/secrets.mjs");

const sel = (text: string, labels: Record<string, string>): boolean => matches(parseSelector(text), labels);

describe("label selectors", () => {
  it("reads the seed's selector and the other forms", () => {
    expect(sel("env=prod,region in (eu,us)", { env: "prod", region: "eu" })).toBe(true);
    expect(sel("env=prod,region in (eu,us)", { env: "prod", region: "ap" })).toBe(false);
    expect(sel("env=prod,region in (eu,us)", { env: "dev", region: "us" })).toBe(false);
    expect(sel("env=prod,region in (eu,us)", { env: "prod" })).toBe(false);
    expect(sel("env==prod", { env: "prod" })).toBe(true);
    expect(sel("tier!=canary", {})).toBe(true);
    expect(sel("tier!=canary", { tier: "canary" })).toBe(false);
    expect(sel("region notin (cn, ru)", { region: "eu" })).toBe(true);
    expect(sel("region notin (cn, ru)", { region: "cn" })).toBe(false);
    expect(sel("gpu", { gpu: "" })).toBe(true);
    expect(sel("gpu", {})).toBe(false);
    expect(sel("!legacy", {})).toBe(true);
    expect(sel("!legacy", { legacy: "yes" })).toBe(false);
    expect(sel("", { anything: "x" })).toBe(true);
    expect(sel("  env = prod ,  k8s.io/zone in (a)  ", { env: "prod", "k8s.io/zone": "a" })).toBe(true);
  });

  it("refuses what it cannot read, naming the part", () => {
    for (const bad of ["env in (", "env in ()", "=prod", "env=pr od", "a b c", "env in (eu))", ",", "env=prod,"]) {
      expect(() => parseSelector(bad), bad).toThrow(SelectorError);
    }
    expect(() => parseSelector("env=prod,region in (eu")).toThrow(/unbalanced/);
  });
});

describe("template rendering", () => {
  const agent = { id: "018f-x", name: "web-1", labels: { region: "eu" }, attributes: { "os.type": "linux" } };
  const secret = async (name: string) => (name === "token" ? "s3cret" : undefined);

  it("fills labels, agent fields, attributes and secrets; leaves other ${…} (the Collector's own) alone", async () => {
    const out = await render(
      "r: ${label:region}\nid: ${agent:id}\nn: ${agent:name}\nos: ${attr:os.type}\nt: ${secret:token}\ne: ${env:HOME}\nl: $${label:region}\n",
      agent,
      secret,
    );
    expect(out).toBe("r: eu\nid: 018f-x\nn: web-1\nos: linux\nt: s3cret\ne: ${env:HOME}\nl: ${label:region}\n");
  });

  it("fails on anything it does not know: a config with a hole is never sent", async () => {
    await expect(render("${label:zone}", agent, secret)).rejects.toThrow(RenderError);
    await expect(render("${secret:other}", agent, secret)).rejects.toThrow(/secret:other/);
    await expect(render("${agent:uuid}", agent, secret)).rejects.toThrow(RenderError);
  });
});

describe("envelope encryption (local KMS)", () => {
  it("wraps and unwraps data keys, refuses a key sealed under another KEK or tampered with", async () => {
    const kms = localKms(randomBytes(32));
    const other = localKms(randomBytes(32));
    const dataKey = randomBytes(32);
    const wrapped = await kms.wrapKey(dataKey);
    expect(wrapped.includes(dataKey)).toBe(false);
    expect(Buffer.compare(await kms.unwrapKey(wrapped, kms.keyId), dataKey)).toBe(0);
    await expect(other.unwrapKey(wrapped, kms.keyId)).rejects.toThrow(/KEK/);
    const tampered = Buffer.from(wrapped);
    tampered[tampered.length - 1]! ^= 1;
    await expect(kms.unwrapKey(tampered, kms.keyId)).rejects.toThrow();
    expect(() => localKms(randomBytes(16))).toThrow(/32 bytes/);
  });
});

describe("the README's psql exercises", () => {
  it("are exercises.sql, which the Collector e2e runs", async () => {
    const { readFileSync } = await import("node:fs");
    const readme = readFileSync(new URL("../../examples/agent-api/README.md", import.meta.url), "utf8");
    const sql = readFileSync(new URL("../../examples/agent-api/exercises.sql", import.meta.url), "utf8");
    const statements = sql
      .split("\n\n")
      .slice(1)
      .map((s) => s.trim());
    expect(statements.length).toBe(4);
    for (const statement of statements) expect(readme).toContain(statement);
  });
});
