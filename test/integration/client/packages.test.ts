/**
 * Packages over both transports: download with the offer's headers, SHA-256 check,
 * signature hook, install through the store, removal of packages no longer offered.
 */
import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MemoryPackageStore } from "../../../src/client/package-store.js";
import {
  DownloadableFileSchema,
  HeaderSchema,
  HeadersSchema,
  PackageAvailableSchema,
  PackageStatusEnum,
  type PackageStatuses,
  PackagesAvailableSchema,
  PackageType,
  ServerToAgentSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import { AgentCapability, hasBit } from "../../../src/wire/capabilities.js";
import { FakeServer } from "./fake-server.js";
import { eventWhere, makeClient } from "./helpers.js";

const sha256 = (data: Uint8Array) => new Uint8Array(createHash("sha256").update(data).digest());

describe.each(["ws", "http"] as const)("packages over %s", (kind) => {
  let server: FakeServer;
  beforeEach(async () => {
    server = await FakeServer.start();
  });
  afterEach(async () => {
    await server.close();
  });

  function offer(
    packages: Record<string, { file: string; hash: number; contentHash?: Uint8Array; signature?: Uint8Array }>,
    all: number,
  ) {
    return create(PackagesAvailableSchema, {
      allPackagesHash: new Uint8Array([all]),
      packages: Object.fromEntries(
        Object.entries(packages).map(([name, p]) => [
          name,
          create(PackageAvailableSchema, {
            type: PackageType.PackageType_Addon,
            version: `1.${p.hash}`,
            hash: new Uint8Array([p.hash]),
            file: create(DownloadableFileSchema, {
              downloadUrl: server.fileUrl(p.file),
              contentHash: p.contentHash ?? sha256(server.files.get(p.file) ?? new Uint8Array()),
              ...(p.signature === undefined ? {} : { signature: p.signature }),
              headers: create(HeadersSchema, { headers: [create(HeaderSchema, { key: "X-Token", value: "dl" })] }),
            }),
          }),
        ]),
      ),
    });
  }

  const allDone = (statuses: PackageStatuses, names: string[]) =>
    names.every((n) => {
      const s = statuses.packages[n]?.status;
      return (
        s === PackageStatusEnum.PackageStatusEnum_Installed || s === PackageStatusEnum.PackageStatusEnum_InstallFailed
      );
    });

  it("installs verified packages, fails a hash mismatch, and removes what is no longer offered", async () => {
    server.files.set("good.tar", new Uint8Array([1, 2, 3, 4]));
    server.files.set("evil.tar", new Uint8Array([6, 6, 6]));
    const store = new MemoryPackageStore();
    const { client } = makeClient(server, kind, { storage: { packages: store } });
    let current = offer(
      {
        good: { file: "good.tar", hash: 1 },
        evil: { file: "evil.tar", hash: 2, contentHash: new Uint8Array(32) },
      },
      10,
    );
    server.script = ({ message }) =>
      create(ServerToAgentSchema, { instanceUid: message.instanceUid, packagesAvailable: current });
    const done = eventWhere(client, "packageStatuses", (s) => allDone(s, ["good", "evil"]));
    await client.start();
    const first = (await server.waitFor()).message;
    expect(hasBit(first.capabilities, AgentCapability.AcceptsPackages)).toBe(true);
    expect(hasBit(first.capabilities, AgentCapability.ReportsPackageStatuses)).toBe(true);
    const [statuses] = await done;
    expect(statuses.packages.good?.status).toBe(PackageStatusEnum.PackageStatusEnum_Installed);
    expect(statuses.packages.good?.agentHasHash).toEqual(new Uint8Array([1]));
    expect(statuses.packages.evil?.status).toBe(PackageStatusEnum.PackageStatusEnum_InstallFailed);
    expect(statuses.packages.evil?.errorMessage).toContain("SHA-256");
    expect(statuses.serverProvidedAllPackagesHash).toEqual(new Uint8Array([10]));
    expect(store.content("good")).toEqual(new Uint8Array([1, 2, 3, 4]));
    expect(store.content("evil")).toBeUndefined();
    expect(server.downloads.every((h) => h["x-token"] === "dl")).toBe(true);
    await server.waitFor(
      (r) => r.message.packageStatuses?.packages.good?.status === PackageStatusEnum.PackageStatusEnum_Installed,
    );

    current = offer({}, 11);
    const removed = eventWhere(client, "packageStatuses", (s) => s.packages.good === undefined);
    client.setCustomCapabilities(["io.example.poke"]); // a message so HTTP hears the new offer
    await removed;
    await client.idle();
    expect(await store.list()).toEqual([]);
    await client.stop();
  });

  it("refuses a signed package without a verifier and installs it when the hook accepts", async () => {
    server.files.set("signed.tar", new Uint8Array([9, 9]));
    const store = new MemoryPackageStore();
    const signature = new Uint8Array([0x51, 0x6e]);
    const current = offer({ signed: { file: "signed.tar", hash: 3, signature } }, 20);
    server.script = ({ message }) =>
      create(ServerToAgentSchema, { instanceUid: message.instanceUid, packagesAvailable: current });
    const refused = makeClient(server, kind, { storage: { packages: store } });
    const failed = eventWhere(refused.client, "packageStatuses", (s) => allDone(s, ["signed"]));
    await refused.client.start();
    expect((await failed)[0].packages.signed?.status).toBe(PackageStatusEnum.PackageStatusEnum_InstallFailed);
    await refused.client.stop();

    const checked: Uint8Array[] = [];
    const accepted = makeClient(server, kind, {
      storage: { packages: store },
      hooks: {
        verifyPackageSignature: async (check) => {
          checked.push(check.signature);
          return true;
        },
      },
    });
    const installed = eventWhere(accepted.client, "packageStatuses", (s) => allDone(s, ["signed"]));
    await accepted.client.start();
    expect((await installed)[0].packages.signed?.status).toBe(PackageStatusEnum.PackageStatusEnum_Installed);
    expect(checked).toEqual([signature]);
    await accepted.client.stop();
  });
});
