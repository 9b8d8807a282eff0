// The supervisor's small parts: config layering, restart backoff, log tail and rotation,
// tar extraction, ed25519 signatures, atomic files.
import { generateKeyPairSync, sign } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { create } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { AgentRemoteConfigSchema } from "../../../src/gen/opamp/v1/opamp_pb.js";
import { type ComposeInput, composeCollectorConfig } from "../../../src/supervisor/collector/compose.js";
import { mergeLayer } from "../../../src/supervisor/collector/merge.js";
import { parseDuration } from "../../../src/supervisor/config/read.js";
import { parseEd25519PublicKey, verifyEd25519 } from "../../../src/supervisor/packages/signature.js";
import { extractFromTarGz } from "../../../src/supervisor/packages/tar.js";
import { RestartBackoff } from "../../../src/supervisor/process/restart-backoff.js";
import { LogTail, RotatingFile } from "../../../src/supervisor/process/rotating-log.js";
import { writeFileAtomic } from "../../../src/supervisor/state/atomic-file.js";

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function temp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "sup-unit-"));
  dirs.push(d);
  return d;
}

function remote(files: Record<string, string>) {
  return create(AgentRemoteConfigSchema, {
    config: {
      configMap: Object.fromEntries(
        Object.entries(files).map(([k, v]) => [k, { body: new TextEncoder().encode(v), contentType: "text/yaml" }]),
      ),
    },
    configHash: new Uint8Array([1]),
  });
}

function input(over: Partial<ComposeInput> = {}): ComposeInput {
  return {
    remote: undefined,
    acceptsRemoteConfig: true,
    configFiles: [],
    ownTelemetry: undefined,
    resourceAttributes: {},
    extension: {
      instanceUid: "018f2c3a-1b2c-7d4e-8f90-123456789abc",
      endpoint: "ws://127.0.0.1:9/v1/opamp",
      ppid: 42,
      ppidPollIntervalMs: 5000,
      reportsAvailableComponents: true,
      includeResourceAttributes: false,
    },
    allowNoPipelines: true,
    warn: () => undefined,
    ...over,
  };
}

describe("Collector config composition", () => {
  it("merges maps deeply, replaces lists, and concatenates service.extensions", () => {
    const dest = { a: { b: 1, c: [1, 2] }, service: { extensions: ["opamp"] } };
    mergeLayer(dest, { a: { c: [3], d: 2 }, service: { extensions: ["health_check", "opamp"] } });
    expect(dest).toEqual({ a: { b: 1, c: [3], d: 2 }, service: { extensions: ["opamp", "health_check"] } });
  });

  it("injects the opamp extension, applies local files, then remote files sorted with the instance file last", async () => {
    const dir = await temp();
    const local = join(dir, "local.yaml");
    await writeFile(local, "exporters: { debug: { verbosity: basic } }\nservice: { extensions: [zpages] }\n");
    const warnings: string[] = [];
    const composed = await composeCollectorConfig(
      input({
        configFiles: [local, join(dir, "missing.yaml")],
        remote: remote({
          "": "exporters: { debug: { verbosity: detailed } }\n",
          "b.yaml": "x: b\n",
          "a.yaml": "x: a\n",
        }),
        warn: (m) => warnings.push(m),
      }),
    );
    const tree = parse(composed.yaml);
    expect(warnings).toEqual([expect.stringMatching(/missing\.yaml skipped/)]);
    expect(composed.run).toBe(true);
    expect(tree.extensions.opamp).toMatchObject({
      instance_uid: "018f2c3a-1b2c-7d4e-8f90-123456789abc",
      server: { ws: { endpoint: "ws://127.0.0.1:9/v1/opamp" } },
      ppid: 42,
      ppid_poll_interval: "5s",
    });
    expect(tree.service.extensions).toEqual(["zpages", "opamp"]);
    expect(tree.exporters.debug.verbosity).toBe("detailed");
    expect(tree.x).toBe("b");
  });

  it("does not run the Collector for an empty remote config map, and refuses a remote file that is not a mapping", async () => {
    expect((await composeCollectorConfig(input({ remote: remote({}) }))).run).toBe(false);
    expect((await composeCollectorConfig(input())).run).toBe(true);
    await expect(composeCollectorConfig(input({ remote: remote({ "c.yaml": "- a list\n" }) }))).rejects.toThrow(
      /remote config file "c.yaml" must be a YAML mapping/,
    );
    const noGate = parse((await composeCollectorConfig(input({ allowNoPipelines: false }))).yaml);
    expect(noGate.service.pipelines.traces.receivers).toEqual(["nop"]);
  });
});

describe("RestartBackoff", () => {
  const policy = { initialDelayMs: 100, maxDelayMs: 800, multiplier: 2, jitter: 0.5, stableAfterMs: 10_000 };

  it("grows exponentially to its cap, with jitter taking at most the configured share", () => {
    const top = new RestartBackoff(policy, () => 0);
    expect([1, 2, 3, 4, 5].map(() => top.next(0))).toEqual([100, 200, 400, 800, 800]);
    const bottom = new RestartBackoff(policy, () => 0.999999);
    expect([1, 2, 3].map(() => bottom.next(0))).toEqual([50, 100, 200]);
  });

  it("starts over after a stable run", () => {
    const backoff = new RestartBackoff(policy, () => 0);
    backoff.next(0);
    backoff.next(0);
    expect(backoff.next(500)).toBe(400);
    expect(backoff.next(10_000)).toBe(100);
    expect(backoff.attempt).toBe(1);
  });
});

describe("logs", () => {
  it("keeps the tail as whole lines within its size", () => {
    const tail = new LogTail(16);
    tail.push(Buffer.from("first line\nsecond line\n"));
    tail.push(Buffer.from("third\n"));
    expect(tail.text()).toBe("third");
    const big = new LogTail(1024);
    big.push(Buffer.from("a\nb\n"));
    expect(big.text()).toBe("a\nb");
  });

  it("rotates a file at its size and keeps the configured number of old files", async () => {
    const dir = await temp();
    const file = new RotatingFile(join(dir, "agent.log"), 10, 2);
    for (const line of ["0123456\n", "abcdefg\n", "ABCDEFG\n", "last\n"]) file.write(line);
    file.close();
    expect((await readdir(dir)).sort()).toEqual(["agent.log", "agent.log.1", "agent.log.2"]);
    expect(await readFile(join(dir, "agent.log"), "utf8")).toBe("last\n");
    expect(await readFile(join(dir, "agent.log.2"), "utf8")).toBe("abcdefg\n");
  });
});

describe("packages", () => {
  function tarEntry(name: string, body: string): Buffer {
    const header = Buffer.alloc(512);
    header.write(name, 0);
    header.write("0000755\0", 100);
    header.write(`${body.length.toString(8).padStart(11, "0")}\0`, 124);
    header.write("0", 156);
    header.write("ustar\0", 257);
    const data = Buffer.alloc(Math.ceil(body.length / 512) * 512);
    data.write(body);
    return Buffer.concat([header, data]);
  }

  it("extracts the agent binary from a .tar.gz, shallowest first, and refuses an archive without it", () => {
    const archive = gzipSync(
      Buffer.concat([
        tarEntry("dist/x/otelcol", "deep"),
        tarEntry("otelcol", "top"),
        tarEntry("README", "r"),
        Buffer.alloc(1024),
      ]),
    );
    expect(Buffer.from(extractFromTarGz(archive, "otelcol", 1 << 20)).toString()).toBe("top");
    expect(() => extractFromTarGz(archive, "otelcol-contrib", 1 << 20)).toThrow(/no file named otelcol-contrib/);
    expect(() => extractFromTarGz(new Uint8Array([1, 2, 3]), "otelcol", 1 << 20)).toThrow(/not a readable .tar.gz/);
  });

  it("verifies ed25519 signatures with a PEM or a raw key", () => {
    const { publicKey, privateKey } = generateKeyPairSync("ed25519");
    const content = Buffer.from("agent build");
    const signature = sign(null, content, privateKey);
    const pem = parseEd25519PublicKey(publicKey.export({ type: "spki", format: "pem" }).toString());
    const raw = parseEd25519PublicKey(
      publicKey.export({ type: "spki", format: "der" }).subarray(12).toString("base64"),
    );
    expect(verifyEd25519(pem, content, signature)).toBe(true);
    expect(verifyEd25519(raw, content, signature)).toBe(true);
    expect(verifyEd25519(pem, Buffer.from("agent build!"), signature)).toBe(false);
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 })
      .publicKey.export({ type: "spki", format: "pem" })
      .toString();
    expect(() => parseEd25519PublicKey(rsa)).toThrow(/must be an ed25519 key/);
  });
});

describe("writeFileAtomic", () => {
  it("replaces a file whole and leaves no temporary file", async () => {
    const dir = await temp();
    const path = join(dir, "state.yaml");
    await writeFileAtomic(path, "one");
    await writeFileAtomic(path, "two");
    expect(await readFile(path, "utf8")).toBe("two");
    expect(await readdir(dir)).toEqual(["state.yaml"]);
  });

  it("parses Go durations", () => {
    expect(parseDuration("1h2m3.5s")).toBe(3_723_500);
    expect(parseDuration("250ms")).toBe(250);
    expect(parseDuration("5")).toBeUndefined();
    expect(parseDuration("5s junk")).toBeUndefined();
  });
});
