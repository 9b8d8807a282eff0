// What the opamp-sdk bench servers report on GET /stats and at exit: the server's agents and
// connections, the counters its harness keeps, and the process's memory. One place for the
// one-process server (sdk-server.mjs) and each cluster worker (sdk-cluster-server.mjs).

/**
 * @param {{ agents: Map<string, { agentDescription?: unknown, transport: string }>, connectionCount: number }} server
 * @param {{ messages: number, applied: number, pushes: number, errors: Record<string, number> }} counters
 */
export function serverStats(server, counters) {
  let full = 0;
  let ws = 0;
  for (const agent of server.agents.values()) {
    if (agent.agentDescription !== undefined) full++;
    if (agent.transport === "websocket") ws++;
  }
  const mem = process.memoryUsage();
  return {
    pid: process.pid,
    agents: server.agents.size,
    full_state: full,
    ws_agents: ws,
    connections: server.connectionCount,
    ...counters,
    js_heap_used: mem.heapUsed,
    external: mem.external,
    array_buffers: mem.arrayBuffers,
  };
}
