/**
 * Connection state of a client transport, as one tagged union with one transition
 * function. Transports dispatch events; the function decides the next state, so the
 * legal moves live in one place.
 */
import type { OpampError } from "../wire/errors.js";

/**
 * Where a client connection stands. `status` names the state; `t` is the same tag under
 * its short name (kept for existing code).
 *
 * - `idle`: not started.
 * - `connecting`: attempt number `attempt` (1 for the first) is under way.
 * - `connected`: the WebSocket is open, or the last HTTP request was answered.
 * - `backoff`: attempt `attempt` failed with `error`; the next starts at clock time
 *   `until` (ms since the epoch).
 * - `stopping`, `stopped`: `stop()` was called / has finished.
 */
export type ConnectionState =
  | {
      /** Same as `status` (the short name, kept for existing code). */
      readonly t: "idle";
      /** Not started. */
      readonly status: "idle";
    }
  | {
      /** Same as `status` (the short name, kept for existing code). */
      readonly t: "connecting";
      /** An attempt is under way. */
      readonly status: "connecting";
      /** Which attempt, 1 for the first since the last connection. */
      readonly attempt: number;
    }
  | {
      /** Same as `status` (the short name, kept for existing code). */
      readonly t: "connected";
      /** The WebSocket is open, or the last HTTP request was answered. */
      readonly status: "connected";
    }
  | {
      /** Same as `status` (the short name, kept for existing code). */
      readonly t: "backoff";
      /** An attempt failed; the client waits before the next. */
      readonly status: "backoff";
      /** Clock time (ms since the epoch) at which the next attempt starts. */
      readonly until: number;
      /** The attempt that failed. */
      readonly attempt: number;
      /** Why it failed. */
      readonly error: OpampError;
    }
  | {
      /** Same as `status` (the short name, kept for existing code). */
      readonly t: "stopping";
      /** `stop()` was called and is under way. */
      readonly status: "stopping";
    }
  | {
      /** Same as `status` (the short name, kept for existing code). */
      readonly t: "stopped";
      /** `stop()` has finished; the client does not start again. */
      readonly status: "stopped";
    };

/** Something that happened to a connection. */
export type ConnectionEvent =
  | { readonly type: "connect" }
  | { readonly type: "connected" }
  | { readonly type: "failed"; readonly error: OpampError; readonly until: number }
  | { readonly type: "stop" }
  | { readonly type: "stopped" };

/** The state before start(). */
export const INITIAL_CONNECTION_STATE: ConnectionState = Object.freeze({ t: "idle", status: "idle" });

/**
 * The next state after `event`, or the same object when the event does not apply (an
 * event after stop, or "connected" when not connecting). Callers compare identity to
 * learn whether anything changed.
 */
export function transition(state: ConnectionState, event: ConnectionEvent): ConnectionState {
  if (state.t === "stopped") return state;
  switch (event.type) {
    case "stop":
      return { t: "stopping", status: "stopping" };
    case "stopped":
      return { t: "stopped", status: "stopped" };
  }
  if (state.t === "stopping") return state;
  switch (event.type) {
    case "connect": {
      if (state.t === "connecting") return state;
      const attempt = state.t === "backoff" ? state.attempt + 1 : 1;
      return { t: "connecting", status: "connecting", attempt };
    }
    case "connected":
      return state.t === "connected" ? state : { t: "connected", status: "connected" };
    case "failed": {
      const attempt = state.t === "connecting" ? state.attempt : state.t === "backoff" ? state.attempt : 1;
      return { t: "backoff", status: "backoff", until: event.until, attempt, error: event.error };
    }
  }
}
