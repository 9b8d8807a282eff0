/**
 * Calls an application hook so that every way it can fail — a rejection, a synchronous
 * throw, or (from JavaScript) a return value that is not a promise — ends up as one
 * settled promise. A hook must never be able to throw into a socket callback.
 */

/** Runs `hook(...args)`; a synchronous throw becomes a rejection. */
export function callHook<A extends unknown[], R>(hook: (...args: A) => Promise<R> | R, ...args: A): Promise<R> {
  try {
    return Promise.resolve(hook(...args));
  } catch (cause) {
    return Promise.reject(cause);
  }
}
