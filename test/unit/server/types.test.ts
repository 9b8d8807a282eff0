/** Compile-time checks of the public types (run by tsc and vitest's expectTypeOf). */
import { describe, expectTypeOf, it } from "vitest";
import { type Agent, OpAMPServer } from "../../../src/server/index.js";

describe("OpAMPServer types", () => {
  it("infers the principal type from authenticate", () => {
    const server = new OpAMPServer({
      hooks: {
        authenticate: ({ headers }) =>
          headers["authorization"] ? { accept: true, principal: { tenant: "t1" } } : { accept: false, status: 401 },
      },
    });
    expectTypeOf(server.agents.get("x")).toEqualTypeOf<Agent<{ tenant: string }> | undefined>();
    server.on("agentConnected", (agent) => {
      expectTypeOf(agent.principal).toEqualTypeOf<{ tenant: string } | undefined>();
    });
    const anonymous = new OpAMPServer({ allowAnonymous: true });
    expectTypeOf(anonymous.getAgent("x")).toEqualTypeOf<Agent | undefined>();
  });
});
