/** The gateway config file: Bindplane's schema, opamp-sdk's additions, env expansion, errors that name the key. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseDuration } from "../../../src/gateway/config.js";
import { loadGatewayConfig, OpAMPGateway, parseGatewayConfig } from "../../../src/gateway/index.js";

const files: Record<string, string> = {
  "/etc/gw/ca.pem": "CA PEM",
  "/etc/gw/cert.pem": "CERT",
  "/etc/gw/key.pem": "KEY",
};
const ctx = {
  baseDir: "/etc/gw",
  env: { KEY: "s3cret" } as Record<string, string | undefined>,
  readFile: async (path: string) => {
    const found = files[path];
    if (found === undefined) throw new Error(`ENOENT ${path}`);
    return found;
  },
};

describe("gateway config", () => {
  it("reads Bindplane's schema with env expansion and files relative to the config", async () => {
    const config = await parseGatewayConfig(
      [
        "server:",
        "  endpoint: wss://opamp.example.com/v1/opamp",
        "  headers:",
        `    Authorization: "Secret-Key $\{env:KEY}"`,
        "    X-Many: [a, b]",
        "  tls: { ca_file: ca.pem, cert_file: cert.pem, key_file: key.pem, insecure_skip_verify: true, min_version: '1.2' }",
        "  connections: 5",
        "listener:",
        "  endpoint: 0.0.0.0:4320",
        "  tls: { cert_file: cert.pem, key_file: key.pem }",
      ].join("\n"),
      ctx,
    );
    expect(config.gateway.upstream).toEqual({
      url: "wss://opamp.example.com/v1/opamp",
      headers: { Authorization: "Secret-Key s3cret", "X-Many": ["a", "b"] },
      tls: {
        ca: ["CA PEM"],
        includeSystemCa: false,
        cert: "CERT",
        key: "KEY",
        rejectUnauthorized: false,
        minVersion: "TLSv1.2",
      },
      connections: 5,
    });
    expect(config.gateway.auth).toEqual({ mode: "delegate" });
    expect(config.listen).toEqual({ host: "0.0.0.0", port: 4320, tls: { cert: "CERT", key: "KEY" } });
    // The result is a valid OpAMPGateway configuration.
    expect(new OpAMPGateway(config.gateway).options.connections).toBe(5);
  });

  it("takes a Collector-style file with the block under extensions.opampgateway, and the opamp-sdk additions", async () => {
    const config = await parseGatewayConfig(
      [
        "extensions:",
        "  opampgateway:",
        "    server: { endpoint: ws://upstream:4320/v1/opamp }",
        "    listener: { endpoint: ':4321', path: /opamp }",
        "    auth: { mode: passthrough, forward_headers: [Authorization] }",
      ].join("\n"),
      ctx,
    );
    expect(config.listen).toEqual({ port: 4321 });
    expect(config.gateway.path).toBe("/opamp");
    expect(config.gateway.auth).toEqual({ mode: "passthrough", forwardHeaders: ["Authorization"] });
    const delegated = await parseGatewayConfig(
      "server: { endpoint: 'ws://u/v1/opamp' }\nlistener: { endpoint: '[::1]:4320' }\nauth: { timeout: 5s }\n",
      ctx,
    );
    expect(delegated.gateway.auth).toEqual({ mode: "delegate", timeoutMs: 5000 });
    expect(delegated.listen).toEqual({ host: "::1", port: 4320 });
  });

  it.each([
    ["listener: { endpoint: ':1' }", /server\.endpoint is required/],
    ["server: { endpoint: ws://u }", /listener\.endpoint is required/],
    ["server: { endpoint: ws://u, connections: 0 }\nlistener: { endpoint: ':1' }", /server\.connections/],
    ["server: { endpoint: ws://u, headers: { A: 1 } }\nlistener: { endpoint: ':1' }", /server\.headers\.A/],
    [`server: { endpoint: 'ws://u', headers: { A: '$\{env:MISSING}' } }\nlistener: { endpoint: ':1' }`, /MISSING/],
    ["server: { endpoint: ws://u, tls: { ca_file: nope.pem } }\nlistener: { endpoint: ':1' }", /server\.tls\.ca_file/],
    ["server: { endpoint: ws://u, tls: { cert_file: cert.pem } }\nlistener: { endpoint: ':1' }", /both a certificate/],
    ["server: { endpoint: ws://u }\nlistener: { endpoint: 'nohostport' }", /host:port/],
    ["server: { endpoint: ws://u }\nlistener: { endpoint: ':1' }\nauth: { mode: magic }", /auth\.mode/],
    ["server: { endpoint: ws://u }\nlistener: { endpoint: ':1' }\nauth: { timeout: soon }", /auth\.timeout/],
    ["- a list", /mapping/],
    ["server: [unclosed", /YAML/],
  ])("refuses %j naming the problem", async (text, message) => {
    await expect(parseGatewayConfig(text, ctx)).rejects.toMatchObject({ code: "invalid_argument", message });
  });

  it("durations", () => {
    expect(parseDuration("30s", "x")).toBe(30_000);
    expect(parseDuration("500ms", "x")).toBe(500);
    expect(parseDuration("1.5m", "x")).toBe(90_000);
    expect(parseDuration(250, "x")).toBe(250);
    expect(parseDuration(undefined, "x")).toBeUndefined();
  });

  it("loadGatewayConfig reads a file and resolves its relative paths against its directory", async () => {
    const dir = mkdtempSync(join(tmpdir(), "gw-config-"));
    writeFileSync(join(dir, "ca.pem"), "FROM DISK");
    writeFileSync(
      join(dir, "gateway.yaml"),
      "server: { endpoint: wss://u/v1/opamp, tls: { ca_file: ca.pem } }\nlistener: { endpoint: '127.0.0.1:0' }\n",
    );
    const config = await loadGatewayConfig(join(dir, "gateway.yaml"), {});
    expect(config.gateway.upstream.tls?.ca).toEqual(["FROM DISK"]);
    await expect(loadGatewayConfig(join(dir, "missing.yaml"), {})).rejects.toMatchObject({ code: "invalid_argument" });
  });
});

describe("OpAMPGateway options", () => {
  it.each([
    [{ upstream: { url: "http://u/v1/opamp" } }, /ws:\/\/ or wss:\/\//],
    [{ upstream: { url: "not a url" } }, /not a URL/],
    [{ upstream: { url: "ws://u", connections: 0 } }, /upstream\.connections/],
    [{ upstream: { url: "ws://u", headers: { "bad name": "x" } } }, /not a header name/],
    [{ upstream: { url: "ws://u", headers: { A: "x\r\ny" } } }, /not a header value/],
    [{ upstream: { url: "ws://u" }, auth: { mode: "local" } }, /authenticate function/],
    [{ upstream: { url: "ws://u" }, auth: { mode: "magic" } }, /auth\.mode/],
    [{ upstream: { url: "ws://u" }, path: "v1" }, /path must start/],
    [{ upstream: { url: "ws://u", retry: { initialDelayMs: 0 } } }, /upstream\.retry/],
    [{ upstream: { url: "ws://u" }, limits: { maxQueuedBytesPerAgent: -1 } }, /maxQueuedBytesPerAgent/],
  ])("refuses %j", (options, message) => {
    expect(() => new OpAMPGateway(options as never)).toThrow(message);
  });
});
