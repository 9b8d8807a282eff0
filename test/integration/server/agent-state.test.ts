/**
 * An agent's state over real exchanges, on both transports: the description and health
 * held encoded read back as reported, a health tree re-sent in another map order is no
 * update, and the store gets the state in pieces whose concatenation is the full state.
 */
import { create, equals, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import {
  AgentDescriptionSchema,
  AgentToServerSchema,
  ComponentHealthSchema,
  RemoteConfigStatuses,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import type { AgentPart, StoredAgent } from "../../../src/server/index.js";
import { InMemoryServerStore } from "../../../src/server/index.js";
import { ManualClock } from "../../../src/testing/client-manual-clock.js";
import { agentDescription, encodeWsFrame, instanceUidToString } from "../../../src/wire/index.js";
import { concat, field, type HealthInit, healthBytes as handHealthBytes } from "../../unit/server/hand-encoded.js";
import { startServer, stopAll } from "./helpers.js";
import { TestAgent, type Transport, waitFor } from "./test-agent.js";

afterEach(stopAll);

const transports: Transport[] = ["websocket", "http"];

const COMPONENTS: Record<string, HealthInit> = {
  "receiver/otlp": { healthy: true, status: "StatusOK" },
  "processor/batch": { healthy: true, status: "StatusOK", startTimeUnixNano: 7n },
  "exporter/otlp": { healthy: false, lastError: "connection refused", status: "StatusRecoverableError" },
};
const NAMES = Object.keys(COMPONENTS);

function healthBytes(order: readonly string[], components: Record<string, HealthInit> = COMPONENTS): Uint8Array {
  return handHealthBytes(order, components);
}

const DESCRIPTION = agentDescription({
  identifying: { "service.name": "collector", "service.instance.id": "i-1" },
  nonIdentifying: { "host.name": "h", "os.type": "linux" },
});

/** Sends hand-made AgentToServer bytes and waits for the reply. */
async function sendBytes(agent: TestAgent, raw: Uint8Array) {
  if (agent.transport === "http") return agent.post(raw);
  const reply = agent.next((m) => m.instanceUid.length > 0);
  agent.sendRaw(encodeWsFrame(raw));
  return reply;
}

/** The agent's next message (uid, sequence number, capabilities) with `fields` appended as they are. */
function withFields(agent: TestAgent, ...fields: Uint8Array[]): Uint8Array {
  return concat(toBinary(AgentToServerSchema, agent.message()), ...fields);
}

describe.each(transports)("agent state over %s", (transport) => {
  it("reads the description and health back as reported; another map order is no update, a change is", async () => {
    const { server, url } = await startServer();
    const agent = await TestAgent.connect(transport, url);
    const id = instanceUidToString(agent.uid);
    const updates: AgentPart[][] = [];
    server.on("agentUpdated", (a, changes) => {
      if (a.id === id) updates.push([...changes]);
    });
    const health = fromBinary(ComponentHealthSchema, healthBytes(NAMES));
    await agent.send(agent.fullState({ agentDescription: DESCRIPTION, health }));
    const seen = server.getAgent(agent.uid)!;
    expect(equals(AgentDescriptionSchema, seen.agentDescription!, DESCRIPTION)).toBe(true);
    expect(equals(ComponentHealthSchema, seen.health!, health)).toBe(true);

    // The same tree, its map entries in reverse order: other bytes, no update.
    const reversed = healthBytes([...NAMES].reverse());
    expect(reversed).not.toEqual(toBinary(ComponentHealthSchema, health));
    await sendBytes(agent, withFields(agent, field(5, reversed)));
    // The same description again, with the reordered health: still nothing.
    await sendBytes(
      agent,
      withFields(agent, field(3, toBinary(AgentDescriptionSchema, DESCRIPTION)), field(5, reversed)),
    );
    expect(updates).toEqual([]);
    expect(equals(ComponentHealthSchema, server.getAgent(agent.uid)!.health!, health)).toBe(true);

    // One value changed, entries in the reordered layout: an update naming health only.
    const changed = { ...COMPONENTS, "exporter/otlp": { healthy: true, status: "StatusOK" } };
    await sendBytes(agent, withFields(agent, field(5, healthBytes([...NAMES].reverse(), changed))));
    expect(updates).toEqual([["health"]]);
    const now = server.getAgent(agent.uid)!;
    expect(now.health?.componentHealthMap["exporter/otlp"]?.healthy).toBe(true);
    expect(now.health?.componentHealthMap["exporter/otlp"]?.lastError).toBe("");
    expect(equals(AgentDescriptionSchema, now.agentDescription!, DESCRIPTION)).toBe(true);
    // A read is a fresh object: changing it changes nothing the server holds.
    now.health!.healthy = false;
    now.agentDescription!.identifyingAttributes.length = 0;
    expect(server.getAgent(agent.uid)!.health?.healthy).toBe(true);
    expect(equals(AgentDescriptionSchema, server.getAgent(agent.uid)!.agentDescription!, DESCRIPTION)).toBe(true);
    agent.close();
  });
});

/** An InMemoryServerStore that records every putAgent entry as given. */
class RecordingStore extends InMemoryServerStore {
  readonly puts: StoredAgent[] = [];
  #waiters: { count: number; resolve: () => void }[] = [];

  override async putAgent(agent: StoredAgent): Promise<void> {
    this.puts.push(agent);
    for (const w of this.#waiters.filter((w) => this.puts.length >= w.count)) w.resolve();
    this.#waiters = this.#waiters.filter((w) => this.puts.length < w.count);
    return super.putAgent(agent);
  }

  /** Resolves once `count` writes were made. */
  written(count: number): Promise<void> {
    if (this.puts.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ count, resolve }));
  }
}

describe.each(transports)("stored state over %s", (transport) => {
  it("keeps a strictly encoded part as received, not re-encoded (value before key in an attribute)", async () => {
    const clock = new ManualClock();
    const store = new RecordingStore();
    const { url } = await startServer({ store, clock, heartbeat: { sweepIntervalMs: 1000 } });
    const agent = await TestAgent.connect(transport, url);
    const text = (value: string) => new TextEncoder().encode(value);
    // KeyValue { value (2): AnyValue { string_value (1): "v" }, key (1): "k" }: valid and
    // strict, but protobuf-es writes the key first, so a re-encoding would differ.
    const description = field(3, field(1, concat(field(2, field(1, text("v"))), field(1, text("k")))));
    await sendBytes(agent, withFields(agent, description));
    clock.advance(1000);
    await store.written(1);
    const state = Buffer.from(store.puts[0]!.state);
    expect(state.includes(Buffer.from(description))).toBe(true);
    expect(fromBinary(AgentToServerSchema, state).agentDescription?.identifyingAttributes[0]?.key).toBe("k");
  });

  it("writes the state in pieces, with a lazy `state` that is their concatenation and survives a spread", async () => {
    const clock = new ManualClock();
    const store = new RecordingStore();
    const { server, url } = await startServer({ store, clock, heartbeat: { sweepIntervalMs: 1000 } });
    const agent = await TestAgent.connect(transport, url);
    const id = instanceUidToString(agent.uid);
    const config = { configMap: { configMap: { "c.yaml": { body: new TextEncoder().encode("receivers: {}\n") } } } };
    const status = {
      lastRemoteConfigHash: new Uint8Array([4, 2]),
      status: RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
    };
    const health = fromBinary(ComponentHealthSchema, healthBytes(NAMES));
    await agent.send(
      agent.fullState({ agentDescription: DESCRIPTION, health, effectiveConfig: config, remoteConfigStatus: status }),
    );
    // The sweep writes the changed agent.
    clock.advance(1000);
    await store.written(1);
    const first = store.puts[0]!;

    // The description changes, then the agent leaves: written at once.
    const renamed = agentDescription({ identifying: { "service.name": "renamed" } });
    await agent.send(agent.message({ agentDescription: renamed }));
    const gone = waitFor(server, "agentDisconnected", (a) => a.id === id);
    await agent.send(agent.message({ agentDisconnect: {} }));
    await gone;
    await store.written(2);
    const second = store.puts[1]!;

    const expected = (seq: bigint, description: typeof DESCRIPTION) =>
      create(AgentToServerSchema, {
        instanceUid: agent.uid,
        sequenceNum: seq,
        capabilities: agent.capabilities,
        agentDescription: description,
        health,
        effectiveConfig: config,
        remoteConfigStatus: status,
      });
    for (const [entry, state] of [
      [first, expected(0n, DESCRIPTION)],
      [second, expected(2n, renamed)],
    ] as const) {
      expect(entry.instanceUid).toBe(id);
      expect(entry.stateFields).toBeDefined();
      expect(entry.stateFields!.length).toBeGreaterThanOrEqual(2);
      // Read only now, after later changes: the state as it was when written.
      const bytes = entry.state;
      expect(equals(AgentToServerSchema, fromBinary(AgentToServerSchema, bytes), state)).toBe(true);
      expect(bytes).toEqual(concat(...entry.stateFields!));
      // An own property: a spread copy (what a store might keep) still has the state.
      const spread = { ...entry };
      expect(spread.state).toEqual(bytes);
    }
    // What the store gives back is the latest state.
    const stored = await store.getAgent(id);
    expect(equals(AgentToServerSchema, fromBinary(AgentToServerSchema, stored!.state), expected(2n, renamed))).toBe(
      true,
    );
  });
});
