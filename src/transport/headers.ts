/**
 * What may go into an HTTP header the client sends (upgrade, POST, proxy CONNECT). Header
 * values come from options and from connection-settings offers; one holding CR or LF
 * could split the request and smuggle another.
 */

/** RFC 9110 token: what a header name may be made of. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Field content: visible characters, spaces and tabs; no CR, LF, NUL or other control. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
const BAD_VALUE = /[\u0000-\u0008\u000a-\u001f\u007f]/;

/** Why `name: value` cannot be sent as an HTTP header, or undefined when it can. */
export function invalidHeaderReason(name: string, value: string): string | undefined {
  if (!HEADER_NAME.test(name)) return `header name ${JSON.stringify(name)} is not an HTTP token`;
  if (BAD_VALUE.test(value))
    return `header ${JSON.stringify(name)} has a value with CR, LF, NUL or another control character`;
  return undefined;
}
