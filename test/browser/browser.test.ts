// The browser claim of the SDK, proved in a real browser: the root entry (wire codecs) and
// `opamp-sdk/client` bundle for platform "browser" with no Node builtin, and in headless
// Chromium the codecs work (frames, gzip via CompressionStream, UUIDv7, config hash via
// crypto.subtle) and an OpAMPClient talks to our OpAMPServer over the browser's own
// WebSocket and over fetch: it connects, reports its description, gets a remote config
// pushed by the server and reports it APPLIED, then says goodbye.
//
// Needs Chromium (Debian: `apt-get install -y chromium`; or CHROMIUM_PATH) and the
// playwright-core package. Without them the browser part is skipped with a warning, except
// when CI is set, where it fails. The bundle checks need neither and always run.

import { existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { type BuildFailure, type BuildResult, build, type Message } from "esbuild";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type AgentDescription,
  AgentToServerSchema,
  configMap,
  configMapHash,
  decodeWsMessage,
  describeAgent,
  RemoteConfigStatuses,
} from "../../src/index.js";
import { type Agent, OpAMPServer, type PreparedRemoteConfig } from "../../src/server/index.js";
import type { AgentReport, OpampProbe, WireReport } from "./entry.js";
import { PROBE_AGENT_NAME, PROBE_CONFIG, PROBE_SEQUENCE_NUM } from "./probe-constants.js";

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const ENTRY = fileURLToPath(new URL("./entry.ts", import.meta.url));
/** The Node-only client additions (file state store): must not bundle for a browser. */
const NODE_ONLY_ENTRY = fileURLToPath(new URL("../../src/client/node.ts", import.meta.url));

/** True when the CI environment variable asks for CI behaviour (any value but "", "0", "false"). */
function inCI(): boolean {
  const ci = process.env["CI"];
  return ci !== undefined && ci !== "" && ci !== "0" && ci.toLowerCase() !== "false";
}

const CHROMIUM_CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];
const chromiumPath = [process.env["CHROMIUM_PATH"] ?? "", ...CHROMIUM_CANDIDATES].find(
  (path) => path !== "" && existsSync(path),
);
const playwright = await import("playwright-core").catch(() => undefined);

function bundleFor(entry: string): Promise<BuildResult<{ write: false; metafile: true }>> {
  return build({
    entryPoints: [entry],
    absWorkingDir: REPO_ROOT,
    bundle: true,
    platform: "browser",
    format: "esm",
    target: "es2022",
    write: false,
    metafile: true,
    logLevel: "silent",
  });
}

let bundlePromise: ReturnType<typeof bundleFor> | undefined;
/** The browser bundle of entry.ts, built once for the whole file. */
function probeBundle(): ReturnType<typeof bundleFor> {
  bundlePromise ??= bundleFor(ENTRY);
  return bundlePromise;
}

function text(messages: readonly Message[]): string {
  return messages.map((m) => `${m.location?.file ?? ""}:${m.location?.line ?? ""} ${m.text}`).join("\n");
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

describe("browser bundle (esbuild, platform browser)", () => {
  it("bundles the root entry and opamp-sdk/client with no Node builtin, ws via isomorphic-ws's browser shim", async () => {
    const result = await probeBundle();
    expect(text(result.errors)).toBe("");
    expect(text(result.warnings)).toBe("");

    const inputs = Object.keys(result.metafile.inputs);
    // isomorphic-ws resolves through its "browser" field to the native-WebSocket shim…
    expect(inputs).toContain("node_modules/isomorphic-ws/browser.js");
    expect(inputs).not.toContain("node_modules/isomorphic-ws/node.js");
    // …so neither the ws package nor anything Node-only comes along.
    expect(inputs.filter((path) => path.startsWith("node_modules/ws/"))).toEqual([]);
    expect(inputs.filter((path) => path.startsWith("node:") || path.includes("(disabled)"))).toEqual([]);
    expect(inputs).not.toContain("src/client/node.ts");
    expect(inputs).not.toContain("src/client/file-state-store.ts");
    // Everything is inside the bundle: no import is left for the page to resolve.
    const outputs = Object.values(result.metafile.outputs);
    expect(outputs).toHaveLength(1);
    expect(outputs[0]?.imports).toEqual([]);
    const code = result.outputFiles[0]?.text ?? "";
    expect(code).not.toMatch(/\bfrom\s*["']node:|\brequire\(\s*["']/);
  });

  it("fails, as it should, to bundle the Node-only opamp-sdk/client/node for a browser", async () => {
    // The control for the test above: platform "browser" does refuse node: imports, so
    // the clean build there is meaningful.
    const failure = await bundleFor(NODE_ONLY_ENTRY).then(
      () => undefined,
      (error: unknown) => error as BuildFailure,
    );
    expect(failure).toBeDefined();
    expect(text(failure?.errors ?? [])).toMatch(/"node:(fs\/promises|crypto|path)"/);
  });
});

const missing = [
  ...(chromiumPath === undefined
    ? [
        `Chromium (none of ${[process.env["CHROMIUM_PATH"] ?? [], CHROMIUM_CANDIDATES].flat().join(", ")} exists;` +
          " apt-get install -y chromium, or set CHROMIUM_PATH)",
      ]
    : []),
  ...(playwright === undefined ? ["the playwright-core package (npm ci)"] : []),
];
const canRun = missing.length === 0;
if (!canRun && inCI()) {
  describe("browser run (headless Chromium)", () => {
    it("has Chromium and playwright-core", () => {
      throw new Error(`needs ${missing.join(" and ")}; CI is set, so this fails instead of skipping`);
    });
  });
} else if (!canRun) {
  console.warn(`SKIPPED browser run (headless Chromium): needs ${missing.join(" and ")}. In CI this fails instead.`);
}

/**
 * The page's global object as entry.ts leaves it. page.evaluate callbacks run in the page,
 * so they reach the probe through this cast and cannot call helpers of this file.
 */
type ProbeScope = { readonly opampProbe: OpampProbe };

/** Both attribute records of a description (empty when there is none). */
function attributes(description: AgentDescription | undefined): ReturnType<typeof describeAgent> {
  return description === undefined ? { identifying: {}, nonIdentifying: {} } : describeAgent(description);
}

describe.skipIf(!canRun)("browser run (headless Chromium)", () => {
  const server = new OpAMPServer({ allowAnonymous: true });
  let http: Server | undefined;
  let browser: Browser | undefined;
  let page: Page | undefined;
  let origin = "";
  let prepared: PreparedRemoteConfig;
  const pageErrors: string[] = [];
  const consoleErrors: string[] = [];
  const serverErrors: string[] = [];
  /** Content-Encoding of every OpAMP POST ("identity" when none), cleared by each test. */
  const postEncodings: string[] = [];

  const nameOf = (agent: Agent): string => {
    const attribute = attributes(agent.agentDescription).identifying["service.name"];
    return typeof attribute === "string" ? attribute : "";
  };

  /** Resolves with the named agent once `test` holds for it (checked now and on every update). */
  const whenAgent = (name: string, test: (agent: Agent) => boolean): Promise<Agent> =>
    new Promise((resolve) => {
      const check = (agent: Agent): void => {
        if (nameOf(agent) !== name || !test(agent)) return;
        server.off("agentUpdated", check);
        server.off("agentConnected", check);
        resolve(agent);
      };
      server.on("agentUpdated", check);
      server.on("agentConnected", check);
      for (const agent of server.agents.values()) check(agent);
    });

  const whenDisconnected = (id: string): Promise<string> =>
    new Promise((resolve) => {
      const listener = (agent: Agent, reason: string): void => {
        if (agent.id !== id) return;
        server.off("agentDisconnected", listener);
        resolve(reason);
      };
      server.on("agentDisconnected", listener);
    });

  beforeAll(async () => {
    const bundle = await probeBundle();
    const script = bundle.outputFiles[0]?.text ?? "";
    const html =
      '<!doctype html><meta charset="utf-8"><title>opamp-sdk browser probe</title><link rel="icon" href="data:,">\n' +
      '<script type="module" src="/probe.js"></script>\n';

    prepared = await server.prepareRemoteConfig(PROBE_CONFIG);
    server.on("error", (error) => serverErrors.push(`${error.code}: ${error.message}`));
    // Every browser agent gets the config as it connects; a prepared config set from the
    // listener rides in the reply being built, so the HTTP agent has it in its first answer.
    server.on("agentConnected", (agent) => {
      if (!nameOf(agent).startsWith("browser-")) return;
      server.setRemoteConfig(agent.id, prepared).catch((error: unknown) => serverErrors.push(String(error)));
    });
    await server.start();

    // One origin for the page and the OpAMP endpoint (docs/server.md, "Mounting"), so the
    // browser needs no CORS for the HTTP transport.
    http = createServer((req, res) => {
      const path = new URL(req.url ?? "/", "http://localhost").pathname;
      if (req.method === "GET" && path === "/") {
        res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(html);
      } else if (req.method === "GET" && path === "/probe.js") {
        res.writeHead(200, { "content-type": "text/javascript; charset=utf-8" }).end(script);
      } else {
        if (req.method === "POST") postEncodings.push(req.headers["content-encoding"] ?? "identity");
        server.requestHandler(req, res, () => res.writeHead(404).end());
      }
    });
    http.on("upgrade", (req, socket, head) => {
      void server.upgradeHandler(req, socket, head).then((mine) => {
        if (!mine) socket.destroy();
      });
    });
    const listening = http;
    await new Promise<void>((resolve, reject) => {
      listening.once("error", reject);
      listening.listen(0, "127.0.0.1", () => resolve());
    });
    origin = `http://127.0.0.1:${(listening.address() as AddressInfo).port}`;

    browser = await playwright?.chromium.launch({
      ...(chromiumPath === undefined ? {} : { executablePath: chromiumPath }),
      headless: true,
    });
    page = await browser?.newPage();
    page?.on("pageerror", (error) => pageErrors.push(String(error)));
    page?.on("console", (message) => {
      if (message.type() === "error") consoleErrors.push(message.text());
    });
    await page?.goto(`${origin}/`);
    await page?.waitForFunction(() => "opampProbe" in globalThis);
  });

  afterAll(async () => {
    await page?.evaluate(() => (globalThis as unknown as ProbeScope).opampProbe.stopAll()).catch(() => undefined);
    await browser?.close();
    await server.stop();
    const listening = http;
    if (listening !== undefined) {
      await new Promise<void>((resolve) => {
        listening.close(() => resolve());
        listening.closeAllConnections();
      });
    }
  });

  function livePage(): Page {
    if (page === undefined) throw new Error("the page did not open");
    return page;
  }

  it("runs the wire codecs: frames, gzip via CompressionStream, UUIDv7, config hash via crypto.subtle", async () => {
    const report: WireReport = await livePage().evaluate(() => (globalThis as unknown as ProbeScope).opampProbe.wire());

    expect(report.nativeWebSocket).toBe(true);
    // The frame the browser made decodes in Node to the same message, bigint intact.
    expect(report.frameHeader).toBe(0);
    const inNode = decodeWsMessage(AgentToServerSchema, Buffer.from(report.frameHex, "hex"));
    expect(inNode.sequenceNum).toBe(PROBE_SEQUENCE_NUM);
    expect(attributes(inNode.agentDescription).identifying["service.name"]).toBe(PROBE_AGENT_NAME);
    expect(report.decodedSequenceNum).toBe(PROBE_SEQUENCE_NUM.toString());
    expect(report.decodedName).toBe(PROBE_AGENT_NAME);
    expect(report.badHeaderCode).toBe("malformed_frame");

    expect(report.gzipMagic).toEqual([0x1f, 0x8b]);
    expect(report.gunzipEqual).toBe(true);
    expect(report.httpBodySequenceNum).toBe(PROBE_SEQUENCE_NUM.toString());
    expect(report.gzipLimitCode).toBe("message_too_large");

    expect(report.uidsValid).toBe(true);
    expect(report.uidRoundTrip).toBe(true);
    expect(new Set(report.uids).size).toBe(3);
    for (const uid of report.uids)
      expect(uid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);

    // The browser's hash is Node's hash, and key order does not change it.
    const nodeHash = hex(await configMapHash(configMap(PROBE_CONFIG)));
    expect(report.configHashHex).toBe(nodeHash);
    expect(report.configHashOtherOrderHex).toBe(nodeHash);
    expect(pageErrors).toEqual([]);
  });

  it.each([
    ["websocket", "ws", false],
    ["http", "http", false],
    ["http", "http", true],
  ] as const)(
    "runs an OpAMPClient over %s (gzip requests: %s) against OpAMPServer: connect, description, remote config APPLIED, goodbye",
    async (transport, scheme, compression) => {
      const name = `browser-${transport}${compression ? "-gzip" : ""}`;
      const url = `${origin.replace(/^http/, scheme)}/v1/opamp`;
      postEncodings.length = 0;
      const applied = whenAgent(
        name,
        (agent) => agent.remoteConfigStatus?.status === RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
      );

      const report: AgentReport = await livePage().evaluate(
        ([u, n, c]) => (globalThis as unknown as ProbeScope).opampProbe.runAgent(u, n, c),
        [url, name, compression] as const,
      );
      // Browser side first (after a failure there the server never sees APPLIED): the
      // client connected with nothing failing, the hook got the config, APPLIED was reported.
      expect(report.events.filter((event) => event !== "connect")).toEqual([]);
      expect(report.events).toContain("connect");
      expect(report.configFiles).toEqual(PROBE_CONFIG);
      expect(report.configHashHex).toBe(hex(prepared.hash));
      expect(report.statuses.at(-1)).toBe("APPLIED");

      const agent = await applied;

      // Server side: the agent, its transport, its description, the config it applied.
      expect(agent.transport).toBe(transport);
      expect(agent.id).toBe(report.instanceUid);
      expect(attributes(agent.agentDescription).nonIdentifying["browser.user_agent"]).toMatch(/Chrome/);
      expect(hex(agent.remoteConfigStatus?.lastRemoteConfigHash ?? new Uint8Array())).toBe(hex(prepared.hash));

      // stop() in the page sends agent_disconnect (WS: before the close; HTTP: a last POST).
      const gone = whenDisconnected(agent.id);
      await livePage().evaluate((n) => (globalThis as unknown as ProbeScope).opampProbe.stopAgent(n), name);
      expect(await gone).toBe("agent_disconnect");

      // The requests were what was asked for: none over WebSocket, plain POSTs, or with
      // compression the large first report gzipped and the small ones after it plain.
      if (transport === "websocket") expect(postEncodings).toEqual([]);
      else if (!compression) expect(new Set(postEncodings)).toEqual(new Set(["identity"]));
      else {
        expect(postEncodings[0]).toBe("gzip");
        expect(new Set(postEncodings.slice(1))).toEqual(new Set(["identity"]));
      }

      expect(pageErrors).toEqual([]);
      expect(consoleErrors).toEqual([]);
      expect(serverErrors).toEqual([]);
    },
  );
});
