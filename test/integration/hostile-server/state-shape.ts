/** The states the kill -9 test writes: state n is recognisable from any of its parts. */
import type { ClientState } from "../../../src/client/state-store.js";

/** State number `n`: the UID starts with n, the hash repeats it, the message's length varies with it. */
export function stateFor(n: number): ClientState {
  const uid = new Uint8Array(16);
  new DataView(uid.buffer).setUint32(0, n);
  return {
    instanceUid: uid,
    remoteConfig: {
      hash: new Uint8Array(32).fill(n % 256),
      status: "applied",
      // Sizes from a few bytes to ~200 KiB, so a kill lands at every stage of a write.
      errorMessage: "x".repeat((n * 7919) % 200_000),
    },
  };
}

/** The n a loaded state claims, after checking that every part agrees with it. */
export function numberOf(state: ClientState): number {
  const uid = state.instanceUid;
  if (uid === undefined || uid.length !== 16) throw new Error("state without a 16-byte UID");
  const n = new DataView(uid.buffer, uid.byteOffset).getUint32(0);
  const expected = stateFor(n);
  if (JSON.stringify(state) !== JSON.stringify(expected)) throw new Error(`state ${n} is not the one written`);
  return n;
}
