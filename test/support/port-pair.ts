/**
 * Two ends of an in-process stand-in for a node:cluster IPC channel: each message is
 * cloned (structured clone for "advanced", a JSON round trip for "json", as Node's two
 * serializations do) and delivered later, in order.
 */
import { EventEmitter } from "node:events";
import type { ClusterPort, ClusterSerialization } from "../../src/server/cluster/index.js";

export interface TestPort extends ClusterPort {
  /** Messages this end sent. */
  readonly sent: unknown[];
  /** Closes the channel: both ends emit "disconnect"; later sends throw. */
  disconnect(): void;
}

export function portPair(serialization: ClusterSerialization = "advanced"): [TestPort, TestPort] {
  const clone = (m: unknown) => (serialization === "advanced" ? structuredClone(m) : JSON.parse(JSON.stringify(m)));
  let open = true;
  const make = (): TestPort & EventEmitter => {
    const e = new EventEmitter() as TestPort & EventEmitter & { sent: unknown[] };
    e.sent = [];
    return e;
  };
  const a = make();
  const b = make();
  const wire = (from: TestPort & EventEmitter, to: TestPort & EventEmitter) => {
    from.send = (message: unknown) => {
      if (!open) throw new Error("channel closed");
      from.sent.push(message);
      const copy = clone(message);
      setImmediate(() => open && to.emit("message", copy));
      return true;
    };
    from.disconnect = () => {
      if (!open) return;
      open = false;
      a.emit("disconnect");
      b.emit("disconnect");
    };
  };
  wire(a, b);
  wire(b, a);
  return [a, b];
}
