/**
 * Hostile server against the client: package names and remote-config file names that
 * hold `..`, absolute paths, backslashes or NUL. Nothing is downloaded or written for
 * them (checked on the FilePackageStore's whole directory tree), they are reported as
 * InstallFailed / FAILED, and the safe part of the offer still goes through. Both transports.
 */
import { createHash } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FilePackageStore } from "../../../src/client/file-package-store.js";
import {
  AgentRemoteConfigSchema,
  DownloadableFileSchema,
  PackageAvailableSchema,
  PackageStatusEnum,
  PackagesAvailableSchema,
  PackageType,
  RemoteConfigStatuses,
  ServerToAgentSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import type { OpampError } from "../../../src/wire/errors.js";
import { FakeServer } from "../client/fake-server.js";
import { eventWhere, makeClient, textConfig } from "../client/helpers.js";
import { DownloadServer } from "./download-server.js";

const HOSTILE_NAMES = [
  "../escaped",
  "../../../../../../tmp/opamp-escaped",
  "/tmp/opamp-absolute",
  "ok/../../escaped",
  "..\\escaped",
  "C:\\escaped",
  "nul\u0000byte",
  "..",
];
const sha256 = (data: Uint8Array) => new Uint8Array(createHash("sha256").update(data).digest());

describe.each(["ws", "http"] as const)("hostile names over %s", (kind) => {
  let server: FakeServer;
  let files: DownloadServer;
  let base = "";
  beforeEach(async () => {
    server = await FakeServer.start();
    files = await DownloadServer.start();
    base = await mkdtemp(join(tmpdir(), "opamp-hostile-names-"));
  });
  afterEach(async () => {
    await files.close();
    await server.close();
    await rm(base, { recursive: true, force: true });
  });

  it("refuses package names that leave the store before anything is downloaded or installed", async () => {
    const good = new Uint8Array([1, 2, 3]);
    files.files.set("good", good);
    const names = [...HOSTILE_NAMES, "good"];
    const packagesAvailable = create(PackagesAvailableSchema, {
      allPackagesHash: new Uint8Array([1]),
      packages: Object.fromEntries(
        names.map((name, i) => [
          name,
          create(PackageAvailableSchema, {
            type: PackageType.PackageType_Addon,
            version: "1.0.0",
            hash: new Uint8Array([i + 1]),
            file: create(DownloadableFileSchema, {
              downloadUrl: files.url(name === "good" ? "/file/good" : `/file/evil${i}`),
              contentHash: name === "good" ? sha256(good) : new Uint8Array(),
            }),
          }),
        ]),
      ),
    });
    server.script = ({ message }) =>
      create(ServerToAgentSchema, { instanceUid: message.instanceUid, packagesAvailable });
    const store = new FilePackageStore(join(base, "store"));
    const { client } = makeClient(server, kind, { storage: { packages: store } });
    const done = eventWhere(client, "packageStatuses", (s) =>
      names.every((name) => {
        const status = s.packages[name]?.status;
        return (
          status === PackageStatusEnum.PackageStatusEnum_Installed ||
          status === PackageStatusEnum.PackageStatusEnum_InstallFailed
        );
      }),
    );
    await client.start();
    const [statuses] = await done;
    await client.idle();
    for (const name of HOSTILE_NAMES) {
      expect(statuses.packages[name]?.status).toBe(PackageStatusEnum.PackageStatusEnum_InstallFailed);
      expect(statuses.packages[name]?.errorMessage).toMatch(/^package name .* (climbs|absolute|backslash|control)/);
    }
    expect(statuses.packages.good?.status).toBe(PackageStatusEnum.PackageStatusEnum_Installed);
    // Only the good package was fetched, and only it exists, inside the store's root.
    expect(files.requests).toEqual(["/file/good"]);
    expect((await readdir(base, { recursive: true })).map(String).sort()).toEqual([
      "store",
      "store/good",
      "store/good/content",
      "store/good/package.json",
    ]);
    // The server hears about the refusals.
    const reported = await server.waitFor(
      (r) => r.message.packageStatuses?.packages.good?.status === PackageStatusEnum.PackageStatusEnum_Installed,
    );
    expect(reported.message.packageStatuses?.packages["../escaped"]?.status).toBe(
      PackageStatusEnum.PackageStatusEnum_InstallFailed,
    );
    await client.stop();
  });

  it("refuses a remote config whose file names leave their directory, without calling the hook", async () => {
    const seen: string[][] = [];
    let offer = 0;
    const configs = [
      textConfig("../../etc/passwd", "x"),
      textConfig("/etc/otelcol/config.yaml", "x"),
      textConfig("conf.d\\evil.yaml", "x"),
      textConfig("conf.d/extra.yaml", "receivers: {}"),
    ];
    server.script = ({ message }) => {
      const config = configs[Math.min(offer, configs.length - 1)]!;
      return create(ServerToAgentSchema, {
        instanceUid: message.instanceUid,
        remoteConfig: create(AgentRemoteConfigSchema, { config, configHash: new Uint8Array([offer + 1]) }),
      });
    };
    const errors: OpampError[] = [];
    const { client } = makeClient(server, kind, {
      hooks: {
        onRemoteConfig: async ({ config }) => {
          seen.push(Object.keys(config.configMap));
          return { status: "applied" };
        },
      },
    });
    client.on("error", (e) => errors.push(e));
    await client.start();
    for (let i = 0; i < configs.length; i++) {
      const expected =
        i < configs.length - 1
          ? RemoteConfigStatuses.RemoteConfigStatuses_FAILED
          : RemoteConfigStatuses.RemoteConfigStatuses_APPLIED;
      const status = await server.waitFor(
        (r) =>
          r.message.remoteConfigStatus?.status === expected &&
          r.message.remoteConfigStatus.lastRemoteConfigHash[0] === i + 1,
      );
      if (i < configs.length - 1) {
        expect(status.message.remoteConfigStatus?.errorMessage).toMatch(/^config file name .* not applied$/);
      }
      offer = i + 1;
      // The next offer: pushed (WS), or in the answer to a message the client is made to send (HTTP).
      if (kind === "ws") server.push(server.script({ message: status.message, transport: "ws", headers: {} })!);
      else client.setCustomCapabilities([`io.example.poke${i}`]);
    }
    expect(seen).toEqual([["conf.d/extra.yaml"]]);
    expect(errors.map((e) => e.code)).toEqual(["invalid_argument", "invalid_argument", "invalid_argument"]);
    await client.stop();
  });
});
