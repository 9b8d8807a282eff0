// Envelope encryption of the secrets templates refer to (${secret:name}).
//
// Each secret gets a fresh data key (AES-256-GCM) that encrypts the value; the data key is
// then wrapped by a key-encryption key (KEK) and only the wrapped data key is stored. The
// default KEK is local: 32 bytes from AGENT_API_KEK (base64) or a file. For a cloud KMS,
// pass a `kms` object with the same two methods (wrapKey / unwrapKey): the KEK never leaves
// the KMS, and agent-api only ever holds data keys in memory while rendering.

import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";

/**
 * A KMS: wraps and unwraps data keys. `keyId` names the KEK that wrapped a key, so that a
 * KEK can be rotated while older secrets stay readable.
 *
 * @typedef {{
 *   keyId: string,
 *   wrapKey(dataKey: Buffer): Promise<Buffer>,
 *   unwrapKey(wrapped: Buffer, keyId: string): Promise<Buffer>,
 * }} Kms
 */

function seal(key, plaintext, aad) {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { iv, ciphertext, tag: cipher.getAuthTag() };
}

function open(key, { iv, ciphertext, tag }, aad) {
  const decipher = createDecipheriv("aes-256-gcm", key, iv);
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
}

/**
 * The local KMS: a 32-byte KEK held by agent-api. Its id is a digest of the key, so a
 * secret sealed under another KEK is recognised as such instead of failing to decrypt.
 *
 * @returns {Kms}
 */
export function localKms(kek) {
  if (!Buffer.isBuffer(kek) || kek.length !== 32) throw new Error("the key-encryption key must be 32 bytes");
  const keyId = `local:${createHash("sha256").update(kek).digest("hex").slice(0, 16)}`;
  const aad = Buffer.from("agent-api data key");
  return {
    keyId,
    async wrapKey(dataKey) {
      const { iv, ciphertext, tag } = seal(kek, dataKey, aad);
      return Buffer.concat([iv, tag, ciphertext]);
    },
    async unwrapKey(wrapped, id) {
      if (id !== keyId) throw new Error(`secret sealed under KEK ${id}, not the configured ${keyId}`);
      return open(
        kek,
        { iv: wrapped.subarray(0, 12), tag: wrapped.subarray(12, 28), ciphertext: wrapped.subarray(28) },
        aad,
      );
    },
  };
}

/** Secrets of orgs, sealed with `kms`. */
export class Secrets {
  constructor(db, kms) {
    this.db = db;
    this.kms = kms;
  }

  /** Stores (or replaces) a secret. The plaintext is never stored nor returned by the API. */
  async put(orgId, name, value) {
    const dataKey = randomBytes(32);
    try {
      const aad = Buffer.from(`${orgId}/${name}`);
      const sealed = seal(dataKey, Buffer.from(String(value), "utf8"), aad);
      const wrapped = await this.kms.wrapKey(dataKey);
      await this.db.query(
        `INSERT INTO secrets (org_id, name, ciphertext, iv, tag, wrapped_key, kek_id) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (org_id, name) DO UPDATE SET ciphertext = excluded.ciphertext, iv = excluded.iv, tag = excluded.tag,
           wrapped_key = excluded.wrapped_key, kek_id = excluded.kek_id, updated_at = now()`,
        [orgId, name, sealed.ciphertext, sealed.iv, sealed.tag, wrapped, this.kms.keyId],
      );
    } finally {
      dataKey.fill(0);
    }
  }

  /** The plaintext of a secret, or undefined. */
  async get(orgId, name) {
    const { rows } = await this.db.query(
      "SELECT ciphertext, iv, tag, wrapped_key, kek_id FROM secrets WHERE org_id = $1 AND name = $2",
      [orgId, name],
    );
    const row = rows[0];
    if (row === undefined) return undefined;
    const dataKey = await this.kms.unwrapKey(Buffer.from(row.wrapped_key), row.kek_id);
    try {
      const aad = Buffer.from(`${orgId}/${name}`);
      const parts = { iv: Buffer.from(row.iv), ciphertext: Buffer.from(row.ciphertext), tag: Buffer.from(row.tag) };
      return open(dataKey, parts, aad).toString("utf8");
    } finally {
      dataKey.fill(0);
    }
  }

  /** Names (never values) of an org's secrets. */
  async list(orgId) {
    const { rows } = await this.db.query(
      "SELECT name, kek_id, updated_at FROM secrets WHERE org_id = $1 ORDER BY name",
      [orgId],
    );
    return rows;
  }
}
