/**
 * Contract suite for {@link ServerStore} implementations. Call it from a test file with
 * your runner's functions and a factory that returns a fresh, empty store; it registers a
 * `describe` block of tests that every store must pass.
 *
 * @example
 * ```ts
 * import * as vitest from "vitest";
 * import { serverStoreContract } from "opamp-sdk/testing";
 * serverStoreContract(vitest, "my postgres store", async () => new PgServerStore(await freshDb()));
 * ```
 */
import type { ServerStore, StoredAgent } from "../server/store.js";
import type { ContractTestApi } from "./test-api.js";

/** Makes a fresh empty store; `dispose` (optional) runs after each test. */
export type ServerStoreFactory = () =>
  | ServerStore
  | Promise<ServerStore>
  | {
      /** The store under test. */
      store: ServerStore;
      /** Releases what the store holds (connections, a test database); runs after each test. */
      dispose(): Promise<void> | void;
    }
  | Promise<{
      /** The store under test. */
      store: ServerStore;
      /** Releases what the store holds (connections, a test database); runs after each test. */
      dispose(): Promise<void> | void;
    }>;

const UID_A = "018f2c6e-0000-7000-8000-00000000000a";
const UID_B = "018f2c6e-0000-7000-8000-00000000000b";

function bytes(...values: number[]): Uint8Array {
  return new Uint8Array(values);
}

/** Compares byte arrays by value, whatever their concrete class (Buffer, Uint8Array). */
function same(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return a !== undefined && a.length === b.length && a.every((v, i) => v === b[i]);
}

async function open(factory: ServerStoreFactory): Promise<{ store: ServerStore; dispose(): Promise<void> }> {
  const made = await factory();
  if ("store" in made && "dispose" in made) {
    return { store: made.store, dispose: async () => made.dispose() };
  }
  return { store: made as ServerStore, dispose: async () => undefined };
}

/**
 * Registers the ServerStore contract tests under `describe(name)`.
 *
 * @param test - the test runner's `describe`, `it` and `expect` (e.g. `import * as vitest from "vitest"`).
 * @param name - label of the implementation under test.
 * @param factory - returns a new, empty store for every test.
 */
export function serverStoreContract(test: ContractTestApi, name: string, factory: ServerStoreFactory): void {
  const { describe, expect, it } = test;
  const withStore = (fn: (store: ServerStore) => Promise<void>) => async () => {
    const { store, dispose } = await open(factory);
    try {
      await fn(store);
    } finally {
      await dispose();
    }
  };

  describe(`ServerStore contract: ${name}`, () => {
    it(
      "returns undefined for an agent never written",
      withStore(async (store) => {
        expect(await store.getAgent(UID_A)).toBeUndefined();
        expect(await store.getDesired(UID_A)).toBeUndefined();
        expect(await store.listDeliveries(UID_A)).toEqual([]);
      }),
    );

    it(
      "round-trips an agent's state and replaces it on the next write",
      withStore(async (store) => {
        const first: StoredAgent = { instanceUid: UID_A, state: bytes(1, 2, 3), lastSeen: 1000 };
        await store.putAgent(first);
        const read = await store.getAgent(UID_A);
        expect(read?.instanceUid).toBe(UID_A);
        expect(same(read?.state, bytes(1, 2, 3))).toBe(true);
        expect(read?.lastSeen).toBe(1000);
        await store.putAgent({ instanceUid: UID_A, state: bytes(9), lastSeen: 2000 });
        const again = await store.getAgent(UID_A);
        expect(same(again?.state, bytes(9))).toBe(true);
        expect(again?.lastSeen).toBe(2000);
        expect(await store.getAgent(UID_B)).toBeUndefined();
      }),
    );

    it(
      "reads back a state written also in pieces (stateFields) as their concatenation",
      withStore(async (store) => {
        // What OpAMPServer writes: the pieces, and `state` equal to their concatenation
        // (built by a getter when read). A store may keep either; the state read back is
        // the same, and never carries the pieces.
        const pieces = [bytes(0x0a, 2, 1, 2), bytes(0x10, 7), bytes(0x2a, 1, 9)];
        const whole = bytes(0x0a, 2, 1, 2, 0x10, 7, 0x2a, 1, 9);
        let built: Uint8Array | undefined;
        await store.putAgent({
          instanceUid: UID_A,
          lastSeen: 10,
          stateFields: pieces,
          get state() {
            built ??= Uint8Array.from(pieces.flatMap((p) => [...p]));
            return built;
          },
        });
        await store.putAgent({ instanceUid: UID_B, lastSeen: 20, stateFields: [whole], state: whole });
        for (let i = 0; i < 2; i++) {
          const a = await store.getAgent(UID_A);
          expect(same(a?.state, whole)).toBe(true);
          expect(a?.lastSeen).toBe(10);
          expect(a?.stateFields).toBeUndefined();
        }
        expect(same((await store.getAgent(UID_B))?.state, whole)).toBe(true);
        // Replaced by the next write, in pieces or whole.
        await store.putAgent({
          instanceUid: UID_A,
          lastSeen: 11,
          stateFields: [bytes(0x10, 8)],
          state: bytes(0x10, 8),
        });
        expect(same((await store.getAgent(UID_A))?.state, bytes(0x10, 8))).toBe(true);
        await store.putAgent({ instanceUid: UID_A, lastSeen: 12, state: bytes(0x10, 9) });
        const last = await store.getAgent(UID_A);
        expect(same(last?.state, bytes(0x10, 9))).toBe(true);
        expect(last?.lastSeen).toBe(12);
        expect(same((await store.getAgent(UID_B))?.state, whole)).toBe(true);
      }),
    );

    it(
      "keeps the principal a UID is bound to with the agent, replaced by each write",
      withStore(async (store) => {
        await store.putAgent({ instanceUid: UID_A, lastSeen: 1, state: bytes(0x10, 1), boundPrincipal: "alice" });
        await store.putAgent({ instanceUid: UID_B, lastSeen: 1, state: bytes(0x10, 1) });
        expect((await store.getAgent(UID_A))?.boundPrincipal).toBe("alice");
        expect((await store.getAgent(UID_B))?.boundPrincipal).toBeUndefined();
        await store.putAgent({ instanceUid: UID_A, lastSeen: 2, state: bytes(0x10, 2), boundPrincipal: "bob" });
        expect((await store.getAgent(UID_A))?.boundPrincipal).toBe("bob");
      }),
    );

    it(
      "keeps desired state per agent, each field independent",
      withStore(async (store) => {
        await store.putDesired(UID_A, { remoteConfig: bytes(1), packagesAvailable: bytes(2) });
        await store.putDesired(UID_B, { connectionSettings: bytes(3), sentConnectionSettingsHash: bytes(4) });
        const a = await store.getDesired(UID_A);
        expect(same(a?.remoteConfig, bytes(1))).toBe(true);
        expect(same(a?.packagesAvailable, bytes(2))).toBe(true);
        expect(a?.connectionSettings).toBeUndefined();
        const b = await store.getDesired(UID_B);
        expect(same(b?.connectionSettings, bytes(3))).toBe(true);
        expect(same(b?.sentConnectionSettingsHash, bytes(4))).toBe(true);
        expect(a?.sentConnectionSettingsHash).toBeUndefined();
        expect(b?.remoteConfig).toBeUndefined();
        await store.putDesired(UID_A, { remoteConfig: bytes(7) });
        const replaced = await store.getDesired(UID_A);
        expect(same(replaced?.remoteConfig, bytes(7))).toBe(true);
        expect(replaced?.packagesAvailable).toBeUndefined();
      }),
    );

    it(
      "appends delivery history in order, one delivery per (kind, hash)",
      withStore(async (store) => {
        await store.appendDelivery(UID_A, "remoteConfig", bytes(1), { status: "offered", at: 1 });
        await store.appendDelivery(UID_A, "remoteConfig", bytes(1), { status: "applying", at: 2 });
        await store.appendDelivery(UID_A, "remoteConfig", bytes(2), { status: "offered", at: 3 });
        await store.appendDelivery(UID_A, "remoteConfig", bytes(1), {
          status: "failed",
          at: 4,
          errorMessage: "bad yaml",
        });
        await store.appendDelivery(UID_A, "packages", bytes(1), { status: "offered", at: 5 });
        await store.appendDelivery(UID_B, "remoteConfig", bytes(1), { status: "offered", at: 6 });
        const list = await store.listDeliveries(UID_A);
        expect(list.map((d) => [d.kind, [...d.hash]])).toEqual([
          ["remoteConfig", [1]],
          ["remoteConfig", [2]],
          ["packages", [1]],
        ]);
        expect(list[0]?.instanceUid).toBe(UID_A);
        expect(list[0]?.history.map((h) => h.status)).toEqual(["offered", "applying", "failed"]);
        expect(list[0]?.history[2]?.errorMessage).toBe("bad yaml");
        expect(list[0]?.history.map((h) => h.at)).toEqual([1, 2, 4]);
        expect((await store.listDeliveries(UID_B)).length).toBe(1);
      }),
    );

    it(
      "forgets everything about an agent on delete, and ignores unknown UIDs",
      withStore(async (store) => {
        await store.putAgent({ instanceUid: UID_A, state: bytes(1), lastSeen: 1 });
        await store.putDesired(UID_A, { remoteConfig: bytes(1) });
        await store.appendDelivery(UID_A, "remoteConfig", bytes(1), { status: "offered", at: 1 });
        await store.putAgent({ instanceUid: UID_B, state: bytes(2), lastSeen: 2 });
        await store.deleteAgent(UID_A);
        await store.deleteAgent("018f2c6e-0000-7000-8000-0000000000ff");
        expect(await store.getAgent(UID_A)).toBeUndefined();
        expect(await store.getDesired(UID_A)).toBeUndefined();
        expect(await store.listDeliveries(UID_A)).toEqual([]);
        expect(await store.getAgent(UID_B)).toBeDefined();
      }),
    );

    it(
      "returns snapshots: a list already read does not change with later writes",
      withStore(async (store) => {
        await store.appendDelivery(UID_A, "remoteConfig", bytes(1), { status: "offered", at: 1 });
        const before = await store.listDeliveries(UID_A);
        await store.appendDelivery(UID_A, "remoteConfig", bytes(1), { status: "applied", at: 2 });
        expect(before[0]?.history.length).toBe(1);
        expect((await store.listDeliveries(UID_A))[0]?.history.length).toBe(2);
      }),
    );
  });
}
