/**
 * Runs the agent: one process at a time, its output to a rotating agent.log (or the
 * supervisor's logger) and to an in-memory tail, started and awaited until healthy,
 * stopped with SIGTERM then SIGKILL, and restarted after a crash with exponential backoff.
 * The runner never decides about configs: the supervisor calls it in order, one
 * operation at a time.
 */
import { EventEmitter } from "eventemitter3";
import type { Clock, TimerHandle } from "../internal/clock.js";
import { OpampError } from "../wire/errors.js";
import type { AgentConfig } from "./config/supervisor-config.js";
import { type AgentCommand, type AgentExit, AgentProcess, describeExit } from "./process/agent-process.js";
import { writeAgentPidFile } from "./process/orphan-sweep.js";
import { RestartBackoff } from "./process/restart-backoff.js";
import { LogTail, RotatingFile } from "./process/rotating-log.js";
import type { StateDirectory } from "./state/state-dir.js";

/** How a start ended. */
export type StartOutcome =
  | { readonly ok: true; readonly pid: number }
  | { readonly ok: false; readonly error: string; readonly exit?: AgentExit };

/** Decides whether a started agent is healthy (the `checkHealth` hook, or the default). */
export type HealthCheck = (input: {
  readonly pid: number;
  /** Clock time the process was spawned: reports from before it are from another run. */
  readonly startedAt: number;
  readonly signal: AbortSignal;
}) => Promise<{
  readonly healthy: boolean;
  readonly lastError?: string;
}>;

/** What the runner reports. */
export interface AgentRunnerEvents {
  started: (pid: number) => void;
  /** The process ended; `expected` when the supervisor stopped it. */
  exited: (exit: AgentExit & { readonly pid: number; readonly expected: boolean; readonly logTail: string }) => void;
  /** A crashed agent will be restarted after `delayMs` (attempt counts crashes since the backoff was last reset). */
  restartScheduled: (delayMs: number, attempt: number) => void;
  /** Output when `passthrough_logs` is on. */
  output: (line: string, stream: "stdout" | "stderr") => void;
  error: (error: OpampError) => void;
}

/** Dependencies of {@link AgentRunner}. */
export interface AgentRunnerDeps {
  readonly agent: AgentConfig;
  readonly state: StateDirectory;
  readonly clock: Clock;
  readonly random: () => number;
  /** The command for the next start (executable may change with packages). */
  readonly command: () => Promise<AgentCommand>;
  readonly checkHealth: HealthCheck;
  /** Runs a crash restart through the supervisor's queue. */
  readonly schedule: (restart: () => Promise<void>) => void;
}

/** Owns the agent process. */
export class AgentRunner extends EventEmitter<AgentRunnerEvents> {
  #process: AgentProcess | undefined;
  /** Pids the supervisor is stopping (their exit is expected). */
  readonly #stopping = new Set<number>();
  /** Whether the agent should be running: crash restarts only happen while true. */
  #wanted = false;
  /** The run a startHealthy() call is waiting on: its exit is the caller's to handle. */
  #awaited: AgentProcess | undefined;
  #restartTimer: TimerHandle | undefined;
  readonly #backoff: RestartBackoff;
  readonly #log: RotatingFile | undefined;
  readonly #tail: LogTail;
  #partial: Record<"stdout" | "stderr", string> = { stdout: "", stderr: "" };
  #closed = false;

  constructor(private readonly deps: AgentRunnerDeps) {
    super();
    const { agent, state } = deps;
    this.#backoff = new RestartBackoff(agent.restart, deps.random);
    this.#tail = new LogTail(agent.crashLogSnippetKib * 1024);
    this.#log = agent.passthroughLogs
      ? undefined
      : new RotatingFile(state.agentLogPath, agent.logMaxSizeMib * 1024 * 1024, agent.logMaxFiles, (cause) =>
          this.emit("error", new OpampError("storage_failed", `cannot write agent.log: ${cause.message}`, { cause })),
        );
  }

  /** The running process's pid, if any. */
  get pid(): number | undefined {
    return this.#process?.running === true ? this.#process.pid : undefined;
  }

  /** The tail of the current (or last) run's output, for crash and FAILED reports. */
  logTail(): string {
    return this.#tail.text();
  }

  /** Crashes counted by the backoff since it was last reset. */
  get restartAttempt(): number {
    return this.#backoff.attempt;
  }

  #output(chunk: Buffer, stream: "stdout" | "stderr"): void {
    this.#tail.push(chunk);
    if (this.#log !== undefined) {
      this.#log.write(chunk);
      return;
    }
    const text = this.#partial[stream] + chunk.toString("utf8");
    const lines = text.split("\n");
    this.#partial[stream] = lines.pop() ?? "";
    for (const line of lines) this.emit("output", line, stream);
  }

  /**
   * Stops any running agent, starts a new one and waits until the health check says
   * healthy, within `timeoutMs`. A failure leaves the agent stopped (crashed or killed)
   * with no restart scheduled: the caller decides (roll back, or {@link scheduleRestart}).
   */
  async startHealthy(timeoutMs: number): Promise<StartOutcome> {
    this.#cancelRestart();
    await this.stopAgent();
    this.#wanted = true;
    const started = await this.#spawn();
    if (!started.ok) return started;
    const proc = started.process;
    this.#awaited = proc;
    const abort = new AbortController();
    let timer: TimerHandle | undefined;
    const timedOut = new Promise<StartOutcome>((resolve) => {
      timer = this.deps.clock.setTimeout(() => {
        abort.abort(new OpampError("timeout", "health check timed out"));
        resolve({ ok: false, error: `the agent did not report healthy within ${timeoutMs} ms` });
      }, timeoutMs);
    });
    const exited = proc.exited.then(
      (exit): StartOutcome => ({
        ok: false,
        error: `the agent exited with ${describeExit(exit)} before it was healthy`,
        exit,
      }),
    );
    const healthy = this.deps
      .checkHealth({ pid: proc.pid, startedAt: proc.startedAt, signal: abort.signal })
      .then(
        (result): StartOutcome =>
          result.healthy
            ? { ok: true, pid: proc.pid }
            : { ok: false, error: `the agent reported unhealthy: ${result.lastError || "no error given"}` },
      )
      .catch((cause: unknown): StartOutcome => ({ ok: false, error: OpampError.from(cause, "hook_failed").message }));
    const outcome = await Promise.race([healthy, exited, timedOut]);
    if (timer !== undefined) this.deps.clock.clearTimeout(timer);
    abort.abort(new OpampError("aborted", "health check settled"));
    if (!outcome.ok) {
      // Not healthy: stop it so the caller starts from a known state (roll back or retry).
      this.#wanted = false;
      await this.#stopProcess(proc);
    } else {
      this.#backoff.reset();
    }
    if (this.#awaited === proc) this.#awaited = undefined;
    return outcome;
  }

  async #spawn(): Promise<{ ok: true; process: AgentProcess } | { ok: false; error: string }> {
    // Closed (the supervisor is stopping): nothing may start any more.
    if (this.#closed) return { ok: false, error: "the supervisor is stopping" };
    let command: AgentCommand;
    try {
      command = await this.deps.command();
    } catch (cause) {
      return { ok: false, error: `cannot build the agent command: ${OpampError.from(cause, "hook_failed").message}` };
    }
    this.#tail.clear();
    this.#partial = { stdout: "", stderr: "" };
    let proc: AgentProcess;
    if (this.#closed) return { ok: false, error: "the supervisor is stopping" };
    try {
      proc = await AgentProcess.spawn(
        command,
        (chunk, stream) => this.#output(chunk, stream),
        () => this.deps.clock.now(),
      );
    } catch (cause) {
      return { ok: false, error: OpampError.from(cause, "agent_failed").message };
    }
    this.#process = proc;
    await writeAgentPidFile(this.deps.state, proc.pid).catch((cause: unknown) =>
      this.emit("error", OpampError.from(cause, "storage_failed")),
    );
    this.emit("started", proc.pid);
    void proc.exited.then((exit) => this.#exited(proc, exit));
    return { ok: true, process: proc };
  }

  #exited(proc: AgentProcess, exit: AgentExit): void {
    const expected = this.#stopping.delete(proc.pid);
    const awaited = this.#awaited === proc;
    if (this.#process === proc) {
      this.#process = undefined;
      void this.deps.state.remove(this.deps.state.agentPidPath).catch(() => undefined);
    }
    for (const stream of ["stdout", "stderr"] as const) {
      if (this.#partial[stream] !== "") this.emit("output", this.#partial[stream], stream);
      this.#partial[stream] = "";
    }
    this.emit("exited", { ...exit, pid: proc.pid, expected, logTail: this.#tail.text() });
    if (!expected && !awaited && this.#wanted && !this.#closed) this.scheduleRestart(exit.ranForMs);
  }

  /**
   * Schedules a crash restart after the backoff delay (a run of `ranForMs` at least
   * `restart.stable_after` long resets the backoff first). The restart goes through the
   * supervisor's queue and is cancelled by any start or stop in between.
   */
  scheduleRestart(ranForMs = 0): void {
    if (this.#closed) return;
    this.#cancelRestart();
    this.#wanted = true;
    const delay = this.#backoff.next(ranForMs);
    this.emit("restartScheduled", delay, this.#backoff.attempt);
    this.#restartTimer = this.deps.clock.setTimeout(() => {
      this.#restartTimer = undefined;
      this.deps.schedule(async () => {
        if (!this.#wanted || this.#closed || this.#process?.running === true) return;
        const started = await this.#spawn();
        if (!started.ok) {
          this.emit("error", new OpampError("agent_failed", started.error));
          this.scheduleRestart(0);
        }
      });
    }, delay);
  }

  #cancelRestart(): void {
    if (this.#restartTimer !== undefined) this.deps.clock.clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
  }

  /** Sends a signal to the running agent (SIGHUP reloads the Collector's config). */
  signal(signal: NodeJS.Signals): boolean {
    if (this.#process?.running !== true) return false;
    this.#process.signal(signal);
    return true;
  }

  async #stopProcess(proc: AgentProcess): Promise<void> {
    if (!proc.running) {
      await proc.exited;
      return;
    }
    this.#stopping.add(proc.pid);
    await proc.stop(this.deps.agent.stopTimeoutMs);
  }

  /** Stops the agent (SIGTERM, then SIGKILL after `agent.stop_timeout`) and keeps it stopped. */
  async stopAgent(): Promise<void> {
    this.#wanted = false;
    this.#cancelRestart();
    const proc = this.#process;
    if (proc !== undefined) await this.#stopProcess(proc);
  }

  /** Stops the agent for good and closes agent.log. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.stopAgent();
    this.#log?.close();
  }
}
