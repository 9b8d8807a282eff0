// The enrollment recipe of docs/server.md (examples/enrollment.ts): the doc shows this very
// code, and the code works with opamp-sdk's own client over both transports. (Against the
// Collector's opampsupervisor it runs in test/interop/collector-supervisor.test.ts.)

import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Enrollment, type EnrollmentPrincipal, MemoryAgentKeyStore } from "../../examples/enrollment.js";
import { OpAMPClient } from "../../src/client/index.js";
import {
  AgentToServerSchema,
  agentDescription,
  create,
  instanceUidToString,
  newInstanceUid,
  type OpampError,
} from "../../src/index.js";
import { type AuthRequest, OpAMPServer } from "../../src/server/index.js";

const root = resolve(import.meta.dirname, "../..");

function request(authorization: string | undefined): AuthRequest {
  return {
    headers: authorization === undefined ? {} : { authorization },
    url: new URL("http://127.0.0.1/v1/opamp"),
    remoteAddress: "127.0.0.1",
    tlsPeerCertificate: undefined,
    tlsAuthorized: false,
    transport: "http",
  };
}

const sha256 = (text: string): Buffer => createHash("sha256").update(text).digest();

describe("docs/server.md, Enrollment with real supervisors", () => {
  it("shows examples/enrollment.ts as it is, imports as a user writes them", async () => {
    const source = await readFile(join(root, "examples/enrollment.ts"), "utf8");
    const code = source
      .slice(source.indexOf("import "))
      .replaceAll('"../src/index.js"', '"opamp-sdk"')
      .replaceAll('"../src/server/index.js"', '"opamp-sdk/server"');
    const doc = await readFile(join(root, "docs/server.md"), "utf8");
    expect(doc).toContain(`\`\`\`ts\n${code}\`\`\``);
  });
});

describe("the enrollment recipe", () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function enrollingServer(options: { allowReenrollment?: boolean } = {}) {
    const token = "xse_fleet-token-for-tests";
    const keys = new MemoryAgentKeyStore();
    const errors: unknown[] = [];
    const enrollment = new Enrollment({
      enrollmentTokens: { default: token },
      keys,
      heartbeatIntervalSeconds: 1,
      onError: (error) => errors.push(error),
      ...options,
    });
    const server = new OpAMPServer<EnrollmentPrincipal>({
      hooks: {
        authenticate: enrollment.authenticate,
        authorizeMessage: enrollment.authorizeMessage,
        allowRebind: enrollment.allowRebind,
      },
    });
    enrollment.attach(server);
    const { url } = await server.listen({ port: 0, host: "127.0.0.1" });
    cleanups.push(() => server.stop());
    return { server, enrollment, token, keys, url, errors };
  }

  /** Starts a client that accepts OpAMP connection settings; resolves with the key it commits. */
  async function enroll(
    url: string,
    token: string,
    instanceUid: Uint8Array,
  ): Promise<{ client: OpAMPClient; key: string }> {
    const client = new OpAMPClient({
      // Over HTTP the key rides on the reply to the next request: poll every second.
      transport: { url, headers: { Authorization: `Bearer ${token}` }, heartbeatIntervalMs: 1000 },
      agent: { instanceUid, description: agentDescription({ identifying: { "service.name": "enrollment-test" } }) },
      hooks: { onOpampConnectionSettings: async () => true },
    });
    cleanups.push(() => client.stop());
    const committed = new Promise<string>((done) =>
      client.on("connectionSettings", (settings) => {
        done(settings.headers.find((h) => h.name.toLowerCase() === "authorization")?.value ?? "");
      }),
    );
    await client.start();
    return { client, key: await committed };
  }

  for (const transport of ["ws", "http"] as const) {
    it(`${transport}: a new agent trades the fleet token for a key of its own and keeps using it`, async () => {
      const { server, token, keys, url, errors } = await enrollingServer();
      const uid = newInstanceUid();
      const id = instanceUidToString(uid);
      const enrolledAgain = new Promise<void>((done) =>
        server.on("message", (agent) => {
          if (agent.principal?.kind === "agent") done();
        }),
      );
      const { key } = await enroll(transport === "ws" ? url.replace(/^http/, "ws") : url, token, uid);
      expect(key).toMatch(new RegExp(`^Bearer xag_${id}_[A-Za-z0-9_-]{43}$`));
      await enrolledAgain;
      expect(server.getAgent(id)?.principal).toEqual({ kind: "agent", id });
      // Only a digest of the key is kept.
      const digests = await keys.digests(id);
      expect(digests.map((d) => Buffer.from(d).toString("hex"))).toEqual([sha256(key.slice(7)).toString("hex")]);
      expect(errors).toEqual([]);
    });

    it(`${transport}: a known agent that enrolls again gets a new key, and its old key stops working`, async () => {
      const { enrollment, token, url, errors } = await enrollingServer();
      const uid = newInstanceUid();
      const endpoint = transport === "ws" ? url.replace(/^http/, "ws") : url;
      const first = await enroll(endpoint, token, uid);
      await first.client.stop();
      // A supervisor restarted without the offered headers comes back with the fleet token.
      const second = await enroll(endpoint, token, uid);
      expect(second.key).not.toBe(first.key);
      expect((await enrollment.authenticate(request(first.key))).accept).toBe(false);
      expect((await enrollment.authenticate(request(second.key))).accept).toBe(true);
      expect(errors).toEqual([]);
    });
  }

  for (const transport of ["ws", "http"] as const) {
    it(`${transport}: with allowReenrollment false, a known agent back with the fleet token is refused`, async () => {
      const { server, token, url } = await enrollingServer({ allowReenrollment: false });
      const uid = newInstanceUid();
      const endpoint = transport === "ws" ? url.replace(/^http/, "ws") : url;
      const first = await enroll(endpoint, token, uid);
      await first.client.stop();
      const refused = new Promise<OpampError>((done) =>
        server.on("error", (e) => {
          if (e.code === "unauthenticated") done(e);
        }),
      );
      const again = new OpAMPClient({
        transport: { url: endpoint, headers: { Authorization: `Bearer ${token}` }, heartbeatIntervalMs: 1000 },
        agent: { instanceUid: uid },
      });
      cleanups.push(() => again.stop());
      await again.start();
      expect((await refused).details?.instanceUid).toBe(instanceUidToString(uid));
    });
  }

  it("refuses anything but a known key or a fleet token with 401, and lets a key speak only for its agent", async () => {
    const keys = new MemoryAgentKeyStore();
    const enrollment = new Enrollment({ enrollmentTokens: { blue: "xse_blue", green: "xse_green" }, keys });
    const agentId = instanceUidToString(newInstanceUid());
    const key = `xag_${agentId}_${"k".repeat(43)}`;
    await keys.add(agentId, sha256(key));

    expect(await enrollment.authenticate(request("Bearer xse_green"))).toEqual({
      accept: true,
      principal: { kind: "enrolling", id: "enroll:green", fleet: "green" },
    });
    expect(await enrollment.authenticate(request(`bearer ${key}`))).toEqual({
      accept: true,
      principal: { kind: "agent", id: agentId },
    });
    const refused = { accept: false, status: 401, headers: { "WWW-Authenticate": "Bearer" } };
    for (const bad of [
      undefined,
      "Bearer xse_red",
      "Basic xse_blue",
      `Bearer ${key.slice(0, -1)}x`, // wrong secret
      `Bearer xag_${instanceUidToString(newInstanceUid())}_${"k".repeat(43)}`, // no key for that agent
      `Bearer ${key} extra`,
    ])
      expect(await enrollment.authenticate(request(bad)), String(bad)).toEqual(refused);

    const own = create(AgentToServerSchema, { instanceUid: Buffer.from(agentId.replaceAll("-", ""), "hex") });
    const other = create(AgentToServerSchema, { instanceUid: newInstanceUid() });
    const enrolling = { kind: "enrolling", id: "enroll:blue", fleet: "blue" } as const;
    expect(enrollment.authorizeMessage({ message: own, principal: { kind: "agent", id: agentId } })).toBe(true);
    expect(enrollment.authorizeMessage({ message: other, principal: { kind: "agent", id: agentId } })).toBe(false);
    expect(enrollment.authorizeMessage({ message: other, principal: enrolling })).toBe(true);

    // The server binds a UID to the principal that first spoke for it: the key issued to a
    // UID takes it over, a key of another agent does not, and a fleet token may enroll a
    // known UID again unless that is turned off.
    expect(enrollment.allowRebind({ instanceUid: agentId, principal: { kind: "agent", id: agentId } })).toBe(true);
    const stranger = instanceUidToString(newInstanceUid());
    expect(enrollment.allowRebind({ instanceUid: stranger, principal: { kind: "agent", id: agentId } })).toBe(false);
    expect(enrollment.allowRebind({ instanceUid: agentId, principal: enrolling })).toBe(true);
    expect(enrollment.allowRebind({ instanceUid: agentId, principal: undefined })).toBe(false);
    const strict = new Enrollment({ enrollmentTokens: {}, allowReenrollment: false });
    expect(strict.allowRebind({ instanceUid: agentId, principal: enrolling })).toBe(false);
  });

  it("forgets older keys once an agent uses a newer one, but not newer ones it may still be given", async () => {
    const keys = new MemoryAgentKeyStore();
    const enrollment = new Enrollment({ enrollmentTokens: {}, keys });
    const agentId = instanceUidToString(newInstanceUid());
    const [k1, k2, k3] = ["a", "b", "c"].map((c) => `xag_${agentId}_${c.repeat(43)}`) as [string, string, string];
    for (const k of [k1, k2, k3]) await keys.add(agentId, sha256(k));
    expect((await enrollment.authenticate(request(`Bearer ${k2}`))).accept).toBe(true);
    expect((await enrollment.authenticate(request(`Bearer ${k1}`))).accept).toBe(false);
    expect((await enrollment.authenticate(request(`Bearer ${k3}`))).accept).toBe(true);
    expect((await enrollment.authenticate(request(`Bearer ${k2}`))).accept).toBe(false);
  });
});
