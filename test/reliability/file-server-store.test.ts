/**
 * The fault suite's file-backed store: it passes the ServerStore contract, reads back after
 * a reopen everything written before, and survives a write cut short at any byte.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import * as vitest from "vitest";
import { afterAll, describe, expect, it } from "vitest";
import { serverStoreContract } from "../../src/testing/index.js";
import { crc32, FileServerStore } from "./file-server-store.js";

const root = mkdtempSync(join(tmpdir(), "opamp-file-store-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let made = 0;
const freshPath = () => join(root, `store-${++made}.log`);

serverStoreContract(vitest, "FileServerStore", () => {
  const store = FileServerStore.open(freshPath());
  return { store, dispose: () => store.close() };
});

const UID = "018f2c6e-0000-7000-8000-00000000000a";
const OTHER = "018f2c6e-0000-7000-8000-00000000000b";

/** Writes one of each record kind, so a replay has every kind to get right. */
async function writeSome(store: FileServerStore): Promise<void> {
  await store.putAgent({ instanceUid: UID, state: new Uint8Array([1, 2, 3]), lastSeen: 10, boundPrincipal: "alice" });
  await store.putDesired(UID, { remoteConfig: new Uint8Array([4]), sentConnectionSettingsHash: new Uint8Array([5]) });
  await store.appendDelivery(UID, "remoteConfig", new Uint8Array([9, 9]), { status: "offered", at: 11 });
  await store.appendDelivery(UID, "remoteConfig", new Uint8Array([9, 9]), {
    status: "failed",
    at: 12,
    errorMessage: "bad yaml",
  });
  await store.putAgent({ instanceUid: OTHER, state: new Uint8Array([7]), lastSeen: 13 });
  await store.deleteAgent(OTHER);
}

async function expectSome(store: FileServerStore): Promise<void> {
  const agent = await store.getAgent(UID);
  expect([...(agent?.state ?? [])]).toEqual([1, 2, 3]);
  expect(agent?.lastSeen).toBe(10);
  expect(agent?.boundPrincipal).toBe("alice");
  const desired = await store.getDesired(UID);
  expect([...(desired?.remoteConfig ?? [])]).toEqual([4]);
  expect([...(desired?.sentConnectionSettingsHash ?? [])]).toEqual([5]);
  expect(desired?.packagesAvailable).toBeUndefined();
  const [delivery, ...more] = await store.listDeliveries(UID);
  expect(more).toEqual([]);
  expect([...(delivery?.hash ?? [])]).toEqual([9, 9]);
  expect(delivery?.history).toEqual([
    { status: "offered", at: 11 },
    { status: "failed", at: 12, errorMessage: "bad yaml" },
  ]);
  expect(await store.getAgent(OTHER)).toBeUndefined();
}

describe("FileServerStore durability", () => {
  it("computes CRC-32 as zlib does", () => {
    // The CRC-32 of "123456789" is the check value of the IEEE polynomial.
    expect(crc32(new TextEncoder().encode("123456789"))).toBe(0xcbf43926);
    // And a gzip trailer (the CRC-32 of the content) agrees.
    const content = new Uint8Array(4096).map((_, i) => (i * 7919) & 0xff);
    const gz = gzipSync(content);
    expect(crc32(content)).toBe(gz.readUInt32LE(gz.length - 8));
  });

  it("reads back after a reopen everything written before, and appends after it", async () => {
    const path = freshPath();
    const first = FileServerStore.open(path);
    await writeSome(first);
    first.close();
    const second = FileServerStore.open(path);
    expect(second.recovery).toEqual({ records: 6, tornBytes: 0 });
    await expectSome(second);
    await second.appendDelivery(UID, "remoteConfig", new Uint8Array([9, 9]), { status: "applied", at: 14 });
    second.close();
    const third = FileServerStore.open(path);
    expect((await third.listDeliveries(UID))[0]?.history.map((h) => h.status)).toEqual([
      "offered",
      "failed",
      "applied",
    ]);
    third.close();
  });

  it("writes each record before the write's promise settles (no buffering in the process)", async () => {
    const path = freshPath();
    const store = FileServerStore.open(path);
    const before = statSync(path).size;
    const pending = store.appendDelivery(UID, "packages", new Uint8Array([1]), { status: "offered", at: 1 });
    // Not awaited yet: the bytes are already in the file.
    expect(statSync(path).size).toBeGreaterThan(before);
    await pending;
    store.close();
  });

  it("cuts off a record torn at any byte and keeps every whole record before it", async () => {
    const path = freshPath();
    const store = FileServerStore.open(path);
    await writeSome(store);
    const whole = statSync(path).size;
    await store.appendDelivery(UID, "remoteConfig", new Uint8Array([9, 9]), { status: "applied", at: 15 });
    store.close();
    const full = readFileSync(path);
    for (let cut = whole; cut < full.length; cut++) {
      writeFileSync(path, full.subarray(0, cut));
      const readOnly = FileServerStore.open(path, { readOnly: true });
      expect(readOnly.recovery).toEqual({ records: 6, tornBytes: cut - whole });
      await expectSome(readOnly);
      expect(statSync(path).size).toBe(cut);
      const reopened = FileServerStore.open(path);
      expect(statSync(path).size).toBe(whole);
      // What is appended after the cut is readable behind the records kept.
      await reopened.appendDelivery(UID, "remoteConfig", new Uint8Array([9, 9]), { status: "applying", at: 16 });
      reopened.close();
      const again = FileServerStore.open(path, { readOnly: true });
      expect(again.recovery.tornBytes).toBe(0);
      expect((await again.listDeliveries(UID))[0]?.history.map((h) => h.status)).toEqual([
        "offered",
        "failed",
        "applying",
      ]);
    }
  });

  it("stops at a record whose checksum does not match", async () => {
    const path = freshPath();
    const store = FileServerStore.open(path);
    await writeSome(store);
    const whole = statSync(path).size;
    await store.putAgent({ instanceUid: OTHER, state: new Uint8Array([8, 8, 8]), lastSeen: 20 });
    store.close();
    const bytes = readFileSync(path);
    bytes[bytes.length - 3] = (bytes[bytes.length - 3] ?? 0) ^ 0xff;
    writeFileSync(path, bytes);
    const reopened = FileServerStore.open(path);
    expect(reopened.recovery.records).toBe(6);
    expect(await reopened.getAgent(OTHER)).toBeUndefined();
    reopened.close();
    expect(statSync(path).size).toBe(whole);
  });

  it("refuses writes when read-only or closed", async () => {
    const path = freshPath();
    writeFileSync(path, "");
    const readOnly = FileServerStore.open(path, { readOnly: true });
    await expect(readOnly.putDesired(UID, {})).rejects.toThrow(/closed or read-only/);
    const store = FileServerStore.open(path);
    store.close();
    await expect(store.deleteAgent(UID)).rejects.toThrow(/closed or read-only/);
  });
});
