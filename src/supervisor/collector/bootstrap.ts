/**
 * The Collector bootstrap: learn the agent's description (and its full component list)
 * before connecting upstream, by running the Collector with only the opamp extension
 * until it reports them to the local OpAMP server, as the Collector's supervisor does.
 */
import type { AgentDescription, AvailableComponents } from "../../gen/opamp/v1/opamp_pb.js";
import type { Clock } from "../../internal/clock.js";
import { OpampError } from "../../wire/errors.js";
import { AgentRunner, type StartOutcome } from "../agent-runner.js";
import type { AgentConfig } from "../config/supervisor-config.js";
import type { LocalAgentServer } from "../local-server.js";
import type { BootstrapInfo, SupervisorLogger } from "../options.js";
import type { AgentCommand } from "../process/agent-process.js";
import { writeFileAtomic } from "../state/atomic-file.js";
import type { StateDirectory } from "../state/state-dir.js";

/** What the bootstrap needs. */
export interface BootstrapDeps {
  readonly agent: AgentConfig;
  readonly state: StateDirectory;
  readonly local: LocalAgentServer;
  readonly clock: Clock;
  readonly log: SupervisorLogger;
  /** The bootstrap config (extension only) written to effective.yaml. */
  readonly config: string;
  /** Wait for the full component list too (`reports_available_components`). */
  readonly wantComponents: boolean;
  readonly command: () => Promise<AgentCommand>;
}

/**
 * Runs the bootstrap and stops the agent again.
 * @throws OpampError `timeout` when the agent runs but does not report within
 *   `agent.bootstrap_timeout`, `agent_failed` when it exits first; the message says whether
 *   it ever connected, and carries its log tail.
 */
export async function bootstrapCollector(deps: BootstrapDeps): Promise<BootstrapInfo> {
  const { local } = deps;
  let connected = false;
  let description: AgentDescription | undefined;
  let components: AvailableComponents | undefined;
  // Listening before the spawn: a fast agent may report before the spawn returns.
  let reported: () => void = () => undefined;
  const complete = new Promise<void>((resolve) => {
    reported = resolve;
  });
  const done = () => {
    if (description !== undefined && (!deps.wantComponents || components !== undefined)) reported();
  };
  const onConnected = () => {
    connected = true;
  };
  const onDescription = (d: AgentDescription) => {
    description = d;
    done();
  };
  const onComponents = (c: AvailableComponents) => {
    if (Object.keys(c.components).length > 0) components = c;
    done();
  };
  local.on("connected", onConnected).on("description", onDescription).on("availableComponents", onComponents);
  await writeFileAtomic(deps.state.effectiveConfigPath, deps.config);
  const runner = new AgentRunner({
    agent: { ...deps.agent, passthroughLogs: true, crashLogSnippetKib: Math.max(4, deps.agent.crashLogSnippetKib) },
    state: deps.state,
    clock: deps.clock,
    random: Math.random,
    command: deps.command,
    checkHealth: ({ signal }) =>
      Promise.race([
        complete.then(() => ({ healthy: true })),
        new Promise<{ healthy: boolean }>((resolve) =>
          signal.addEventListener("abort", () => resolve({ healthy: false })),
        ),
      ]),
    schedule: () => undefined,
  });
  runner.on("output", (line, stream) => deps.log.debug(line, { logger: "agent", stream, phase: "bootstrap" }));
  let outcome: StartOutcome;
  try {
    outcome = await runner.startHealthy(deps.agent.bootstrapTimeoutMs);
  } finally {
    local.off("connected", onConnected).off("description", onDescription).off("availableComponents", onComponents);
    await runner.close();
  }
  if (!outcome.ok) {
    const why = !connected
      ? "the agent's OpAMP client never connected to the supervisor"
      : "the agent connected but never reported its AgentDescription";
    const tail = runner.logTail();
    throw new OpampError(
      outcome.exit === undefined ? "timeout" : "agent_failed",
      `bootstrap failed: ${why} (${outcome.error})${tail === "" ? "" : `\nAgent log tail:\n${tail}`}`,
    );
  }
  return { description, availableComponents: components };
}
