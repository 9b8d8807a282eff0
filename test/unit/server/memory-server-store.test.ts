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

  it("gives back the exact bytes of states with large descriptions and configs, shared or not", async () => {
    const field = (n: number, body: Uint8Array) => {
      // tag, two-byte varint length (bodies here are 128..16383 bytes), body
      const out = new Uint8Array(3 + body.length);
      out[0] = (n << 3) | 2;
      out[1] = (body.length & 0x7f) | 0x80;
      out[2] = body.length >> 7;
      out.set(body, 3);
      return out;
    };
    const concat = (parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
    const config = field(6, new Uint8Array(8000).fill(7));
    const store = new InMemoryServerStore();
    const states = [1, 2].map((i) =>
      concat([
        field(1, new Uint8Array(16).fill(i)),
        field(3, new Uint8Array(2000).fill(i)),
        config,
        field(7, new Uint8Array(200).fill(i)),
      ]),
    );
    await store.putAgent({ instanceUid: "a", state: states[0]!, lastSeen: 1 });
    await store.putAgent({ instanceUid: "b", state: states[1]!, lastSeen: 2 });
    await store.putAgent({ instanceUid: "a", state: states[0]!, lastSeen: 3 });
    expect((await store.getAgent("a"))?.state).toEqual(states[0]);
    expect((await store.getAgent("b"))?.state).toEqual(states[1]);
  });
});
