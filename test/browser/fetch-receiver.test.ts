// Regression test, without a browser, for a bug the browser test found: the HTTP transport
// called `this.options.fetch(...)`, so fetch ran with the options object as `this`.
// Node's fetch does not mind; a browser's throws "Failed to execute 'fetch' on 'Window':
// Illegal invocation", and no HTTP poll could ever be sent from a page. The fetch given
// here checks its receiver the way the browser's does.

import { afterEach, describe, expect, it } from "vitest";
import { OpAMPClient } from "../../src/client/index.js";
import type { OpampError } from "../../src/index.js";
import { OpAMPServer } from "../../src/server/index.js";

/** A fetch that, like a browser's, refuses any receiver but the global object. */
function browserLikeFetch(this: unknown, input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
  if (this !== undefined && this !== globalThis) {
    return Promise.reject(new TypeError("Failed to execute 'fetch' on 'Window': Illegal invocation"));
  }
  return globalThis.fetch(input, init);
}

describe("HTTP transport fetch receiver", () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it("calls fetch as a plain function, so a browser's fetch accepts the call", async () => {
    const server = new OpAMPServer({ allowAnonymous: true });
    const { url } = await server.listen({ port: 0, host: "127.0.0.1" });
    cleanups.push(() => server.stop());
    const client = new OpAMPClient({ transport: { url, fetch: browserLikeFetch } });
    cleanups.push(() => client.stop());

    const outcome = new Promise<string>((resolve) => {
      client.once("connect", () => resolve("connect"));
      client.once("connectFailed", (error: OpampError) => resolve(`connectFailed: ${error.message}`));
    });
    await client.start();
    expect(await outcome).toBe("connect");
  });
});
