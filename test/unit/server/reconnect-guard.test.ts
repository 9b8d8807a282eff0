// The reconnect-loop guard on fake time: what counts as a loop, how long offers pause, and
// when an agent stops being watched.
import { describe, expect, it } from "vitest";
import { ReconnectGuard } from "../../../src/server/reconnect-guard.js";
import { ManualClock } from "../../../src/testing/index.js";

const WINDOW = 60_000;

function guard(max = 3) {
  const clock = new ManualClock(0);
  return { clock, guard: new ReconnectGuard(max, WINDOW, clock) };
}

describe("ReconnectGuard", () => {
  it("ignores sessions of agents it sent no settings to", () => {
    const { guard: g } = guard();
    for (let i = 0; i < 10; i++) expect(g.sessionStarted("a")).toBe(false);
    expect(g.paused("a")).toBe(false);
  });

  it("trips once when more than max sessions start within the window, and pauses offers", () => {
    const { clock, guard: g } = guard(3);
    g.offered("a");
    const trips: boolean[] = [];
    for (let i = 0; i < 6; i++) {
      clock.advance(1_000);
      trips.push(g.sessionStarted("a"));
    }
    expect(trips).toEqual([false, false, false, true, false, false]);
    expect(g.paused("a")).toBe(true);
    expect(g.paused("b")).toBe(false);
  });

  it("does not trip on sessions spread wider than the window", () => {
    const { clock, guard: g } = guard(3);
    g.offered("a");
    for (let i = 0; i < 8; i++) {
      clock.advance(WINDOW / 3 + 1);
      expect(g.sessionStarted("a")).toBe(false);
    }
    expect(g.paused("a")).toBe(false);
  });

  it("keeps offers paused while sessions go on, and resumes after a quiet window", () => {
    const { clock, guard: g } = guard(2);
    g.offered("a");
    for (let i = 0; i < 3; i++) g.sessionStarted("a");
    expect(g.paused("a")).toBe(true);
    clock.advance(WINDOW - 1);
    g.sessionStarted("a"); // still looping: the pause runs from this session
    clock.advance(WINDOW - 1);
    expect(g.paused("a")).toBe(true);
    clock.advance(2);
    expect(g.paused("a")).toBe(false);
    // A watch that lapsed is forgotten: the next sessions count from zero again.
    clock.advance(WINDOW + 1);
    expect(g.sessionStarted("a")).toBe(false);
    expect(g.sessionStarted("a")).toBe(false);
    expect(g.paused("a")).toBe(false);
  });

  it("reports a new episode after offers resumed", () => {
    const { clock, guard: g } = guard(1);
    g.offered("a");
    g.sessionStarted("a");
    expect(g.sessionStarted("a")).toBe(true);
    clock.advance(WINDOW + 1);
    g.offered("a");
    g.sessionStarted("a");
    expect(g.sessionStarted("a")).toBe(true);
  });
});
