/**
 * Log files that rotate by size (`agent.log` → `agent.log.1` → … → `agent.log.N`), and a
 * bounded in-memory tail of the current run for crash and FAILED reports.
 */
import { closeSync, fstatSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { dirname } from "node:path";

/**
 * An append-only file that rotates once it passes `maxBytes`, keeping `maxFiles` old ones.
 * Writes are synchronous: lines land in order, and a kill -9 of the supervisor loses
 * nothing already written. Write errors (disk full) are swallowed after the first report
 * to `onError`, so logging can never take the supervisor down.
 */
export class RotatingFile {
  #fd: number | undefined;
  #size = 0;
  #failed = false;

  constructor(
    readonly path: string,
    private readonly maxBytes: number,
    private readonly maxFiles: number,
    private readonly onError: (error: Error) => void = () => undefined,
  ) {}

  /** Appends bytes, rotating first when they would pass the size limit. */
  write(data: string | Uint8Array): void {
    const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    try {
      if (this.#fd === undefined) this.#open();
      if (this.#size > 0 && this.#size + bytes.length > this.maxBytes) this.#rotate();
      writeSync(this.#fd!, bytes);
      this.#size += bytes.length;
    } catch (cause) {
      if (!this.#failed) this.onError(cause as Error);
      this.#failed = true;
    }
  }

  /** Closes the file; a later write opens it again. */
  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }

  #open(): void {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    this.#fd = openSync(this.path, "a", 0o600);
    this.#size = fstatSync(this.#fd).size;
  }

  #rotate(): void {
    this.close();
    if (this.maxFiles === 0) {
      rmSync(this.path, { force: true });
    } else {
      rmSync(`${this.path}.${this.maxFiles}`, { force: true });
      for (let i = this.maxFiles - 1; i >= 1; i--) {
        try {
          renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
        } catch {
          // A gap in the numbering (never rotated that far) is normal.
        }
      }
      renameSync(this.path, `${this.path}.1`);
    }
    this.#open();
  }
}

/** The last `maxBytes` of a stream of output, read as whole lines of valid UTF-8. */
export class LogTail {
  #chunks: Buffer[] = [];
  #size = 0;

  constructor(private readonly maxBytes: number) {}

  /** Adds output. */
  push(chunk: Uint8Array): void {
    if (this.maxBytes === 0) return;
    const buffer = Buffer.from(chunk);
    this.#chunks.push(buffer);
    this.#size += buffer.length;
    while (this.#size - (this.#chunks[0]?.length ?? 0) >= this.maxBytes && this.#chunks.length > 1) {
      this.#size -= this.#chunks.shift()!.length;
    }
  }

  /** Forgets everything (a new run starts). */
  clear(): void {
    this.#chunks = [];
    this.#size = 0;
  }

  /** The tail: at most `maxBytes`, cut at a line start, without a broken character. */
  text(): string {
    let all = Buffer.concat(this.#chunks);
    if (all.length > this.maxBytes) {
      all = all.subarray(all.length - this.maxBytes);
      const newline = all.indexOf(0x0a);
      if (newline !== -1 && newline < all.length - 1) all = all.subarray(newline + 1);
    }
    // A cut in the middle of a multi-byte character decodes to U+FFFD; drop it.
    return all
      .toString("utf8")
      .replace(/^\uFFFD+/, "")
      .trimEnd();
  }
}
