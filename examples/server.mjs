// A runnable OpAMP server: it accepts WebSocket and HTTP agents on
// http://127.0.0.1:4320/v1/opamp and pushes a remote config to every agent that
// connects and can take one, then prints what the agent reports back.
//
//   npm run build && node examples/server.mjs
//
// Set OPAMP_TOKEN to require `Authorization: Bearer <token>`; without it the server runs
// anonymously (allowAnonymous), which is fine on localhost only.
import { AgentCapability, hasBit } from "opamp-sdk";
import { bearerToken, OpAMPServer, safeEqual } from "opamp-sdk/server";

const token = process.env.OPAMP_TOKEN;
const port = Number(process.env.PORT ?? 4320);

const server = new OpAMPServer(
  token
    ? {
        hooks: {
          // Constant-time comparison: `===` would leak through timing how much of a guess was right.
          authenticate: ({ headers }) =>
            safeEqual(bearerToken(headers) ?? "", token)
              ? { accept: true }
              : { accept: false, status: 401, headers: { "WWW-Authenticate": "Bearer" } },
        },
      }
    : { allowAnonymous: true },
);

// Hashed and encoded once; pushed to every agent as it connects. A prepared config pushed
// from agentConnected rides in the reply to the agent's first message, even over HTTP.
const config = `# pushed by examples/server.mjs, prepared at ${new Date().toISOString()}\nlog_level: debug\n`;
const prepared = await server.prepareRemoteConfig({ "config.yaml": { body: config, contentType: "text/yaml" } });
const short = Buffer.from(prepared.hash).toString("hex").slice(0, 12);

server.on("agentConnected", (agent) => {
  const name = agent.agentDescription?.identifyingAttributes.find((a) => a.key === "service.name");
  console.log(`connected    ${agent.id} over ${agent.transport} (${name?.value?.value.value ?? "unnamed"})`);
  if (!hasBit(agent.capabilities, AgentCapability.AcceptsRemoteConfig)) {
    console.log(`             ${agent.id} does not accept remote config; nothing to push`);
    return;
  }
  server.setRemoteConfig(agent.id, prepared).then(
    () => console.log(`pushed       config ${short}… to ${agent.id}`),
    (error) => console.error(`push failed  ${agent.id}: ${error.code} ${error.message}`),
  );
});

server.on("agentUpdated", (agent, changes) => {
  if (changes.includes("remoteConfigStatus")) {
    // remoteConfigState: the status in words ("applied", "failed", …) with its message.
    const s = agent.remoteConfigState;
    const detail = s.errorMessage ? ` (${s.errorMessage})` : "";
    console.log(`config       ${agent.id} reports ${s.status.toUpperCase()}${detail}`);
  } else {
    console.log(`updated      ${agent.id}: ${changes.join(", ")}`);
  }
});

server.on("agentDisconnected", (agent, reason) => console.log(`disconnected ${agent.id} (${reason})`));
server.on("error", (error) => console.error(`error        ${error.code}: ${error.message}`));

const { url } = await server.listen({ port, host: "127.0.0.1" });
console.log(`OpAMP server on ${url} (WebSocket: ${url.replace(/^http/, "ws")})`);

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.once(signal, async () => {
    console.log("stopping…");
    await server.stop();
    process.exit(0);
  });
}
