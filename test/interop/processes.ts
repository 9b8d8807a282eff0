// Processes the field-interop tests start (the Collector's opampsupervisor, a Collector on
// its own): each runs in a process group of its own, so that stopping it also reaches what
// it started (the supervisor's Collector). Tests kill each group when they end, passed or
// failed (field.ts); a group not yet killed when the test process exits is killed then.
// Output is kept for assertions and failure messages.

import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";

/** How a process ended. */
export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A process started by {@link startProcess}. */
export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  /** Everything written to stdout and stderr so far, interleaved as it arrived. */
  output(): string;
  /** Resolves with the first match of `pattern` in the output (already there or to come). */
  waitForOutput(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  /** Resolves when the process itself has exited (its group may live on). */
  readonly exited: Promise<Exit>;
  /** Sends `signal` to the process only (not its group), as a service manager would. */
  signal(signal: NodeJS.Signals): void;
  /**
   * Sends `signal` to the process and waits for it to exit; after `graceMs` the whole group
   * gets SIGKILL. Resolves with how the process ended.
   */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<Exit>;
  /** SIGKILL to the whole process group (the process and everything it started). */
  killGroup(): void;
}

const live = new Set<ManagedProcess>();

function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

function killGroupNow(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // ESRCH: the group is already gone.
  }
}

// A test runner that dies (or a worker that is torn down) must not leave Collectors behind.
process.once("exit", () => {
  for (const p of live) killGroupNow(p.pid);
});

/** Starts `command` in a new process group; see {@link ManagedProcess}. */
export function startProcess(
  name: string,
  command: string,
  args: readonly string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): ManagedProcess {
  const child: ChildProcess = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
    // Its own process group: killing -pid reaches the Collector a supervisor started.
    detached: true,
  });
  if (child.pid === undefined) throw new Error(`${name}: could not start ${command}`);
  const pid = child.pid;
  let text = "";
  let exit: Exit | undefined;
  const listeners = new Set<() => void>();
  const notify = (): void => {
    for (const l of [...listeners]) l();
  };
  child.stdout?.setEncoding("utf8").on("data", (s: string) => {
    text += s;
    notify();
  });
  child.stderr?.setEncoding("utf8").on("data", (s: string) => {
    text += s;
    notify();
  });
  const exited = new Promise<Exit>((resolve) => {
    child.once("exit", (code, signal) => {
      exit = { code, signal };
      resolve(exit);
      notify();
    });
    child.once("error", (error) => {
      text += `\n[spawn error] ${error.message}\n`;
      exit = { code: null, signal: null };
      resolve(exit);
      notify();
    });
  });

  const managed: ManagedProcess = {
    name,
    pid,
    output: () => text,
    exited,
    waitForOutput(pattern, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const m = text.match(pattern);
          const ended = exit;
          if (m !== null) finish(() => resolve(m));
          else if (ended !== undefined)
            finish(() => reject(new Error(`${name} exited (${describeExit(ended)}) before printing ${pattern}`)));
        };
        const timer = setTimeout(
          () => finish(() => reject(new Error(`${name} did not print ${pattern} within ${timeoutMs} ms`))),
          timeoutMs,
        );
        const finish = (settle: () => void): void => {
          clearTimeout(timer);
          listeners.delete(check);
          settle();
        };
        listeners.add(check);
        check();
      });
    },
    signal(sig) {
      if (exit === undefined) child.kill(sig);
    },
    async stop(sig = "SIGTERM", graceMs = 15_000) {
      if (exit === undefined) {
        child.kill(sig);
        const timer = setTimeout(() => killGroupNow(pid), graceMs);
        await exited;
        clearTimeout(timer);
      }
      return exited;
    },
    killGroup() {
      // A process that exited and took its group with it is left alone: its ID may be reused.
      if (exit === undefined || groupExists(pid)) killGroupNow(pid);
      // Forgotten once killed, for the same reason.
      live.delete(managed);
    },
  };
  live.add(managed);
  return managed;
}

function describeExit(exit: Exit): string {
  return exit.signal !== null ? `signal ${exit.signal}` : `code ${exit.code}`;
}

/** PIDs of the live members of process group `pgid` (Linux: read from /proc). */
export function processGroupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // exited while we looked
    }
    // pid (comm) state ppid pgrp …; comm may hold spaces and parentheses, so split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] === "Z") continue; // a zombie is dead, only not yet reaped
    if (Number(fields[2]) === pgid) members.push(Number(entry));
  }
  return members;
}

/**
 * Waits until process group `pgid` has no live member, checking every 100 ms (a process
 * we did not start gives no exit event to wait on). Rejects after `timeoutMs` with the
 * PIDs still alive.
 */
export async function waitForGroupGone(pgid: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const members = processGroupMembers(pgid);
    if (members.length === 0) return;
    if (Date.now() > end)
      throw new Error(`process group ${pgid} still has ${members.join(", ")} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Waits until the text of the file at `path` satisfies `test`, reading it every 200 ms (a
 * log another process writes gives no event to wait on). Rejects after `timeoutMs` with
 * the end of the file.
 */
export async function waitForFile(path: string, test: (text: string) => boolean, timeoutMs: number): Promise<string> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const text = await readFile(path, "utf8").catch(() => "");
    if (test(text)) return text;
    if (Date.now() > end)
      throw new Error(`${path} did not show what was awaited within ${timeoutMs} ms; it ends:\n${text.slice(-2000)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
