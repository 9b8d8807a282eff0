// Browser entry for test/browser/browser.test.ts. esbuild bundles it for platform
// "browser" (so any node: import or Node builtin fails the build) and the page loads the
// bundle as a module. It imports only the public entry points, as an application would,
// and exposes two probes on `window.opampProbe` that the test calls with page.evaluate:
// the wire codecs, and an OpAMPClient talking to a real OpAMPServer.

import { OpAMPClient } from "../../src/client/index.js";
import {
  AgentToServerSchema,
  agentDescription,
  configMap,
  configMapHash,
  create,
  decodeHttpBody,
  decodeWsFrame,
  decodeWsMessage,
  describeAgent,
  encodeHttpBody,
  encodeWsMessage,
  gunzip,
  gzip,
  instanceUidFromString,
  instanceUidToString,
  isInstanceUid,
  newInstanceUid,
  OpampError,
  RemoteConfigStatuses,
} from "../../src/index.js";
import { PROBE_AGENT_NAME, PROBE_CONFIG, PROBE_SEQUENCE_NUM } from "./probe-constants.js";

/** What the wire probe found; plain JSON so that page.evaluate can return it. */
export interface WireReport {
  /** `WebSocket` is the browser's own (not a polyfill). */
  readonly nativeWebSocket: boolean;
  /** Hex of the WS frame of a fixed AgentToServer, for the test to decode in Node. */
  readonly frameHex: string;
  readonly frameHeader: number;
  /** The frame decoded back in the browser. */
  readonly decodedSequenceNum: string;
  readonly decodedName: string;
  /** A non-zero header is refused with this OpampError code. */
  readonly badHeaderCode: string;
  /** gzip via CompressionStream: magic bytes and round trip. */
  readonly gzipMagic: readonly number[];
  readonly gunzipEqual: boolean;
  /** Body of `encodeHttpBody(gzip: true)` decoded again with Content-Encoding gzip. */
  readonly httpBodySequenceNum: string;
  /** A gzipped body larger than the limit is refused with this code. */
  readonly gzipLimitCode: string;
  /** Three fresh UUIDv7s and what the helpers say about them. */
  readonly uids: readonly string[];
  readonly uidsValid: boolean;
  readonly uidRoundTrip: boolean;
  /** Hash of the fixed config map (hex), in two key orders. */
  readonly configHashHex: string;
  readonly configHashOtherOrderHex: string;
}

/** What one OpAMPClient run in the page saw. */
export interface AgentReport {
  readonly instanceUid: string;
  /** Body of every remote config file the hook was given, by file name. */
  readonly configFiles: Readonly<Record<string, string>>;
  /** Hex hash of the remote config offered. */
  readonly configHashHex: string;
  /** Remote config statuses the client reported, in order (enum names). */
  readonly statuses: readonly string[];
  /** Client events seen, in order (connect, connectFailed: …, error: …). */
  readonly events: readonly string[];
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function errorCode(fn: () => unknown): string {
  try {
    fn();
    return "no error";
  } catch (error) {
    return error instanceof OpampError ? error.code : `not an OpampError: ${String(error)}`;
  }
}

async function asyncErrorCode(fn: () => Promise<unknown>): Promise<string> {
  try {
    await fn();
    return "no error";
  } catch (error) {
    return error instanceof OpampError ? error.code : `not an OpampError: ${String(error)}`;
  }
}

async function wire(): Promise<WireReport> {
  const message = create(AgentToServerSchema, {
    instanceUid: newInstanceUid(),
    sequenceNum: PROBE_SEQUENCE_NUM,
    agentDescription: agentDescription({ identifying: { "service.name": PROBE_AGENT_NAME } }),
  });
  const frame = encodeWsMessage(AgentToServerSchema, message);
  const decoded = decodeWsMessage(AgentToServerSchema, frame);
  const bad = frame.slice();
  bad[0] = 1;

  const payload = new TextEncoder().encode("opamp ".repeat(1000));
  const zipped = await gzip(payload);
  const unzipped = await gunzip(zipped);
  const body = await encodeHttpBody(AgentToServerSchema, message, { gzip: true });
  const fromBody = await decodeHttpBody(AgentToServerSchema, body, { contentEncoding: "gzip" });

  const uids = [newInstanceUid(), newInstanceUid(), newInstanceUid()];
  const texts = uids.map(instanceUidToString);
  const reversed = Object.fromEntries(Object.entries(PROBE_CONFIG).reverse());

  return {
    nativeWebSocket:
      typeof WebSocket === "function" && /\[native code\]/.test(Function.prototype.toString.call(WebSocket)),
    frameHex: hex(frame),
    frameHeader: frame[0] ?? -1,
    decodedSequenceNum: decoded.sequenceNum.toString(),
    decodedName: String(
      decoded.agentDescription ? describeAgent(decoded.agentDescription).identifying["service.name"] : "",
    ),
    badHeaderCode: errorCode(() => decodeWsFrame(bad)),
    gzipMagic: [zipped[0] ?? -1, zipped[1] ?? -1],
    gunzipEqual: unzipped.length === payload.length && unzipped.every((b, i) => b === payload[i]),
    httpBodySequenceNum: fromBody.sequenceNum.toString(),
    gzipLimitCode: await asyncErrorCode(() => gunzip(zipped, 1024)),
    uids: texts,
    uidsValid: uids.every((uid) => isInstanceUid(uid)),
    uidRoundTrip: texts.every((text, i) => hex(instanceUidFromString(text)) === hex(uids[i] ?? new Uint8Array())),
    configHashHex: hex(await configMapHash(configMap(PROBE_CONFIG))),
    configHashOtherOrderHex: hex(await configMapHash(configMap(reversed))),
  };
}

const clients = new Map<string, OpAMPClient>();

/**
 * Starts an OpAMPClient for `url` named `name` (gzipped HTTP requests with `compression`,
 * through CompressionStream) and resolves once it has reported its
 * remote config APPLIED, or as soon as anything fails (FAILED, an error, a failed or lost
 * connection), which the test then sees in the report.
 */
async function runAgent(url: string, name: string, compression = false): Promise<AgentReport> {
  const configFiles: Record<string, string> = {};
  let configHashHex = "";
  const statuses: string[] = [];
  const events: string[] = [];
  const decoder = new TextDecoder();
  let settle: () => void = () => undefined;
  const done = new Promise<void>((resolve) => {
    settle = resolve;
  });
  const client = new OpAMPClient({
    transport: { url, heartbeatIntervalMs: 1_000, compression },
    agent: {
      description: agentDescription({
        identifying: { "service.name": name },
        // With compression, a first report over the 1 KiB gzip threshold.
        nonIdentifying: {
          "browser.user_agent": navigator.userAgent,
          ...(compression ? { "probe.padding": "p".repeat(1500) } : {}),
        },
      }),
    },
    hooks: {
      onRemoteConfig: async (offer) => {
        for (const [file, content] of Object.entries(offer.config.configMap)) {
          configFiles[file] = decoder.decode(content.body);
        }
        configHashHex = hex(offer.hash);
        return { status: "applied" };
      },
    },
  });
  clients.set(name, client);
  client.on("connect", () => events.push("connect"));
  // Against a local server nothing may fail: the first failure ends the run, so that the
  // test shows it instead of waiting for an APPLIED that will not come.
  client.on("connectFailed", (error) => {
    events.push(`connectFailed: ${error.code} ${error.message}`);
    settle();
  });
  client.on("disconnect", (error) => {
    events.push(`disconnect: ${error.code} ${error.message}`);
    settle();
  });
  client.on("error", (error) => {
    events.push(`error: ${error.code} ${error.message}`);
    settle();
  });
  client.on("remoteConfigStatus", (status) => {
    statuses.push((RemoteConfigStatuses[status.status] ?? String(status.status)).replace(/^RemoteConfigStatuses_/, ""));
    if (
      status.status === RemoteConfigStatuses.RemoteConfigStatuses_APPLIED ||
      status.status === RemoteConfigStatuses.RemoteConfigStatuses_FAILED
    )
      settle();
  });
  await client.start();
  await done;
  const uid = client.instanceUid;
  return {
    instanceUid: uid === undefined ? "" : instanceUidToString(uid),
    configFiles,
    configHashHex,
    statuses,
    events,
  };
}

/** Stops the named client (agent_disconnect, then close / last POST). */
async function stopAgent(name: string): Promise<void> {
  await clients.get(name)?.stop();
  clients.delete(name);
}

/** Stops every client still running. */
async function stopAll(): Promise<void> {
  await Promise.all([...clients.keys()].map(stopAgent));
}

const probe = { wire, runAgent, stopAgent, stopAll };

/** The shape the test reaches through page.evaluate. */
export type OpampProbe = typeof probe;

(globalThis as unknown as { opampProbe: OpampProbe }).opampProbe = probe;
