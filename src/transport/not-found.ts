/**
 * The message of a 404 from the OpAMP URL: the usual cause is a wrong path, so it names the
 * path used and, when it is not the spec's default, suggests that one.
 */

/** The spec's default OpAMP path (servers SHOULD serve it). */
const SPEC_PATH = "/v1/opamp";

/** `HTTP 404 on /opamp: is the path /v1/opamp?` for a request to `url`. */
export function notFoundMessage(url: string): string {
  let path: string;
  try {
    path = new URL(url).pathname;
  } catch {
    return "HTTP 404: the OpAMP URL names no endpoint";
  }
  return path === SPEC_PATH
    ? `HTTP 404 on ${path}: the server has no OpAMP endpoint there (check the server's path option)`
    : `HTTP 404 on ${path}: is the path ${SPEC_PATH}?`;
}
