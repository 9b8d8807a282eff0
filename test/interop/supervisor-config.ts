// Supervisor config files for the field-interop tests. The base is the seed's config as
// written (agent-api's "Agent Mode": an OTel Collector run by the Collector's
// opampsupervisor), with only its placeholders replaced by the test's endpoint, token,
// Collector and storage directory. Additions are inserted as lines into its blocks, so the
// file the supervisor reads is the seed's text plus exactly what a test asks for.

import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The seed's supervisor config, verbatim. */
export const SEED_SUPERVISOR_CONFIG = `server:
  endpoint: wss://opamp.xscaler.example/v1/opamp
  headers:
    Authorization: "Bearer xse_<fleet_enrollment_token>"
capabilities:
  reports_effective_config: true
  reports_health: true
  accepts_remote_config: true
  reports_remote_config: true
agent:
  executable: /usr/local/bin/otelcol-contrib
  description:
    non_identifying_attributes:
      host.name: "\${HOSTNAME}"
storage:
  directory: /var/lib/otel-supervisor
`;

/** What a test changes in the seed's config. */
export interface SupervisorConfigOptions {
  /** `server.endpoint` (ws://… selects the WebSocket client, http://… the plain-HTTP one). */
  readonly endpoint: string;
  /** The whole token (`xse_…`), in place of the seed's `xse_<fleet_enrollment_token>`. */
  readonly enrollmentToken: string;
  /** `agent.executable`. */
  readonly collector: string;
  /** `storage.directory`. */
  readonly storageDir: string;
  /** Extra `capabilities` entries, e.g. `{ accepts_opamp_connection_settings: true }`. */
  readonly capabilities?: Readonly<Record<string, boolean>>;
  /** Extra `agent` entries, e.g. `{ validate_config: true, args: ["--config", "/x.yaml"] }`. */
  readonly agent?: Readonly<Record<string, string | number | boolean | readonly string[]>>;
}

function replaceOnce(text: string, from: string, to: string): string {
  const at = text.indexOf(from);
  if (at < 0 || text.indexOf(from, at + 1) >= 0) throw new Error(`the seed config must hold ${from} exactly once`);
  return text.slice(0, at) + to + text.slice(at + from.length);
}

/** Inserts `lines` right after the (single) line `after`. */
function insertAfter(text: string, after: string, lines: readonly string[]): string {
  if (lines.length === 0) return text;
  return replaceOnce(text, `${after}\n`, `${after}\n${lines.map((l) => `${l}\n`).join("")}`);
}

/** The seed's config with the test's values and additions. */
export function supervisorConfigYaml(options: SupervisorConfigOptions): string {
  let text = SEED_SUPERVISOR_CONFIG;
  text = replaceOnce(text, "wss://opamp.xscaler.example/v1/opamp", options.endpoint);
  text = replaceOnce(text, "xse_<fleet_enrollment_token>", options.enrollmentToken);
  text = replaceOnce(text, "/usr/local/bin/otelcol-contrib", options.collector);
  text = replaceOnce(text, "/var/lib/otel-supervisor", options.storageDir);
  text = insertAfter(
    text,
    "  reports_remote_config: true",
    Object.entries(options.capabilities ?? {}).map(([k, v]) => `  ${k}: ${v}`),
  );
  text = insertAfter(
    text,
    `  executable: ${options.collector}`,
    // JSON strings and arrays are YAML too (flow style).
    Object.entries(options.agent ?? {}).map(
      ([k, v]) => `  ${k}: ${typeof v === "object" || typeof v === "string" ? JSON.stringify(v) : v}`,
    ),
  );
  return text;
}

/** A supervisor's files: its config and its storage directory, in a fresh temporary directory. */
export interface SupervisorFiles {
  readonly dir: string;
  readonly configPath: string;
  readonly storageDir: string;
  /** Removes the directory. */
  remove(): Promise<void>;
}

/**
 * Creates a temporary directory holding `supervisor.yaml`, `storage/` and `extraFiles`
 * (name → content); `options` is given the directory, to point at those files.
 */
export async function writeSupervisorFiles(
  options: (dir: string) => Omit<SupervisorConfigOptions, "storageDir">,
  extraFiles: Readonly<Record<string, string>> = {},
): Promise<SupervisorFiles> {
  const dir = await mkdtemp(join(tmpdir(), "opamp-supervisor-"));
  const storageDir = join(dir, "storage");
  const configPath = join(dir, "supervisor.yaml");
  await mkdir(storageDir);
  for (const [name, content] of Object.entries(extraFiles)) await writeFile(join(dir, name), content);
  await writeFile(configPath, supervisorConfigYaml({ ...options(dir), storageDir }));
  return { dir, configPath, storageDir, remove: () => rm(dir, { recursive: true, force: true }) };
}
