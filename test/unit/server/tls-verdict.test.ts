/** The fetch handler hands the TLS verdict it is given to authenticate; by default, none. */
import { create, toBinary } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { AgentToServerSchema } from "../../../src/gen/opamp/v1/opamp_pb.js";
import { type AuthRequest, OpAMPServer } from "../../../src/server/index.js";
import { newInstanceUid, PROTOBUF_CONTENT_TYPE } from "../../../src/wire/index.js";

describe("authenticate sees the TLS verdict (fetch handler)", () => {
  const servers: OpAMPServer[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.stop()));
  });

  async function seenWith(info: Parameters<OpAMPServer["fetch"]>[1]): Promise<AuthRequest> {
    const seen: AuthRequest[] = [];
    const server = new OpAMPServer({
      hooks: {
        authenticate: (request) => {
          seen.push(request);
          return { accept: false, status: 401 };
        },
      },
    });
    servers.push(server);
    await server.start();
    const body = toBinary(AgentToServerSchema, create(AgentToServerSchema, { instanceUid: newInstanceUid() }));
    const request = new Request("http://opamp.test/v1/opamp", {
      method: "POST",
      headers: { "content-type": PROTOBUF_CONTENT_TYPE },
      body,
    });
    expect((await server.fetch(request, info)).status).toBe(401);
    expect(seen).toHaveLength(1);
    return seen[0]!;
  }

  it("is false, with no reason, when the caller says nothing", async () => {
    const request = await seenWith(undefined);
    expect(request.tlsAuthorized).toBe(false);
    expect(request.tlsAuthorizationError).toBeUndefined();
  });

  it("passes what the TLS layer in front decided", async () => {
    expect((await seenWith({ tlsAuthorized: true })).tlsAuthorized).toBe(true);
    const refused = await seenWith({ tlsAuthorized: false, tlsAuthorizationError: "CERT_HAS_EXPIRED" });
    expect(refused.tlsAuthorized).toBe(false);
    expect(refused.tlsAuthorizationError).toBe("CERT_HAS_EXPIRED");
  });
});
