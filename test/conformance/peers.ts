// Peers for the conformance matrix: long-running opamp-go processes (through the shared
// Go harness), the recorded deviations of implementations we did not write, and the JSON
// results that scripts/interop-matrix.mjs turns into docs/interop.md.

import { type ChildProcessByStdio, spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { expect } from "vitest";
import type { ConformanceReport, ConformanceTransport } from "../../src/testing/conformance/index.js";
import { buildHarness, REPO_ROOT } from "../interop/go-harness.js";

/** One JSON line an opamp-interop subcommand printed. */
export type GoEvent = { readonly event: string } & Readonly<Record<string, unknown>>;

/** A running peer process (`opamp-interop <subcommand>`, or another harness). */
export interface GoProcess {
  readonly events: GoEvent[];
  /** Resolves with the first event (already seen or future) that matches; rejects after `timeoutMs`. */
  waitFor(predicate: (e: GoEvent) => boolean, timeoutMs: number): Promise<GoEvent>;
  /** SIGTERM, then resolves with the exit code (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<number | null>;
  readonly stderr: () => string;
}

/** Starts a harness subcommand and parses its stdout as JSON lines. */
export async function startGo(args: readonly string[]): Promise<GoProcess> {
  return startProcess(await buildHarness(), args);
}

/** Starts a peer process that prints one JSON event per line on stdout. */
export async function startProcess(command: string, args: readonly string[]): Promise<GoProcess> {
  const child: ChildProcessByStdio<null, Readable, Readable> = spawn(command, args, {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const events: GoEvent[] = [];
  const listeners = new Set<() => void>();
  let stderr = "";
  let buffered = "";
  let exited: number | null | undefined;
  const exitWaiters: ((code: number | null) => void)[] = [];
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    buffered += chunk;
    let nl = buffered.indexOf("\n");
    while (nl >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (line !== "") {
        try {
          events.push(JSON.parse(line) as GoEvent);
        } catch {
          events.push({ event: "unparsed", line });
        }
        for (const l of [...listeners]) l();
      }
      nl = buffered.indexOf("\n");
    }
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  child.on("exit", (code) => {
    exited = code;
    for (const w of exitWaiters.splice(0)) w(code);
    for (const l of [...listeners]) l();
  });
  return {
    events,
    stderr: () => stderr,
    waitFor(predicate, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const found = events.find(predicate);
          if (found !== undefined) finish(() => resolve(found));
          else if (exited !== undefined)
            finish(() => reject(new Error(`opamp-interop ${args[0]} exited (${exited}) first; stderr:\n${stderr}`)));
        };
        const timer = setTimeout(
          () =>
            finish(() =>
              reject(new Error(`timed out waiting for an event from opamp-interop ${args[0]}; stderr:\n${stderr}`)),
            ),
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
    stop(graceMs = 10_000) {
      if (exited !== undefined) return Promise.resolve(exited);
      return new Promise((resolve) => {
        const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
        exitWaiters.push((code) => {
          clearTimeout(timer);
          resolve(code);
        });
        child.kill("SIGTERM");
      });
    },
  };
}

/** A deviation from the spec we found in an implementation we did not write. */
export interface Deviation {
  readonly id: string;
  readonly transport: ConformanceTransport;
  /** The evidence must match this. */
  readonly evidence: RegExp;
  /** Why, with a reference (their issue or source) where one exists. */
  readonly note: string;
  /**
   * The deviation hangs on a race inside the peer, so a run may pass the check. The check
   * must then pass or fail with this evidence; the matrix shows it as a deviation either way,
   * so that docs/interop.md does not change with the race.
   */
  readonly intermittent?: true;
}

/** What docs/interop.md is generated from. */
export interface MatrixEntry {
  readonly implementation: string;
  readonly version: string;
  readonly role: "server" | "client";
  readonly transport: ConformanceTransport;
  /** opamp-sdk's own server/client: deviations are not allowed. */
  readonly ours: boolean;
  readonly deviations: readonly {
    id: string;
    transport: ConformanceTransport;
    note: string;
    intermittent?: true;
  }[];
  readonly report: ConformanceReport;
}

/** Directory the conformance tests write their results to. */
export const INTEROP_RESULTS_DIR = join(REPO_ROOT, ".tmp", "interop");

/** Writes one matrix entry to .tmp/interop/<implementation>.<role>.<transport>.json. */
export async function writeMatrixEntry(entry: MatrixEntry): Promise<void> {
  await mkdir(INTEROP_RESULTS_DIR, { recursive: true });
  const name = `${entry.implementation.replaceAll(/[^a-zA-Z0-9_-]+/g, "_")}.${entry.role}.${entry.transport}.json`;
  await writeFile(join(INTEROP_RESULTS_DIR, name), `${JSON.stringify(entry, null, 2)}\n`);
}

/**
 * Asserts a report: every recorded deviation shows as a failure with matching evidence
 * (so the matrix stays honest when a peer changes), and nothing else fails.
 */
export function expectConformance(report: ConformanceReport, deviations: readonly Deviation[]): void {
  const unexpected = report.results.filter(
    (r) => r.status === "fail" && !deviations.some((d) => d.id === r.id && d.transport === r.transport),
  );
  expect(
    unexpected.map((r) => `${r.transport} ${r.id}: ${r.evidence}`),
    "failures that are not recorded deviations",
  ).toEqual([]);
  for (const d of deviations) {
    const r = report.results.find((x) => x.id === d.id && x.transport === d.transport);
    expect(r, `recorded deviation ${d.transport} ${d.id} was not checked`).toBeDefined();
    if (d.intermittent === true && r?.status === "pass") continue;
    expect(
      { id: d.id, transport: d.transport, status: r?.status, evidence: r?.evidence },
      `recorded deviation ${d.transport} ${d.id} no longer shows (update the record and docs/interop.md)`,
    ).toMatchObject({ status: "fail", evidence: expect.stringMatching(d.evidence) });
  }
}

/** The deviations as stored in a matrix entry. */
export function deviationNotes(deviations: readonly Deviation[]): MatrixEntry["deviations"] {
  return deviations.map((d) => ({
    id: d.id,
    transport: d.transport,
    note: d.note,
    ...(d.intermittent === true ? { intermittent: true as const } : {}),
  }));
}
