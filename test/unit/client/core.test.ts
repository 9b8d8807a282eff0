/** ClientCore: compression, full state, failed sends, custom message queue, flags. */
import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ClientCore } from "../../../src/client/core.js";
import {
  AvailableComponentsSchema,
  ComponentDetailsSchema,
  ComponentHealthSchema,
  CustomMessageSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import { agentDescription } from "../../../src/wire/agent-description.js";
import { AgentToServerFlag } from "../../../src/wire/capabilities.js";

const uid = new Uint8Array(16).fill(1);
const health = (status: string) => create(ComponentHealthSchema, { healthy: true, status });

function makeCore(maxCustom = 4) {
  let pending = 0;
  const core = new ClientCore(uid, () => pending++, maxCustom);
  core.setCapabilities(1n);
  return { core, pending: () => pending };
}

describe("ClientCore", () => {
  it("sends everything first, then nothing until something changes", () => {
    const { core } = makeCore();
    core.set("agentDescription", agentDescription({ identifying: { a: "b" } }));
    core.set("health", health("ok"));
    const first = core.take("connect")!;
    expect(first.sequenceNum).toBe(0n);
    expect(first.agentDescription).toBeDefined();
    expect(first.health).toBeDefined();
    expect(core.take("pending")).toBeUndefined();
    const beat = core.take("heartbeat")!;
    expect(beat.sequenceNum).toBe(1n);
    expect(beat.health).toBeUndefined();
    expect(beat.capabilities).toBe(1n);
  });

  it("does not count setting an equal value as a change", () => {
    const { core, pending } = makeCore();
    core.set("health", health("ok"));
    core.take("connect");
    const before = pending();
    core.set("health", health("ok"));
    expect(pending()).toBe(before);
    expect(core.hasPending()).toBe(false);
  });

  it("resends the fields of a message that never left", () => {
    const { core } = makeCore();
    core.set("health", health("ok"));
    core.take("connect");
    core.set("health", health("degraded"));
    const lost = core.take("pending")!;
    core.returned(lost);
    const retry = core.take("pending")!;
    expect(retry.health?.status).toBe("degraded");
    // The lost message's number is reused: the server sees 0, 1 and no gap.
    expect(lost.sequenceNum).toBe(1n);
    expect(retry.sequenceNum).toBe(1n);
    expect(core.take("heartbeat")?.sequenceNum).toBe(2n);
  });

  it("sends every sub-message again after requestFullState", () => {
    const { core } = makeCore();
    core.set("health", health("ok"));
    core.set("agentDescription", agentDescription({}));
    core.take("connect");
    core.requestFullState();
    const full = core.take("pending")!;
    expect(full.health).toBeDefined();
    expect(full.agentDescription).toBeDefined();
  });

  it("sends the components hash alone until the full map is asked for", () => {
    const { core } = makeCore();
    core.set(
      "availableComponents",
      create(AvailableComponentsSchema, {
        hash: new Uint8Array([1]),
        components: { x: create(ComponentDetailsSchema) },
      }),
    );
    const first = core.take("connect")!;
    expect(Object.keys(first.availableComponents!.components)).toEqual([]);
    core.requestFullComponents();
    const full = core.take("pending")!;
    expect(Object.keys(full.availableComponents!.components)).toEqual(["x"]);
    expect(core.take("pending")).toBeUndefined();
  });

  it("queues custom messages one per message, bounded, and settles them", async () => {
    const { core } = makeCore(2);
    core.take("connect");
    const a = core.sendCustomMessage(create(CustomMessageSchema, { capability: "c", type: "a" }));
    const b = core.sendCustomMessage(create(CustomMessageSchema, { capability: "c", type: "b" }));
    await expect(
      core.sendCustomMessage(create(CustomMessageSchema, { capability: "c", type: "x" })),
    ).rejects.toMatchObject({
      code: "limit_exceeded",
    });
    const first = core.take("pending")!;
    expect(first.customMessage?.type).toBe("a");
    core.returned(first); // lost: goes back to the front
    const again = core.take("pending")!;
    expect(again.customMessage?.type).toBe("a");
    core.sent(again);
    await a;
    const second = core.take("pending")!;
    expect(second.customMessage?.type).toBe("b");
    core.failPending(Object.assign(new Error("stopped"), { code: "not_running" }) as never);
    await expect(b).rejects.toThrow("stopped");
  });

  it("sets and clears RequestInstanceUid and adopts a new UID", () => {
    const { core } = makeCore();
    core.setRequestInstanceUid(true);
    expect(core.take("connect")!.flags).toBe(AgentToServerFlag.RequestInstanceUid);
    const next = new Uint8Array(16).fill(9);
    core.setInstanceUid(next);
    core.setRequestInstanceUid(false);
    const msg = core.take("pending")!;
    expect(msg.flags).toBe(0n);
    expect(msg.instanceUid).toEqual(next);
  });

  it("marks a capability change as something to send", () => {
    const { core } = makeCore();
    core.take("connect");
    core.setCapabilities(3n);
    expect(core.take("pending")?.capabilities).toBe(3n);
  });

  it("adds agent_disconnect to the last message", () => {
    const { core } = makeCore();
    core.take("connect");
    expect(core.takeDisconnect().agentDisconnect).toBeDefined();
  });
});
