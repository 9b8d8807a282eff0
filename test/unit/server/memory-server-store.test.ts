import * as vitest from "vitest";
import { describe, expect, it } from "vitest";
import { InMemoryServerStore } from "../../../src/server/index.js";
import { serverStoreContract } from "../../../src/testing/server-store-contract.js";

serverStoreContract(vitest, "InMemoryServerStore", () => new InMemoryServerStore());

describe("InMemoryServerStore", () => {
  it("keeps at most maxDeliveriesPerAgent deliveries, dropping the oldest", async () => {
    const store = new InMemoryServerStore({ maxDeliveriesPerAgent: 2 });
    for (const h of [1, 2, 3]) {
      await store.appendDelivery("a", "remoteConfig", new Uint8Array([h]), { status: "offered", at: h });
    }
    expect((await store.listDeliveries("a")).map((d) => d.hash[0])).toEqual([2, 3]);
  });
});
