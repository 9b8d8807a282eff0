// The supervisor's config: the seed's file and the Collector supervisor's schema read as
// written, ${VAR}/${env:VAR} expansion, and clear errors naming the path of an unknown key
// or a wrong type.
import { describe, expect, it } from "vitest";
import {
  DEFAULT_CONFIG_APPLY_TIMEOUT_MS,
  DEFAULT_RESTART_INITIAL_DELAY_MS,
  parseSupervisorConfig,
} from "../../../src/supervisor/index.js";
import { OpampError } from "../../../src/wire/errors.js";

const EXE = process.execPath;

function parse(yaml: string, env: Record<string, string> = {}) {
  return parseSupervisorConfig(yaml, { env, baseDir: "/tmp" });
}

function error(yaml: string, env: Record<string, string> = {}): OpampError {
  try {
    parse(yaml, env);
  } catch (e) {
    expect(e).toBeInstanceOf(OpampError);
    return e as OpampError;
  }
  throw new Error("expected an error");
}

describe("parseSupervisorConfig", () => {
  it("reads the seed's config as written, expanding its HOSTNAME variable", () => {
    const { config, warnings } = parse(
      `server:
  endpoint: wss://opamp.xscaler.example/v1/opamp
  headers:
    Authorization: "Bearer xse_token"
capabilities:
  reports_effective_config: true
  reports_health: true
  accepts_remote_config: true
  reports_remote_config: true
agent:
  executable: ${EXE}
  description:
    non_identifying_attributes:
      host.name: "\${HOSTNAME}"
storage:
  directory: /var/lib/otel-supervisor
`,
      { HOSTNAME: "web-1" },
    );
    expect(warnings).toEqual([]);
    expect(config.server.headers).toEqual({ Authorization: "Bearer xse_token" });
    expect(config.agent.description.nonIdentifyingAttributes).toEqual({ "host.name": "web-1" });
    expect(config.capabilities.acceptsRemoteConfig).toBe(true);
    expect(config.capabilities.reportsHeartbeat).toBe(true); // the Collector supervisor's default
    expect(config.storage.directory).toBe("/var/lib/otel-supervisor");
    expect(config.agent.configApplyTimeoutMs).toBe(DEFAULT_CONFIG_APPLY_TIMEOUT_MS);
    expect(config.agent.restart.initialDelayMs).toBe(DEFAULT_RESTART_INITIAL_DELAY_MS);
  });

  it("reads the Collector supervisor's own schema: every capability, durations, lists of headers, env", () => {
    const { config } = parse(`server:
  endpoint: http://127.0.0.1:4320/v1/opamp
  headers: { X-Multi: [a, b] }
  tls: { insecure_skip_verify: true }
capabilities:
  accepts_remote_config: true
  accepts_restart_command: true
  accepts_opamp_connection_settings: true
  reports_effective_config: false
  reports_own_metrics: false
  reports_own_logs: true
  reports_own_traces: true
  reports_health: false
  reports_remote_config: true
  reports_available_components: true
  reports_heartbeat: false
  accepts_packages: true
  reports_connection_settings_status: true
agent:
  executable: ${EXE}
  instance_id: 018f2c3a-1b2c-7d4e-8f90-123456789abc
  orphan_detection_interval: 1m30s
  config_apply_timeout: 250ms
  bootstrap_timeout: 1.5s
  opamp_server_port: "4321"
  passthrough_logs: true
  collector_crash_log_snippet_kib: 8
  use_hup_config_reload: true
  validate_config: true
  config_files: [local.yaml, $OPAMP_EXTENSION_CONFIG, /etc/b.yaml]
  args: [--set=x]
  env: { A: 1 }
  description:
    identifying_attributes: { service.name: my-col }
    include_resource_attributes: true
storage: { directory: state }
telemetry:
  logs: { level: debug, encoding: json, output_paths: [stderr] }
healthcheck: { endpoint: "localhost:13133" }
`);
    expect(config.server.headers).toEqual({ "X-Multi": "a, b" });
    expect(config.server.tls.insecureSkipVerify).toBe(true);
    expect(Object.values(config.capabilities).filter(Boolean)).toHaveLength(9);
    expect(config.agent.orphanDetectionIntervalMs).toBe(90_000);
    expect(config.agent.configApplyTimeoutMs).toBe(250);
    expect(config.agent.bootstrapTimeoutMs).toBe(1500);
    expect(config.agent.opampServerPort).toBe(4321);
    expect(config.agent.configFiles).toEqual(["/tmp/local.yaml", "$OPAMP_EXTENSION_CONFIG", "/etc/b.yaml"]);
    expect(config.agent.env).toEqual({ A: "1" });
    expect(config.storage.directory).toBe("/tmp/state");
    expect(config.telemetry.logs).toMatchObject({ level: "debug", encoding: "json", outputPaths: ["stderr"] });
    expect(config.healthcheck.endpoint).toBe("localhost:13133");
  });

  it("expands env: references, defaults and $$, and warns about unset variables", () => {
    const { config, warnings } = parse(
      `server:
  endpoint: \${env:SCHEME}://\${HOST:-localhost}:4320/v1/opamp
  headers: { X-Cost: "$$5", X-Missing: "\${NOPE}" }
agent:
  executable: ${EXE}
  opamp_server_port: \${PORT}
`,
      { SCHEME: "ws", PORT: "1234" },
    );
    expect(config.server.endpoint).toBe("ws://localhost:4320/v1/opamp");
    expect(config.server.headers).toEqual({ "X-Cost": "$5", "X-Missing": "" });
    expect(config.agent.opampServerPort).toBe(1234);
    expect(warnings).toEqual([
      expect.stringMatching(/server\.headers\.X-Missing: environment variable NOPE is not set/),
    ]);
  });

  it.each([
    [
      "an unknown top-level key",
      "server: { endpoint: ws://a }\nagent: { executable: EXE }\nsurprise: 1\n",
      /^surprise: is not a known setting/,
    ],
    [
      "an unknown nested key",
      "server: { endpoint: ws://a, endpiont: x }\nagent: { executable: EXE }\n",
      /^server\.endpiont: is not a known setting \(server takes: endpoint/,
    ],
    [
      "a wrong type",
      "server: { endpoint: ws://a }\nagent: { executable: EXE, config_apply_timeout: five }\n",
      /^agent\.config_apply_timeout: must be a duration/,
    ],
    [
      "a bool that is not one",
      "server: { endpoint: ws://a }\ncapabilities: { reports_health: yes please }\nagent: { executable: EXE }\n",
      /^capabilities\.reports_health: must be true or false/,
    ],
    [
      "a port out of range",
      "server: { endpoint: ws://a }\nagent: { executable: EXE, opamp_server_port: 70000 }\n",
      /^agent\.opamp_server_port: must be between 0 and 65535/,
    ],
    [
      "a map where a list goes",
      "server: { endpoint: ws://a }\nagent: { executable: EXE, args: { a: 1 } }\n",
      /^agent\.args: must be a list/,
    ],
    [
      "a bad special file",
      "server: { endpoint: ws://a }\nagent: { executable: EXE, config_files: [$REMOTE] }\n",
      /^agent\.config_files\[0\]: \$REMOTE is not one of/,
    ],
    ["a missing endpoint", "agent: { executable: EXE }\n", /^server\.endpoint: must be set/],
    [
      "a bad scheme",
      "server: { endpoint: ftp://a }\nagent: { executable: EXE }\n",
      /^server\.endpoint: must use ws, wss, http or https/,
    ],
    [
      "a missing executable",
      "server: { endpoint: ws://a }\nagent: { executable: /no/such/otelcol }\n",
      /^agent\.executable: cannot stat \/no\/such\/otelcol/,
    ],
    [
      "a bad instance_id",
      "server: { endpoint: ws://a }\nagent: { executable: EXE, instance_id: nope }\n",
      /^agent\.instance_id: must be a UUID/,
    ],
    [
      "an unsupported setting",
      "server: { endpoint: ws://a, auth: bearertokenauth }\nagent: { executable: EXE }\n",
      /^server\.auth: is not supported by opamp-sdk's supervisor/,
    ],
    [
      "another provider",
      `server: { endpoint: "$\{file:/etc/x}" }\nagent: { executable: EXE }\n`,
      /^server\.endpoint: .*only \$\{VAR\} and \$\{env:VAR\}/,
    ],
    [
      "a duplicate key",
      "server: { endpoint: ws://a }\nserver: { endpoint: ws://b }\nagent: { executable: EXE }\n",
      /not valid YAML/,
    ],
  ])("refuses %s with an invalid_argument naming its path", (_what, yaml, message) => {
    const e = error(yaml.replaceAll("EXE", EXE));
    expect(e.code).toBe("invalid_argument");
    expect(e.message).toMatch(message);
  });
});

describe("docs", () => {
  it("documents every supervisor DEFAULT_ in docs/limits.md and docs/supervisor.md", async () => {
    const { readFileSync } = await import("node:fs");
    const supervisor = await import("../../../src/supervisor/index.js");
    const names = Object.keys(supervisor).filter((name) => name.startsWith("DEFAULT_"));
    expect(names.length).toBeGreaterThan(10);
    const limits = readFileSync(new URL("../../../docs/limits.md", import.meta.url), "utf8");
    const guide = readFileSync(new URL("../../../docs/supervisor.md", import.meta.url), "utf8");
    for (const name of names.filter((n) => n !== "DEFAULT_STORAGE_DIRECTORY")) {
      expect(limits, name).toContain(`\`${name}\``);
    }
    expect(guide).toContain("/var/lib/otelcol/supervisor");
  });
});
