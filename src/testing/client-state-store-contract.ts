/**
 * The contract every {@link ClientStateStore} must meet, as a test suite. Call it from a
 * test file with your runner's functions and a factory that returns a fresh, empty store
 * each time:
 *
 * @example
 * ```ts
 * import * as vitest from "vitest";
 * clientStateStoreContract(vitest, "my store", async () => new MyStore(tempPath()));
 * ```
 */
import type { ClientState, ClientStateStore } from "../client/state-store.js";
import type { ContractTestApi } from "./test-api.js";

/** A full state with every field set, bytes included. */
function sample(): ClientState {
  return {
    instanceUid: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]),
    remoteConfig: { hash: new Uint8Array([0xde, 0xad]), status: "applied", errorMessage: "" },
    connectionSettings: {
      endpoint: "wss://opamp.example.com/v1/opamp",
      headers: [{ name: "Authorization", value: "Bearer agent-key" }],
      heartbeatIntervalSeconds: 15,
      offerHash: new Uint8Array([9]),
      certificate: { cert: new Uint8Array([1]), privateKey: new Uint8Array([2]), caCert: new Uint8Array(0) },
      proxy: {
        url: "http://proxy.example.com:3128/",
        connectHeaders: [{ name: "Proxy-Authorization", value: "Basic YWdlbnQ6a2V5" }],
      },
    },
    candidateConnectionSettings: { endpoint: "wss://other.example.com/v1/opamp", headers: [] },
    allPackagesHash: new Uint8Array([0xff, 0x00, 0x7f]),
  };
}

/**
 * Registers the contract tests under `describe(name)`.
 * @param test - the test runner's `describe`, `it` and `expect` (e.g. `import * as vitest from "vitest"`)
 * @param factory - returns a new store with nothing saved; called once per test
 * @param reopen - optional: returns a second store over the same backing storage as the
 *   given one (e.g. the same file path), to prove state survives a restart
 */
export function clientStateStoreContract(
  test: ContractTestApi,
  name: string,
  factory: () => Promise<ClientStateStore>,
  reopen?: (store: ClientStateStore) => Promise<ClientStateStore>,
): void {
  const { describe, expect, it } = test;
  describe(`ClientStateStore contract: ${name}`, () => {
    it("loads undefined before anything is saved", async () => {
      const store = await factory();
      expect(await store.load()).toBeUndefined();
    });

    it("round-trips every field exactly, bytes as Uint8Array", async () => {
      const store = await factory();
      await store.save(sample());
      const loaded = await store.load();
      expect(loaded).toEqual(sample());
      expect(loaded?.instanceUid).toBeInstanceOf(Uint8Array);
      expect(loaded?.connectionSettings?.certificate?.caCert).toBeInstanceOf(Uint8Array);
    });

    it("replaces the whole state on save (a field left out is gone)", async () => {
      const store = await factory();
      await store.save(sample());
      await store.save({ instanceUid: new Uint8Array(16) });
      expect(await store.load()).toEqual({ instanceUid: new Uint8Array(16) });
    });

    it("does not share buffers with the caller", async () => {
      const store = await factory();
      const state = sample();
      await store.save(state);
      state.instanceUid?.fill(0);
      expect((await store.load())?.instanceUid?.[0]).toBe(1);
    });

    it("keeps the last of several concurrent saves", async () => {
      const store = await factory();
      await Promise.all([1, 2, 3, 4, 5].map((n) => store.save({ allPackagesHash: new Uint8Array([n]) })));
      const loaded = await store.load();
      expect(loaded?.allPackagesHash?.length).toBe(1);
    });

    if (reopen !== undefined) {
      it("survives being reopened", async () => {
        const store = await factory();
        await store.save(sample());
        const again = await reopen(store);
        expect(await again.load()).toEqual(sample());
      });
    }
  });
}
