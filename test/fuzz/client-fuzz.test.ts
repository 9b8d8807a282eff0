/**
 * Standing suite "Fuzzing" (issue 16), client side: a hostile server sends an OpAMPClient
 * (WebSocket transport, on loopback) structure-aware mutations of valid ServerToAgent
 * messages, plus raw bytes. After each input the server sends a probe (a message with a
 * marker); once the client reports the probe, every input before it was handled.
 *
 * Holds: no crash, no unhandled rejection, no `internal` error on the client, every input
 * handled (the probe seen) or the connection dropped by the client, and the heap back near
 * its baseline once the clients are stopped.
 *
 *   FUZZ_INPUTS=N  inputs of all fuzzing suites (this one takes 30 %; default 20 000 in all)
 *   FUZZ_SEED=S    repeat a run (the seed is printed); each input i is made from (S, i)
 */
import type { AddressInfo } from "node:net";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type WebSocket, WebSocketServer } from "ws";
import { OpAMPClient } from "../../src/client/index.js";
import { AgentToServerSchema, ServerToAgentSchema } from "../../src/gen/opamp/v1/opamp_pb.js";
import { encodeWsFrame } from "../../src/wire/index.js";
import { clientInput, probeMessage } from "./generate.js";
import { Rng, runInputs, runSeed } from "./random.js";
import { Inputs, ProcessWatch, settledHeap, Tally, writeSummary } from "./watch.js";

const SEED = runSeed();
/** This suite's share of FUZZ_INPUTS. */
const INPUTS = Math.round(runInputs(20_000) * 0.3);
/** Inputs per client before it is stopped and a new one started. */
const INPUTS_PER_CLIENT = 50;
const CONCURRENT_CLIENTS = 4;
/** An input not handled within this is a failure (the client stalled), not a slow answer. */
const HANDLED_DEADLINE_MS = 10_000;
const HEAP_SLACK_BYTES = 16 * 1024 * 1024;
/** Offset of this suite's input indexes, apart from the server suite's. */
const INDEX_BASE = 1 << 30;

let wss: WebSocketServer;
let url: string;
/** Connections by session, as the clients open them. */
const waiting = new Map<string, (ws: WebSocket) => void>();
const watch = new ProcessWatch();

beforeAll(async () => {
  console.log(`client fuzz: FUZZ_SEED=${SEED} FUZZ_INPUTS=${INPUTS} (this suite)`);
  wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  await new Promise((resolve) => wss.once("listening", resolve));
  url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/v1/opamp`;
  wss.on("connection", (ws, req) => {
    ws.on("error", () => undefined);
    const session = new URL(req.url ?? "/", "http://x").searchParams.get("session") ?? "";
    // Every client message gets an answer, as a server would give.
    ws.on("message", (data: Buffer) => {
      try {
        const message = fromBinary(AgentToServerSchema, data.subarray(1));
        ws.send(
          encodeWsFrame(
            toBinary(ServerToAgentSchema, create(ServerToAgentSchema, { instanceUid: message.instanceUid })),
          ),
        );
      } catch {
        // A client message that does not decode would be the client's bug: counted below.
        ws.close(1002);
      }
    });
    waiting.get(session)?.(ws);
  });
  watch.start();
});

afterAll(async () => {
  watch.stop();
  for (const client of wss.clients) client.terminate();
  await new Promise((resolve) => wss.close(resolve));
});

interface Results {
  readonly kinds: Tally;
  readonly outcomes: Tally;
  readonly errors: Tally;
  readonly problems: string[];
}

/** One client, fed inputs until INPUTS_PER_CLIENT are handled or it drops the connection. */
async function session(id: string, stream: number, inputs: Inputs, results: Results): Promise<void> {
  const uid = new Rng(SEED, INDEX_BASE - 1 - stream).bytes(16);
  const connected = new Promise<WebSocket>((resolve) => waiting.set(id, resolve));
  const client = new OpAMPClient({
    transport: { url: `${url}?session=${id}`, heartbeatIntervalMs: 3_600_000, closeTimeoutMs: 200 },
    retry: { initialDelayMs: 5, maxDelayMs: 20 },
    agent: {
      instanceUid: uid,
      description: {
        identifyingAttributes: [{ key: "service.name", value: { value: { case: "stringValue", value: "fuzz" } } }],
      },
      health: { healthy: true },
      capabilities: {
        acceptsRemoteConfig: true,
        reportsRemoteConfig: true,
        reportsEffectiveConfig: true,
        acceptsRestartCommand: true,
        reportsHeartbeat: true,
        reportsOwnMetrics: true,
      },
      customCapabilities: ["io.fuzz.echo"],
    },
    hooks: {
      onRemoteConfig: async ({ hash }) =>
        hash.length % 2 === 0 ? { status: "applied" } : { status: "failed", errorMessage: "no" },
      onRestart: async () => undefined,
      onCustomMessage: async () => undefined,
      onTelemetryConnectionSettings: async () => undefined,
    },
  });
  const markers = new Map<string, () => void>();
  client.on("message", (message) => {
    const marker = message.customCapabilities?.capabilities[0];
    if (marker !== undefined) markers.get(marker)?.();
  });
  client.on("error", (error) => {
    results.errors.add(error.code);
    if (error.code === "internal") results.problems.push(`client internal error: ${error.message}`);
  });
  await client.start();
  const ws = await connected;
  waiting.delete(id);
  let closed = false;
  const closing = new Promise<string>((resolve) =>
    ws.once("close", () => {
      closed = true;
      resolve("dropped");
    }),
  );
  for (let n = 0; n < INPUTS_PER_CLIENT && !closed; n++) {
    const i = inputs.take();
    if (i === undefined) break;
    const current = client.instanceUid ?? uid;
    const input = clientInput(new Rng(SEED, INDEX_BASE + i), current);
    results.kinds.add(input.kind);
    const marker = `probe:${i}`;
    const handled = new Promise<string>((resolve) => markers.set(marker, () => resolve("handled")));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stalled = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve("stalled"), HANDLED_DEADLINE_MS);
    });
    ws.send(encodeWsFrame(input.bytes));
    ws.send(encodeWsFrame(toBinary(ServerToAgentSchema, probeMessage(current, marker))));
    const outcome = await Promise.race([handled, closing, stalled]);
    clearTimeout(timer);
    markers.delete(marker);
    results.outcomes.add(outcome);
    if (outcome === "stalled") {
      results.problems.push(
        `input ${i} (${input.kind}): the client handled nothing for ${HANDLED_DEADLINE_MS} ms; ` +
          `bytes ${Buffer.from(input.bytes).subarray(0, 256).toString("hex")}`,
      );
    }
  }
  await client.stop();
  ws.terminate();
}

let sessions = 0;

async function worker(w: number, inputs: Inputs, results: Results): Promise<void> {
  while (!inputs.done) await session(`${w}-${sessions}`, sessions++, inputs, results);
}

describe("fuzzing the client's receive path", () => {
  it(`handles ${INPUTS} mutated and random server messages without crashing or failing inside`, {
    timeout: 0,
  }, async () => {
    const results: Results = { kinds: new Tally(), outcomes: new Tally(), errors: new Tally(), problems: [] };
    const warmup = Math.min(300, Math.floor(INPUTS / 10));
    await worker(0, new Inputs(0, warmup), results);
    const baseline = await settledHeap();
    const inputs = new Inputs(warmup, INPUTS, "client fuzz");
    const started = performance.now();
    await Promise.all(Array.from({ length: CONCURRENT_CLIENTS }, (_, w) => worker(w, inputs, results)));
    const seconds = (performance.now() - started) / 1000;
    const after = await settledHeap();
    const summary = {
      seed: SEED,
      inputs: INPUTS,
      seconds: Number(seconds.toFixed(1)),
      inputsPerSecond: Math.round(INPUTS / seconds),
      kinds: results.kinds.toJSON(),
      outcomes: results.outcomes.toJSON(),
      clientErrors: results.errors.toJSON(),
      heap: { baselineMiB: Number((baseline / 2 ** 20).toFixed(1)), afterMiB: Number((after / 2 ** 20).toFixed(1)) },
      problems: results.problems.slice(0, 20),
      processFailures: watch.failures.slice(0, 5),
      // Not failures here: a TimeoutOverflowWarning is the client's unclamped RetryInfo
      // delay (issue 16, defect 5), fixed on the client's side.
      processWarnings: watch.warnings.toJSON(),
    };
    console.log(JSON.stringify(summary, null, 2));
    writeSummary("fuzz-client", summary);

    expect(watch.failures).toEqual([]);
    expect(results.problems).toEqual([]);
    expect(results.errors.get("internal")).toBe(0);
    expect(results.outcomes.get("handled") + results.outcomes.get("dropped")).toBe(INPUTS + warmup);
    expect(after).toBeLessThan(baseline + HEAP_SLACK_BYTES);
  });
});
