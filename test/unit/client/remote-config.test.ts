/** RemoteConfigHandler: one hook call per new hash, even when offers overtake each other. */
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import type { RemoteConfigResult } from "../../../src/client/hooks.js";
import { RemoteConfigHandler } from "../../../src/client/remote-config.js";
import {
  AgentRemoteConfigSchema,
  type RemoteConfigStatus,
  RemoteConfigStatuses,
} from "../../../src/gen/opamp/v1/opamp_pb.js";

const offer = (hash: number) => create(AgentRemoteConfigSchema, { configHash: new Uint8Array([hash]) });

function makeHandler() {
  const applied: number[] = [];
  const statuses: RemoteConfigStatus[] = [];
  const gates: (() => void)[] = [];
  const handler = new RemoteConfigHandler({
    hook: async ({ hash }): Promise<RemoteConfigResult | undefined> => {
      applied.push(hash[0]!);
      await new Promise<void>((resolve) => gates.push(resolve));
      return undefined;
    },
    signal: new AbortController().signal,
    setStatus: (status) => statuses.push(status),
    persist: async () => undefined,
    refreshEffectiveConfig: async (alongWith) => alongWith(),
    error: (error) => {
      throw error;
    },
  });
  const releaseAll = () => {
    for (const gate of gates.splice(0)) gate();
  };
  return { handler, applied, statuses, releaseAll };
}

describe("RemoteConfigHandler", () => {
  it("does not re-apply the config being applied when the server goes back to it", async () => {
    const { handler, applied, statuses, releaseAll } = makeHandler();
    handler.offer(offer(1));
    await Promise.resolve();
    expect(applied).toEqual([1]); // A is being applied…
    handler.offer(offer(2)); // …B is queued…
    handler.offer(offer(1)); // …and the server reverts to A before B started.
    releaseAll();
    await handler.idle();
    releaseAll();
    await handler.idle();
    expect(applied).toEqual([1]);
    expect(statuses.at(-1)?.status).toBe(RemoteConfigStatuses.RemoteConfigStatuses_APPLIED);
    expect(statuses.at(-1)?.lastRemoteConfigHash).toEqual(new Uint8Array([1]));
  });

  it("applies only the newest of several queued offers, and each new hash once", async () => {
    const { handler, applied, releaseAll } = makeHandler();
    handler.offer(offer(1));
    await Promise.resolve();
    handler.offer(offer(2));
    handler.offer(offer(3));
    handler.offer(offer(3));
    releaseAll();
    await new Promise((resolve) => setImmediate(resolve));
    releaseAll();
    await handler.idle();
    handler.offer(offer(3));
    await handler.idle();
    expect(applied).toEqual([1, 3]);
  });
});
