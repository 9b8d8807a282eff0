// The conformance kit's own tests: against well-behaved fake peers every check passes, and
// for every check (on every transport it runs on) a fake peer that breaks exactly that rule
// makes it fail. A check that cannot fail proves nothing.

import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  type CheckResult,
  CLIENT_CHECKS,
  type ClientChecksOptions,
  type ConformanceReport,
  type ConformanceTransport,
  formatReportJson,
  formatReportJunit,
  formatReportTable,
  runConformanceCli,
  runServerChecks,
  SERVER_CHECKS,
  startClientChecks,
} from "../../src/testing/conformance/index.js";
import {
  type FakeClient,
  type FakeClientBehaviour,
  type FakeServer,
  type FakeServerBehaviour,
  startFakeClient,
  startFakeServer,
} from "./fakes.js";

const LIMIT = 4096;
const TOKEN = "kit-token";
const servers: FakeServer[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serverReport(
  behaviour: FakeServerBehaviour,
  options: { only?: string[]; transports?: ConformanceTransport[]; authRequired?: boolean } = {},
): Promise<ConformanceReport> {
  const server = await startFakeServer({ authToken: TOKEN, ...behaviour });
  servers.push(server);
  return runServerChecks({
    url: server.url,
    headers: { Authorization: `Bearer ${TOKEN}` },
    maxMessageBytes: LIMIT,
    timeoutMs: 1000,
    authRequired: options.authRequired ?? true,
    ...(options.only === undefined ? {} : { only: options.only }),
    ...(options.transports === undefined ? {} : { transports: options.transports }),
  });
}

function statuses(report: ConformanceReport): string[] {
  return report.results.map((r) => `${r.transport} ${r.id} ${r.status}${r.evidence ? `: ${r.evidence}` : ""}`);
}

describe("server checks", () => {
  it("all pass against a well-behaved server, on both transports", async () => {
    const report = await serverReport({ maxMessageBytes: LIMIT });
    const failed = report.results.filter((r) => r.status !== "pass");
    expect(failed.map((r) => `${r.transport} ${r.id}: ${r.evidence ?? r.reason}`)).toEqual([]);
    const expected = SERVER_CHECKS.reduce((n, c) => n + c.transports.length, 0);
    expect(report.results).toHaveLength(expected);
  });

  // One broken behaviour per check, and the evidence it must produce.
  const broken: [id: string, behaviour: FakeServerBehaviour, evidence: RegExp, transports?: ConformanceTransport[]][] =
    [
      ["server.ws-binary-frame", { textFrames: true }, /text frame/],
      ["server.ws-binary-frame", { noHeader: true }, /not the header byte 0x00/],
      ["server.http-protobuf-post", { httpStatus: 500 }, /HTTP 500/],
      ["server.first-reply-capabilities", { capabilities: 0x2n }, /lack AcceptsStatus/],
      ["server.first-reply-capabilities", { capabilities: 0x1n | 0x100n }, /undefined bits 0x100/],
      ["server.answers-every-message", { answerOnlyFirst: true }, /after 1 of 4 replies|sequence_num 1: HTTP 500/],
      ["server.full-state-after-gap", { ignoreGaps: true }, /does not set ReportFullState/],
      ["server.full-state-unknown-agent", { ignoreGaps: true }, /does not set ReportFullState/],
      ["server.gzip-request-body", { noGzip: true }, /HTTP 400/],
      ["server.oversized-message-refused", {}, /was answered|got a ServerToAgent/],
      ["server.garbage-refused", { garbage: "success" }, /answered as a success/],
      ["server.garbage-refused", { garbage: "kill-everyone" }, /other agent got|well-behaved agent got|not a 4xx/],
      ["server.agent-disconnect", { shunAfterDisconnect: true }, /coming back after agent_disconnect/],
      ["server.new-instance-uid", { assignUid: "short" }, /8 bytes, not 16/],
      ["server.auth-required", { authStatus: 403 }, /403/],
    ];
  for (const [id, behaviour, evidence] of broken) {
    const check = SERVER_CHECKS.find((c) => c.id === id)!;
    for (const transport of check.transports) {
      it(`${id} fails over ${transport} against ${JSON.stringify(behaviour, (_, v) => (typeof v === "bigint" ? `0x${v.toString(16)}` : v))}`, async () => {
        // The oversized check needs a server without a limit; every other fake keeps one.
        const b = id === "server.oversized-message-refused" ? behaviour : { maxMessageBytes: LIMIT, ...behaviour };
        const report = await serverReport(b, { only: [id], transports: [transport] });
        expect(statuses(report)).toEqual([expect.stringMatching(new RegExp(`^${transport} ${id} fail: `))]);
        expect(report.results[0]?.evidence).toMatch(evidence);
      });
    }
  }

  it("has a failing case for every check on every transport", () => {
    const covered = new Set(broken.map(([id]) => id));
    expect(SERVER_CHECKS.map((c) => c.id).filter((id) => !covered.has(id))).toEqual([]);
  });

  it("auth-required fails when the server lets everyone in, and is not applicable unless asked for", async () => {
    const open = await serverReport({ authToken: undefined as unknown as string }, { only: ["server.auth-required"] });
    expect(open.results.map((r) => r.status)).toEqual(["fail", "fail"]);
    const notAsked = await serverReport({}, { only: ["server.auth-required"], authRequired: false });
    expect(notAsked.results.map((r) => r.status)).toEqual(["not_applicable", "not_applicable"]);
  });

  it("new-instance-uid is not applicable when the server never assigns UIDs", async () => {
    const report = await serverReport({ assignUid: "none" }, { only: ["server.new-instance-uid"] });
    expect(report.results.map((r) => r.status)).toEqual(["not_applicable", "not_applicable"]);
  });

  it("fails every check, without throwing, when nothing listens", async () => {
    const server = await startFakeServer();
    const url = server.url;
    await server.close();
    const report = await runServerChecks({ url, timeoutMs: 500, authRequired: true });
    expect(report.summary.pass).toBe(0);
    expect(report.summary.fail).toBe(report.results.length);
  });
});

const FAST: ClientChecksOptions = {
  connectTimeoutMs: 5000,
  timeoutMs: 2000,
  pollWaitMs: 5000,
  heartbeatSeconds: 1,
  retryAfterSeconds: 1,
  retryGraceMs: 3000,
};

async function clientReport(behaviour: FakeClientBehaviour, only?: string[]): Promise<ConformanceReport> {
  const session = await startClientChecks({ ...FAST, ...(only === undefined ? {} : { only }) });
  let client: FakeClient | undefined;
  try {
    client = startFakeClient(behaviour.transport === "ws" ? session.wsUrl : session.httpUrl, behaviour);
    await session.scriptDone;
    await client.stop();
    return await session.finish({ disconnectTimeoutMs: 1000 });
  } finally {
    await client?.stop();
    await session.close();
  }
}

describe("client checks", () => {
  for (const transport of ["ws", "http"] as const) {
    it(`all pass against a well-behaved client over ${transport}`, { timeout: 30_000 }, async () => {
      const report = await clientReport({ transport });
      expect(
        report.results.filter((r) => r.status !== "pass").map((r) => `${r.id}: ${r.evidence ?? r.reason}`),
      ).toEqual([]);
      expect(report.results).toHaveLength(CLIENT_CHECKS.length);
      expect(report.results.every((r) => r.transport === transport)).toBe(true);
    });
  }

  it("all pass against a WebSocket client that reconnects to apply offered settings (spec: OpAMP settings offer flow)", {
    timeout: 30_000,
  }, async () => {
    // It says goodbye before reconnecting and again when stopped, and goes quiet if offered
    // an endpoint of another transport: the kit must offer the ws:// URL to a WS client.
    const report = await clientReport({ transport: "ws", reconnectOnSettings: true });
    expect(report.results.filter((r) => r.status !== "pass").map((r) => `${r.id}: ${r.evidence ?? r.reason}`)).toEqual(
      [],
    );
    expect(report.results.find((r) => r.id === "client.heartbeat-interval")?.evidence).toMatch(/gaps/);
  });

  it("client.new-instance-uid passes over ws when a report crossed the reply, and fails over http when one follows it", {
    timeout: 30_000,
  }, async () => {
    const ws = await clientReport({ transport: "ws", crossOnNewUid: true }, ["client.new-instance-uid"]);
    expect(ws.results[0]).toMatchObject({
      status: "pass",
      evidence: expect.stringMatching(/after 1 report\(s\) sent before/),
    });
    const http = await clientReport({ transport: "http", crossOnNewUid: true }, ["client.new-instance-uid"]);
    expect(http.results[0]).toMatchObject({
      status: "fail",
      evidence: expect.stringMatching(/still uses the old UID/),
    });
  });

  const broken: [id: string, behaviour: Omit<FakeClientBehaviour, "transport">, evidence: RegExp][] = [
    ["client.full-state-first", { firstCompressed: true }, /no agent_description/],
    ["client.report-full-state", { ignoreFullState: true }, /no message within|none full/],
    ["client.new-instance-uid", { keepUid: true }, /still uses the old UID/],
    ["client.remote-config-status", { silentOnConfig: true }, /no remote_config_status with the offered hash/],
    ["client.no-reply-loop", { loop: true }, /a reply loop/],
    ["client.heartbeat-interval", { ignoreHeartbeat: true }, /a gap of \d+ ms/],
    ["client.retry-after", { ignoreRetryAfter: true }, /came after \d+ ms/],
    ["client.unavailable-backoff", { ignoreUnavailable: true }, /the next message came after \d+ ms/],
    ["client.sequence-num", { frozenSequence: true }, /sequence_num 0 after 0/],
    ["client.capabilities-every-message", { capabilitiesOnce: true }, /has capabilities 0x0/],
    ["client.agent-disconnect", { noDisconnect: true }, /agent_disconnect/],
  ];
  for (const [id, behaviour, evidence] of broken) {
    for (const transport of ["ws", "http"] as const) {
      it(`${id} fails over ${transport} against ${JSON.stringify(behaviour)}`, { timeout: 30_000 }, async () => {
        const report = await clientReport({ transport, ...behaviour }, [id]);
        const result = report.results.find((r) => r.id === id);
        expect(result?.status, result?.evidence).toBe("fail");
        expect(result?.evidence).toMatch(evidence);
      });
    }
  }

  it("has a failing case for every check", () => {
    const covered = new Set(broken.map(([id]) => id));
    expect(CLIENT_CHECKS.map((c) => c.id).filter((id) => !covered.has(id))).toEqual([]);
  });

  it("fails every check when no client connects", async () => {
    const session = await startClientChecks({ ...FAST, connectTimeoutMs: 200 });
    const report = await session.finish({ disconnectTimeoutMs: 100 });
    expect(report.summary.fail).toBe(CLIENT_CHECKS.length);
  });
});

describe("report formats and CLI", () => {
  const sample: ConformanceReport = {
    kind: "server",
    target: "ws://example.test/v1/opamp",
    startedAt: "2026-01-01T00:00:00.000Z",
    durationMs: 12,
    results: [
      { id: "server.a", title: "A & <b>", specSection: "S", transport: "ws", status: "pass", durationMs: 1 },
      {
        id: "server.b",
        title: "B",
        specSection: "S",
        transport: "ws",
        status: "fail",
        evidence: 'bad "x" <y>',
        durationMs: 2,
      },
      {
        id: "server.c",
        title: "C",
        specSection: "S",
        transport: "http",
        status: "not_applicable",
        reason: "no",
        durationMs: 0,
      },
    ] satisfies CheckResult[],
    summary: { pass: 1, fail: 1, not_applicable: 1 },
  };

  it("renders a table with evidence under failures", () => {
    const table = formatReportTable(sample);
    expect(table).toMatch(/FAIL\s+ws\s+server\.b/);
    expect(table).toContain('↳ bad "x" <y>');
    expect(table).toContain("1 passed, 1 failed, 1 not applicable");
  });

  it("renders JSON that round-trips", () => {
    expect(JSON.parse(formatReportJson(sample))).toEqual(sample);
  });

  it("renders escaped JUnit XML with one suite per transport", () => {
    const xml = formatReportJunit(sample);
    expect(xml).toContain('<testsuites name="opamp-conformance server" tests="3" failures="1" skipped="1"');
    expect(xml).toContain('<testsuite name="server.ws" tests="2" failures="1"');
    expect(xml).toContain('<failure message="bad &quot;x&quot; &lt;y&gt;"');
    expect(xml).toContain('name="server.a: A &amp; &lt;b&gt;"');
    expect(xml).toContain('<skipped message="no"/>');
  });

  async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = "";
    let err = "";
    const code = await runConformanceCli(args, { stdout: (t) => (out += t), stderr: (t) => (err += t) });
    return { code, out, err };
  }

  it("exits 2 on usage errors", async () => {
    expect((await cli([])).code).toBe(2);
    expect((await cli(["server"])).code).toBe(2);
    expect((await cli(["server", "http://x", "--transport", "smoke"])).code).toBe(2);
    expect((await cli(["server", "http://x", "--header", "nokey"])).code).toBe(2);
    expect((await cli(["client"])).code).toBe(2);
    expect((await cli(["bogus"])).code).toBe(2);
    const help = await cli(["--help"]);
    expect(help.code).toBe(0);
    expect(help.out).toContain("opamp-conformance server <url>");
  });

  it("runs client mode: prints where to connect, tells when to stop the client, writes JUnit", async () => {
    const dir = await mkdtemp(join(tmpdir(), "conformance-cli-"));
    const junit = join(dir, "client.xml");
    let out = "";
    let client: FakeClient | undefined;
    const done = runConformanceCli(
      [
        "client",
        "--listen",
        "0",
        "--timeout",
        "5",
        "--retry-after",
        "1",
        "--heartbeat",
        "1",
        "--json",
        "--junit",
        junit,
      ],
      {
        stdout: (t) => (out += t),
        stderr: (t) => {
          const url = /point the client under test at \S+ or (http:\/\/\S+)/.exec(t)?.[1];
          if (url !== undefined) client = startFakeClient(url, { transport: "http", idleMs: 2000 });
          if (t.startsWith("script done")) void client?.stop();
        },
      },
    );
    expect(await done, out).toBe(0);
    const report = JSON.parse(out) as ConformanceReport;
    expect(report.kind).toBe("client");
    expect(report.summary).toEqual({ pass: CLIENT_CHECKS.length, fail: 0, not_applicable: 0 });
    expect(await readFile(junit, "utf8")).toContain('<testsuite name="client.http"');
    await rm(dir, { recursive: true, force: true });
  });

  it("exits 0 when every check passes and 1 on a failure, with --json", async () => {
    const good = await startFakeServer({ authToken: TOKEN, maxMessageBytes: LIMIT });
    const bad = await startFakeServer({ ignoreGaps: true });
    servers.push(good, bad);
    const common = ["--max-message-bytes", String(LIMIT), "--timeout", "1", "--json"];
    const ok = await cli([
      "server",
      good.url,
      "--header",
      `Authorization=Bearer ${TOKEN}`,
      "--auth-required",
      ...common,
    ]);
    expect(ok.code, ok.out).toBe(0);
    expect((JSON.parse(ok.out) as ConformanceReport).summary.fail).toBe(0);
    const failed = await cli([
      "server",
      bad.url,
      "--transport",
      "http",
      "--only",
      "server.full-state-after-gap",
      ...common,
    ]);
    expect(failed.code).toBe(1);
    expect((JSON.parse(failed.out) as ConformanceReport).results.map((r) => r.status)).toEqual(["fail"]);
  });
});
