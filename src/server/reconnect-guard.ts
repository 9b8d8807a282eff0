/**
 * A guard against reconnect loops the server itself could drive. A connection-settings
 * offer makes an agent reconnect; an agent that keeps being given one (it reports another
 * hash every time, or cannot report at all) would reconnect for ever. Agents the server sent
 * settings to are watched: one that starts more than `maxSessions` sessions within
 * `windowMs` is taken to be looping, and settings offers to it pause until it has been quiet
 * for a whole window.
 */
import type { Clock } from "../internal/clock.js";

interface Watch {
  /** Start times of the latest sessions, oldest first (at most maxSessions + 1). */
  readonly starts: number[];
  /** Clock time of the latest offer or session start. */
  last: number;
  /** Offers are paused until then (0: not paused). */
  pausedUntil: number;
}

/** How many agents are watched at once; the least recently active watch goes first. */
const MAX_WATCHED = 4096;

export class ReconnectGuard {
  readonly #watches = new Map<string, Watch>();

  constructor(
    readonly maxSessions: number,
    readonly windowMs: number,
    readonly clock: Clock,
  ) {}

  /** Connection settings went out to the agent: watch its sessions from now on. */
  offered(id: string): void {
    const now = this.clock.now();
    const watch = this.#current(id, now) ?? { starts: [], last: now, pausedUntil: 0 };
    watch.last = now;
    this.#touch(id, watch);
  }

  /**
   * The agent started a session (connected, reconnected, or restarted its sequence).
   * Returns true when this start makes it count as looping and offers were not paused yet.
   */
  sessionStarted(id: string): boolean {
    const now = this.clock.now();
    const watch = this.#current(id, now);
    if (watch === undefined) return false;
    watch.last = now;
    watch.starts.push(now);
    if (watch.starts.length > this.maxSessions + 1) watch.starts.shift();
    this.#touch(id, watch);
    const looping = watch.starts.length > this.maxSessions && now - watch.starts[0]! <= this.windowMs;
    if (!looping) return false;
    const newly = watch.pausedUntil <= now;
    watch.pausedUntil = now + this.windowMs;
    return newly;
  }

  /** True while settings offers to the agent are paused. */
  paused(id: string): boolean {
    const watch = this.#watches.get(id);
    return watch !== undefined && watch.pausedUntil > this.clock.now();
  }

  /** The watch of `id`, unless it lapsed (nothing happened for a whole window and no pause is on). */
  #current(id: string, now: number): Watch | undefined {
    const watch = this.#watches.get(id);
    if (watch === undefined) return undefined;
    if (now - watch.last > this.windowMs && watch.pausedUntil <= now) {
      this.#watches.delete(id);
      return undefined;
    }
    return watch;
  }

  #touch(id: string, watch: Watch): void {
    // Re-inserted last: the map's order is least recently active first.
    this.#watches.delete(id);
    this.#watches.set(id, watch);
    if (this.#watches.size > MAX_WATCHED) {
      const oldest = this.#watches.keys().next().value;
      if (oldest !== undefined) this.#watches.delete(oldest);
    }
  }
}
