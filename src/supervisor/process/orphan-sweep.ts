/**
 * The last line of defence against an agent outliving its supervisor. The Collector's
 * opamp extension polls the supervisor's pid (`ppid`) and exits when it is gone, and a
 * Collector writing to the dead supervisor's pipes dies of SIGPIPE; an agent that does
 * neither is found here at the next start, through the pid file each run leaves, and
 * stopped. The pid file holds the process start time, so a pid reused by an unrelated
 * process is never signalled.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { readFileIfExists, writeFileAtomic } from "../state/atomic-file.js";
import type { StateDirectory } from "../state/state-dir.js";
import { processExists, processStartTime } from "./agent-process.js";

/** Records a started agent: pid and start time. */
export async function writeAgentPidFile(state: StateDirectory, pid: number): Promise<void> {
  await writeFileAtomic(state.agentPidPath, `${pid} ${processStartTime(pid) ?? ""}\n`);
}

/**
 * Stops an agent left running by an earlier supervisor of this state directory (SIGTERM
 * to its process group, SIGKILL after `timeoutMs`). Resolves with the pid it stopped, or
 * undefined when there was none. Linux only (it needs the start time to be sure); elsewhere
 * it relies on the extension's `ppid` polling.
 */
export async function sweepOrphanedAgent(state: StateDirectory, timeoutMs: number): Promise<number | undefined> {
  const bytes = await readFileIfExists(state.agentPidPath);
  if (bytes === undefined) return undefined;
  const [pidText, startTime] = bytes.toString("utf8").trim().split(" ");
  const pid = Number.parseInt(pidText ?? "", 10);
  await state.remove(state.agentPidPath);
  if (!Number.isInteger(pid) || pid <= 0 || startTime === undefined || startTime === "") return undefined;
  if (processStartTime(pid) !== startTime) return undefined;
  const kill = (signal: NodeJS.Signals) => {
    for (const target of [-pid, pid]) {
      try {
        process.kill(target, signal);
      } catch {
        // No such group (it was not a leader) or already gone.
      }
    }
  };
  kill("SIGTERM");
  const deadline = Date.now() + timeoutMs;
  while (processExists(pid) && processStartTime(pid) === startTime && Date.now() < deadline) await sleep(50);
  if (processExists(pid) && processStartTime(pid) === startTime) kill("SIGKILL");
  return pid;
}
