/** Proxy settings: URL parsing, option validation, what a client can apply, CONNECT details. */
import { describe, expect, it } from "vitest";
import { proxyOf, type SettingsSupport, settingsProblem } from "../../../src/client/connection-settings.js";
import { OpAMPClient } from "../../../src/client/opamp-client.js";
import { resolveClientOptions } from "../../../src/client/options.js";
import { nodeProxyConnector } from "../../../src/transport/node-proxy-connector.js";
import { proxyEndpoint, proxyTlsOptions } from "../../../src/transport/node-proxy-tunnel.js";
import { parseProxyUrl, proxyLabel } from "../../../src/transport/proxy.js";
import { OpampError } from "../../../src/wire/errors.js";

describe("parseProxyUrl", () => {
  it.each([
    ["proxy.internal:3128", "http://proxy.internal:3128/"],
    ["http://proxy:8080", "http://proxy:8080/"],
    ["https://proxy.example.com", "https://proxy.example.com/"],
    [" http://user:p%40ss@10.0.0.1:3128 ", "http://user:p%40ss@10.0.0.1:3128/"],
    ["[::1]:3128", "http://[::1]:3128/"],
  ])("reads %s as %s", (input, expected) => {
    expect(parseProxyUrl(input, "proxy.url").href).toBe(expected);
  });

  it.each(["socks5://127.0.0.1:1080", "socks5h://proxy:1080", "socks4://proxy:1080", "ftp://proxy:21"])(
    "refuses the scheme of %s with a typed error",
    (input) => {
      let thrown: unknown;
      try {
        parseProxyUrl(input, "proxy.url");
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(OpampError);
      expect(thrown).toMatchObject({
        code: "invalid_argument",
        message: expect.stringMatching(/proxy\.url uses the unsupported proxy scheme \w+:/),
      });
    },
  );

  it.each([
    ["", /is empty/],
    ["http://", /not a valid proxy URL/],
  ])("refuses %j", (input, message) => {
    expect(() => parseProxyUrl(input, "proxy.url")).toThrow(message);
  });

  it("labels a proxy without its credentials", () => {
    expect(proxyLabel("http://user:secret@proxy:3128/")).toBe("http://proxy:3128");
  });
});

describe("transport.proxy option", () => {
  it("is normalised and frozen", () => {
    const options = resolveClientOptions({
      transport: {
        url: "wss://opamp.example.com/v1/opamp",
        proxy: { url: "proxy:3128", connectHeaders: { "X-Tag": "a" } },
        proxyConnector: nodeProxyConnector,
      },
    });
    expect(options.proxy).toEqual({ url: "http://proxy:3128/", connectHeaders: { "X-Tag": "a" } });
    expect(Object.isFrozen(options.proxy)).toBe(true);
  });

  it.each([
    [{ url: "socks5://proxy:1080" }, nodeProxyConnector, "unsupported proxy scheme socks5:"],
    [{ url: "http://proxy:3128" }, undefined, "transport.proxy needs transport.proxyConnector"],
    [{ url: "http://proxy:3128", connectHeaders: { "X-Tag": 1 } }, nodeProxyConnector, "must be a string"],
    [{ url: "http://proxy:3128" }, { fetch: () => fetch }, "must be a ProxyConnector"],
  ])("refuses %j at construction", (proxy, proxyConnector, message) => {
    expect(
      () =>
        new OpAMPClient({
          transport: { url: "ws://127.0.0.1:1/v1/opamp", proxy, proxyConnector } as never,
        }),
    ).toThrow(expect.objectContaining({ code: "invalid_argument", message: expect.stringContaining(message) }));
  });

  it("lets tls options go with an https: URL without tlsFetch when a proxy applies them", () => {
    const transport = { url: "https://opamp.example.com/v1/opamp" };
    expect(() => resolveClientOptions({ transport, tls: { rejectUnauthorized: false } })).toThrow(/tlsFetch/);
    expect(
      resolveClientOptions({
        transport: { ...transport, proxy: { url: "http://proxy:3128" }, proxyConnector: nodeProxyConnector },
        tls: { rejectUnauthorized: false },
      }).proxy?.url,
    ).toBe("http://proxy:3128/");
  });
});

describe("proxyOf and settingsProblem", () => {
  const base = { url: "http://options-proxy:3128/", connectHeaders: {} };
  const none: SettingsSupport = {
    httpTls: false,
    tlsOptions: false,
    proxyConnector: false,
    proxy: undefined,
    environmentProxy: undefined,
  };

  it("takes an offered proxy over the options', and an offered empty URL as a direct connection", () => {
    const endpoint = "wss://opamp.example.com/v1/opamp";
    expect(proxyOf({ endpoint, headers: [] }, base)).toBe(base);
    expect(
      proxyOf(
        {
          endpoint,
          headers: [],
          proxy: { url: "http://offered:8080/", connectHeaders: [{ name: "X-Tag", value: "b" }] },
        },
        base,
      ),
    ).toEqual({ url: "http://offered:8080/", connectHeaders: { "X-Tag": "b" } });
    expect(proxyOf({ endpoint, headers: [], proxy: { url: "", connectHeaders: [] } }, base)).toBeUndefined();
  });

  it("names what is missing to apply a proxy or TLS settings", () => {
    const proxied = {
      endpoint: "http://opamp.example.com/v1/opamp",
      headers: [],
      proxy: { url: "http://proxy:3128/", connectHeaders: [] },
    };
    expect(settingsProblem(proxied, none)).toMatch(/transport\.proxyConnector/);
    expect(settingsProblem(proxied, { ...none, proxyConnector: true })).toBeUndefined();
    const tls = { endpoint: "https://opamp.example.com/v1/opamp", headers: [], tls: { insecureSkipVerify: true } };
    expect(settingsProblem(tls, none)).toMatch(/transport\.tlsFetch/);
    expect(settingsProblem(tls, { ...none, httpTls: true })).toBeUndefined();
    // The tls options count for https: endpoints.
    const direct = { endpoint: "https://opamp.example.com/v1/opamp", headers: [] };
    expect(settingsProblem(direct, none)).toBeUndefined();
    expect(settingsProblem(direct, { ...none, tlsOptions: true })).toMatch(/transport\.tlsFetch/);
    // Through a proxy the connector's fetch applies TLS settings.
    expect(settingsProblem({ ...tls, proxy: proxied.proxy }, { ...none, proxyConnector: true })).toBeUndefined();
    // An offered "direct" turns the options' proxy off, and with it the need for a connector.
    expect(
      settingsProblem(
        { endpoint: "ws://opamp.example.com/v1/opamp", headers: [], proxy: { url: "", connectHeaders: [] } },
        { ...none, proxy: base },
      ),
    ).toBeUndefined();
  });
});

describe("proxyEndpoint", () => {
  it("defaults the port by scheme and keeps connect headers apart from Proxy-Authorization", () => {
    expect(proxyEndpoint({ url: "http://proxy/", connectHeaders: { "X-Tag": "a" } })).toEqual({
      label: "http://proxy",
      host: "proxy",
      port: 80,
      secure: false,
      authorization: undefined,
      connectHeaders: { "X-Tag": "a" },
    });
    const secure = proxyEndpoint({ url: "https://[::1]/", connectHeaders: { "proxy-authorization": "Bearer t" } });
    expect(secure).toMatchObject({ host: "::1", port: 443, secure: true, authorization: "Bearer t" });
    expect(secure.connectHeaders).toEqual({});
  });

  it("sends credentials from the URL as Basic, over a connect header (as Go does)", () => {
    const endpoint = proxyEndpoint({
      url: "http://agent%40site:p%3Ass@proxy:3128/",
      connectHeaders: { "Proxy-Authorization": "Bearer other" },
    });
    expect(endpoint.authorization).toBe(`Basic ${Buffer.from("agent@site:p:ss").toString("base64")}`);
    expect(endpoint.label).toBe("http://proxy:3128");
  });

  it("verifies an https:// proxy with the connection's trust settings and the proxy's name", () => {
    const endpoint = proxyEndpoint({ url: "https://proxy.internal:8443" });
    expect(
      proxyTlsOptions(endpoint, { ca: ["CA"], rejectUnauthorized: true, servername: "opamp.example.com", host: "x" }),
    ).toEqual({ ca: ["CA"], rejectUnauthorized: true, servername: "proxy.internal" });
    expect(proxyTlsOptions(proxyEndpoint({ url: "https://127.0.0.1:8443" }), {})).toEqual({});
  });
});
