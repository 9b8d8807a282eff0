/**
 * Issue 16, defect 2: a malformed message must not break an agent's record, its own or
 * another principal's, on this server or another in the same process; a stored state that
 * does not decode makes the agent unknown (asked for its full state), never a 500 or 1011.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { AgentDescriptionSchema, AgentToServerSchema, ServerToAgentFlags } from "../../../src/gen/opamp/v1/opamp_pb.js";
import { InMemoryServerStore, type OpAMPServer } from "../../../src/server/index.js";
import { agentDescription, instanceUidToString, type OpampError } from "../../../src/wire/index.js";
import { concat, field, overrunField, varint } from "../../unit/server/hand-encoded.js";
import { startServer, stopAll } from "./helpers.js";
import { TestAgent, type Transport, waitFor } from "./test-agent.js";

afterEach(stopAll);

const transports: Transport[] = ["websocket", "http"];

/** Principals by bearer token. */
function tokenAuth() {
  return {
    authenticate: (r: { headers: Readonly<Record<string, string>> }) => {
      const token = r.headers["authorization"];
      if (token === "Bearer a") return { accept: true as const, principal: "tenant-a" };
      if (token === "Bearer b") return { accept: true as const, principal: "tenant-b" };
      return { accept: false as const, status: 401 };
    },
  };
}

function collectErrors(server: OpAMPServer): OpampError[] {
  const errors: OpampError[] = [];
  server.on("error", (e) => errors.push(e));
  return errors;
}

/**
 * The 26-byte message of the issue: `uid` and an agent_description whose only attribute's
 * length runs 4 bytes past the description's end (over a second instance_uid field).
 */
function poisonedDescription(uid: Uint8Array): Uint8Array {
  return concat(field(1, uid), overrunField(3, 0x0a, concat(field(1, new TextEncoder().encode("hi")))));
}

/** Sends raw protobuf bytes as one WebSocket message and waits for the answer. */
async function sendRawWs(agent: TestAgent, payload: Uint8Array): Promise<void> {
  const reply = agent.next();
  agent.sendRaw(concat(Uint8Array.of(0), payload));
  await reply;
}

/** Reads the agent's state the server wrote (after stop(), which waits for every write). */
async function storedState(server: OpAMPServer, uid: Uint8Array) {
  await server.stop();
  const stored = await server.store.getAgent(instanceUidToString(uid));
  expect(stored).toBeDefined();
  return fromBinary(AgentToServerSchema, stored!.state);
}

describe.each(transports)("poisoned records (victim over %s)", (transport) => {
  it("a message on another connection whose description overruns its length cannot break the agent", async () => {
    expect(poisonedDescription(new Uint8Array(16)).length).toBe(26);
    const { server, url } = await startServer({ allowAnonymous: false, hooks: tokenAuth() });
    const errors = collectErrors(server);
    const victim = await TestAgent.connect(transport, url, { headers: { authorization: "Bearer a" } });
    await victim.send(victim.fullState());
    // The same principal (a second process with the agent's credentials, a gateway): binding
    // UIDs to principals refuses another principal's message for the UID outright.
    const attacker = await TestAgent.connect("websocket", url, { headers: { authorization: "Bearer a" } });
    await sendRawWs(attacker, poisonedDescription(victim.uid));
    attacker.close();

    // The agent's record still works: reads, comparisons, new reports.
    const agent = server.getAgent(victim.uid)!;
    expect(agent.agentDescription?.identifyingAttributes.map((a) => a.key)).toEqual(["hi"]);
    const reply = await victim.send(victim.fullState());
    expect(reply.errorResponse).toBeUndefined();
    expect(agent.agentDescription?.identifyingAttributes[0]?.value?.value.value).toBe("test-agent");
    const heartbeat = await victim.send(victim.message());
    expect(heartbeat.errorResponse).toBeUndefined();
    expect(errors.filter((e) => e.code === "internal")).toEqual([]);
    victim.close();
    const state = await storedState(server, victim.uid);
    expect(state.agentDescription?.identifyingAttributes[0]?.key).toBe("service.name");
  });
});

/**
 * An effective config (field 6) whose one file's body runs past the config's end over
 * `trailing`, which a length-trusting splitter takes for the next top-level field: the
 * decoded config is file "c.yaml" with body `trailing`.
 */
function poisonedEffectiveConfig(uid: Uint8Array, trailing: Uint8Array): Uint8Array {
  const file = Uint8Array.of(0x0a, trailing.length); // AgentConfigFile.body, its bytes outside
  const entry = concat(field(1, new TextEncoder().encode("c.yaml")), Uint8Array.of(0x12, file.length), file);
  const configMap = field(1, entry); // AgentConfigMap.config_map entry
  const effective = field(1, configMap); // EffectiveConfig.config_map
  return concat(field(1, uid), Uint8Array.from([0x32, ...varint(effective.length)]), effective, trailing);
}

describe("shared effective configs", () => {
  it("one agent's malformed report of a common config reaches no other agent, principal or server", async () => {
    const trailing = field(20, new TextEncoder().encode("receivers: {}"));
    const first = await startServer({ allowAnonymous: false, hooks: tokenAuth() });
    const second = await startServer({ allowAnonymous: false, hooks: tokenAuth() });
    const errors = [...collectErrors(first.server), ...collectErrors(second.server)];

    const attacker = await TestAgent.connect("websocket", first.url, { headers: { authorization: "Bearer b" } });
    const attack = poisonedEffectiveConfig(attacker.uid, trailing);
    // The whole message decodes: the decoder reads the body past the config's end.
    expect(fromBinary(AgentToServerSchema, attack).effectiveConfig?.configMap?.configMap["c.yaml"]?.body).toEqual(
      trailing,
    );
    await sendRawWs(attacker, attack);

    // Victims report the same config, well encoded, on the same server and on another one.
    const victims = await Promise.all(
      [first.url, second.url].map((url) =>
        TestAgent.connect("websocket", url, { headers: { authorization: "Bearer a" } }),
      ),
    );
    for (const victim of victims) {
      const reply = await victim.send(
        victim.fullState({ effectiveConfig: { configMap: { configMap: { "c.yaml": { body: trailing } } } } }),
      );
      expect(reply.errorResponse).toBeUndefined();
      victim.close();
    }
    attacker.close();
    for (const [i, { server }] of [first, second].entries()) {
      const state = await storedState(server, victims[i]!.uid);
      expect(state.effectiveConfig?.configMap?.configMap["c.yaml"]?.body).toEqual(trailing);
    }
    // The attacker's own state is stored well formed too.
    const own = await first.server.store.getAgent(instanceUidToString(attacker.uid));
    expect(fromBinary(AgentToServerSchema, own!.state).effectiveConfig?.configMap?.configMap["c.yaml"]?.body).toEqual(
      trailing,
    );
    expect(errors.filter((e) => e.code === "internal")).toEqual([]);
  });
});

describe.each(transports)("stored state that cannot be used (%s)", (transport) => {
  it("treats an agent whose stored state does not decode as unknown: full state asked, storage_failed reported", async () => {
    const store = new InMemoryServerStore();
    const { server, url } = await startServer({ store });
    const agent = await TestAgent.connect(transport, url);
    await store.putAgent({
      instanceUid: instanceUidToString(agent.uid),
      lastSeen: 0,
      state: Uint8Array.of(0x1a, 0x05, 0x0a, 0xff), // a description field cut short
    });
    await store.putDesired(instanceUidToString(agent.uid), { remoteConfig: Uint8Array.of(0x0a, 0x09) });
    const reported = waitFor(server, "error", (e) => e.code === "storage_failed");
    agent.seq = 5n;
    const reply = await agent.send(agent.message());
    expect(reply.errorResponse).toBeUndefined();
    expect(reply.flags & BigInt(ServerToAgentFlags.ServerToAgentFlags_ReportFullState)).not.toBe(0n);
    const [error] = await reported;
    expect(error.message).toContain(instanceUidToString(agent.uid));
    // The full state replaces what was stored.
    expect((await agent.send(agent.fullState())).errorResponse).toBeUndefined();
    expect(server.getAgent(agent.uid)?.agentDescription).toBeDefined();
    agent.close();
  });

  it("repairs a stored state whose parts overrun their lengths (written by an older version)", async () => {
    const store = new InMemoryServerStore();
    const { server, url } = await startServer({ store });
    const errors = collectErrors(server);
    const agent = await TestAgent.connect(transport, url);
    const description = agentDescription({ identifying: { "service.name": "stored" } });
    const state = concat(
      toBinary(
        AgentToServerSchema,
        create(AgentToServerSchema, { instanceUid: agent.uid, sequenceNum: 4n, capabilities: agent.capabilities }),
      ),
      field(3, toBinary(AgentDescriptionSchema, description)),
      overrunField(5, 0x32),
    );
    await store.putAgent({ instanceUid: instanceUidToString(agent.uid), lastSeen: 0, state });
    agent.seq = 5n;
    const reply = await agent.send(agent.message());
    expect(reply.errorResponse).toBeUndefined();
    // Known, in sequence: no full state asked; the record reads back.
    expect(reply.flags & BigInt(ServerToAgentFlags.ServerToAgentFlags_ReportFullState)).toBe(0n);
    const record = server.getAgent(agent.uid)!;
    expect(record.agentDescription?.identifyingAttributes[0]?.value?.value.value).toBe("stored");
    expect(record.health).toBeDefined();
    expect(errors).toEqual([]);
    agent.close();
  });
});
