/**
 * Renders a conformance report: a readable table, JSON and JUnit XML.
 */
import type { ConformanceReport } from "./types.js";

const STATUS_LABEL = { pass: "PASS", fail: "FAIL", not_applicable: "N/A" } as const;

/** A plain-text table, one line per check and transport, with evidence under failures. */
export function formatReportTable(report: ConformanceReport): string {
  const rows = report.results.map((r) => [STATUS_LABEL[r.status], r.transport, r.id, r.title]);
  const widths = [4, 4, Math.max(2, ...report.results.map((r) => r.id.length))];
  const lines: string[] = [`OpAMP conformance — ${report.kind} checks against ${report.target}`, ""];
  for (const [i, row] of rows.entries()) {
    const r = report.results[i]!;
    lines.push(
      `${row[0]!.padEnd(widths[0]!)}  ${row[1]!.padEnd(widths[1]!)}  ${row[2]!.padEnd(widths[2]!)}  ${row[3]}  [${r.specSection}]`,
    );
    if (r.status === "fail" && r.evidence !== undefined) lines.push(`      ↳ ${r.evidence}`);
    if (r.status === "not_applicable" && r.reason !== undefined) lines.push(`      ↳ ${r.reason}`);
  }
  const s = report.summary;
  lines.push("", `${s.pass} passed, ${s.fail} failed, ${s.not_applicable} not applicable (${report.durationMs} ms)`);
  return lines.join("\n");
}

/** The report as pretty-printed JSON (bigints never occur in it). */
export function formatReportJson(report: ConformanceReport): string {
  return JSON.stringify(report, null, 2);
}

function xmlEscape(text: string): string {
  return text
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&apos;")
    .replaceAll(/[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD]/gu, "");
}

/**
 * JUnit XML (the common Surefire/Jenkins dialect): one `<testsuite>` per transport, one
 * `<testcase>` per check; failures carry the evidence, not-applicable checks are `<skipped>`.
 */
export function formatReportJunit(report: ConformanceReport): string {
  const byTransport = new Map<string, ConformanceReport["results"][number][]>();
  for (const r of report.results) {
    const list = byTransport.get(r.transport) ?? [];
    list.push(r);
    byTransport.set(r.transport, list);
  }
  const out: string[] = ['<?xml version="1.0" encoding="UTF-8"?>'];
  out.push(
    `<testsuites name="opamp-conformance ${report.kind}" tests="${report.results.length}" failures="${report.summary.fail}" skipped="${report.summary.not_applicable}" time="${(report.durationMs / 1000).toFixed(3)}">`,
  );
  for (const [transport, results] of byTransport) {
    const failures = results.filter((r) => r.status === "fail").length;
    const skipped = results.filter((r) => r.status === "not_applicable").length;
    const time = results.reduce((t, r) => t + r.durationMs, 0) / 1000;
    out.push(
      `  <testsuite name="${xmlEscape(`${report.kind}.${transport}`)}" tests="${results.length}" failures="${failures}" errors="0" skipped="${skipped}" time="${time.toFixed(3)}" timestamp="${xmlEscape(report.startedAt)}">`,
    );
    out.push(`    <properties><property name="target" value="${xmlEscape(report.target)}"/></properties>`);
    for (const r of results) {
      const open = `    <testcase classname="${xmlEscape(`opamp-conformance.${report.kind}.${transport}`)}" name="${xmlEscape(`${r.id}: ${r.title}`)}" time="${(r.durationMs / 1000).toFixed(3)}"`;
      if (r.status === "pass") {
        out.push(`${open}/>`);
      } else if (r.status === "fail") {
        const evidence = r.evidence ?? "failed";
        out.push(`${open}>`);
        out.push(
          `      <failure message="${xmlEscape(evidence)}" type="conformance">${xmlEscape(`${evidence}\nspec: ${r.specSection}`)}</failure>`,
        );
        out.push("    </testcase>");
      } else {
        out.push(`${open}>`);
        out.push(`      <skipped message="${xmlEscape(r.reason ?? "not applicable")}"/>`);
        out.push("    </testcase>");
      }
    }
    out.push("  </testsuite>");
  }
  out.push("</testsuites>", "");
  return out.join("\n");
}
