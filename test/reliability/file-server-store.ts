/**
 * A file-backed {@link ServerStore} for the fault suite: an append-only log, one framed
 * record per write, replayed into memory when opened.
 *
 * Durability: every write reaches the file through write(2) before the promise of the
 * method that made it settles, so what a caller saw resolve survives a kill -9 of the
 * process. Nothing is fsynced: a machine crash or power loss may lose the last writes,
 * which this store does not promise to survive. A record cut short by a kill (a write
 * interrupted half-way) fails its length or checksum check at the next open and is cut
 * off, with everything after it.
 *
 * Frame: payload length (u32 LE), CRC-32 of the payload (u32 LE), payload (UTF-8 JSON with
 * bytes in base64). The log is never compacted: it is a test store, not a product.
 */
import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from "node:fs";
import type {
  DeliveryEvent,
  DeliveryKind,
  DeliveryStatus,
  ServerStore,
  StoredAgent,
  StoredDelivery,
  StoredDesired,
} from "../../src/server/store.js";

interface DesiredRecord {
  t: "desired";
  uid: string;
  rc?: string;
  pa?: string;
  cs?: string;
  sh?: string;
}

type LogRecord =
  | { t: "agent"; uid: string; seen: number; state: string; bp?: string }
  | { t: "delete"; uid: string }
  | DesiredRecord
  | { t: "step"; uid: string; kind: DeliveryKind; hash: string; status: DeliveryStatus; at: number; err?: string };

const HEADER_BYTES = 8;

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (IEEE), as zlib computes it. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
const unb64 = (text: string) => new Uint8Array(Buffer.from(text, "base64"));

interface HeldDelivery {
  readonly kind: DeliveryKind;
  readonly key: string;
  readonly hash: Uint8Array;
  readonly history: DeliveryEvent[];
}

/** What opening a log found. */
export interface LogRecovery {
  /** Whole records replayed. */
  readonly records: number;
  /** Bytes after the last whole record (a write cut short), cut off unless opened read-only. */
  readonly tornBytes: number;
}

/** Options of {@link FileServerStore.open}. */
export interface FileServerStoreOptions {
  /** Replay only: leave a torn tail in place and refuse writes. Default false. */
  readonly readOnly?: boolean;
}

/** The append-only, kill -9-safe test store. Open with {@link FileServerStore.open}. */
export class FileServerStore implements ServerStore {
  readonly #agents = new Map<string, StoredAgent>();
  readonly #desired = new Map<string, StoredDesired>();
  readonly #deliveries = new Map<string, HeldDelivery[]>();
  #fd: number | undefined;
  /** What the open found in the log. */
  readonly recovery: LogRecovery;

  private constructor(fd: number | undefined, recovery: LogRecovery, replay: (store: FileServerStore) => void) {
    this.#fd = fd;
    this.recovery = recovery;
    replay(this);
  }

  /**
   * Opens (or creates) the log at `path` and replays it. A torn last record is cut off
   * (left in place with `readOnly`).
   *
   * @throws the file system's error when the file cannot be read or opened.
   */
  static open(path: string, options: FileServerStoreOptions = {}): FileServerStore {
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      bytes = Buffer.alloc(0);
    }
    const records: LogRecord[] = [];
    let offset = 0;
    while (offset + HEADER_BYTES <= bytes.length) {
      const length = bytes.readUInt32LE(offset);
      const end = offset + HEADER_BYTES + length;
      if (end > bytes.length) break;
      const payload = bytes.subarray(offset + HEADER_BYTES, end);
      if (crc32(payload) !== bytes.readUInt32LE(offset + 4)) break;
      records.push(JSON.parse(payload.toString("utf8")) as LogRecord);
      offset = end;
    }
    const recovery = { records: records.length, tornBytes: bytes.length - offset };
    let fd: number | undefined;
    if (!options.readOnly) {
      fd = openSync(path, "a");
      // Appends after a torn record would be unreadable behind it.
      if (recovery.tornBytes > 0) ftruncateSync(fd, offset);
    }
    return new FileServerStore(fd, recovery, (store) => {
      for (const record of records) store.#apply(record);
    });
  }

  /** Closes the file; later writes reject. Idempotent. */
  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }

  /** Every instance UID the store holds something for (state, desired state or deliveries). */
  uids(): Set<string> {
    return new Set([...this.#agents.keys(), ...this.#desired.keys(), ...this.#deliveries.keys()]);
  }

  /** Appends one record with write(2) before returning, then applies it to memory. */
  #write(record: LogRecord): void {
    const fd = this.#fd;
    if (fd === undefined) throw new Error("FileServerStore: closed or read-only");
    const payload = Buffer.from(JSON.stringify(record), "utf8");
    const frame = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
    frame.writeUInt32LE(payload.length, 0);
    frame.writeUInt32LE(crc32(payload), 4);
    payload.copy(frame, HEADER_BYTES);
    let written = 0;
    while (written < frame.length) written += writeSync(fd, frame, written, frame.length - written);
    this.#apply(record);
  }

  #apply(record: LogRecord): void {
    switch (record.t) {
      case "agent": {
        const agent: StoredAgent = { instanceUid: record.uid, lastSeen: record.seen, state: unb64(record.state) };
        this.#agents.set(record.uid, record.bp === undefined ? agent : { ...agent, boundPrincipal: record.bp });
        return;
      }
      case "delete":
        this.#agents.delete(record.uid);
        this.#desired.delete(record.uid);
        this.#deliveries.delete(record.uid);
        return;
      case "desired": {
        const desired: { -readonly [K in keyof StoredDesired]: StoredDesired[K] } = {};
        if (record.rc !== undefined) desired.remoteConfig = unb64(record.rc);
        if (record.pa !== undefined) desired.packagesAvailable = unb64(record.pa);
        if (record.cs !== undefined) desired.connectionSettings = unb64(record.cs);
        if (record.sh !== undefined) desired.sentConnectionSettingsHash = unb64(record.sh);
        this.#desired.set(record.uid, desired);
        return;
      }
      case "step": {
        let list = this.#deliveries.get(record.uid);
        if (list === undefined) {
          list = [];
          this.#deliveries.set(record.uid, list);
        }
        let delivery = list.find((d) => d.kind === record.kind && d.key === record.hash);
        if (delivery === undefined) {
          delivery = { kind: record.kind, key: record.hash, hash: unb64(record.hash), history: [] };
          list.push(delivery);
        }
        const event = { status: record.status, at: record.at };
        delivery.history.push(record.err === undefined ? event : { ...event, errorMessage: record.err });
        return;
      }
    }
  }

  async getAgent(instanceUid: string): Promise<StoredAgent | undefined> {
    return this.#agents.get(instanceUid);
  }

  async putAgent(agent: StoredAgent): Promise<void> {
    const record: LogRecord = { t: "agent", uid: agent.instanceUid, seen: agent.lastSeen, state: b64(agent.state) };
    this.#write(agent.boundPrincipal === undefined ? record : { ...record, bp: agent.boundPrincipal });
  }

  async deleteAgent(instanceUid: string): Promise<void> {
    this.#write({ t: "delete", uid: instanceUid });
  }

  async getDesired(instanceUid: string): Promise<StoredDesired | undefined> {
    return this.#desired.get(instanceUid);
  }

  async putDesired(instanceUid: string, desired: StoredDesired): Promise<void> {
    const record: DesiredRecord = { t: "desired", uid: instanceUid };
    if (desired.remoteConfig !== undefined) record.rc = b64(desired.remoteConfig);
    if (desired.packagesAvailable !== undefined) record.pa = b64(desired.packagesAvailable);
    if (desired.connectionSettings !== undefined) record.cs = b64(desired.connectionSettings);
    if (desired.sentConnectionSettingsHash !== undefined) record.sh = b64(desired.sentConnectionSettingsHash);
    this.#write(record);
  }

  async appendDelivery(instanceUid: string, kind: DeliveryKind, hash: Uint8Array, event: DeliveryEvent): Promise<void> {
    const record: LogRecord = {
      t: "step",
      uid: instanceUid,
      kind,
      hash: b64(hash),
      status: event.status,
      at: event.at,
    };
    this.#write(event.errorMessage === undefined ? record : { ...record, err: event.errorMessage });
  }

  async listDeliveries(instanceUid: string): Promise<readonly StoredDelivery[]> {
    return (this.#deliveries.get(instanceUid) ?? []).map((d) => ({
      instanceUid,
      kind: d.kind,
      hash: d.hash,
      history: [...d.history],
    }));
  }
}
