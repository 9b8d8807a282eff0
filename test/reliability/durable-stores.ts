/**
 * The durable stores the fault suite runs against, by name. The suite only uses what is
 * here, so another store (the PostgreSQL store of issue 14) joins it with one entry: a
 * location per run (a file, a database schema), opening it in the server's process, and
 * opening it again from the test to read what survived a kill. OPAMP_FAULTS_STORE picks
 * the driver (default "file").
 */
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { ServerStore } from "../../src/server/store.js";
import { FileServerStore } from "./file-server-store.js";

/** A store the server process opens, and closes before it exits. */
export interface OpenedStore {
  readonly store: ServerStore;
  /** What opening found (e.g. a torn record cut off), reported by the server process. */
  readonly recovered?: Readonly<Record<string, number>>;
  close(): Promise<void> | void;
}

/** How the fault suite makes, opens and inspects one kind of durable store. */
export interface DurableStoreDriver {
  /** Shown in test names and figures. */
  readonly name: string;
  /** Makes an empty store for one run and returns where it is (handed to the server process). */
  create(dir: string): Promise<string>;
  /** Opens the store at `location` for the server (runs in the server's process). */
  open(location: string): Promise<OpenedStore>;
  /** Opens the store for reading only, from the test process, while no server runs. */
  inspect(location: string): Promise<OpenedStore>;
  /** Removes what `create` made. */
  dispose(location: string): Promise<void>;
}

const fileDriver: DurableStoreDriver = {
  name: "file-backed test store (append-only log, write(2) per record, no fsync)",
  async create(dir) {
    return join(dir, "server-store.log");
  },
  async open(location) {
    const store = FileServerStore.open(location);
    return { store, recovered: { ...store.recovery }, close: () => store.close() };
  },
  async inspect(location) {
    const store = FileServerStore.open(location, { readOnly: true });
    return { store, recovered: { ...store.recovery }, close: () => store.close() };
  },
  async dispose(location) {
    await rm(location, { force: true });
  },
};

/** Every driver by name. */
export const DURABLE_STORES: Readonly<Record<string, DurableStoreDriver>> = { file: fileDriver };

/** The driver named by OPAMP_FAULTS_STORE (default "file"). */
export function selectedDriver(name = process.env["OPAMP_FAULTS_STORE"] || "file"): DurableStoreDriver {
  const driver = DURABLE_STORES[name];
  if (driver === undefined) {
    throw new Error(`OPAMP_FAULTS_STORE=${name}: no such store (known: ${Object.keys(DURABLE_STORES).join(", ")})`);
  }
  return driver;
}
