// Steps of the supervisor scenarios, each waiting on what the server saw (server-probe.ts),
// and the counts the scenarios assert on.

import type { AuthRequest } from "../../src/server/index.js";
import { STEP_TIMEOUT_MS } from "./field.js";
import { type AgentSnapshot, hex, type ServerProbe } from "./server-probe.js";

/** Waits for the agent's first connection and returns its snapshot. */
export function connected(probe: ServerProbe, from = 0): Promise<AgentSnapshot> {
  return probe.waitFor(
    "the supervisor to connect",
    (r) => (r.kind === "connected" ? r.agent : undefined),
    STEP_TIMEOUT_MS,
    from,
  );
}

/**
 * Over HTTP an offer goes out with the reply to the agent's next poll. A key offered a few
 * milliseconds too late for the reply at hand (the recipe stores the key's hash first, which
 * under load can outlast the supervisor's second poll) waits for the poll after, and until
 * an offer sets a heartbeat the Collector's supervisor polls every 30 s (opamp-go's default).
 */
const KEY_IN_USE_TIMEOUT_MS = STEP_TIMEOUT_MS + 30_000;

/**
 * Waits until the agent speaks on a connection authenticated with a credential that starts
 * with `prefix` and is not `except` (an accepted authentication, then a message after it);
 * returns the credential. Over HTTP every poll authenticates, so a new key shows as the
 * first request that carries it.
 */
export async function keyInUse(probe: ServerProbe, prefix: string, from = 0, except?: string): Promise<string> {
  const at = await probe.waitFor(
    `a connection authenticated with ${prefix}…`,
    (r, index) =>
      r.kind === "auth" && r.accepted && r.credential?.startsWith(prefix) && r.credential !== except
        ? index
        : undefined,
    KEY_IN_USE_TIMEOUT_MS,
    from,
  );
  await probe.waitFor("a message on it", (r) => (r.kind === "message" ? r : undefined), STEP_TIMEOUT_MS, at + 1);
  return (probe.records[at] as { credential: string }).credential;
}

export function healthy(probe: ServerProbe, from: number): Promise<AgentSnapshot> {
  return probe.waitForAgent(
    "health StatusOK",
    (a) => a.health?.healthy === true && a.health.status === "StatusOK",
    STEP_TIMEOUT_MS,
    from,
  );
}

export function remoteConfigStatus(
  probe: ServerProbe,
  status: "APPLYING" | "APPLIED" | "FAILED",
  hash: Uint8Array,
  from: number,
): Promise<AgentSnapshot> {
  return probe.waitForAgent(
    `remote config ${status} ${hex(hash).slice(0, 12)}…`,
    (a) => a.remoteConfig?.status === status && a.remoteConfig.hash === hex(hash),
    STEP_TIMEOUT_MS,
    from,
  );
}

/** An authenticate request as the server would build it, to ask the recipe about a credential. */
export function requestWith(authorization: string, transport: "websocket" | "http"): AuthRequest {
  return {
    headers: { authorization },
    url: new URL("http://127.0.0.1/v1/opamp"),
    remoteAddress: "127.0.0.1",
    tlsPeerCertificate: undefined,
    tlsAuthorized: false,
    transport,
  };
}

/** Every accepted credential in order, and how often the credential changed. */
export function credentialRuns(probe: ServerProbe): string[] {
  const runs: string[] = [];
  for (const r of probe.of("auth")) if (r.accepted && r.credential !== runs.at(-1)) runs.push(r.credential ?? "");
  return runs;
}

/** Messages that start a fresh OpAMP client session (opamp-go restarts sequence numbers at 0). */
export function sessionStarts(probe: ServerProbe, from = 0): number {
  return probe.records.slice(from).filter((r) => r.kind === "message" && r.seq === 0n).length;
}
