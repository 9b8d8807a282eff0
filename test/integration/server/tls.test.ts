/**
 * listen({ tls }) over both transports with mutual TLS: the client certificate reaches
 * `authenticate` as `tlsPeerCertificate`, and agents without an accepted one are refused.
 * Certificates are made with the openssl CLI; without it the suite is skipped.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { AuthDecision, AuthRequest } from "../../../src/server/index.js";
import { OpAMPServer } from "../../../src/server/index.js";
import { stopAll } from "./helpers.js";
import { HttpStatusError, TestAgent, type Transport, waitFor } from "./test-agent.js";

const haveOpenssl = spawnSync("openssl", ["version"]).status === 0;

interface Pki {
  ca: string;
  serverKey: string;
  serverCert: string;
  clientKey: string;
  clientCert: string;
}

function makePki(dir: string): Pki {
  const run = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
  run(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "1",
    "-subj",
    "/CN=test-ca",
  );
  const leaf = (name: string, cn: string, ext: string) => {
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`);
    run(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${name}.pem`,
      "-days",
      "1",
      "-extfile",
      ext,
    );
  };
  execFileSync(
    "sh",
    [
      "-c",
      "printf 'subjectAltName=IP:127.0.0.1\\n' > server.ext; printf 'extendedKeyUsage=clientAuth\\n' > client.ext",
    ],
    { cwd: dir },
  );
  leaf("server", "127.0.0.1", "server.ext");
  leaf("client", "agent-7", "client.ext");
  const read = (f: string) => readFileSync(join(dir, f), "utf8");
  return {
    ca: read("ca.pem"),
    serverKey: read("server.key"),
    serverCert: read("server.pem"),
    clientKey: read("client.key"),
    clientCert: read("client.pem"),
  };
}

/** Accepts only a client certificate issued to CN agent-7; the principal is the CN. */
function byCertificate(request: AuthRequest): AuthDecision {
  const cert = request.tlsPeerCertificate as { subject?: { CN?: string } } | undefined;
  if (cert?.subject?.CN === "agent-7") return { accept: true, principal: cert.subject.CN };
  return { accept: false, status: 401 };
}

describe.skipIf(!haveOpenssl)("mutual TLS", () => {
  let dir = "";
  let pki: Pki;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "opamp-tls-"));
    pki = makePki(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(stopAll);

  for (const transport of ["websocket", "http"] as Transport[]) {
    it(`${transport}: passes the client certificate to authenticate`, async () => {
      const server = new OpAMPServer({ hooks: { authenticate: byCertificate } });
      const { url } = await server.listen({
        port: 0,
        host: "127.0.0.1",
        tls: { key: pki.serverKey, cert: pki.serverCert, ca: pki.ca, requestCert: true, rejectUnauthorized: false },
      });
      try {
        expect(url.startsWith("https://")).toBe(true);
        const connected = waitFor(server, "agentConnected");
        const agent = await TestAgent.connect(transport, url, {
          tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
        });
        await agent.send(agent.fullState());
        const [seen] = await connected;
        expect(seen.principal).toBe("agent-7");
        agent.close();

        // Without a client certificate: refused at the upgrade (WS) or the request (HTTP).
        const status = await (async () => {
          try {
            const a = await TestAgent.connect(transport, url, { tls: { ca: pki.ca } });
            await a.send(a.fullState());
            return 200;
          } catch (e) {
            return e instanceof HttpStatusError ? e.status : -1;
          }
        })();
        expect(status).toBe(401);
      } finally {
        await server.stop();
      }
    });
  }
});
