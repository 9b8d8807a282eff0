/** configFileText reads a file's text from whatever carries a config map. */
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  AgentConfigMapSchema,
  AgentRemoteConfigSchema,
  EffectiveConfigSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import { configFileText, configMap } from "../../../src/wire/index.js";

const one = configMap({ "collector.yaml": "receivers: {}\n" });
const two = configMap({ "a.yaml": "a: 1", "b.yaml": "b: é" });

describe("configFileText", () => {
  it("reads a named file from an AgentConfigMap, an EffectiveConfig and an AgentRemoteConfig", () => {
    expect(configFileText(two, "b.yaml")).toBe("b: é");
    expect(configFileText(create(EffectiveConfigSchema, { configMap: two }), "a.yaml")).toBe("a: 1");
    expect(
      configFileText(create(AgentRemoteConfigSchema, { config: two, configHash: new Uint8Array(32) }), "b.yaml"),
    ).toBe("b: é");
  });

  it("reads the only file without a name, whatever its key", () => {
    expect(configFileText(one)).toBe("receivers: {}\n");
    expect(configFileText(create(EffectiveConfigSchema, { configMap: one }))).toBe("receivers: {}\n");
  });

  it("gives undefined for a missing name, for several files without a name and for nothing at all", () => {
    expect(configFileText(two, "c.yaml")).toBeUndefined();
    expect(configFileText(two)).toBeUndefined();
    expect(configFileText(create(AgentConfigMapSchema))).toBeUndefined();
    expect(configFileText(create(EffectiveConfigSchema))).toBeUndefined();
    expect(configFileText(undefined)).toBeUndefined();
    // Names are looked up as own keys only.
    expect(configFileText(two, "toString")).toBeUndefined();
    expect(configFileText(two, "__proto__")).toBeUndefined();
  });

  it("decodes invalid UTF-8 to U+FFFD instead of throwing", () => {
    const map = create(AgentConfigMapSchema, {
      configMap: { "x.bin": { body: new Uint8Array([0x61, 0xff, 0x62]), contentType: "" } },
    });
    expect(configFileText(map, "x.bin")).toBe("a\uFFFDb");
  });

  it("reads plain objects of the same shape (a decoded JSON state, a test double)", () => {
    const body = new TextEncoder().encode("k: v");
    expect(configFileText({ configMap: { "k.yaml": { body, contentType: "" } } } as never, "k.yaml")).toBe("k: v");
    expect(configFileText({ configMap: { configMap: { "k.yaml": { body, contentType: "" } } } } as never)).toBe("k: v");
  });

  it("takes a file named configMap for a file, not for a nested map", () => {
    const map = configMap({ configMap: "named so" });
    expect(configFileText(map, "configMap")).toBe("named so");
    expect(configFileText(create(EffectiveConfigSchema, { configMap: map }), "configMap")).toBe("named so");
  });
});
