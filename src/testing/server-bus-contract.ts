/**
 * Contract suite for {@link ServerBus} implementations (the replica seam of OpAMPServer).
 * Call it from a test file with your runner's functions and a factory that returns a bus
 * with no replica joined; it registers a `describe` block of tests every bus must pass.
 *
 * @example
 * ```ts
 * import * as vitest from "vitest";
 * import { serverBusContract } from "opamp-sdk/testing";
 * serverBusContract(vitest, "my bus", async () => new MyBus(await freshDb()));
 * ```
 */
import type { BusMember, ServerBus } from "../server/bus.js";
import type { ContractTestApi } from "./test-api.js";

/** Makes a fresh bus; `dispose` (optional) runs after each test. */
export type ServerBusFactory = () =>
  | ServerBus
  | Promise<ServerBus>
  | {
      /** The bus under test. */
      bus: ServerBus;
      /** Releases what the bus holds (connections, a test database); runs after each test. */
      dispose(): Promise<void> | void;
    }
  | Promise<{
      /** The bus under test. */
      bus: ServerBus;
      /** Releases what the bus holds (connections, a test database); runs after each test. */
      dispose(): Promise<void> | void;
    }>;

const UID_A = "018f2c6e-0000-7000-8000-0000000000a1";
const UID_B = "018f2c6e-0000-7000-8000-0000000000b2";
/** Generous: a bus on a database delivers in milliseconds. */
const WAIT_MS = 10_000;

/** A member and what it received. */
interface Joined {
  readonly member: BusMember;
  readonly received: { from: string; payload: Uint8Array }[];
  /** Resolves once `count` messages have been received. */
  receivedCount(count: number): Promise<void>;
}

async function joinAs(bus: ServerBus, replicaId: string): Promise<Joined> {
  const received: { from: string; payload: Uint8Array }[] = [];
  const waiters: { count: number; resolve(): void }[] = [];
  const member = await bus.join(replicaId, (from, payload) => {
    received.push({ from, payload });
    for (const w of [...waiters]) {
      if (received.length >= w.count) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  return {
    member,
    received,
    receivedCount(count) {
      if (received.length >= count) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${replicaId} received ${received.length} of ${count} messages`)),
          WAIT_MS,
        );
        waiters.push({
          count,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
      });
    },
  };
}

function text(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}

/**
 * Registers the ServerBus contract tests under `describe(name)`.
 *
 * @param test - the test runner's `describe`, `it` and `expect` (e.g. `import * as vitest from "vitest"`).
 * @param name - label of the implementation under test.
 * @param factory - returns a new bus, with no replica joined, for every test.
 */
export function serverBusContract(test: ContractTestApi, name: string, factory: ServerBusFactory): void {
  const { describe, expect, it } = test;
  const withBus = (fn: (bus: ServerBus) => Promise<void>) => async () => {
    const made = await factory();
    const { bus, dispose } =
      "bus" in made && "dispose" in made ? made : { bus: made as ServerBus, dispose: () => undefined };
    try {
      await fn(bus);
    } finally {
      await dispose();
    }
  };

  describe(`ServerBus contract: ${name}`, () => {
    it(
      "delivers to the addressed replica, with the sender's id, in the order sent, bytes intact whatever their size",
      withBus(async (bus) => {
        const a = await joinAs(bus, "replica-a");
        const b = await joinAs(bus, "replica-b");
        const c = await joinAs(bus, "replica-c");
        const big = new Uint8Array(200_000).map((_, i) => (i * 7) & 0xff);
        const sends: Promise<void>[] = [];
        for (let i = 0; i < 20; i++) sends.push(a.member.send("replica-b", new TextEncoder().encode(`m${i}`)));
        sends.push(a.member.send("replica-b", big));
        sends.push(a.member.send("replica-b", new TextEncoder().encode("after the big one")));
        sends.push(c.member.send("replica-a", new TextEncoder().encode("to a")));
        await Promise.all(sends);
        await b.receivedCount(22);
        await a.receivedCount(1);
        expect(b.received.map((r) => r.from)).toEqual(Array(22).fill("replica-a"));
        expect(b.received.slice(0, 20).map((r) => text(r.payload))).toEqual(
          Array.from({ length: 20 }, (_, i) => `m${i}`),
        );
        const got = b.received[20]!.payload;
        expect(got.length).toBe(big.length);
        expect(got.every((v, i) => v === big[i])).toBe(true);
        expect(text(b.received[21]!.payload)).toBe("after the big one");
        expect(a.received.map((r) => [r.from, text(r.payload)])).toEqual([["replica-c", "to a"]]);
        expect(c.received).toEqual([]);
        await Promise.all([a.member.leave(), b.member.leave(), c.member.leave()]);
      }),
    );

    it(
      "claim, locate and release: the newest claim wins and names the replica that held the agent",
      withBus(async (bus) => {
        const a = (await joinAs(bus, "replica-a")).member;
        const b = (await joinAs(bus, "replica-b")).member;
        expect(await a.locate(UID_A)).toBeUndefined();
        expect([...(await a.claim([UID_A, UID_B]))]).toEqual([]);
        expect(await b.locate(UID_A)).toBe("replica-a");
        expect(await a.locate(UID_A)).toBe("replica-a");
        // Claimed again by its holder: nobody else held it.
        expect([...(await a.claim([UID_A]))]).toEqual([]);
        // The agent moved to b.
        expect([...(await b.claim([UID_A]))]).toEqual([[UID_A, "replica-a"]]);
        expect(await a.locate(UID_A)).toBe("replica-b");
        // a no longer holds it: its release leaves b's claim alone.
        await a.release([UID_A]);
        expect(await a.locate(UID_A)).toBe("replica-b");
        await b.release([UID_A]);
        expect(await a.locate(UID_A)).toBeUndefined();
        expect(await b.locate(UID_B)).toBe("replica-a");
        await Promise.all([a.leave(), b.leave()]);
      }),
    );

    it(
      "a replica that leaves holds nothing any more, and messages to it are dropped without error",
      withBus(async (bus) => {
        const a = await joinAs(bus, "replica-a");
        const b = await joinAs(bus, "replica-b");
        await a.member.claim([UID_A]);
        await a.member.leave();
        await a.member.leave(); // idempotent
        expect(await b.member.locate(UID_A)).toBeUndefined();
        expect([...(await b.member.claim([UID_A]))]).toEqual([]);
        await b.member.send("replica-a", new Uint8Array([1]));
        await b.member.send("replica-nobody", new Uint8Array([2]));
        await b.member.leave();
      }),
    );

    it(
      "joining with the id of a live replica takes its place: its claims are dropped",
      withBus(async (bus) => {
        const first = await joinAs(bus, "replica-a");
        const other = await joinAs(bus, "replica-b");
        await first.member.claim([UID_A]);
        const second = await joinAs(bus, "replica-a");
        expect(await other.member.locate(UID_A)).toBeUndefined();
        await other.member.send("replica-a", new TextEncoder().encode("hello"));
        await second.receivedCount(1);
        expect(text(second.received[0]!.payload)).toBe("hello");
        await Promise.all([second.member.leave(), other.member.leave()]);
      }),
    );
  });
}
