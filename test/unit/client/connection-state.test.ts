/** The connection state machine's legal moves. */
import { describe, expect, it } from "vitest";
import { INITIAL_CONNECTION_STATE, transition } from "../../../src/transport/connection-state.js";
import { OpampError } from "../../../src/wire/errors.js";

const error = new OpampError("transport_failed", "boom");

describe("transition", () => {
  it("walks idle → connecting → connected → backoff → connecting, counting attempts", () => {
    let s = transition(INITIAL_CONNECTION_STATE, { type: "connect" });
    expect(s).toEqual({ t: "connecting", status: "connecting", attempt: 1 });
    s = transition(s, { type: "failed", error, until: 5 });
    expect(s).toMatchObject({ t: "backoff", until: 5, attempt: 1 });
    s = transition(s, { type: "connect" });
    expect(s).toEqual({ t: "connecting", status: "connecting", attempt: 2 });
    s = transition(s, { type: "connected" });
    expect(s).toEqual({ t: "connected", status: "connected" });
  });

  it("returns the same object for events that do not apply", () => {
    const connecting = transition(INITIAL_CONNECTION_STATE, { type: "connect" });
    expect(transition(connecting, { type: "connect" })).toBe(connecting);
    const stopped = transition(transition(connecting, { type: "stop" }), { type: "stopped" });
    expect(stopped).toEqual({ t: "stopped", status: "stopped" });
    expect(transition(stopped, { type: "connect" })).toBe(stopped);
    const stopping = transition(connecting, { type: "stop" });
    expect(transition(stopping, { type: "connected" })).toBe(stopping);
    expect(transition(stopping, { type: "failed", error, until: 1 })).toBe(stopping);
  });
});
