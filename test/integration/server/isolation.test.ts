/**
 * Principals cannot touch each other's agents: each instance UID is bound to the principal
 * that first spoke for it, over both transports, across a server restart, and a binding
 * moves only when the application's allowRebind hook says so.
 */
import { toBinary } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { AgentToServerSchema } from "../../../src/gen/opamp/v1/opamp_pb.js";
import { type AuthenticateHook, InMemoryServerStore, type OpAMPServerOptions } from "../../../src/server/index.js";
import { agentDescription, encodeWsFrame, instanceUidToString, type OpampError } from "../../../src/wire/index.js";
import { startServer, stopAll } from "./helpers.js";
import { HttpStatusError, TestAgent, type Transport } from "./test-agent.js";

afterEach(stopAll);

const transports: Transport[] = ["websocket", "http"];

type Principal = { readonly id: string; readonly kind: "agent" | "enrolling" };

/** Bearer tokens "alice", "bob" (agents) and "enroll" (the fleet's enrollment token). */
const authenticate: AuthenticateHook<Principal> = ({ headers }) => {
  const token = (headers.authorization ?? "").replace(/^Bearer /, "");
  if (token === "alice" || token === "bob") return { accept: true, principal: { id: token, kind: "agent" } };
  if (token === "enroll") return { accept: true, principal: { id: "enroll", kind: "enrolling" } };
  return { accept: false, status: 401 };
};

const as = (token: string) => ({ headers: { authorization: `Bearer ${token}` } });

async function start(options: Partial<OpAMPServerOptions<Principal>> = {}) {
  const running = await startServer({
    allowAnonymous: false,
    ...(options as Partial<OpAMPServerOptions>),
    hooks: { authenticate: authenticate as AuthenticateHook, ...(options.hooks as object) },
  });
  const errors: OpampError[] = [];
  running.server.on("error", (e) => errors.push(e));
  return { ...running, errors };
}

describe.each(transports)("instance UIDs bound to principals, over %s", (transport) => {
  /** Sends as an intruder; resolves with how it was refused (WS close code, HTTP status), 0 if not. */
  async function intrude(url: string, token: string, uid: Uint8Array, init: Parameters<TestAgent["fullState"]>[0]) {
    const intruder = await TestAgent.connect(transport, url, { ...as(token), uid });
    const message = intruder.fullState(init);
    if (transport === "websocket") {
      intruder.sendRaw(encodeWsFrame(toBinary(AgentToServerSchema, message)));
      return { how: (await intruder.waitClosed()).code };
    }
    try {
      await intruder.send(message);
      return { how: 0 };
    } catch (e) {
      if (e instanceof HttpStatusError) return { how: e.status };
      throw e;
    }
  }

  it("refuses another principal's messages for a bound UID; the owner carries on untouched", async () => {
    const { server, url, errors } = await start();
    const alice = await TestAgent.connect(transport, url, as("alice"));
    await alice.send(alice.fullState({ agentDescription: agentDescription({ identifying: { "service.name": "a" } }) }));
    const id = instanceUidToString(alice.uid);
    expect(server.getAgent(id)?.boundPrincipal).toBe("alice");

    // Bob speaks for Alice's UID: a new description, then a goodbye.
    const { how } = await intrude(url, "bob", alice.uid, {
      agentDescription: agentDescription({ identifying: { "service.name": "evil" } }),
      agentDisconnect: {},
    });
    expect(how).toBe(transport === "websocket" ? 1008 : 403);
    expect(errors.map((e) => [e.code, e.details.instanceUid])).toEqual([["unauthenticated", id]]);

    // Alice is still connected, with her own description, and still gets her pushes.
    const agent = server.getAgent(id);
    expect(agent?.principal).toEqual({ id: "alice", kind: "agent" });
    expect(agent?.agentDescription?.identifyingAttributes[0]?.value?.value).toEqual({
      case: "stringValue",
      value: "a",
    });
    await server.setRemoteConfig(id, { "c.yaml": "x: 1" });
    const reply =
      transport === "websocket"
        ? await alice.next((m) => m.remoteConfig !== undefined)
        : await alice.send(alice.message());
    expect(reply.remoteConfig?.config?.configMap["c.yaml"]).toBeDefined();
  });

  it("keeps the binding across a server restart (it is stored with the agent)", async () => {
    const store = new InMemoryServerStore();
    const a = await start({ store });
    const alice = await TestAgent.connect(transport, a.url, as("alice"));
    await alice.send(alice.fullState());
    alice.close();
    await a.server.stop();
    expect((await store.getAgent(instanceUidToString(alice.uid)))?.boundPrincipal).toBe("alice");

    const b = await start({ store });
    const { how } = await intrude(b.url, "bob", alice.uid, {});
    expect(how).toBe(transport === "websocket" ? 1008 : 403);
    // Alice herself is welcome back.
    const back = await TestAgent.connect(transport, b.url, { ...as("alice"), uid: alice.uid });
    expect((await back.send(back.fullState())).errorResponse).toBeUndefined();
    back.close();
  });

  it("moves a binding only when allowRebind allows it (enrollment token, then the agent's key)", async () => {
    const rebinds: unknown[] = [];
    const { server, url } = await start({
      hooks: {
        // The key issued at enrollment may take over the UID it enrolled; nothing else may.
        allowRebind: ({ boundPrincipal, principal, instanceUid }) => {
          rebinds.push([boundPrincipal, principal?.id, instanceUid.length]);
          return boundPrincipal === "enroll" && principal?.kind === "agent" && principal.id === "alice";
        },
      },
    });
    const events: string[] = [];
    const who = (agent: { principal: unknown }) => (agent.principal as Principal | undefined)?.id;
    server.on("agentConnected", (agent) => events.push(`connected ${who(agent)}`));
    server.on("agentDisconnected", () => events.push("disconnected"));
    server.on("agentUpdated", (agent, changes) => {
      if (changes.includes("principal")) events.push(`principal ${who(agent)}`);
    });
    const enrolling = await TestAgent.connect(transport, url, as("enroll"));
    await enrolling.send(enrolling.fullState());
    const id = instanceUidToString(enrolling.uid);
    expect(server.getAgent(id)?.boundPrincipal).toBe("enroll");
    const gone = new Promise((resolve) => server.once("agentDisconnected", resolve));
    enrolling.close();
    if (transport === "websocket") await gone;

    const keyed = await TestAgent.connect(transport, url, { ...as("alice"), uid: enrolling.uid });
    expect((await keyed.send(keyed.fullState())).errorResponse).toBeUndefined();
    expect(server.getAgent(id)?.boundPrincipal).toBe("alice");
    // A new connection shows the new credentials over WebSocket; over HTTP the same session
    // goes on, and "principal" says so.
    expect(events).toEqual(
      transport === "websocket"
        ? ["connected enroll", "disconnected", "connected alice"]
        : ["connected enroll", "principal alice"],
    );
    expect((await server.store.getAgent(id))?.boundPrincipal).toBe("alice");
    keyed.close();

    // The enrollment token no longer speaks for it, and the hook was asked.
    const { how } = await intrude(url, "enroll", enrolling.uid, {});
    expect(how).toBe(transport === "websocket" ? 1008 : 403);
    expect(rebinds).toEqual([
      ["enroll", "alice", 36],
      ["alice", "enroll", 36],
    ]);
  });

  it("tells authorizeMessage who the UID is bound to, and principalKey can turn binding off", async () => {
    const seen: (string | undefined)[] = [];
    const { server, url } = await start({
      hooks: {
        principalKey: () => undefined,
        authorizeMessage: ({ boundPrincipal }) => {
          seen.push(boundPrincipal);
          return true;
        },
      },
    });
    const alice = await TestAgent.connect(transport, url, as("alice"));
    await alice.send(alice.fullState());
    // Unbound: Bob may speak for the UID (the application chose so).
    const bob = await TestAgent.connect(transport, url, { ...as("bob"), uid: alice.uid });
    expect((await bob.send(bob.fullState())).errorResponse).toBeUndefined();
    expect(server.getAgent(instanceUidToString(alice.uid))?.principal).toEqual({ id: "bob", kind: "agent" });
    expect(seen).toEqual([undefined, undefined]);
    alice.close();
    bob.close();
  });
});
