/** The typed emitter behind OpAMPClient and OpAMPServer: Node's EventEmitter contract plus listener isolation. */
import { on, once } from "node:events";
import { describe, expect, it } from "vitest";
import { OpAMPClient } from "../../../src/client/index.js";
import { type EmitterPolicy, TypedEmitter } from "../../../src/internal/emitter.js";
import { OpAMPServer } from "../../../src/server/index.js";
import { OpampError } from "../../../src/wire/errors.js";

interface Events {
  ping: [n: number];
  error: [error: Error];
}

function recorder() {
  const failed: { cause: unknown; event: string | symbol }[] = [];
  const unhandled: unknown[] = [];
  const tooMany: number[] = [];
  const policy: EmitterPolicy = {
    listenerFailed: (cause, event) => failed.push({ cause, event }),
    unhandledError: (error) => unhandled.push(error),
    tooManyListeners: (_event, count) => tooMany.push(count),
  };
  return { emitter: new TypedEmitter<Events>(policy), failed, unhandled, tooMany };
}

describe("TypedEmitter", () => {
  it("calls listeners in order, once-listeners once, prepended ones first", () => {
    const { emitter } = recorder();
    const calls: string[] = [];
    emitter.on("ping", (n) => calls.push(`on${n}`));
    emitter.once("ping", (n) => calls.push(`once${n}`));
    emitter.prependListener("ping", (n) => calls.push(`first${n}`));
    expect(emitter.emit("ping", 1)).toBe(true);
    emitter.emit("ping", 2);
    expect(calls).toEqual(["first1", "on1", "once1", "first2", "on2"]);
    expect(emitter.listenerCount("ping")).toBe(2);
    expect(emitter.eventNames()).toEqual(["ping"]);
  });

  it("removes the last registration of a listener, and all of them on removeAllListeners", () => {
    const { emitter } = recorder();
    const calls: number[] = [];
    const listener = (n: number) => calls.push(n);
    emitter.on("ping", listener).on("ping", listener);
    emitter.off("ping", listener);
    emitter.emit("ping", 1);
    expect(calls).toEqual([1]);
    emitter.removeAllListeners();
    expect(emitter.emit("ping", 2)).toBe(false);
    expect(calls).toEqual([1]);
  });

  it("keeps calling the other listeners when one throws, and reports the throw", () => {
    const { emitter, failed } = recorder();
    const calls: number[] = [];
    emitter.on("ping", () => {
      throw new Error("boom");
    });
    emitter.on("ping", (n) => calls.push(n));
    emitter.emit("ping", 7);
    expect(calls).toEqual([7]);
    expect(failed).toEqual([{ cause: expect.objectContaining({ message: "boom" }), event: "ping" }]);
  });

  it("reports the rejection of an async listener instead of leaving it unhandled", async () => {
    const { emitter, failed } = recorder();
    emitter.on("ping", async () => {
      await Promise.resolve();
      throw new Error("async boom");
    });
    emitter.emit("ping", 1);
    await new Promise((resolve) => setImmediate(resolve));
    expect(failed).toEqual([{ cause: expect.objectContaining({ message: "async boom" }), event: "ping" }]);
  });

  it("hands an error without listeners to the policy instead of throwing it", () => {
    const { emitter, unhandled } = recorder();
    const error = new Error("nobody listens");
    expect(emitter.emit("error", error)).toBe(false);
    expect(unhandled).toEqual([error]);
  });

  it("tells the policy once when a listener count passes setMaxListeners", () => {
    const { emitter, tooMany } = recorder();
    emitter.setMaxListeners(2);
    expect(emitter.getMaxListeners()).toBe(2);
    for (let i = 0; i < 4; i++) emitter.on("ping", () => undefined);
    expect(tooMany).toEqual([3]);
  });

  it("a once-listener removed by an earlier listener of the same emit is not called", () => {
    const { emitter } = recorder();
    const calls: string[] = [];
    const later = () => calls.push("later");
    emitter.on("ping", () => emitter.off("ping", later));
    emitter.once("ping", later);
    emitter.emit("ping", 1);
    expect(calls).toEqual([]);
  });
});

describe("node:events helpers on the client and the server", () => {
  it("once() and on() accept OpAMPServer and OpAMPClient (types and behaviour)", async () => {
    const server = new OpAMPServer({ allowAnonymous: true });
    const client = new OpAMPClient({ transport: { url: "ws://127.0.0.1:9/v1/opamp" } });
    const waited = once(server, "error");
    server.emit("error", new OpampError("internal", "x"));
    const [error] = await waited;
    expect(error).toMatchObject({ code: "internal", message: "x" });

    const iterator = on(client, "connectFailed");
    client.emit("connectFailed", new OpampError("timeout", "t1"));
    const next = await iterator[Symbol.asyncIterator]().next();
    expect(next.value).toEqual([expect.objectContaining({ code: "timeout" })]);
    await iterator.return?.();
    // on() removed its listeners when the iteration ended.
    expect(client.listenerCount("connectFailed")).toBe(0);
  });
});
