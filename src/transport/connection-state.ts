/**
 * Connection state of a client transport, as one tagged union with one transition
 * function. Transports dispatch events; the function decides the next state, so the
 * legal moves live in one place.
 */
import type { OpampError } from "../wire/errors.js";

/** Where a client connection stands. */
export type ConnectionState =
  | { readonly t: "idle" }
  | { readonly t: "connecting"; readonly attempt: number }
  | { readonly t: "connected" }
  | { readonly t: "backoff"; readonly until: number; readonly attempt: number; readonly error: OpampError }
  | { readonly t: "stopping" }
  | { readonly t: "stopped" };

/** Something that happened to a connection. */
export type ConnectionEvent =
  | { readonly type: "connect" }
  | { readonly type: "connected" }
  | { readonly type: "failed"; readonly error: OpampError; readonly until: number }
  | { readonly type: "stop" }
  | { readonly type: "stopped" };

/** The state before start(). */
export const INITIAL_CONNECTION_STATE: ConnectionState = { t: "idle" };

/**
 * The next state after `event`, or the same object when the event does not apply (an
 * event after stop, or "connected" when not connecting). Callers compare identity to
 * learn whether anything changed.
 */
export function transition(state: ConnectionState, event: ConnectionEvent): ConnectionState {
  if (state.t === "stopped") return state;
  switch (event.type) {
    case "stop":
      return { t: "stopping" };
    case "stopped":
      return { t: "stopped" };
  }
  if (state.t === "stopping") return state;
  switch (event.type) {
    case "connect": {
      if (state.t === "connecting") return state;
      const attempt = state.t === "backoff" ? state.attempt + 1 : 1;
      return { t: "connecting", attempt };
    }
    case "connected":
      return state.t === "connected" ? state : { t: "connected" };
    case "failed": {
      const attempt = state.t === "connecting" ? state.attempt : state.t === "backoff" ? state.attempt : 1;
      return { t: "backoff", until: event.until, attempt, error: event.error };
    }
  }
}
