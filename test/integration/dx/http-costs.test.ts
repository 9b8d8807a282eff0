/**
 * HTTP costs (issue 15): a reply under the gzip threshold goes out uncompressed even when
 * the agent accepts gzip; a reply at or over it is gzipped; the threshold is an option.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { AgentToServerSchema, ServerToAgentSchema } from "../../../src/gen/opamp/v1/opamp_pb.js";
import { DEFAULT_GZIP_MIN_BYTES } from "../../../src/server/index.js";
import {
  AgentCapability,
  gunzip,
  instanceUidToString,
  newInstanceUid,
  PROTOBUF_CONTENT_TYPE,
} from "../../../src/wire/index.js";
import { startServer, stopAll } from "../server/helpers.js";
import { rawPost } from "../server/test-agent.js";

afterEach(stopAll);

const HEADERS = { "content-type": PROTOBUF_CONTENT_TYPE, "accept-encoding": "gzip" };

function report(uid: Uint8Array, seq: bigint): Uint8Array {
  return toBinary(
    AgentToServerSchema,
    create(AgentToServerSchema, {
      instanceUid: uid,
      sequenceNum: seq,
      capabilities: AgentCapability.ReportsStatus | AgentCapability.AcceptsRemoteConfig,
    }),
  );
}

describe("gzip threshold for HTTP replies", () => {
  it("sends a small reply plain and a large one gzipped, by default", async () => {
    expect(DEFAULT_GZIP_MIN_BYTES).toBe(1024);
    const { server, url } = await startServer();
    const uid = newInstanceUid();
    const first = await rawPost(url, HEADERS, report(uid, 0n));
    expect(first.status).toBe(200);
    expect(first.headers.get("content-encoding")).toBeNull();
    expect(first.body.length).toBeLessThan(DEFAULT_GZIP_MIN_BYTES);
    expect(fromBinary(ServerToAgentSchema, first.body).instanceUid).toEqual(uid);

    // A 4 KiB config makes the next reply larger than the threshold.
    await server.setRemoteConfig(instanceUidToString(uid), { "big.yaml": "x: 1\n".repeat(800) });
    const second = await rawPost(url, HEADERS, report(uid, 1n));
    expect(second.headers.get("content-encoding")).toBe("gzip");
    const reply = fromBinary(ServerToAgentSchema, await gunzip(second.body));
    expect(reply.remoteConfig?.config?.configMap["big.yaml"]?.body.length).toBe(4000);
    expect(second.body.length).toBeLessThan(1000);
  });

  it("follows transport.gzipMinBytes", async () => {
    const { url } = await startServer({ transport: { gzipMinBytes: 1 } });
    const small = await rawPost(url, HEADERS, report(newInstanceUid(), 0n));
    expect(small.headers.get("content-encoding")).toBe("gzip");
    // And never without Accept-Encoding.
    const plain = await rawPost(url, { "content-type": PROTOBUF_CONTENT_TYPE }, report(newInstanceUid(), 0n));
    expect(plain.headers.get("content-encoding")).toBeNull();
  });
});
