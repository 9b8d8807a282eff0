/**
 * Child process for the kill -9 test: loads the state (as a restarted agent does), then
 * saves ever newer states through FileClientStateStore as fast as it can, printing
 * "saved <n>" after each save resolved. Bundled by the test with esbuild.
 */
import { FileClientStateStore } from "../../../src/client/file-state-store.js";
import { stateFor } from "./state-shape.js";

const path = process.argv[2];
if (path === undefined) throw new Error("usage: state-writer <state file>");
const store = new FileClientStateStore(path);
const loaded = await store.load();
let n = loaded?.instanceUid === undefined ? 0 : new DataView(loaded.instanceUid.buffer).getUint32(0);
process.stdout.write(`loaded ${n}\n`);
for (;;) {
  n += 1;
  await store.save(stateFor(n));
  process.stdout.write(`saved ${n}\n`);
}
