/**
 * One run of the agent process: spawned in its own process group (so a stop reaches
 * whatever it forked, and a terminal's Ctrl-C goes to the supervisor, which stops it in
 * order), output piped to a sink, exit observed, stopped with SIGTERM then SIGKILL.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { OpampError } from "../../wire/errors.js";

/** How to launch the agent (what the `command` hook returns). */
export interface AgentCommand {
  /** Executable path. */
  readonly executable: string;
  /** Command-line arguments, without the executable. */
  readonly args: readonly string[];
  /** Extra environment variables on top of the supervisor's own. */
  readonly env: Readonly<Record<string, string>>;
  /** Working directory. Default the supervisor's. */
  readonly cwd?: string;
}

/** How a run ended. */
export interface AgentExit {
  /** Exit code, or null when ended by a signal. */
  readonly code: number | null;
  /** The signal that ended it, or null when it exited by itself. */
  readonly signal: NodeJS.Signals | null;
  /** How long it ran, in ms. */
  readonly ranForMs: number;
}

/** Describes an exit for humans: "exit code 1" / "signal SIGKILL". */
export function describeExit(exit: AgentExit): string {
  return exit.signal !== null ? `signal ${exit.signal}` : `exit code ${exit.code}`;
}

/**
 * The start time of a process in clock ticks since boot (Linux `/proc/<pid>/stat`, field
 * 22), which with the pid names one process for ever: a pid reused later has another
 * start time. Undefined elsewhere, when the process is gone, or when it is a zombie (dead,
 * waiting to be reaped).
 */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: count from the last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[0] === "Z" ? undefined : fields[19];
  } catch {
    return undefined;
  }
}

/** True when a process with this pid exists (a zombie counts). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (cause) {
    return (cause as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** A running agent. */
export class AgentProcess {
  readonly pid: number;
  readonly startedAt: number;
  /** Settles when the process has exited (never rejects). */
  readonly exited: Promise<AgentExit>;
  #exit: AgentExit | undefined;
  readonly #child: ChildProcess;

  private constructor(child: ChildProcess, pid: number, startedAt: number, exited: Promise<AgentExit>) {
    this.#child = child;
    this.pid = pid;
    this.startedAt = startedAt;
    this.exited = exited.then((exit) => {
      this.#exit = exit;
      return exit;
    });
  }

  /**
   * Spawns the agent. Resolves once it runs (has a pid).
   * @throws OpampError `agent_failed` when it cannot be started (missing file, not executable).
   */
  static spawn(
    command: AgentCommand,
    output: (chunk: Buffer, stream: "stdout" | "stderr") => void,
    now: () => number,
  ): Promise<AgentProcess> {
    return new Promise((resolve, reject) => {
      let child: ChildProcess;
      try {
        child = spawn(command.executable, [...command.args], {
          env: { ...process.env, ...command.env },
          ...(command.cwd === undefined ? {} : { cwd: command.cwd }),
          stdio: ["ignore", "pipe", "pipe"],
          detached: process.platform !== "win32",
          windowsHide: true,
        });
      } catch (cause) {
        reject(
          new OpampError("agent_failed", `cannot start ${command.executable}: ${(cause as Error).message}`, { cause }),
        );
        return;
      }
      const startedAt = now();
      child.stdout?.on("data", (chunk: Buffer) => output(chunk, "stdout"));
      child.stderr?.on("data", (chunk: Buffer) => output(chunk, "stderr"));
      const exited = new Promise<AgentExit>((resolveExit) => {
        // "close" comes after the output pipes are drained, so the log tail is complete.
        child.once("close", (code, signal) => resolveExit({ code, signal, ranForMs: now() - startedAt }));
      });
      child.once("error", (cause) => {
        if (child.pid === undefined) {
          reject(new OpampError("agent_failed", `cannot start ${command.executable}: ${cause.message}`, { cause }));
        }
      });
      child.once("spawn", () => resolve(new this(child, child.pid!, startedAt, exited)));
    });
  }

  /** Whether it has exited. */
  get running(): boolean {
    return this.#exit === undefined;
  }

  /** Sends a signal to the process group (the process alone on Windows). */
  signal(signal: NodeJS.Signals): void {
    if (!this.running) return;
    try {
      if (process.platform === "win32") this.#child.kill(signal);
      else process.kill(-this.pid, signal);
    } catch {
      // Already gone between the check and the kill.
    }
  }

  /**
   * Stops it: SIGTERM, then SIGKILL if it has not exited after `timeoutMs`. Resolves with
   * how it ended.
   */
  async stop(timeoutMs: number): Promise<AgentExit> {
    if (!this.running) return this.exited;
    this.signal("SIGTERM");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.signal("SIGKILL");
        resolve();
      }, timeoutMs);
    });
    const exit = await Promise.race([this.exited, killed.then(() => this.exited)]);
    clearTimeout(timer);
    return exit;
  }
}
