/**
 * Issue 16, defect 1: one message must not end the server process. A decode error longer
 * than a close frame can carry, and any unexpected throw inside a socket callback, cost
 * one socket at most; the error is reported and every other agent carries on.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { type AnyValue, AnyValueSchema } from "../../../src/gen/opamp/v1/anyvalue_pb.js";
import { AgentToServerSchema } from "../../../src/gen/opamp/v1/opamp_pb.js";
import type { Clock, TimerHandle } from "../../../src/internal/clock.js";
import { MAX_CLOSE_REASON_BYTES } from "../../../src/internal/close-reason.js";
import type { OpampError } from "../../../src/wire/index.js";
import { PROTOBUF_CONTENT_TYPE } from "../../../src/wire/index.js";
import { startServer, stopAll } from "./helpers.js";
import { HttpStatusError, rawPost, TestAgent, type Transport, waitFor } from "./test-agent.js";

afterEach(stopAll);

const transports: Transport[] = ["websocket", "http"];

/** An attribute value nested `depth` key-value lists deep: 3 protobuf levels per step. */
function nestedValue(depth: number): AnyValue {
  let value = create(AnyValueSchema, { value: { case: "stringValue", value: "leaf" } });
  for (let i = 0; i < depth; i++) {
    value = create(AnyValueSchema, {
      value: { case: "kvlistValue", value: { values: [{ key: "k", value }] } },
    });
  }
  return value;
}

/** The system clock, with one injected throw in the next setTimeout or clearTimeout when armed. */
class FaultyClock implements Clock {
  armed: "setTimeout" | "clearTimeout" | undefined;

  now(): number {
    return Date.now();
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    this.#maybeThrow("setTimeout");
    return globalThis.setTimeout(fn, ms);
  }

  clearTimeout(handle: TimerHandle): void {
    this.#maybeThrow("clearTimeout");
    globalThis.clearTimeout(handle as ReturnType<typeof globalThis.setTimeout>);
  }

  #maybeThrow(name: "setTimeout" | "clearTimeout"): void {
    if (this.armed !== name) return;
    this.armed = undefined;
    throw new Error(`injected ${name} failure`);
  }
}

describe.each(transports)("one message cannot crash the server (%s)", (transport) => {
  it("refuses a message nested past the decoder's depth limit with a bounded reason, and serves others", async () => {
    const { server, url } = await startServer();
    const errors: OpampError[] = [];
    server.on("error", (e) => errors.push(e));
    const bystander = await TestAgent.connect(transport, url);
    await bystander.send(bystander.fullState());
    const attacker = await TestAgent.connect(transport, url);
    const message = attacker.fullState();
    message.agentDescription!.nonIdentifyingAttributes.push({
      $typeName: "opamp.proto.v1.KeyValue",
      key: "deep",
      value: nestedValue(40),
    });
    if (transport === "websocket") {
      void attacker.send(message);
      const closed = await attacker.waitClosed();
      expect(closed.code).toBe(1002);
      expect(Buffer.byteLength(closed.reason)).toBeLessThanOrEqual(MAX_CLOSE_REASON_BYTES);
      expect(closed.reason).toMatch(/^cannot parse opamp\.proto\.v1\.AgentToServer/);
    } else {
      const error = await attacker.send(message).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(HttpStatusError);
      expect((error as HttpStatusError).status).toBe(400);
    }
    expect((await bystander.send(bystander.message())).errorResponse).toBeUndefined();
    expect(errors.filter((e) => e.code === "internal")).toEqual([]);
    bystander.close();
  });
});

describe("socket callbacks are guarded", () => {
  it("reports a throw inside the WebSocket message callback and closes that socket alone with 1011", async () => {
    const clock = new FaultyClock();
    const { server, url } = await startServer({ clock });
    const bystander = await TestAgent.connect("websocket", url);
    await bystander.send(bystander.fullState());
    const victim = await TestAgent.connect("websocket", url);
    const reported = waitFor(server, "error");
    // The first clearTimeout of the victim's first message is its handshake timer.
    clock.armed = "clearTimeout";
    victim.sendRaw(new Uint8Array([0]));
    const [error] = await reported;
    expect(error.code).toBe("internal");
    expect(error.message).toContain("injected clearTimeout failure");
    expect((await victim.waitClosed()).code).toBe(1011);
    expect((await bystander.send(bystander.message())).errorResponse).toBeUndefined();
    expect(server.connectionCount).toBe(1);
    bystander.close();
  });

  it("reports a throw while accepting an upgrade, drops that socket and frees its slot", async () => {
    const clock = new FaultyClock();
    const { server, url } = await startServer({ clock, limits: { maxConnections: 2 } });
    const bystander = await TestAgent.connect("websocket", url);
    await bystander.send(bystander.fullState());
    const reported = waitFor(server, "error");
    // The first setTimeout of an anonymous upgrade is the new socket's handshake timer.
    clock.armed = "setTimeout";
    const victim = await TestAgent.connect("websocket", url).catch(() => undefined);
    const [error] = await reported;
    expect(error.code).toBe("internal");
    if (victim !== undefined) await victim.waitClosed();
    // The slot came back: a new agent gets in next to the bystander.
    const next = await TestAgent.connect("websocket", url);
    expect((await next.send(next.fullState())).errorResponse).toBeUndefined();
    expect((await bystander.send(bystander.message())).errorResponse).toBeUndefined();
    next.close();
    bystander.close();
  });

  it("answers a failing HTTP exchange with 500 and a body that does not echo the error", async () => {
    const { server, url } = await startServer({
      hooks: {
        authorizeMessage: () => {
          throw new Error("secret detail from deep inside");
        },
      },
    });
    const reported = waitFor(server, "error");
    const agent = await TestAgent.connect("http", url);
    const res = await rawPost(
      url,
      { "content-type": PROTOBUF_CONTENT_TYPE },
      toBinary(AgentToServerSchema, agent.fullState()),
    );
    expect(res.status).toBe(500);
    const body = new TextDecoder().decode(res.body);
    expect(body).toBe("internal error");
    const [error] = await reported;
    expect(error.code).toBe("hook_failed");
  });
});
