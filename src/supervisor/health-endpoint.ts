/**
 * `healthcheck.endpoint`: `GET /health` answers 200 with the supervisor's state while it
 * runs, 503 otherwise (as the Collector's supervisor; the body also says whether the agent
 * is healthy, which the Collector's does not).
 */
import { createServer, type Server } from "node:http";

/** What the endpoint reports. */
export interface HealthStatus {
  readonly running: boolean;
  readonly instanceUid: string;
  readonly agentPid: number | undefined;
  readonly agentHealthy: boolean;
}

/**
 * Listens on `host:port` (an empty host means all interfaces).
 * @throws the listen error (port in use, bad address).
 */
export async function startHealthEndpoint(endpoint: string, status: () => HealthStatus): Promise<Server> {
  const colon = endpoint.lastIndexOf(":");
  const host = endpoint.slice(0, colon) || "0.0.0.0";
  const port = Number(endpoint.slice(colon + 1));
  const server = createServer((req, res) => {
    if (req.url !== "/health" && req.url !== "/") {
      res.writeHead(404).end();
      return;
    }
    const now = status();
    const body = JSON.stringify({
      status: now.running ? "ok" : "unavailable",
      instance_uid: now.instanceUid,
      agent: { pid: now.agentPid ?? null, healthy: now.agentHealthy },
    });
    res.writeHead(now.running ? 200 : 503, { "content-type": "application/json" }).end(body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
