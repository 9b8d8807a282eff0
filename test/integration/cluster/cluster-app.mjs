// A cluster of OpAMPServer workers made with startCluster (from dist/), driven by the test
// through JSON lines: commands on stdin (to the primary, which relays them to a worker),
// events on stdout (from the primary and from each worker).
//   node cluster-app.mjs <workers>
// Commands: {"cmd":"push","id":1,"worker":"worker-1","uid":"…","config":"x: 1"}
//           {"cmd":"locate","id":2,"worker":"worker-2","uid":"…"}
//           {"cmd":"desired","id":3,"worker":"worker-2","uid":"…"}   the agent's desired config hash there
//           {"cmd":"kill","worker":"worker-1"}      SIGKILL, as a crash would
//           {"cmd":"stop"}
import cluster from "node:cluster";
import { createInterface } from "node:readline";
import { startCluster } from "../../../dist/server/cluster/index.js";
import { OpAMPServer } from "../../../dist/server/index.js";

const emit = (ev, fields = {}) => process.stdout.write(`${JSON.stringify({ ev, ...fields })}\n`);
const hex = (bytes) => (bytes === undefined ? undefined : Buffer.from(bytes).toString("hex"));
const APP = "cluster-app";

// CLUSTER_APP_FAIL_SETUP=1: every worker's setup throws (startCluster must reject in the primary).
const failSetup = process.env.CLUSTER_APP_FAIL_SETUP === "1";

const started = startCluster({
  workers: Number(process.argv[2] ?? 2),
  async setup({ bus, store, replicaId }) {
    if (failSetup) throw new Error("no config file");
    const server = new OpAMPServer({ bus, store, replicaId, allowAnonymous: true, heartbeat: { intervalSeconds: 1 } });
    // The desired config hash at connect: read from the primary's store when the agent
    // arrives from another worker (or after a worker died).
    server.on("agentConnected", (agent) =>
      emit("connected", {
        worker: replicaId,
        uid: agent.id,
        transport: agent.transport,
        desired: hex(agent.desiredConfigHash),
      }),
    );
    server.on("message", (agent, message) =>
      emit("message", { worker: replicaId, uid: agent.id, full: message.agentDescription !== undefined }),
    );
    server.on("error", (error) =>
      emit("server-error", { worker: replicaId, code: error.code, message: error.message }),
    );
    process.on("message", (message) => {
      if (message?.tag !== APP) return;
      const { id, cmd, uid } = message;
      const answer = (fields) => emit("result", { id, worker: replicaId, ...fields });
      if (cmd === "push") {
        server.setRemoteConfig(uid, { "c.yaml": message.config }).then(
          (r) => answer({ ok: true, sent: r.sent.length, forwarded: r.forwarded.length, hash: hex(r.hash) }),
          (e) => answer({ ok: false, code: e.code, message: e.message }),
        );
      } else if (cmd === "desired") {
        const agent = server.getAgent(uid);
        answer({ ok: true, here: agent !== undefined, desired: hex(agent?.desiredConfigHash) });
      } else if (cmd === "locate") {
        server.locate(uid).then(
          (holder) => answer({ ok: true, holder }),
          (e) => answer({ ok: false, code: e.code, message: e.message }),
        );
      }
    });
    const address = await server.listen({ host: "127.0.0.1", port: 0 });
    emit("worker-ready", { worker: replicaId, pid: process.pid, url: address.url });
    return server;
  },
});
const node = await started.catch((error) => {
  emit("start-failed", {
    code: error.code,
    message: error.message,
    workers: Object.keys(cluster.workers ?? {}).length,
  });
  process.exit(3);
});

if (node.role === "primary") {
  const info = () => node.workers.map((w) => ({ worker: w.replicaId, pid: w.pid }));
  node.on("workerExit", (w, code, signal) => emit("worker-exit", { worker: w.replicaId, code, signal }));
  node.on("workerReady", (w) => emit("worker-restarted", { worker: w.replicaId, workers: info() }));
  node.on("error", (error) => emit("cluster-error", { code: error.code, message: error.message }));
  emit("started", { workers: info() });
  createInterface({ input: process.stdin }).on("line", (line) => {
    const command = JSON.parse(line);
    const target = Object.values(cluster.workers ?? {}).find((w) => `worker-${w.id}` === command.worker);
    if (command.cmd === "kill") target?.process.kill("SIGKILL");
    else if (command.cmd === "stop") node.stop().then(() => emit("stopped", { workers: node.workers.length }));
    else target?.send({ tag: APP, ...command });
  });
}
