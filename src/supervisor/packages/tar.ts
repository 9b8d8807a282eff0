/**
 * Reads one regular file out of a .tar.gz (ustar / GNU / pax headers), for agent
 * packages shipped as archives (`agent.package.archive: tar.gz`). Nothing is written to
 * disk from the archive but that file's bytes, so no path in it can escape.
 */
import { gunzipSync } from "node:zlib";
import { OpampError } from "../../wire/errors.js";

function field(block: Buffer, offset: number, length: number): string {
  const raw = block.subarray(offset, offset + length);
  const end = raw.indexOf(0);
  return raw.subarray(0, end === -1 ? raw.length : end).toString("utf8");
}

function octal(block: Buffer, offset: number, length: number): number {
  const text = field(block, offset, length).trim();
  return text === "" ? 0 : Number.parseInt(text, 8);
}

/**
 * Returns the bytes of the regular file whose base name is `name` (the shallowest one if
 * several), from a gzipped tar archive.
 * @throws OpampError `verification_failed` when the archive is corrupt or has no such file.
 */
export function extractFromTarGz(archive: Uint8Array, name: string, maxBytes: number): Uint8Array {
  let tar: Buffer;
  try {
    tar = gunzipSync(archive, { maxOutputLength: maxBytes });
  } catch (cause) {
    throw new OpampError("verification_failed", `the package is not a readable .tar.gz: ${(cause as Error).message}`, {
      cause,
    });
  }
  let offset = 0;
  let longName: string | undefined;
  let found: { depth: number; data: Buffer } | undefined;
  while (offset + 512 <= tar.length) {
    const header = tar.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    const size = octal(header, 124, 12);
    const type = String.fromCharCode(header[156] ?? 0);
    const prefix = field(header, 345, 155);
    let path = longName ?? (prefix === "" ? field(header, 0, 100) : `${prefix}/${field(header, 0, 100)}`);
    longName = undefined;
    const dataStart = offset + 512;
    if (!Number.isFinite(size) || dataStart + size > tar.length) {
      throw new OpampError("verification_failed", "the package archive is truncated");
    }
    const data = tar.subarray(dataStart, dataStart + size);
    if (type === "L") {
      longName = data.toString("utf8").replace(/\0+$/, "");
    } else if (type === "x") {
      const paxPath = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(data.toString("utf8"));
      if (paxPath !== null) longName = paxPath[1];
    } else if (type === "0" || type === "\0") {
      path = path.replace(/^\.\//, "");
      const parts = path.split("/").filter((p) => p !== "");
      if (parts.at(-1) === name && (found === undefined || parts.length < found.depth)) {
        found = { depth: parts.length, data };
      }
    }
    offset = dataStart + Math.ceil(size / 512) * 512;
  }
  if (found === undefined)
    throw new OpampError("verification_failed", `the package archive holds no file named ${name}`);
  return new Uint8Array(found.data);
}
