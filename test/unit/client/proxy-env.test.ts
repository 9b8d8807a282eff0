/** proxyFromEnvironment: the proxy environment variables with proxy-from-env's rules. */
import { describe, expect, it } from "vitest";
import { proxyFromEnvironment } from "../../../src/client/node.js";

const P = (url: string) => ({ url });

describe("proxyFromEnvironment", () => {
  it("takes HTTPS_PROXY for https: and wss:, HTTP_PROXY for http: and ws:, else ALL_PROXY", () => {
    const env = { HTTP_PROXY: "http://plain:3128", HTTPS_PROXY: "http://secure:3128", ALL_PROXY: "http://all:1" };
    expect(proxyFromEnvironment("https://opamp.example.com/v1/opamp", env)).toEqual(P("http://secure:3128/"));
    expect(proxyFromEnvironment("wss://opamp.example.com/v1/opamp", env)).toEqual(P("http://secure:3128/"));
    expect(proxyFromEnvironment("http://opamp.example.com/v1/opamp", env)).toEqual(P("http://plain:3128/"));
    expect(proxyFromEnvironment("ws://opamp.example.com/v1/opamp", env)).toEqual(P("http://plain:3128/"));
    expect(proxyFromEnvironment("wss://x.example/", { ALL_PROXY: "all:8080" })).toEqual(P("http://all:8080/"));
    expect(proxyFromEnvironment("wss://x.example/", {})).toBeUndefined();
  });

  it("reads the lower-case name first, ignores empty values, keeps credentials", () => {
    expect(
      proxyFromEnvironment("http://x.example/", { http_proxy: "http://low:1", HTTP_PROXY: "http://up:1" }),
    ).toEqual(P("http://low:1/"));
    expect(proxyFromEnvironment("http://x.example/", { http_proxy: "", HTTP_PROXY: "http://up:1" })).toEqual(
      P("http://up:1/"),
    );
    expect(proxyFromEnvironment("http://x.example/", { HTTP_PROXY: "https://u:p@tls-proxy:443" })).toEqual(
      P("https://u:p@tls-proxy/"),
    );
  });

  it("leaves out the hosts NO_PROXY names: exact hosts, suffixes, ports and *", () => {
    const env = { HTTPS_PROXY: "http://p:3128", NO_PROXY: "localhost, .internal,*.corp.example 10.0.0.1:4320" };
    const via = (url: string, extra: Record<string, string> = {}) => proxyFromEnvironment(url, { ...env, ...extra });
    expect(via("wss://localhost/v1/opamp")).toBeUndefined();
    expect(via("wss://sub.localhost/v1/opamp")).toEqual(P("http://p:3128/")); // exact entries match exactly
    expect(via("wss://opamp.internal/v1/opamp")).toBeUndefined();
    expect(via("wss://a.b.corp.example/v1/opamp")).toBeUndefined();
    expect(via("wss://10.0.0.1:4320/v1/opamp")).toBeUndefined();
    expect(via("wss://10.0.0.1/v1/opamp")).toEqual(P("http://p:3128/")); // port 443 is not 4320
    expect(via("wss://OPAMP.INTERNAL/")).toBeUndefined(); // case-insensitive
    expect(via("wss://opamp.example.com/", { NO_PROXY: "*" })).toBeUndefined();
    expect(via("wss://opamp.example.com/", { no_proxy: "example.com", NO_PROXY: "*" })).toEqual(P("http://p:3128/"));
    expect(via("https://[::1]:4320/", { NO_PROXY: "::1" })).toBeUndefined();
    expect(via("https://[::1]:4320/", { NO_PROXY: "[::1]:4320" })).toBeUndefined();
    expect(via("https://[::1]:4321/", { NO_PROXY: "[::1]:4320" })).toEqual(P("http://p:3128/"));
  });

  it("refuses an unusable proxy, naming the variable", () => {
    expect(() => proxyFromEnvironment("https://x.example/", { HTTPS_PROXY: "socks5://p:1080" })).toThrow(
      expect.objectContaining({ code: "invalid_argument", message: expect.stringContaining("HTTPS_PROXY") }),
    );
  });
});
