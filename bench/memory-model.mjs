// Measures the figures of docs/memory.md (issue 16): what decoding costs per byte received,
// and the heap one agent's state holds on the server, part by part. Uses the dist/ build;
// no sockets (HTTP exchanges through the server's fetch handler).
//
//   npm run build && node --expose-gc bench/memory-model.mjs [--agents 2000] [--mib 1]
import { parseArgs } from "node:util";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AgentToServerSchema, agentDescription, newInstanceUid } from "../dist/index.js";
import { InMemoryServerStore, OpAMPServer } from "../dist/server/index.js";

/** The default store without deliveries: what the server's own record of an agent holds. */
class StateOnlyStore extends InMemoryServerStore {
  async appendDelivery() {}
}

const { values } = parseArgs({
  options: { agents: { type: "string", default: "2000" }, mib: { type: "string", default: "1" } },
});
const gc = globalThis.gc;
if (gc === undefined) throw new Error("run with node --expose-gc");
/** Heap in use after full collections, with finalizers and weak callbacks given time to run. */
const heap = async () => {
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  // Typed arrays past a few dozen bytes keep their bytes outside the JS heap.
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
};

function field(no, payload) {
  const len = [];
  let n = payload.length;
  while (n >= 0x80) {
    len.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  len.push(n);
  return Buffer.concat([Buffer.from([(no << 3) | 2, ...len]), Buffer.from(payload)]);
}

/** Messages of about `bytes` bytes made of the smallest repeated elements each part can hold. */
const SHAPES = {
  "description: empty attributes": (bytes) =>
    field(3, Buffer.alloc(Math.floor(bytes / 2) * 2, Buffer.from([0x12, 0x00]))),
  "description: attributes with an empty value": (bytes) =>
    field(3, Buffer.alloc(Math.floor(bytes / 4) * 4, Buffer.from([0x12, 0x02, 0x12, 0x00]))),
  "health: components with distinct names": (bytes) => {
    const parts = [];
    for (let i = 0, t = 0; t < bytes; i++) {
      const e = field(6, field(1, Buffer.from(i.toString(36))));
      parts.push(e);
      t += e.length;
    }
    return field(5, Buffer.concat(parts));
  },
  "available components: distinct names": (bytes) => {
    const parts = [];
    for (let i = 0, t = 0; t < bytes; i++) {
      const e = field(1, field(1, Buffer.from(i.toString(36))));
      parts.push(e);
      t += e.length;
    }
    return field(14, Buffer.concat(parts));
  },
  "effective config: one large file": (bytes) => {
    const file = field(1, Buffer.alloc(bytes));
    return field(6, field(1, field(1, Buffer.concat([field(1, Buffer.from("a")), field(2, file)]))));
  },
};

console.log(`## Decoding one message of ${values.mib} MiB (protobuf-es fromBinary)\n`);
console.log("| shape | bytes | decode ms | bytes held (heap + array buffers) per byte received |");
console.log("| --- | ---: | ---: | ---: |");
const size = Number(values.mib) * 1024 * 1024;
for (const [name, make] of Object.entries(SHAPES)) {
  const raw = make(size);
  fromBinary(AgentToServerSchema, raw.subarray(0, 0)); // warm the schema's reader
  const before = await heap();
  const start = performance.now();
  let decoded = fromBinary(AgentToServerSchema, raw);
  const ms = performance.now() - start;
  const held = (await heap()) - before;
  decoded = undefined;
  console.log(`| ${name} | ${raw.length} | ${ms.toFixed(0)} | ${(held / raw.length).toFixed(1)} |${decoded ?? ""}`);
}

// ── Held per agent ─────────────────────────────────────────────────────────────────────
const agents = Number(values.agents);
const config = new TextEncoder().encode("receivers:\n  otlp:\n".repeat(420)); // ~8 KiB
const PARTS = {
  description: () => ({
    agentDescription: agentDescription({
      identifying: { "service.name": "otelcol-contrib", "service.instance.id": crypto.randomUUID() },
      nonIdentifying: {
        "host.name": `host-${crypto.randomUUID()}`,
        "os.type": "linux",
        "host.arch": "amd64",
        "service.version": "0.149.0",
      },
    }),
  }),
  health: () => ({
    health: {
      healthy: true,
      status: "StatusOK",
      startTimeUnixNano: 1n,
      componentHealthMap: Object.fromEntries(
        Array.from({ length: 12 }, (_, i) => [`pipeline:metrics/${i}`, { healthy: true, status: "StatusOK" }]),
      ),
    },
  }),
  "effective config (8 KiB, the same on every agent)": () => ({
    effectiveConfig: { configMap: { configMap: { "collector.yaml": { body: config, contentType: "text/yaml" } } } },
  }),
  "effective config (8 KiB, its own on every agent)": () => ({
    effectiveConfig: {
      configMap: {
        configMap: {
          "collector.yaml": {
            body: new TextEncoder().encode(`# ${crypto.randomUUID()}\n${"receivers:\n  otlp:\n".repeat(420)}`),
            contentType: "text/yaml",
          },
        },
      },
    },
  }),
  "remote config status": () => ({
    remoteConfigStatus: { lastRemoteConfigHash: new Uint8Array(32).fill(7), status: 1 },
  }),
  "package statuses (10 packages)": () => ({
    packageStatuses: {
      serverProvidedAllPackagesHash: new Uint8Array(32).fill(3),
      packages: Object.fromEntries(
        Array.from({ length: 10 }, (_, i) => [
          `pkg-${i}`,
          { name: `pkg-${i}`, agentHasVersion: "1.0.0", agentHasHash: new Uint8Array(32).fill(i), status: 1 },
        ]),
      ),
    },
  }),
  "custom capabilities (3)": () => ({
    customCapabilities: { capabilities: ["io.opentelemetry.pprof", "com.example.logs", "com.example.restart"] },
  }),
  "connection settings status": () => ({
    connectionSettingsStatus: { lastConnectionSettingsHash: new Uint8Array(32).fill(5), status: 1 },
  }),
  "available components (60, the same on every agent)": () => ({
    availableComponents: {
      hash: new Uint8Array(32).fill(9),
      components: Object.fromEntries(
        Array.from({ length: 60 }, (_, i) => [
          `receiver/r${i}`,
          {
            metadata: [
              { key: "code.namespace", value: { value: { case: "stringValue", value: `go.example/receiver${i}` } } },
            ],
          },
        ]),
      ),
    },
  }),
};

async function heldPerAgent(parts, deliveries = false) {
  const server = new OpAMPServer({
    allowAnonymous: true,
    heartbeat: { sweepIntervalMs: 3_600_000 },
    store: deliveries ? new InMemoryServerStore() : new StateOnlyStore(),
  });
  await server.start();
  const encoded = [];
  const before = await heap();
  for (let i = 0; i < agents; i++) {
    const init = { instanceUid: newInstanceUid(), capabilities: 0x7fffn };
    for (const part of parts) Object.assign(init, PARTS[part]());
    const body = toBinary(AgentToServerSchema, create(AgentToServerSchema, init));
    if (i === 0) encoded.push(body.length);
    const res = await server.fetch(
      new Request("http://x/v1/opamp", {
        method: "POST",
        headers: { "content-type": "application/x-protobuf" },
        body,
      }),
    );
    if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
    await res.arrayBuffer();
  }
  const perAgent = ((await heap()) - before) / agents;
  await server.stop();
  return { perAgent, bytes: encoded[0] };
}

console.log(`\n## Held per agent, ${agents} HTTP agents online, by part\n`);
console.log("The server's record (no state written to the store yet: the sweep has not run), and beside it");
console.log("the delivery history the in-memory store keeps for the statuses.\n");
console.log("| state | message bytes | held per agent | of which this part | + store's delivery record |");
console.log("| --- | ---: | ---: | ---: | ---: |");
await heldPerAgent(Object.keys(PARTS).filter((part) => !part.includes("its own"))); // warm-up: one-time costs (code, caches) out of the figures
const base = await heldPerAgent([]);
console.log(`| record only (UID, capabilities) | ${base.bytes} | ${base.perAgent.toFixed(0)} | — | — |`);
for (const part of Object.keys(PARTS)) {
  const m = await heldPerAgent([part]);
  const withDeliveries = part.includes("status") ? await heldPerAgent([part], true) : undefined;
  const store = withDeliveries === undefined ? "—" : (withDeliveries.perAgent - m.perAgent).toFixed(0);
  console.log(
    `| + ${part} | ${m.bytes} | ${m.perAgent.toFixed(0)} | ${(m.perAgent - base.perAgent).toFixed(0)} | ${store} |`,
  );
}
const all = await heldPerAgent(Object.keys(PARTS).filter((part) => !part.includes("its own")));
console.log(`| everything above (shared config) | ${all.bytes} | ${all.perAgent.toFixed(0)} | — | — |`);
