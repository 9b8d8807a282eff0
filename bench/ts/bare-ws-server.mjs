// Reference point, not a server under test: a bare `ws` server that answers every message
// with an empty ServerToAgent frame and holds nothing. `--servers bare` with the connect
// scenario gives the RSS a bare WebSocket connection costs here, the floor below which no
// OpAMP server on `ws` can go. Same events and admin API as sdk-server.mjs.
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { WebSocketServer } from "ws";

const { values } = parseArgs({
  options: {
    listen: { type: "string", default: "127.0.0.1:0" },
    lifetime: { type: "string", default: "1800" },
  },
});
const emit = (ev, fields = {}) => process.stdout.write(`${JSON.stringify({ ...fields, ev, unix_ms: Date.now() })}\n`);
const i = values.listen.lastIndexOf(":");
const host = values.listen.slice(0, i);
if (!/^127\.\d+\.\d+\.\d+$/.test(host)) throw new Error("listen host must be in 127.0.0.0/8");

const EMPTY_REPLY = new Uint8Array([0]); // WS header 0 + empty ServerToAgent
let messages = 0;
const http = createServer((_req, res) => {
  res.statusCode = 404;
  res.end();
});
const wss = new WebSocketServer({ server: http, path: "/v1/opamp", perMessageDeflate: false });
wss.on("connection", (socket) => {
  socket.on("message", () => {
    messages++;
    socket.send(EMPTY_REPLY);
  });
});
const admin = createServer((req, res) => {
  res.setHeader("content-type", "application/json");
  if (req.url === "/stats") {
    const n = wss.clients.size;
    return res.end(
      JSON.stringify({ pid: process.pid, agents: n, full_state: n, connections: n, messages, applied: 0 }),
    );
  }
  res.statusCode = 404;
  res.end("{}");
});
await new Promise((resolve) => http.listen(Number(values.listen.slice(i + 1)), host, resolve));
await new Promise((resolve) => admin.listen(0, "127.0.0.1", resolve));
const addr = `${host}:${http.address().port}`;
emit("listening", {
  pid: process.pid,
  server: "bare-ws",
  addr,
  admin: `127.0.0.1:${admin.address().port}`,
  url_ws: `ws://${addr}/v1/opamp`,
  url_http: `http://${addr}/v1/opamp`,
});
const stop = () => process.exit(0);
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
setTimeout(stop, Number(values.lifetime) * 1000);
