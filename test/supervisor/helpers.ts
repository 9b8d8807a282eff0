// Shared plumbing of the supervisor's tests: temporary state directories, an upstream
// OpAMPServer on 127.0.0.1:0, configs written as the YAML a user would write, and waits
// on events (never sleeps).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Agent, AgentPart } from "../../src/server/index.js";
import { OpAMPServer, type OpAMPServerOptions } from "../../src/server/index.js";
import { parseSupervisorConfig, Supervisor, type SupervisorHooks } from "../../src/supervisor/index.js";

export const REPO = fileURLToPath(new URL("../../", import.meta.url));
export const FAKE_AGENT = fileURLToPath(new URL("./fixtures/fake-agent.mjs", import.meta.url));

const cleanups: (() => Promise<void>)[] = [];

/** Runs every registered cleanup (call from afterEach/afterAll). */
export async function cleanup(): Promise<void> {
  for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => undefined);
}

/** Registers a cleanup. */
export function defer(fn: () => Promise<void>): void {
  cleanups.push(fn);
}

/** A fresh temporary directory, removed at cleanup. */
export async function tempDir(prefix = "opamp-sup-"): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  defer(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** An upstream OpAMPServer on 127.0.0.1:0; urls for both transports. */
export async function upstream(options: Partial<OpAMPServerOptions> = {}): Promise<{
  server: OpAMPServer;
  ws: string;
  http: string;
}> {
  const server = new OpAMPServer({ allowAnonymous: true, ...options } as OpAMPServerOptions);
  const { url } = await server.listen({ port: 0, host: "127.0.0.1" });
  defer(() => server.stop());
  return { server, ws: url.replace(/^http/, "ws"), http: url };
}

/** Resolves with the first emission of `event` whose arguments satisfy `predicate`. */
export function once<A extends unknown[]>(
  emitter: { on(e: string, l: (...a: A) => void): unknown; off(e: string, l: (...a: A) => void): unknown },
  event: string,
  predicate: (...args: A) => boolean = () => true,
  timeoutMs = 20_000,
): Promise<A> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`no "${event}" event as expected within ${timeoutMs} ms`));
    }, timeoutMs);
    const listener = (...args: A) => {
      if (!predicate(...args)) return;
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(args);
    };
    emitter.on(event, listener);
  });
}

/** Waits until an agent on `server` satisfies `predicate` (checked now and on every update). */
export function agentWhere(
  server: OpAMPServer,
  predicate: (agent: Agent, changes: readonly AgentPart[]) => boolean,
  timeoutMs = 20_000,
): Promise<Agent> {
  for (const agent of server.agents.values()) if (predicate(agent, [])) return Promise.resolve(agent);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      server.off("agentUpdated", onUpdate);
      server.off("agentConnected", onConnect);
      const states = [...server.agents.values()].map((a) => ({
        id: a.id,
        status: a.remoteConfigStatus?.status,
        error: a.remoteConfigStatus?.errorMessage.slice(0, 300),
        healthy: a.health?.healthy,
        lastError: a.health?.lastError.slice(0, 300),
      }));
      reject(new Error(`no agent as expected within ${timeoutMs} ms; agents: ${JSON.stringify(states)}`));
    }, timeoutMs);
    const done = (agent: Agent) => {
      clearTimeout(timer);
      server.off("agentUpdated", onUpdate);
      server.off("agentConnected", onConnect);
      resolve(agent);
    };
    const onUpdate = (agent: Agent, changes: readonly AgentPart[]) => {
      if (predicate(agent, changes)) done(agent);
    };
    const onConnect = (agent: Agent) => {
      if (predicate(agent, [])) done(agent);
    };
    server.on("agentUpdated", onUpdate);
    server.on("agentConnected", onConnect);
  });
}

/** The text of an agent's reported effective config (all files). */
export function effectiveText(agent: Agent): string {
  const files = agent.effectiveConfig?.configMap?.configMap ?? {};
  return Object.values(files)
    .map((f) => new TextDecoder().decode(f.body))
    .join("\n");
}

/** Starts a Supervisor from YAML (stopped at cleanup). */
export async function startSupervisor(
  yaml: string,
  options: { hooks?: SupervisorHooks; start?: boolean } = {},
): Promise<Supervisor> {
  const { config } = parseSupervisorConfig(yaml, { env: { ...process.env, FAKE_AGENT_REPO: REPO } });
  const supervisor = new Supervisor({ config, ...(options.hooks === undefined ? {} : { hooks: options.hooks }) });
  supervisor.on("error", () => undefined);
  defer(() => supervisor.stop());
  if (options.start !== false) await supervisor.start();
  return supervisor;
}

/** A string-valued identifying or non-identifying attribute of an agent's description. */
export function attribute(agent: Agent, key: string): string | undefined {
  const d = agent.agentDescription;
  const kv = [...(d?.identifyingAttributes ?? []), ...(d?.nonIdentifyingAttributes ?? [])].find((a) => a.key === key);
  return kv?.value?.value.case === "stringValue" ? kv.value.value.value : undefined;
}
