#!/usr/bin/env node
// Turns the conformance results written by test/conformance (.tmp/interop/*.json, one per
// implementation × role × transport) into docs/interop.md: implementation × transport ×
// check. Deviations of other implementations are listed as theirs, with the check and the
// evidence that shows them.
//
//   node scripts/interop-matrix.mjs [--in DIR] [--out FILE] [--check]
//
// --check exits 1 when FILE differs from what would be written, ignoring numbers (run date,
// measured times), for CI.

import { readdir, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

const root = resolve(import.meta.dirname, "..");
const { values } = parseArgs({
  options: {
    in: { type: "string", default: join(root, ".tmp", "interop") },
    out: { type: "string", default: join(root, "docs", "interop.md") },
    check: { type: "boolean", default: false },
  },
});

/** @typedef {{ id: string, title: string, specSection: string, transport: string, status: "pass" | "fail" | "not_applicable", evidence?: string, reason?: string }} Result */
/** @typedef {{ implementation: string, version: string, role: "server" | "client", transport: string, ours: boolean, deviations: { id: string, transport: string, note: string, intermittent?: true }[], report: { startedAt: string, results: Result[] } }} Entry */

async function load(dir) {
  let names;
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith(".json")).sort();
  } catch {
    throw new Error(`no results in ${dir}: run \`npx vitest run test/conformance\` first`);
  }
  if (names.length === 0) throw new Error(`no results in ${dir}: run \`npx vitest run test/conformance\` first`);
  /** @type {Entry[]} */
  const entries = [];
  for (const name of names) entries.push(JSON.parse(await readFile(join(dir, name), "utf8")));
  return entries;
}

const escapeCell = (text) => String(text).replaceAll("|", "\\|").replaceAll("\n", " ");

/** Columns: ours first, then the others by name; within one implementation ws before http. */
function columns(entries) {
  return entries.slice().sort((a, b) => {
    if (a.ours !== b.ours) return a.ours ? -1 : 1;
    if (a.implementation !== b.implementation) return a.implementation.localeCompare(b.implementation);
    return a.transport === b.transport ? 0 : a.transport === "ws" ? -1 : 1;
  });
}

function table(entries, notes) {
  const cols = columns(entries);
  // Rows in the kit's order: merge each column's order, a check missing so far going right
  // after the check that precedes it in that column.
  /** @type {string[]} */
  const order = [];
  /** @type {Map<string, Result>} */
  const checks = new Map();
  for (const e of cols) {
    let previous = -1;
    for (const r of e.report.results) {
      let at = order.indexOf(r.id);
      if (at < 0) {
        order.splice(previous + 1, 0, r.id);
        at = previous + 1;
        checks.set(r.id, r);
      }
      previous = at;
    }
  }
  const head = [
    "Check",
    "Spec section",
    ...cols.map((e) => `${e.implementation} ${e.version} · ${e.transport.toUpperCase()}`),
  ];
  const lines = [`| ${head.map(escapeCell).join(" | ")} |`, `|${head.map(() => " --- ").join("|")}|`];
  for (const id of order) {
    const sample = checks.get(id);
    const cells = cols.map((e) => {
      const r = e.report.results.find((x) => x.id === id);
      if (r === undefined) return " ";
      const recorded = e.deviations.find((d) => d.id === id && d.transport === r.transport);
      // A deviation on a race inside the peer reads the same whichever way this run went.
      if (recorded?.intermittent === true && r.status !== "not_applicable")
        return `⚠️ deviation (theirs, intermittent)${notes.ref(`${e.implementation} ${e.transport}: ${recorded.note}`)}`;
      if (r.status === "pass") return "✅ pass";
      if (r.status === "not_applicable")
        return `➖ n/a${notes.ref(`${e.implementation} ${e.transport}: ${r.reason ?? ""}`)}`;
      const deviation = e.deviations.find((d) => d.id === id && d.transport === r.transport);
      if (deviation !== undefined)
        return `⚠️ deviation (theirs)${notes.ref(`${e.implementation} ${e.transport}: ${deviation.note}`)}`;
      return `❌ fail${notes.ref(`${e.implementation} ${e.transport}: ${r.evidence ?? ""}`)}`;
    });
    lines.push(`| ${[`\`${id}\``, sample.specSection, ...cells].map(escapeCell).join(" | ")} |`);
  }
  return lines.join("\n");
}

function footnotes() {
  /** @type {string[]} */
  const list = [];
  return {
    ref(text) {
      let i = list.indexOf(text);
      if (i < 0) i = list.push(text) - 1;
      return ` [${i + 1}]`;
    },
    render() {
      return list.map((t, i) => `[${i + 1}] ${escapeCell(t)}`).join("  \n");
    },
  };
}

function render(entries) {
  const newest =
    entries
      .map((e) => e.report.startedAt)
      .sort()
      .at(-1) ?? "";
  const out = [
    "# Interop matrix",
    "",
    "<!-- Generated by scripts/interop-matrix.mjs from the conformance test results (.tmp/interop/*.json). Do not edit by hand. -->",
    "",
    `Every implementation below was checked by opamp-sdk's conformance kit (\`opamp-conformance\`,`,
    "see [conformance.md](conformance.md) for what each check sends and what passes). The kit is built",
    "only on opamp-sdk's wire codecs, not on its client or server. A deviation found in another",
    "implementation is recorded as theirs, with the check and the evidence that show it; the tests",
    "assert each recorded deviation still shows exactly so, so this page cannot silently drift.",
    "",
    `Results of the run of ${newest.slice(0, 10)}. ✅ pass · ⚠️ deviation of that implementation · ❌ unexpected failure · ➖ not applicable · blank: not run.`,
    "",
  ];
  for (const role of ["server", "client"]) {
    const group = entries.filter((e) => e.role === role);
    if (group.length === 0) continue;
    const notes = footnotes();
    out.push(
      role === "server"
        ? "## Servers (the kit drives them as scripted agents)"
        : "## Clients (they connect to the kit's checking server)",
      "",
      table(group, notes),
      "",
      notes.render(),
      "",
    );
  }
  const deviations = entries.filter((e) => !e.ours && e.deviations.length > 0);
  out.push("## Deviations of other implementations", "");
  if (deviations.length === 0) out.push("None recorded.", "");
  for (const e of deviations) {
    for (const d of e.deviations) {
      const r = e.report.results.find((x) => x.id === d.id && x.transport === d.transport);
      out.push(
        `- **${e.implementation} ${e.version}** (${e.role}, ${d.transport.toUpperCase()}) — \`${d.id}\`: ${d.note}.` +
          (r?.evidence ? ` Evidence: “${r.evidence}”.` : ""),
      );
    }
  }
  out.push("");
  const oursFailing = entries
    .filter((e) => e.ours)
    .flatMap((e) => e.report.results.filter((r) => r.status === "fail").map((r) => ({ e, r })));
  out.push("## opamp-sdk", "");
  if (entries.some((e) => e.ours)) {
    out.push(
      oursFailing.length === 0
        ? "opamp-sdk's own implementations passed every applicable check."
        : `opamp-sdk failed ${oursFailing.length} check(s): ${oursFailing.map(({ e, r }) => `${e.role} ${r.transport} \`${r.id}\` (${r.evidence})`).join("; ")}.`,
    );
  } else {
    out.push("opamp-sdk's own server and client were not part of this run.");
  }
  out.push("");
  return out.join("\n");
}

/** @typedef {{ client: { implementation: string, version: string }, server: { implementation: string, version: string }, transport: string, stages: { stage: string, status: "pass" | "fail", evidence: string }[], deviations: { stage: string, note: string }[] }} Pair */

async function loadPairs(dir) {
  let names = [];
  try {
    names = (await readdir(join(dir, "pairwise"))).filter((n) => n.endsWith(".json")).sort();
  } catch {
    return [];
  }
  /** @type {Pair[]} */
  const pairs = [];
  for (const name of names) pairs.push(JSON.parse(await readFile(join(dir, "pairwise", name), "utf8")));
  return pairs;
}

/** @param {Pair[]} pairs */
function renderPairs(pairs) {
  if (pairs.length === 0) return [];
  const stages = pairs[0].stages.map((s) => s.stage);
  const sorted = pairs
    .slice()
    .sort((a, b) =>
      `${a.server.implementation} ${a.client.implementation} ${a.transport === "ws" ? 0 : 1}`.localeCompare(
        `${b.server.implementation} ${b.client.implementation} ${b.transport === "ws" ? 0 : 1}`,
      ),
    );
  const notes = footnotes();
  const head = ["Client", "Server", "Transport", ...stages];
  const lines = [`| ${head.join(" | ")} |`, `|${head.map(() => " --- ").join("|")}|`];
  for (const p of sorted) {
    const cells = stages.map((stage) => {
      const s = p.stages.find((x) => x.stage === stage);
      if (s === undefined) return " ";
      if (s.status === "pass") return "✅";
      const d = p.deviations.find((x) => x.stage === stage);
      const who =
        d === undefined
          ? ""
          : p.client.implementation === "opamp-sdk"
            ? p.server.implementation
            : p.client.implementation;
      return d === undefined
        ? `❌${notes.ref(`${p.client.implementation} → ${p.server.implementation} ${p.transport}: ${s.evidence}`)}`
        : `⚠️ ${who}${notes.ref(`${who}: ${d.note} (${s.evidence})`)}`;
    });
    lines.push(
      `| ${[
        `${p.client.implementation} ${p.client.version}`,
        `${p.server.implementation} ${p.server.version}`,
        p.transport.toUpperCase(),
        ...cells,
      ]
        .map(escapeCell)
        .join(" | ")} |`,
    );
  }
  return [
    "## Pairwise",
    "",
    "Each client against each server: connect, full state, remote config applied (APPLIED with the config's hash), a compressed report (no description; the server keeps the full state), and a disconnect with `agent_disconnect`.",
    "",
    lines.join("\n"),
    "",
    notes.render(),
    "",
  ];
}

const entries = await load(values.in);
const pairs = await loadPairs(values.in);
const text = `${render(entries)}${pairs.length > 0 ? "\n" : ""}${renderPairs(pairs).join("\n")}`;
if (values.check) {
  let current = "";
  try {
    current = await readFile(values.out, "utf8");
  } catch {}
  // The run date, measured times and random ids in evidence change every run; compare the
  // rest (statuses, checks, implementations, notes).
  const strip = (t) =>
    t
      .replace(/Results of the run of \S+/, "")
      .replaceAll(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi, "<uid>")
      .replaceAll(/\b[0-9a-f]{16,}\b/gi, "<hex>")
      .replaceAll(/\d+/g, "#")
      .split("\n");
  const [was, now] = [strip(current), strip(text)];
  const line = now.findIndex((l, i) => l !== was[i]);
  if (line !== -1 || was.length !== now.length) {
    const at = line === -1 ? Math.min(was.length, now.length) : line;
    process.stderr.write(
      `${values.out} is out of date: run node scripts/interop-matrix.mjs\n` +
        `first difference at line ${at + 1}:\n  file: ${was[at] ?? "(none)"}\n  run:  ${now[at] ?? "(none)"}\n`,
    );
    process.exit(1);
  }
} else {
  await writeFile(values.out, text);
  process.stdout.write(`wrote ${values.out} from ${entries.length} result file(s)\n`);
}
