/**
 * Names chosen by the server that an agent may turn into paths: package names and the
 * file names of a remote config. A hostile or compromised server must not be able to
 * make an agent write outside the directory meant for them.
 */
import { OpampError } from "../wire/errors.js";

// Control characters (NUL included) end C strings early and hide in logs.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
const CONTROL = /[\u0000-\u001f\u007f]/;
/** `C:`, `c:foo`: a Windows drive, absolute or drive-relative. */
const DRIVE = /^[A-Za-z]:/;

/**
 * Why `name` is not a safe relative name, or undefined when it is. Refused: an empty name
 * (unless `allowEmpty`), a control character (NUL included), a backslash, an absolute path
 * (`/…`, `C:…`), and an empty, `.` or `..` segment between slashes. Slashes between
 * ordinary segments are allowed (`conf.d/extra.yaml`).
 */
export function unsafeNameReason(name: string, allowEmpty = false): string | undefined {
  if (name === "") return allowEmpty ? undefined : "is empty";
  if (CONTROL.test(name)) return "holds a control character";
  if (name.includes("\\")) return "holds a backslash";
  if (name.startsWith("/")) return "is an absolute path";
  if (DRIVE.test(name)) return "names a drive";
  for (const segment of name.split("/")) {
    if (segment === "..") return "climbs out of its directory with ..";
    if (segment === "" || segment === ".") return "has an empty or . path segment";
  }
  return undefined;
}

/**
 * Checks a name chosen by the server.
 * @param what - what the name is, for the message (`package name`, `config file name`)
 * @throws OpampError `invalid_argument` naming the reason.
 */
export function assertSafeName(name: string, what: string, allowEmpty = false): void {
  const reason = unsafeNameReason(name, allowEmpty);
  if (reason !== undefined) throw new OpampError("invalid_argument", `${what} ${JSON.stringify(name)} ${reason}`);
}
