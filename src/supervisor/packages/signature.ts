/**
 * ed25519 package signatures: the server's `DownloadableFile.signature` over the package
 * bytes, checked against the public key in the supervisor's config.
 */
import { createHash, createPublicKey, type KeyObject, verify } from "node:crypto";
import { OpampError } from "../../wire/errors.js";

/**
 * Reads an ed25519 public key: PEM (SPKI, `-----BEGIN PUBLIC KEY-----`) or the 32 raw key
 * bytes in base64 or hex.
 * @throws OpampError `invalid_argument` when it is neither, or not an ed25519 key.
 */
export function parseEd25519PublicKey(text: string): KeyObject {
  const trimmed = text.trim();
  let key: KeyObject;
  try {
    if (trimmed.startsWith("-----BEGIN")) {
      key = createPublicKey(trimmed);
    } else {
      const raw = /^[0-9a-f]{64}$/i.test(trimmed) ? Buffer.from(trimmed, "hex") : Buffer.from(trimmed, "base64");
      if (raw.length !== 32) throw new Error(`a raw ed25519 key is 32 bytes, got ${raw.length}`);
      // SPKI prefix of an ed25519 key (RFC 8410): SEQUENCE { AlgorithmIdentifier 1.3.101.112, BIT STRING }.
      const der = Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), raw]);
      key = createPublicKey({ key: der, format: "der", type: "spki" });
    }
  } catch (cause) {
    throw new OpampError(
      "invalid_argument",
      `agent.package.public_key: not a usable public key: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
  if (key.asymmetricKeyType !== "ed25519") {
    throw new OpampError(
      "invalid_argument",
      `agent.package.public_key: must be an ed25519 key, got ${key.asymmetricKeyType ?? "unknown"}`,
    );
  }
  return key;
}

/** True when `signature` is a valid ed25519 signature of `content` by `key`. Never throws. */
export function verifyEd25519(key: KeyObject, content: Uint8Array, signature: Uint8Array): boolean {
  try {
    return verify(null, content, key, signature);
  } catch {
    return false;
  }
}

/** SHA-256 of bytes, hex. */
export function sha256Hex(content: Uint8Array): string {
  return createHash("sha256").update(content).digest("hex");
}
