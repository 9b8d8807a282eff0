/**
 * Hostile server against the client: remote configs with very many files, with one
 * enormous file, and one over the message limit. The first two reach the hook whole and
 * are reported APPLIED; the third is refused (message_too_large) without reaching the
 * hook, and the client carries on with the next config. Both transports.
 */
import { create } from "@bufbuild/protobuf";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AgentConfigFileSchema,
  type AgentConfigMap,
  AgentConfigMapSchema,
  AgentRemoteConfigSchema,
  RemoteConfigStatuses,
  ServerToAgentSchema,
} from "../../../src/gen/opamp/v1/opamp_pb.js";
import type { OpampError } from "../../../src/wire/errors.js";
import { FakeServer } from "../client/fake-server.js";
import { makeClient, textConfig } from "../client/helpers.js";

const { RemoteConfigStatuses_APPLIED: APPLIED } = RemoteConfigStatuses;
const MANY = 50_000;
const MiB = 1024 * 1024;

function manyFiles(count: number): AgentConfigMap {
  const configMap: AgentConfigMap["configMap"] = {};
  for (let i = 0; i < count; i++) {
    configMap[`conf.d/${i}.yaml`] = create(AgentConfigFileSchema, { body: new Uint8Array([0x61 + (i % 26)]) });
  }
  return create(AgentConfigMapSchema, { configMap });
}

function enormousFile(bytes: number): AgentConfigMap {
  return create(AgentConfigMapSchema, {
    configMap: { "big.yaml": create(AgentConfigFileSchema, { body: new Uint8Array(bytes).fill(0x23) }) },
  });
}

describe.each(["ws", "http"] as const)("hostile remote configs over %s", (kind) => {
  let server: FakeServer;
  beforeEach(async () => {
    server = await FakeServer.start();
  });
  afterEach(async () => {
    await server.close();
  });

  /** Answers every message with `config` under hash `n`. */
  function offering(config: AgentConfigMap, n: number): void {
    server.script = ({ message }) =>
      create(ServerToAgentSchema, {
        instanceUid: message.instanceUid,
        remoteConfig: create(AgentRemoteConfigSchema, { config, configHash: new Uint8Array([n]) }),
      });
  }

  const appliedWith = (n: number) =>
    server.waitFor(
      (r) =>
        r.message.remoteConfigStatus?.status === APPLIED && r.message.remoteConfigStatus.lastRemoteConfigHash[0] === n,
    );

  it(`hands a config of ${MANY} files to the hook whole and reports APPLIED`, async () => {
    offering(manyFiles(MANY), 1);
    const sizes: number[] = [];
    const { client } = makeClient(server, kind, {
      hooks: {
        onRemoteConfig: async ({ config }) => {
          sizes.push(Object.keys(config.configMap).length);
          return { status: "applied" };
        },
      },
    });
    await client.start();
    await appliedWith(1);
    expect(sizes).toEqual([MANY]);
    await client.stop();
  });

  it("hands an 8 MiB file to the hook and reports APPLIED", async () => {
    offering(enormousFile(8 * MiB), 2);
    const sizes: number[] = [];
    const { client } = makeClient(server, kind, {
      hooks: {
        onRemoteConfig: async ({ config }) => {
          sizes.push(config.configMap["big.yaml"]?.body.length ?? -1);
          return { status: "applied" };
        },
      },
    });
    await client.start();
    await appliedWith(2);
    expect(sizes).toEqual([8 * MiB]);
    await client.stop();
  });

  it("refuses a config over limits.maxMessageBytes before the hook, then applies the next one", async () => {
    offering(enormousFile(2 * MiB), 3);
    const seen: string[] = [];
    const { client, clock } = makeClient(server, kind, {
      limits: { maxMessageBytes: MiB },
      hooks: {
        onRemoteConfig: async ({ config }) => {
          seen.push(...Object.keys(config.configMap));
          return { status: "applied" };
        },
      },
    });
    const refused = new Promise<OpampError>((resolve) => {
      client.once("connectFailed", resolve);
      client.once("disconnect", resolve);
    });
    await client.start();
    const error = await refused;
    expect(error.code).toBe("message_too_large");
    expect(error.details.limit).toBe(MiB);
    offering(textConfig("small.yaml", "receivers: {}"), 4);
    const state = client.state;
    if (state.t === "backoff") clock.advance(state.until - clock.now());
    await appliedWith(4);
    expect(seen).toEqual(["small.yaml"]);
    await client.stop();
  });
});
