// Cross-implementation golden bytes: opamp-go v0.23.0 (test/interop/go) and our
// protobuf-es code must agree on every field of AgentToServer and ServerToAgent,
// in both directions, and our .proto must match opamp-go's compiled schema.

import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DescMessage, JsonValue } from "@bufbuild/protobuf";
import { create, equals, fromBinary, fromJson, toBinary, toJson } from "@bufbuild/protobuf";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  AgentCapabilities,
  type AgentToServer,
  AgentToServerSchema,
  CommandType,
  ComponentHealthSchema,
  PackageStatusEnum,
  PackageType,
  RemoteConfigStatuses,
  ServerCapabilities,
  ServerErrorResponseType,
  type ServerToAgent,
  ServerToAgentSchema,
} from "../../src/gen/opamp/v1/opamp_pb.js";
import { buildHarness, describeWithGo, REPO_ROOT, type RunResult, runCommand, runHarness } from "./go-harness.js";
import { MAX_U64, tsFixtures } from "./ts-fixtures.js";

type TypeName = "AgentToServer" | "ServerToAgent";
const SCHEMAS: Record<TypeName, DescMessage> = {
  AgentToServer: AgentToServerSchema,
  ServerToAgent: ServerToAgentSchema,
};

/**
 * Every golden message the Go side writes (test/interop/go/fixtures.go). Listed
 * here so a fixture that disappears, or appears untested, fails the suite.
 */
const GOLDEN: ReadonlyArray<readonly [string, TypeName]> = [
  ["agent_full", "AgentToServer"],
  ["agent_minimal", "AgentToServer"],
  ["agent_empty_submessages", "AgentToServer"],
  ["agent_disconnect", "AgentToServer"],
  ["agent_open_enum", "AgentToServer"],
  ["agent_empty", "AgentToServer"],
  ["agent_status_unset", "AgentToServer"],
  ["agent_status_applied", "AgentToServer"],
  ["agent_status_applying", "AgentToServer"],
  ["agent_status_failed", "AgentToServer"],
  ["server_full", "ServerToAgent"],
  ["server_error_retry", "ServerToAgent"],
  ["server_error_no_details", "ServerToAgent"],
  ["server_error_retry_empty", "ServerToAgent"],
  ["server_empty_submessages", "ServerToAgent"],
  ["server_restart", "ServerToAgent"],
  ["server_uint64_max", "ServerToAgent"],
  ["server_empty", "ServerToAgent"],
];

// The values fixtures.go uses (goldenUID, goldenNewUID, goldenStartNs, …).
const GOLDEN_UID = Uint8Array.from([
  0x01, 0x93, 0x5b, 0x2e, 0x7c, 0x40, 0x7a, 0x1b, 0x80, 0x00, 0xff, 0xfe, 0x3d, 0x5e, 0x6a, 0x7b,
]);
const GOLDEN_NEW_UID = Uint8Array.from([
  0x01, 0x93, 0x5b, 0x2e, 0x7c, 0x41, 0x70, 0x00, 0xbf, 0xff, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
]);
const GOLDEN_START_NS = 1763776800123456789n;
const GOLDEN_STATUS_NS = 1763776801987654321n;

function allBits(e: Record<string, string | number>): bigint {
  let all = 0n;
  for (const v of Object.values(e)) if (typeof v === "number") all |= BigInt(v);
  return all;
}

/** Asserts a harness run succeeded, showing its whole output when it did not. */
function expectOk(r: RunResult): void {
  expect(r.code, `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`).toBe(0);
}

async function writeMessage(dir: string, name: string, type: TypeName, bin: Uint8Array, json: unknown) {
  await writeFile(join(dir, `${name}.${type}.bin`), bin);
  await writeFile(join(dir, `${name}.json`), `${JSON.stringify(json, null, 2)}\n`);
}

describeWithGo("interop: golden bytes with opamp-go v0.23.0", () => {
  let work: string;
  let goldenDir: string;
  /** Each golden .bin as opamp-go wrote it, and as our fromBinary decodes it. */
  const goldenBytes = new Map<string, Uint8Array>();
  const decoded = new Map<string, AgentToServer | ServerToAgent>();

  beforeAll(async () => {
    await buildHarness();
    work = await mkdtemp(join(tmpdir(), "opamp-interop-golden-"));
    goldenDir = join(work, "golden");
    expectOk(await runHarness(["golden", "-out", goldenDir]));
    for (const [name, type] of GOLDEN) {
      const bin = new Uint8Array(await readFile(join(goldenDir, `${name}.${type}.bin`)));
      goldenBytes.set(name, bin);
      decoded.set(name, fromBinary(SCHEMAS[type], bin) as AgentToServer | ServerToAgent);
    }
  }, 300_000);

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("opamp-go wrote exactly the expected golden set", async () => {
    const files = (await readdir(goldenDir)).sort();
    const expected = GOLDEN.flatMap(([name, type]) => [`${name}.${type}.bin`, `${name}.json`]).sort();
    expect(files).toEqual(expected);
  });

  it.each(GOLDEN)("%s: our binary decoder and JSON parser agree with opamp-go", async (name, type) => {
    const schema = SCHEMAS[type];
    const fromBin = decoded.get(name)!;
    // fromBinary keeps field numbers our schema lacks in $unknown (checked on
    // the top level here); deeper down, the same gap would make fromJson throw,
    // since it rejects JSON names it does not know.
    const json = JSON.parse(await readFile(join(goldenDir, `${name}.json`), "utf8")) as JsonValue;
    const fromText = fromJson(schema, json);
    expect(equals(schema, fromBin, fromText), `${name}: binary and JSON decode to different messages`).toBe(true);
    expect(fromBin.$unknown ?? [], `${name}: fields unknown to our schema`).toEqual([]);
  });

  it("decoded values are the ones opamp-go wrote (not vacuous)", () => {
    const a = decoded.get("agent_full") as AgentToServer;
    expect(a.instanceUid).toEqual(GOLDEN_UID);
    expect(a.sequenceNum).toBe(18446744073709551615n);
    expect(a.capabilities).toBe(allBits(AgentCapabilities));
    expect(a.capabilities).toBe(0xffffn);
    expect(a.flags).toBe(1n);
    const h = a.health!;
    expect(h.healthy).toBe(true);
    expect(h.startTimeUnixNano).toBe(GOLDEN_START_NS); // fixed64 above 2^53
    expect(h.statusTimeUnixNano).toBe(GOLDEN_STATUS_NS);
    const traces = h.componentHealthMap["pipeline:traces"]!;
    expect(traces.healthy).toBe(false);
    expect(traces.statusTimeUnixNano).toBe(MAX_U64);
    expect(traces.lastError).toBe("exporter otlp: connection refused ✗");
    expect(traces.componentHealthMap["exporter:otlp"]?.lastError).toBe("dial tcp 10.0.0.1:4317: refused");
    expect(traces.componentHealthMap["processor:noop"]).toEqual(create(ComponentHealthSchema));
    expect(Object.keys(traces.componentHealthMap).sort()).toEqual(["exporter:otlp", "processor:noop", "receiver:otlp"]);
    const attrs = new Map(a.agentDescription!.nonIdentifyingAttributes.map((kv) => [kv.key, kv.value]));
    expect(attrs.get("host.name")?.value).toEqual({ case: "stringValue", value: "node-ß-日本-🚀" });
    expect(attrs.get("int.min")?.value).toEqual({ case: "intValue", value: -(2n ** 63n) });
    expect(attrs.get("int.max")?.value).toEqual({ case: "intValue", value: 2n ** 63n - 1n });
    expect(attrs.get("double.inf")?.value).toEqual({ case: "doubleValue", value: Number.NEGATIVE_INFINITY });
    expect(attrs.get("bytes")?.value).toEqual({ case: "bytesValue", value: Uint8Array.from([0, 1, 0xfe, 0xff]) });
    expect(attrs.get("empty.value")?.value.case).toBeUndefined();
    expect(attrs.has("no.value")).toBe(true);
    expect(attrs.get("no.value")).toBeUndefined();
    const cfg = a.effectiveConfig!.configMap!.configMap;
    expect(cfg[""]?.contentType).toBe("text/yaml");
    expect(new TextDecoder().decode(cfg[""]?.body)).toContain("otlp");
    expect(a.remoteConfigStatus?.status).toBe(RemoteConfigStatuses.RemoteConfigStatuses_FAILED);
    const pkgs = a.packageStatuses!.packages;
    expect(pkgs["pkg-downloading"]?.status).toBe(PackageStatusEnum.PackageStatusEnum_Downloading);
    expect(pkgs["pkg-downloading"]?.downloadDetails?.downloadPercent).toBe(42.5);
    expect(pkgs["pkg-failed"]?.errorMessage).toBe("signature mismatch");
    expect(a.agentDisconnect).toBeDefined();
    expect(a.customMessage?.data).toEqual(Uint8Array.from([0x00, 0x7f, 0x80, 0xff]));
    const grpc = a.availableComponents?.components["receivers"]?.subComponentMap["otlp"]?.subComponentMap["grpc"];
    expect(grpc?.metadata[0]?.value?.value).toEqual({ case: "intValue", value: 4317n });
    expect(a.connectionSettingsRequest?.opamp?.certificateRequest?.csr.length).toBeGreaterThan(0);

    // Absent stays absent; empty-but-present stays present.
    const minimal = decoded.get("agent_minimal") as AgentToServer;
    expect(minimal.health).toBeUndefined();
    expect(minimal.agentDisconnect).toBeUndefined();
    expect(minimal.remoteConfigStatus).toBeUndefined();
    const empties = decoded.get("agent_empty_submessages") as AgentToServer;
    expect(empties.health).toEqual(create(ComponentHealthSchema));
    expect(empties.agentDisconnect).toBeDefined();
    expect(empties.availableComponents).toBeDefined();
    expect((decoded.get("agent_disconnect") as AgentToServer).agentDisconnect).toBeDefined();

    const open = decoded.get("agent_open_enum") as AgentToServer;
    expect(open.remoteConfigStatus?.status).toBe(99);
    expect(open.packageStatuses?.packages["future"]?.status).toBe(42);
    expect(open.capabilities).toBe(MAX_U64);

    const s = decoded.get("server_full") as ServerToAgent;
    expect(s.instanceUid).toEqual(GOLDEN_UID);
    expect(s.errorResponse?.type).toBe(ServerErrorResponseType.ServerErrorResponseType_Unavailable);
    expect(s.errorResponse?.Details).toEqual({
      case: "retryInfo",
      value: expect.objectContaining({ retryAfterNanoseconds: 30_000_000_000n }),
    });
    expect(s.capabilities).toBe(allBits(ServerCapabilities));
    expect(s.flags).toBe(3n);
    expect(s.agentIdentification?.newInstanceUid).toEqual(GOLDEN_NEW_UID);
    expect(s.command?.type).toBe(CommandType.CommandType_Restart);
    const cs = s.connectionSettings!;
    expect(cs.opamp?.heartbeatIntervalSeconds).toBe(30n);
    expect(cs.opamp?.headers?.headers.map((hd) => `${hd.key}=${hd.value}`)).toEqual([
      "Authorization=Bearer s3cr3t",
      "X-Dup=a",
      "X-Dup=b",
      "X-Empty=",
    ]);
    expect(cs.opamp?.tls?.cipherSuites).toEqual(["TLS_AES_128_GCM_SHA256", "TLS_CHACHA20_POLY1305_SHA256"]);
    expect(cs.ownLogs).toBeDefined();
    expect(cs.otherConnections["kafka"]?.otherSettings).toEqual({ acks: "all", empty: "", topic: "otlp_spans" });
    expect(cs.otherConnections["none"]).toBeDefined();
    expect(s.packagesAvailable?.packages["addon-geoip"]?.type).toBe(PackageType.PackageType_Addon);
    expect(s.packagesAvailable?.packages["otelcol-contrib"]?.type).toBe(PackageType.PackageType_TopLevel);

    expect((decoded.get("server_error_retry") as ServerToAgent).errorResponse?.Details.value).toMatchObject({
      retryAfterNanoseconds: MAX_U64,
    });
    expect((decoded.get("server_error_no_details") as ServerToAgent).errorResponse?.Details.case).toBeUndefined();
    const retryEmpty = (decoded.get("server_error_retry_empty") as ServerToAgent).errorResponse?.Details;
    expect(retryEmpty?.case).toBe("retryInfo");
    expect(retryEmpty?.value?.retryAfterNanoseconds).toBe(0n);
    const restart = decoded.get("server_restart") as ServerToAgent;
    expect(restart.command).toBeDefined();
    expect(restart.command?.type).toBe(CommandType.CommandType_Restart);
    const max = decoded.get("server_uint64_max") as ServerToAgent;
    expect([max.flags, max.capabilities, max.connectionSettings?.opamp?.heartbeatIntervalSeconds]).toEqual([
      MAX_U64,
      MAX_U64,
      MAX_U64,
    ]);
    expect(goldenBytes.get("server_empty")?.length).toBe(0);
    expect(equals(ServerToAgentSchema, decoded.get("server_empty") as ServerToAgent, create(ServerToAgentSchema))).toBe(
      true,
    );
  });

  it("our re-encoding of every golden message decodes in opamp-go to the same value", async () => {
    const dir = join(work, "roundtrip");
    await mkdir(dir);
    for (const [name, type] of GOLDEN) {
      const schema = SCHEMAS[type];
      const msg = decoded.get(name)!;
      await writeMessage(dir, name, type, toBinary(schema, msg), toJson(schema, msg));
    }
    // -want: equal to the golden original; -coverage: the set still covers the schema.
    const r = await runHarness(["verify", "-in", dir, "-want", goldenDir, "-coverage"]);
    expectOk(r);
    for (const [name, type] of GOLDEN) expect(r.stdout).toContain(`ok   ${name}.${type}`);
    expect(r.stdout).toContain(`verify: ${GOLDEN.length} files, 0 failed`);
  });

  it.each(GOLDEN)("%s: our re-encoding is byte-identical to opamp-go's deterministic marshal", (name, type) => {
    // Not a protocol requirement (the wire allows any field and map order), but
    // it holds today: both encoders write fields in number order, Go sorts map
    // keys, and our decoded maps keep that order because no fixture key is an
    // integer-like string (JS objects list those first). If a dependency bump
    // breaks only this test, the encoders still agree on values (see above).
    expect(toBinary(SCHEMAS[type], decoded.get(name)!)).toEqual(goldenBytes.get(name));
  });

  it("messages built and encoded by our code decode in opamp-go, binary and JSON alike", async () => {
    const dir = join(work, "ours");
    await mkdir(dir);
    const fixtures = tsFixtures();
    for (const f of fixtures) {
      const schema = SCHEMAS[f.type];
      await writeMessage(dir, f.name, f.type, toBinary(schema, f.msg), toJson(schema, f.msg));
    }
    const r = await runHarness(["verify", "-in", dir, "-coverage"]);
    expectOk(r);
    for (const f of fixtures) expect(r.stdout).toContain(`ok   ${f.name}.${f.type}`);
    expect(r.stdout).toContain(`verify: ${fixtures.length} files, 0 failed`);
  });

  it("verify rejects unknown fields and binary/JSON mismatches (the check can fail)", async () => {
    const dir = join(work, "tampered");
    await mkdir(dir);
    const msg = create(AgentToServerSchema, { instanceUid: GOLDEN_UID, sequenceNum: 5n });
    // Field 16 (varint 5): not in AgentToServer, as if our field numbers were off.
    const withUnknown = new Uint8Array([...toBinary(AgentToServerSchema, msg), 0x80, 0x01, 0x05]);
    await writeMessage(dir, "unknown_field", "AgentToServer", withUnknown, toJson(AgentToServerSchema, msg));
    const other = create(AgentToServerSchema, { instanceUid: GOLDEN_UID, sequenceNum: 6n });
    await writeMessage(
      dir,
      "mismatch",
      "AgentToServer",
      toBinary(AgentToServerSchema, msg),
      toJson(AgentToServerSchema, other),
    );
    const r = await runHarness(["verify", "-in", dir]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/FAIL unknown_field\.AgentToServer\n.*unknown field in binary/);
    expect(r.stdout).toMatch(/FAIL mismatch\.AgentToServer\n.*binary and json differ/);
  });

  it("our .proto matches opamp-go's compiled schema field for field", async () => {
    const image = join(work, "image.binpb");
    expectOk(
      await runCommand(join(REPO_ROOT, "node_modules", ".bin", "buf"), ["build", "-o", image], { cwd: REPO_ROOT }),
    );
    const r = await runHarness(["schema", "-image", image]);
    expectOk(r);
    expect(r.stdout).not.toContain("DIFFERENCE:");
    expect(r.stdout).toMatch(/compared 4\d messages, 1\d\d fields, 10 enums, 4\d enum values; 0 unexpected/);
    expect(r.stdout).toContain('expected difference: package: ours "opamp.proto.v1", opamp-go "opamp.proto"');
  });

  it("schema reports a changed field number or enum value (the check can fail)", async () => {
    const dir = join(work, "mutated");
    await cp(join(REPO_ROOT, "proto"), join(dir, "proto"), { recursive: true });
    await cp(join(REPO_ROOT, "buf.yaml"), join(dir, "buf.yaml"));
    const file = join(dir, "proto", "opamp", "v1", "opamp.proto");
    const src = await readFile(file, "utf8");
    const mutated = src
      .replace(/uint64 sequence_num = 2;/, "uint64 sequence_num = 20;")
      .replace(/RemoteConfigStatuses_FAILED = 3;/, "RemoteConfigStatuses_FAILED = 4;");
    expect(mutated).not.toBe(src);
    await writeFile(file, mutated);
    const image = join(dir, "image.binpb");
    expectOk(await runCommand(join(REPO_ROOT, "node_modules", ".bin", "buf"), ["build", "-o", image], { cwd: dir }));
    const r = await runHarness(["schema", "-image", image]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("DIFFERENCE: field AgentToServer.sequence_num = 20: only in ours");
    expect(r.stdout).toContain(
      "DIFFERENCE: enum value RemoteConfigStatuses.RemoteConfigStatuses_FAILED: number: ours 4, opamp-go 3",
    );
  });
});
