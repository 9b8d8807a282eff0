// opamp-sdk's OpAMPClient against opamp-go v0.23.0's server (`opamp-interop server` with
// its admin API), over WebSocket and plain HTTP. The Go server prints what it receives
// as JSON events (with a monotonic "ms" timestamp); the admin API makes it push configs,
// ReportFullState, new instance UIDs and connection settings, and refuse connections
// with 503 + Retry-After. Every wait is on an event, never on a sleep.

import { create } from "@bufbuild/protobuf";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { OpAMPClientEvents } from "../../src/client/events.js";
import { MemoryClientStateStore, OpAMPClient, type OpAMPClientOptions } from "../../src/client/index.js";
import {
  AgentConfigFileSchema,
  type AgentConfigMap,
  AgentConfigMapSchema,
  ConnectionSettingsStatuses,
} from "../../src/gen/opamp/v1/opamp_pb.js";
import { AgentCapability, AgentToServerFlag, agentDescription, instanceUidToString } from "../../src/wire/index.js";
import { type GoEvent, type GoProcess, startGo } from "../conformance/peers.js";
import { BUILD_TIMEOUT_MS, describeWithGo } from "./go-harness.js";

/** Limit for one awaited happening (a message, an answer, a reconnect). */
const WAIT_MS = 15_000;
const TEST_TIMEOUT_MS = 60_000;

const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");

function configMap(body: string): AgentConfigMap {
  return create(AgentConfigMapSchema, {
    configMap: {
      "config.yaml": create(AgentConfigFileSchema, { body: new TextEncoder().encode(body), contentType: "text/yaml" }),
    },
  });
}

/** Resolves with the arguments of the first `event` (from now on) that satisfies `predicate`. */
function clientEvent<E extends keyof OpAMPClientEvents>(
  client: OpAMPClient,
  event: E,
  predicate: (...args: OpAMPClientEvents[E]) => boolean = () => true,
  timeoutMs = WAIT_MS,
): Promise<OpAMPClientEvents[E]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off(event, listener);
      reject(new Error(`no client "${event}" event within ${timeoutMs} ms`));
    }, timeoutMs);
    const listener = (...args: OpAMPClientEvents[E]): void => {
      if (!predicate(...args)) return;
      clearTimeout(timer);
      client.off(event, listener);
      resolve(args);
    };
    client.on(event, listener);
  });
}

describeWithGo("opamp-sdk's client against opamp-go's server", () => {
  let go: GoProcess;
  let urls: { ws: string; http: string };
  let adminUrl = "";
  const running: OpAMPClient[] = [];

  beforeAll(async () => {
    go = await startGo(["server", "-admin", "127.0.0.1:0"]);
    const listening = await go.waitFor((e) => e.event === "listening", 30_000);
    urls = { ws: String(listening["wsUrl"]), http: String(listening["httpUrl"]) };
    adminUrl = String(listening["adminUrl"]);
  }, BUILD_TIMEOUT_MS);

  afterEach(async () => {
    await Promise.all(running.splice(0).map((c) => c.stop()));
  });

  afterAll(async () => {
    await Promise.all(running.splice(0).map((c) => c.stop()));
    await go?.stop();
  });

  /** Runs an admin command on the Go server; resolves with its JSON answer. */
  async function admin(command: Record<string, unknown>): Promise<Record<string, unknown>> {
    const response = await fetch(`${adminUrl}/command`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(command),
    });
    const answer = (await response.json()) as Record<string, unknown>;
    if (!response.ok) throw new Error(`admin ${String(command["cmd"])}: HTTP ${response.status}: ${answer["error"]}`);
    return answer;
  }

  /** Where the Go server's event list stands now; pass to {@link goEvent} to see only later events. */
  const mark = (): number => go.events.length;

  /** The first Go event at or after `since` that is `name` and satisfies `predicate`. */
  function goEvent(
    since: number,
    name: string,
    predicate: (e: GoEvent) => boolean = () => true,
    timeoutMs = WAIT_MS,
  ): Promise<GoEvent> {
    return go
      .waitFor((e) => e.event === name && go.events.indexOf(e) >= since && predicate(e), timeoutMs)
      .catch((error: unknown) => {
        throw new Error(`no "${name}" event as expected: ${String(error)}\nevents since:\n${recent(since)}`);
      });
  }

  /** The Go events at or after `since` (the last 40), one per line, for failure messages. */
  const recent = (since: number): string =>
    go.events
      .slice(since)
      .slice(-40)
      .map((e) => JSON.stringify(e))
      .join("\n");

  /** Go events at or after `since` named `name` that satisfy `predicate` (as of now). */
  function goEvents(since: number, name: string, predicate: (e: GoEvent) => boolean = () => true): GoEvent[] {
    return go.events.slice(since).filter((e) => e.event === name && predicate(e));
  }

  /** Resolves with the `count` first messages of `uid` at or after `since`. */
  async function messages(since: number, uid: string, count: number, timeoutMs = WAIT_MS): Promise<GoEvent[]> {
    const of = (e: GoEvent) => e.event === "message" && e["uid"] === uid;
    await go
      .waitFor(() => go.events.slice(since).filter(of).length >= count, timeoutMs)
      .catch((error: unknown) => {
        throw new Error(`fewer than ${count} messages from ${uid}: ${String(error)}\nevents since:\n${recent(since)}`);
      });
    return go.events.slice(since).filter(of).slice(0, count);
  }

  for (const transport of ["ws", "http"] as const) {
    describe(`over ${transport === "ws" ? "WebSocket" : "HTTP"}`, () => {
      /** An agent with remote config and effective config hooks; its UID and store. */
      async function startAgent(
        options: {
          heartbeatIntervalMs?: number;
          headers?: Record<string, string>;
          store?: MemoryClientStateStore;
          hooks?: OpAMPClientOptions["hooks"];
          agent?: Partial<NonNullable<OpAMPClientOptions["agent"]>>;
          /** Called before start(), to listen from the first attempt on. */
          beforeStart?: (client: OpAMPClient) => void;
        } = {},
      ) {
        let effective = configMap("initial: true\n");
        const applied: string[] = [];
        const store = options.store ?? new MemoryClientStateStore();
        const client = new OpAMPClient({
          transport: {
            url: urls[transport],
            heartbeatIntervalMs: options.heartbeatIntervalMs ?? 1_000,
            ...(options.headers === undefined ? {} : { headers: options.headers }),
          },
          agent: {
            description: agentDescription({ identifying: { "service.name": `sdk-interop-${transport}` } }),
            ...options.agent,
          },
          storage: { state: store },
          hooks: {
            async onRemoteConfig({ config }) {
              applied.push(new TextDecoder().decode(config.configMap["config.yaml"]?.body));
              effective = config;
              return { status: "applied" };
            },
            getEffectiveConfig: async () => effective,
            ...options.hooks,
          },
        });
        running.push(client);
        options.beforeStart?.(client);
        const since = mark();
        await client.start();
        const uid = instanceUidToString(client.instanceUid!);
        const first = await goEvent(since, "message", (e) => e["uid"] === uid);
        return { client, uid, store, applied, since, first };
      }

      it("connects and sends its full state first", { timeout: TEST_TIMEOUT_MS }, async () => {
        const { client, uid, since, first } = await startAgent();
        expect(first).toMatchObject({ seq: 0, transport, description: true, effective: true, disconnect: false });
        const caps = BigInt(first["capabilities"] as number);
        for (const bit of [
          AgentCapability.ReportsStatus,
          AgentCapability.AcceptsRemoteConfig,
          AgentCapability.ReportsRemoteConfig,
          AgentCapability.ReportsEffectiveConfig,
          AgentCapability.ReportsHeartbeat,
        ]) {
          expect(caps & bit, `capability 0x${bit.toString(16)}`).toBe(bit);
        }
        const effective = await goEvent(since, "effective_config", (e) => e["uid"] === uid);
        expect(effective).toMatchObject({ seq: 0, files: { "config.yaml": "initial: true\n" } });
        // opamp-go's server had everything it needed: it never asked for the full state.
        await messages(since, uid, 2);
        expect(goEvents(since, "full_state_requested", (e) => e["uid"] === uid)).toEqual([]);
        expect(client.state.t).toBe("connected");
      });

      it("applies a remote config the server pushes and reports APPLIED with its hash", {
        timeout: TEST_TIMEOUT_MS,
      }, async () => {
        const { uid, applied } = await startAgent();
        const body = `receivers: {otlp: {}} # ${transport}\n`;
        const since = mark();
        const { hash } = await admin({ cmd: "config", uid, body });
        const done = await goEvent(since, "config_applied", (e) => e["uid"] === uid);
        expect(done["hash"]).toBe(hash);
        expect(applied).toEqual([body]);
        const effective = await goEvent(
          since,
          "effective_config",
          (e) => e["uid"] === uid && (e["files"] as Record<string, string>)["config.yaml"] === body,
        );
        expect(effective["files"]).toEqual({ "config.yaml": body });
        // WS: pushed at once with Connection.Send; HTTP: on the answer to the next poll.
        expect(await goEvent(since, "pushed", (e) => e["uid"] === uid)).toMatchObject({ cmd: "config", transport });
      });

      it("honours ReportFullState from the server", { timeout: TEST_TIMEOUT_MS }, async () => {
        const { uid } = await startAgent();
        // A compressed report first: without the flag the description is not resent.
        const compressed = await goEvent(0, "message", (e) => e["uid"] === uid && (e["seq"] as number) > 0);
        expect(compressed).toMatchObject({ description: false, effective: false });
        const since = mark();
        await admin({ cmd: "full-state", uid });
        const full = await goEvent(since, "message", (e) => e["uid"] === uid && e["description"] === true);
        expect(full["seq"] as number).toBeGreaterThan(compressed["seq"] as number);
        expect(full).toMatchObject({ effective: true, transport });
        await goEvent(since, "effective_config", (e) => e["uid"] === uid && e["seq"] === full["seq"]);
      });

      it("adopts a new instance UID the server assigns, uses and persists it", {
        timeout: TEST_TIMEOUT_MS,
      }, async () => {
        const { client, uid, store } = await startAgent();
        const adopted = clientEvent(client, "instanceUid");
        const since = mark();
        const { newUid } = await admin({ cmd: "assign-uid", uid });
        expect(newUid).not.toBe(uid);
        const [assigned] = await adopted;
        expect(instanceUidToString(assigned)).toBe(newUid);
        expect(instanceUidToString(client.instanceUid!)).toBe(newUid);
        // Later messages come under the new UID, and none under the old one after it.
        const later = await messages(since, String(newUid), 2);
        const firstNew = go.events.indexOf(later[0]!);
        expect(goEvents(firstNew, "message", (e) => e["uid"] === uid)).toEqual([]);
        // HTTP: the OpAMP-Instance-UID header follows (WS upgrades carry none).
        for (const e of later) expect(e["uidHeader"]).toBe(transport === "http" ? newUid : "");
        const saved = await store.load();
        expect(instanceUidToString(saved!.instanceUid!)).toBe(newUid);
      });

      it("asks for an instance UID (RequestInstanceUid) and adopts the one assigned", {
        timeout: TEST_TIMEOUT_MS,
      }, async () => {
        const { client, uid, store, first } = await startAgent({ agent: { requestInstanceUid: true } });
        expect(BigInt(first["flags"] as number) & AgentToServerFlag.RequestInstanceUid).toBe(
          AgentToServerFlag.RequestInstanceUid,
        );
        const assigned = await goEvent(0, "uid_assigned", (e) => e["uid"] === uid);
        const newUid = String(assigned["newUid"]);
        const [next] = await messages(0, newUid, 1);
        expect(BigInt(next!["flags"] as number) & AgentToServerFlag.RequestInstanceUid).toBe(0n);
        expect(instanceUidToString(client.instanceUid!)).toBe(newUid);
        expect(instanceUidToString((await store.load())!.instanceUid!)).toBe(newUid);
      });

      it("verifies offered connection settings with new headers, commits them and uses them on reconnect", {
        timeout: TEST_TIMEOUT_MS,
      }, async () => {
        const enrollment = `Bearer enrollment-token-${transport}`;
        const perAgent = `Bearer per-agent-key-${transport}`;
        const offers: string[] = [];
        const store = new MemoryClientStateStore();
        const { client, uid, first } = await startAgent({
          headers: { Authorization: enrollment },
          store,
          hooks: {
            onOpampConnectionSettings: async ({ settings }) => {
              offers.push(settings.headers?.headers.map((h) => `${h.key}: ${h.value}`).join(", ") ?? "");
              return true;
            },
          },
        });
        expect(first["auth"]).toBe(enrollment);
        expect(BigInt(first["capabilities"] as number) & AgentCapability.AcceptsOpAMPConnectionSettings).toBe(
          AgentCapability.AcceptsOpAMPConnectionSettings,
        );

        const committed = clientEvent(client, "connectionSettings");
        const since = mark();
        // heartbeat_interval_seconds is part of every offer (proto3: absent reads as 0, which
        // turns WS heartbeats off, in the spec and in opamp-go's client alike): keep 1 s.
        const { hash } = await admin({
          cmd: "connection-settings",
          uid,
          headers: { Authorization: perAgent },
          heartbeatSeconds: 1,
        });
        const [settings] = await committed;
        expect(offers).toEqual([`Authorization: ${perAgent}`]);
        expect(settings).toMatchObject({
          endpoint: urls[transport],
          headers: [{ name: "Authorization", value: perAgent }],
          heartbeatIntervalSeconds: 1,
        });
        expect(toHex(settings.offerHash!)).toBe(hash);

        // The old connection says goodbye with the old header; the new one carries the new header.
        const bye = await goEvent(since, "message", (e) => e["uid"] === uid && e["disconnect"] === true);
        expect(bye["auth"]).toBe(enrollment);
        const applied = await goEvent(
          since,
          "connection_settings_status",
          (e) => e["uid"] === uid && e["status"] === "ConnectionSettingsStatuses_APPLIED",
        );
        expect(applied["hash"]).toBe(hash);
        // APPLYING before the move, APPLIED after it (a full-state report in between may repeat APPLYING).
        const statuses = goEvents(since, "connection_settings_status", (e) => e["uid"] === uid);
        expect(statuses[0]).toMatchObject({ status: "ConnectionSettingsStatuses_APPLYING", hash });
        expect(statuses.filter((e) => e["status"] === "ConnectionSettingsStatuses_FAILED")).toEqual([]);
        expect(go.events.indexOf(statuses[0]!)).toBeLessThan(go.events.indexOf(bye));
        const afterBye = go.events.indexOf(bye) + 1;
        const [withKey] = await messages(afterBye, uid, 1);
        expect(withKey!["auth"]).toBe(perAgent);
        // Committed (APPLIED) only once a connection with the new header was answered.
        expect(go.events.indexOf(applied)).toBeGreaterThan(go.events.indexOf(withKey!));
        expect((await store.load())?.connectionSettings).toMatchObject({
          headers: [{ name: "Authorization", value: perAgent }],
        });

        // From now on the enrollment token is refused; the agent must not need it again.
        await admin({ cmd: "reject", auth: enrollment, status: 401, count: 1_000 });
        const reconnect = mark();
        if (transport === "ws") await admin({ cmd: "disconnect", uid });
        // WS: a new upgrade; HTTP: every poll is a new request.
        const again = await goEvent(reconnect, "connecting", (e) => e["transport"] === transport);
        expect(again["auth"]).toBe(perAgent);
        await messages(reconnect, uid, 2);
        expect(goEvents(afterBye, "message", (e) => e["uid"] === uid && e["auth"] !== perAgent)).toEqual([]);

        // A restart with the same store connects with the committed settings, not the options'.
        await client.stop();
        const restart = mark();
        let connected: Promise<unknown> = Promise.resolve();
        const second = await startAgent({
          headers: { Authorization: enrollment },
          store,
          beforeStart: (c) => {
            connected = clientEvent(c, "connect");
          },
        });
        await connected;
        expect(second.uid).toBe(uid);
        expect(second.first["auth"]).toBe(perAgent);
        expect(goEvents(restart, "rejected", (e) => e["auth"] === enrollment)).toEqual([]);
      });

      it("honours the heartbeat interval the server offers", { timeout: TEST_TIMEOUT_MS }, async () => {
        // 5 s of its own, so 1 s intervals can only come from the offer.
        const { client, uid, store } = await startAgent({
          heartbeatIntervalMs: 5_000,
          hooks: { onOpampConnectionSettings: async () => true },
        });
        const statusApplied = clientEvent(
          client,
          "connectionSettingsStatus",
          (s) => s.status === ConnectionSettingsStatuses.ConnectionSettingsStatuses_APPLIED,
        );
        const since = mark();
        const { hash } = await admin({ cmd: "connection-settings", uid, heartbeatSeconds: 1 });
        const [status] = await statusApplied;
        expect(toHex(status.lastConnectionSettingsHash)).toBe(hash);
        const reported = await goEvent(
          since,
          "connection_settings_status",
          (e) => e["uid"] === uid && e["status"] === "ConnectionSettingsStatuses_APPLIED",
        );
        expect(reported["hash"]).toBe(hash);
        // Heartbeats from the message that reported APPLIED on: five gaps.
        const at = go.events.indexOf(reported);
        const from = go.events.findLastIndex((e, i) => i < at && e.event === "message" && e["uid"] === uid);
        const beats = await messages(from, uid, 6);
        const gaps = beats.slice(1).map((e, i) => (e["ms"] as number) - (beats[i]!["ms"] as number));
        for (const gap of gaps) {
          expect(gap, `gaps between messages (ms): ${gaps.join(", ")}`).toBeGreaterThanOrEqual(500);
          expect(gap, `gaps between messages (ms): ${gaps.join(", ")}`).toBeLessThanOrEqual(3_000);
        }
        // No reconnect was needed for a heartbeat-only offer.
        expect(goEvents(since, "message", (e) => e["uid"] === uid && e["disconnect"] === true)).toEqual([]);
        expect((await store.load())?.connectionSettings?.heartbeatIntervalSeconds).toBe(1);
      });

      it("waits for Retry-After when the server answers 503", { timeout: TEST_TIMEOUT_MS }, async () => {
        const auth = `Bearer retry-after-${transport}`;
        const since = mark();
        await admin({ cmd: "reject", auth, status: 503, retryAfter: "2", count: 2 });
        const failures: { code: string; retryAfterMs: number | undefined }[] = [];
        const { uid } = await startAgent({
          headers: { Authorization: auth },
          beforeStart: (client) =>
            client.on("connectFailed", (error) =>
              failures.push({ code: error.code, retryAfterMs: error.details.retryAfterMs }),
            ),
        });
        const rejected = goEvents(since, "rejected", (e) => e["auth"] === auth);
        const accepted = await goEvent(since, "connecting", (e) => e["auth"] === auth);
        expect(rejected.map((e) => [e["status"], e["retryAfter"], e["transport"]])).toEqual([
          [503, "2", transport],
          [503, "2", transport],
        ]);
        const attempts = [...rejected, accepted].map((e) => e["ms"] as number);
        const waits = attempts.slice(1).map((t, i) => t - attempts[i]!);
        for (const wait of waits) {
          expect(wait, `waits between attempts (ms): ${waits.join(", ")}`).toBeGreaterThanOrEqual(1_900);
        }
        expect(failures).toEqual([
          { code: "unavailable", retryAfterMs: 2_000 },
          { code: "unavailable", retryAfterMs: 2_000 },
        ]);
        // The first message the server processes carries the full state, and its
        // sequence_num is 0: a refused request gives its number back, so no gap is seen.
        expect(goEvents(since, "message", (e) => e["uid"] === uid)[0]).toMatchObject({
          seq: 0,
          description: true,
          effective: true,
        });
      });
    });
  }
});
