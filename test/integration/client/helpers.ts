/** Shared helpers for client integration tests. */
import { create } from "@bufbuild/protobuf";
import type { OpAMPClientEvents } from "../../../src/client/events.js";
import { OpAMPClient } from "../../../src/client/opamp-client.js";
import type { OpAMPClientOptions } from "../../../src/client/options.js";
import {
  AgentConfigFileSchema,
  type AgentConfigMap,
  AgentConfigMapSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import { ManualClock } from "../../../src/testing/client-manual-clock.js";
import type { FakeServer } from "./fake-server.js";

/** Resolves with the arguments of the next `event`. */
export function nextEvent<E extends keyof OpAMPClientEvents>(
  client: OpAMPClient,
  event: E,
): Promise<OpAMPClientEvents[E]> {
  return new Promise((resolve) => {
    client.once(event, (...args: OpAMPClientEvents[E]) => resolve(args));
  });
}

/** Resolves with the first `event` whose arguments satisfy `predicate`. */
export function eventWhere<E extends keyof OpAMPClientEvents>(
  client: OpAMPClient,
  event: E,
  predicate: (...args: OpAMPClientEvents[E]) => boolean,
): Promise<OpAMPClientEvents[E]> {
  return new Promise((resolve) => {
    const listener = (...args: OpAMPClientEvents[E]) => {
      if (!predicate(...args)) return;
      client.off(event, listener);
      resolve(args);
    };
    client.on(event, listener);
  });
}

/** A config map with one text file. */
export function textConfig(name: string, body: string): AgentConfigMap {
  return create(AgentConfigMapSchema, {
    configMap: {
      [name]: create(AgentConfigFileSchema, { body: new TextEncoder().encode(body), contentType: "text/yaml" }),
    },
  });
}

/** Everything a test needs for one client. */
export interface Harness {
  readonly client: OpAMPClient;
  readonly clock: ManualClock;
}

/** Builds a client against the fake server with a manual clock and pinned jitter (0.5). */
export function makeClient(
  server: Pick<FakeServer, "url">,
  kind: "ws" | "http",
  extra: Omit<Partial<OpAMPClientOptions>, "transport"> & { transport?: Partial<OpAMPClientOptions["transport"]> } = {},
): Harness {
  const clock = new ManualClock(1_700_000_000_000);
  const client = new OpAMPClient({
    ...extra,
    transport: { url: server.url(kind), ...extra.transport },
    clock,
    random: () => 0.5,
  });
  return { client, clock };
}

/** Lets every queued microtask and I/O callback run (not a sleep: no time passes on the test clock). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
