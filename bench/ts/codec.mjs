// Scenario 6, opamp-sdk side: encode/decode of the very bytes `opamp-bench codec --dump`
// wrote (a full AgentToServer and a ServerToAgent with an 8 KiB config), with
// @bufbuild/protobuf on opamp-sdk's generated schemas, plus the WS framing of src/wire.
// Usage: node bench/ts/codec.mjs --input DIR [--iterations N] [--min-time-ms MS]
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    input: { type: "string" },
    iterations: { type: "string", default: "20000" },
    "min-time-ms": { type: "string", default: "1000" },
  },
});

function emit(ev, fields) {
  process.stdout.write(`${JSON.stringify({ ...fields, ev, unix_ms: Date.now() })}\n`);
}

let sdk;
let pb;
try {
  sdk = await import("../../dist/index.js");
  pb = await import("@bufbuild/protobuf");
} catch (error) {
  emit("unavailable", { reason: `opamp-sdk dist not built (npm run build): ${error.message}` });
  process.exit(0);
}
const { AgentToServerSchema, ServerToAgentSchema, encodeWsMessage, decodeWsMessage } = sdk;
const { fromBinary, toBinary } = pb;

const iterations = Number(values.iterations);
const minTimeMs = Number(values["min-time-ms"]);
const a2sBytes = new Uint8Array(readFileSync(join(values.input, "agent-to-server.bin")));
const s2aBytes = new Uint8Array(readFileSync(join(values.input, "server-to-agent.bin")));
const a2s = fromBinary(AgentToServerSchema, a2sBytes);
const s2a = fromBinary(ServerToAgentSchema, s2aBytes);
const a2sFrame = encodeWsMessage(AgentToServerSchema, a2s);

let sink = 0;
/** Runs op in batches of 100 until both `iterations` ops and `minTimeMs` are reached, after a warm-up. */
function timeOp(op) {
  for (let i = 0; i < iterations / 10 + 1; i++) op();
  let n = 0;
  const t0 = performance.now();
  while (n < iterations || performance.now() - t0 < minTimeMs) {
    for (let i = 0; i < 100; i++) op();
    n += 100;
  }
  return { nsPerOp: ((performance.now() - t0) * 1e6) / n, n };
}

const cases = [
  ["AgentToServer.encode", a2sBytes.length, () => (sink += toBinary(AgentToServerSchema, a2s).length)],
  [
    "AgentToServer.decode",
    a2sBytes.length,
    () => (sink += Number(fromBinary(AgentToServerSchema, a2sBytes).sequenceNum)),
  ],
  ["ServerToAgent.encode", s2aBytes.length, () => (sink += toBinary(ServerToAgentSchema, s2a).length)],
  [
    "ServerToAgent.decode",
    s2aBytes.length,
    () => (sink += Number(fromBinary(ServerToAgentSchema, s2aBytes).capabilities)),
  ],
  [
    "AgentToServer.decodeWsMessage",
    a2sFrame.length,
    () => (sink += decodeWsMessage(AgentToServerSchema, a2sFrame).capabilities > 0n ? 1 : 0),
  ],
  [
    "ServerToAgent.encodeWsMessage",
    s2aBytes.length + 1,
    () => (sink += encodeWsMessage(ServerToAgentSchema, s2a).length),
  ],
];

const sameSize =
  toBinary(AgentToServerSchema, a2s).length === a2sBytes.length &&
  toBinary(ServerToAgentSchema, s2a).length === s2aBytes.length;
for (const [name, bytes, op] of cases) {
  const { nsPerOp, n } = timeOp(op);
  emit("codec", {
    impl: "opamp-sdk (@bufbuild/protobuf)",
    case: name,
    bytes,
    ns_per_op: nsPerOp,
    ops_per_s: 1e9 / nsPerOp,
    mb_per_s: (bytes / nsPerOp) * 1e3,
    iterations: n,
    same_bytes: sameSize,
  });
}
emit("codec_done", { node: process.version, sink: sink % 2 });
