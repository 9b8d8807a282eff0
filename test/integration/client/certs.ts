/**
 * Test certificates made at test time by the `openssl` command (EC P-256, valid one day):
 * a CA, another CA, a server certificate for 127.0.0.1 and client certificates.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** True when the CI environment variable asks for CI behaviour. */
export function inCI(): boolean {
  const ci = process.env["CI"];
  return ci !== undefined && ci !== "" && ci !== "0" && ci.toLowerCase() !== "false";
}

/** True when the `openssl` command runs. */
export function hasOpenssl(): boolean {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** A PEM key and certificate. */
export interface Pem {
  readonly key: string;
  readonly cert: string;
}

/** Everything {@link makeMaterial} makes. */
export interface Material {
  readonly ca: Pem;
  readonly otherCa: Pem;
  readonly server: Pem;
  readonly client: Pem;
  readonly offeredClient: Pem;
}

/** A CA, a server certificate for 127.0.0.1 and client certificates, all EC P-256, valid one day. */
export function makeMaterial(dir: string): Material {
  const run = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const read = (name: string) => readFileSync(join(dir, name), "utf8");
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const ca = (name: string) => {
    run(
      "req",
      "-x509",
      ...ec,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.crt`,
      "-days",
      "1",
      "-subj",
      `/CN=${name}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    );
    return { key: read(`${name}.key`), cert: read(`${name}.crt`) };
  };
  const leaf = (name: string, ext: string) => {
    writeFileSync(join(dir, `${name}.ext`), ext);
    run("req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`);
    run(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-set_serial",
      String(Math.floor(Math.random() * 1e9)),
      "-days",
      "1",
      "-extfile",
      `${name}.ext`,
      "-out",
      `${name}.crt`,
    );
    return { key: read(`${name}.key`), cert: read(`${name}.crt`) };
  };
  return {
    ca: ca("ca"),
    otherCa: ca("other-ca"),
    server: leaf("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"),
    client: leaf("agent-options", "extendedKeyUsage=clientAuth\n"),
    offeredClient: leaf("agent-offered", "extendedKeyUsage=clientAuth\n"),
  };
}

/**
 * A client certificate (CN agent-options) signed by the other CA of {@link makeMaterial},
 * which servers of the tests do not trust. Call after makeMaterial in the same directory.
 */
export function rogueClient(dir: string): Pem {
  const run = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  writeFileSync(join(dir, "rogue.ext"), "extendedKeyUsage=clientAuth\n");
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  run("req", ...ec, "-keyout", "rogue.key", "-out", "rogue.csr", "-subj", "/CN=agent-options");
  run(
    "x509",
    "-req",
    "-in",
    "rogue.csr",
    "-CA",
    "other-ca.crt",
    "-CAkey",
    "other-ca.key",
    "-set_serial",
    "4242",
    "-days",
    "1",
    "-extfile",
    "rogue.ext",
    "-out",
    "rogue.crt",
  );
  return { key: readFileSync(join(dir, "rogue.key"), "utf8"), cert: readFileSync(join(dir, "rogue.crt"), "utf8") };
}
