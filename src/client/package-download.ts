/**
 * One package download: fetch with the offer's headers, bounded in bytes and in time
 * (until the response headers, between two chunks, and in all), so that a URL that
 * never answers or trickles forever fails with `timeout` instead of holding the sync.
 */
import type { DownloadableFile } from "../gen/opamp/v1/opamp_pb.js";
import type { Clock, TimerHandle } from "../internal/clock.js";
import { OpampError } from "../wire/errors.js";

/** Everything one download needs. */
export interface DownloadRequest {
  /** Package name, for messages. */
  readonly name: string;
  readonly file: DownloadableFile;
  readonly fetch: typeof globalThis.fetch | undefined;
  readonly clock: Clock;
  /** Largest body accepted. */
  readonly maxBytes: number;
  /** Until the response headers. */
  readonly connectTimeoutMs: number;
  /** Longest gap between two body chunks (and between the headers and the first chunk). */
  readonly idleTimeoutMs: number;
  /** Whole download, request to last byte. */
  readonly totalTimeoutMs: number;
  /** Aborts the download (the client stops, or a newer offer supersedes this one). */
  readonly signal: AbortSignal;
  /** Called after each chunk with the bytes so far and the announced length (0: unknown). */
  onChunk(received: number, total: number): void;
}

/**
 * A signal aborted when `parent` is, or by its own `abort()`. AbortSignal.any is not in
 * every Node 20 release the package supports, nor in older browsers. `release()` detaches
 * it from `parent` once the work it guards is over.
 */
export function childAbort(parent: AbortSignal): { controller: AbortController; release(): void } {
  const controller = new AbortController();
  if (parent.aborted) {
    controller.abort(parent.reason);
    return { controller, release: () => undefined };
  }
  const forward = () => controller.abort(parent.reason);
  parent.addEventListener("abort", forward, { once: true });
  return { controller, release: () => parent.removeEventListener("abort", forward) };
}

/** Rejects with the signal's reason once it aborts, so a fetch or body that ignores signals still cannot hang us. */
function abortedPromise(signal: AbortSignal): { promise: Promise<never>; release(): void } {
  let release = (): void => undefined;
  const promise = new Promise<never>((_, reject) => {
    const fail = () => reject(OpampError.from(signal.reason, "aborted"));
    if (signal.aborted) {
      fail();
      return;
    }
    signal.addEventListener("abort", fail, { once: true });
    release = () => signal.removeEventListener("abort", fail);
  });
  // Nobody may be waiting on it when the abort comes: never an unhandled rejection.
  promise.catch(() => undefined);
  return { promise, release };
}

/**
 * Downloads `request.file` into memory.
 * @throws OpampError `timeout` past a deadline; `aborted` when `request.signal` aborts;
 *   `http_status` for a non-2xx answer; `message_too_large` past `maxBytes`;
 *   `transport_failed` when the fetch fails; `invalid_argument` without a fetch.
 */
export async function downloadPackage(request: DownloadRequest): Promise<Uint8Array> {
  const { name, clock } = request;
  const fetchImpl = request.fetch;
  if (fetchImpl === undefined) throw new OpampError("invalid_argument", "no fetch available to download packages");
  const { controller, release } = childAbort(request.signal);
  const timers = new Set<TimerHandle>();
  const deadline = (ms: number, what: string): TimerHandle => {
    const timer = clock.setTimeout(
      () => controller.abort(new OpampError("timeout", `download of ${name}: ${what} within ${ms} ms`)),
      ms,
    );
    timers.add(timer);
    return timer;
  };
  const clear = (timer: TimerHandle | undefined) => {
    if (timer === undefined) return;
    clock.clearTimeout(timer);
    timers.delete(timer);
  };
  deadline(request.totalTimeoutMs, "not complete");
  let idle: TimerHandle | undefined = deadline(request.connectTimeoutMs, "no response");
  const aborted = abortedPromise(controller.signal);
  const headers: Record<string, string> = {};
  for (const header of request.file.headers?.headers ?? []) headers[header.key] = header.value;
  try {
    const response = await Promise.race([
      fetchImpl(request.file.downloadUrl, { headers, signal: controller.signal }),
      aborted.promise,
    ]);
    clear(idle);
    idle = deadline(request.idleTimeoutMs, "no data");
    if (!response.ok) {
      await response.body?.cancel().catch(() => undefined);
      throw new OpampError("http_status", `download of ${name} failed with HTTP ${response.status}`, {
        details: { status: response.status },
      });
    }
    const total = Number(response.headers.get("content-length") ?? "0");
    const limit = request.maxBytes;
    if (total > limit) {
      await response.body?.cancel().catch(() => undefined);
      throw new OpampError("message_too_large", `package ${name} is ${total} bytes`, { details: { limit } });
    }
    const chunks: Uint8Array[] = [];
    let received = 0;
    const reader = response.body?.getReader();
    while (reader !== undefined) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await Promise.race([reader.read(), aborted.promise]);
      } catch (cause) {
        await reader.cancel().catch(() => undefined);
        throw cause;
      }
      if (chunk.done) break;
      clear(idle);
      idle = deadline(request.idleTimeoutMs, "no data");
      received += chunk.value.length;
      if (received > limit) {
        await reader.cancel().catch(() => undefined);
        throw new OpampError("message_too_large", `package ${name} is over ${limit} bytes`, { details: { limit } });
      }
      chunks.push(chunk.value);
      request.onChunk(received, total);
    }
    const content = new Uint8Array(received);
    let offset = 0;
    for (const part of chunks) {
      content.set(part, offset);
      offset += part.length;
    }
    return content;
  } catch (cause) {
    // Whatever the fetch or the stream threw once aborted, the reason is the abort's.
    if (controller.signal.aborted) throw OpampError.from(controller.signal.reason, "aborted");
    throw OpampError.from(cause, "transport_failed");
  } finally {
    for (const timer of timers) clock.clearTimeout(timer);
    aborted.release();
    release();
  }
}
