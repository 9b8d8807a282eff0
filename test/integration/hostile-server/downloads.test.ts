/**
 * Hostile server against the client: package downloads that hang, stall, trickle or never
 * end are bounded in time (connect, idle and total deadlines on the client's clock) and
 * in bytes, and one stuck download does not hold back a newer, unrelated offer. Over
 * both transports (the offer arrives on either; the download is plain HTTP).
 */
import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { OpAMPClient } from "../../../src/client/opamp-client.js";
import { DEFAULT_DOWNLOAD_CONNECT_TIMEOUT_MS, DEFAULT_DOWNLOAD_IDLE_TIMEOUT_MS } from "../../../src/client/options.js";
import { MemoryPackageStore } from "../../../src/client/package-store.js";
import {
  DownloadableFileSchema,
  PackageAvailableSchema,
  PackageStatusEnum,
  type PackageStatuses,
  type PackagesAvailable,
  PackagesAvailableSchema,
  PackageType,
  ServerToAgentSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import { FakeServer } from "../client/fake-server.js";
import { eventWhere, makeClient, settle } from "../client/helpers.js";
import { DownloadServer } from "./download-server.js";

const { PackageStatusEnum_InstallFailed: FAILED, PackageStatusEnum_Installed: INSTALLED } = PackageStatusEnum;
const sha256 = (data: Uint8Array) => new Uint8Array(createHash("sha256").update(data).digest());

function offer(all: number, packages: Record<string, { url: string; contentHash?: Uint8Array }>) {
  return create(PackagesAvailableSchema, {
    allPackagesHash: new Uint8Array([all]),
    packages: Object.fromEntries(
      Object.entries(packages).map(([name, p], i) => [
        name,
        create(PackageAvailableSchema, {
          type: PackageType.PackageType_Addon,
          version: "1.0.0",
          hash: new Uint8Array([all, i]),
          file: create(DownloadableFileSchema, { downloadUrl: p.url, contentHash: p.contentHash ?? new Uint8Array() }),
        }),
      ]),
    ),
  });
}

/** Resolves with the statuses once `name` has `status`. */
function statusOf(client: OpAMPClient, name: string, status: PackageStatusEnum): Promise<PackageStatuses> {
  return eventWhere(client, "packageStatuses", (s) => s.packages[name]?.status === status).then(([s]) => s);
}

describe.each(["ws", "http"] as const)("hostile package downloads over %s", (kind) => {
  let server: FakeServer;
  let files: DownloadServer;
  let current: PackagesAvailable;
  let pokes = 0;
  beforeEach(async () => {
    server = await FakeServer.start();
    files = await DownloadServer.start();
    server.script = ({ message }) =>
      create(ServerToAgentSchema, { instanceUid: message.instanceUid, packagesAvailable: current });
  });
  afterEach(async () => {
    await files.close();
    await server.close();
  });

  function start(extra: Parameters<typeof makeClient>[2] = {}) {
    const store = new MemoryPackageStore();
    const harness = makeClient(server, kind, { ...extra, storage: { packages: store } });
    return { ...harness, store };
  }

  /** Makes the server's next answer carry `next` (WS: pushed; HTTP: a status change makes the client ask). */
  function deliver(client: OpAMPClient, next: PackagesAvailable): void {
    current = next;
    if (kind === "ws") server.push(create(ServerToAgentSchema, { packagesAvailable: next }));
    else client.setCustomCapabilities([`io.example.poke${pokes++}`]);
  }

  it("fails a URL that never answers after the connect deadline", async () => {
    current = offer(1, { hang: { url: files.url("/hang") } });
    const { client, clock, store } = start();
    const failed = statusOf(client, "hang", FAILED);
    await client.start();
    await files.requested("/hang");
    clock.advance(DEFAULT_DOWNLOAD_CONNECT_TIMEOUT_MS - 1);
    await settle();
    expect(files.abandoned).toEqual([]);
    clock.advance(1);
    const statuses = await failed;
    expect(statuses.packages.hang?.errorMessage).toMatch(/no response within 30000 ms/);
    expect(await store.list()).toEqual([]);
    await client.stop();
  });

  it("fails a download that stalls after its first bytes after the idle deadline", async () => {
    current = offer(2, { stall: { url: files.url("/trickle") } });
    const { client, clock, store } = start();
    const failed = statusOf(client, "stall", FAILED);
    await client.start();
    await files.requested("/trickle");
    clock.advance(5_000);
    await settle();
    const progressed = eventWhere(client, "packageStatuses", (s) => s.packages.stall?.downloadDetails !== undefined);
    files.trickle();
    await progressed;
    // From here on nothing arrives.
    clock.advance(DEFAULT_DOWNLOAD_IDLE_TIMEOUT_MS - 1);
    await settle();
    expect(files.abandoned).toEqual([]);
    clock.advance(1);
    expect((await failed).packages.stall?.errorMessage).toMatch(/no data within 60000 ms/);
    expect(await store.list()).toEqual([]);
    await client.stop();
  });

  it("fails a download that trickles a byte at a time, never idle, at the total deadline", async () => {
    current = offer(3, { trickle: { url: files.url("/trickle") } });
    const { client, clock } = start({ limits: { downloadIdleTimeoutMs: 10_000, downloadTimeoutMs: 60_000 } });
    const failed = statusOf(client, "trickle", FAILED);
    let outcome: PackageStatuses | undefined;
    void failed.then((statuses) => {
      outcome = statuses;
    });
    await client.start();
    await files.requested("/trickle");
    // Each step: 5 s pass (under the idle deadline), then one byte arrives. A progress
    // report (at most one per second of the client's clock) shows the client read it.
    for (let step = 1; outcome === undefined && step <= 20; step++) {
      clock.advance(5_000);
      await settle();
      if (outcome !== undefined) break;
      const progressed = eventWhere(
        client,
        "packageStatuses",
        (s) => s.packages.trickle?.downloadDetails !== undefined || s.packages.trickle?.status === FAILED,
      );
      files.trickle();
      await progressed;
    }
    const statuses = await failed;
    expect(statuses.packages.trickle?.errorMessage).toMatch(/not complete within 60000 ms/);
    expect(clock.now() - 1_700_000_000_000).toBe(60_000);
    await client.stop();
  });

  it("bounds a download that never ends by limits.maxPackageBytes", async () => {
    current = offer(4, { endless: { url: files.url("/endless") } });
    const { client, store } = start({ limits: { maxPackageBytes: 1024 * 1024 } });
    const failed = statusOf(client, "endless", FAILED);
    await client.start();
    const statuses = await failed;
    expect(statuses.packages.endless?.errorMessage).toMatch(/over 1048576 bytes/);
    expect(await store.list()).toEqual([]);
    await client.stop();
  });

  it("does not let a stuck download hold back a newer, unrelated offer", async () => {
    const good = new Uint8Array([1, 2, 3]);
    files.files.set("good", good);
    current = offer(5, { stuck: { url: files.url("/hang") } });
    const { client, store } = start();
    const stuckFailed: string[] = [];
    client.on("packageStatuses", (s) => {
      if (s.packages.stuck?.status === FAILED) stuckFailed.push(s.packages.stuck.errorMessage);
    });
    await client.start();
    await files.requested("/hang");
    const installed = statusOf(client, "good", INSTALLED);
    // No time passes: the stuck download is cancelled by the newer offer, not by a deadline.
    deliver(client, offer(6, { good: { url: files.url("/file/good"), contentHash: sha256(good) } }));
    const statuses = await installed;
    expect(statuses.packages.stuck).toBeUndefined();
    expect(statuses.serverProvidedAllPackagesHash).toEqual(new Uint8Array([6]));
    expect(store.content("good")).toEqual(good);
    await client.idle();
    await client.stop();
    // The stuck request was cancelled, not left open until its deadline, and being
    // superseded is not a failure to report.
    expect(files.abandoned).toContain("/hang");
    expect(stuckFailed).toEqual([]);
  });
});
