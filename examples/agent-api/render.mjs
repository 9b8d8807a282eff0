// Rendering a template revision for one agent. Placeholders:
//
//   ${label:region}        the agent's label
//   ${agent:id}            the agent's instance UID; ${agent:name} its host name
//   ${attr:host.name}      an attribute of the agent's description
//   ${secret:otlp_token}   an org secret, decrypted while rendering
//   $${…}                  a literal ${…} (the Collector's own ${env:…} syntax passes through)
//
// A placeholder that names nothing known fails the render (RenderError): a config with a
// hole in it is never sent.

export class RenderError extends Error {}

const PLACEHOLDER = /\$(\$?)\{(label|agent|attr|secret):([A-Za-z0-9._/-]+)\}/g;

/** The placeholders of a template, for checks at upload time. */
export function placeholders(body) {
  return [...body.matchAll(PLACEHOLDER)].filter((m) => m[1] === "").map((m) => ({ kind: m[2], name: m[3] }));
}

/**
 * Renders `body` for `agent` ({ id, name, labels, attributes }); `secret(name)` resolves a
 * secret (async, undefined when unknown).
 */
export async function render(body, agent, secret) {
  const values = new Map();
  for (const { kind, name } of placeholders(body)) {
    const k = `${kind}:${name}`;
    if (values.has(k)) continue;
    let v;
    if (kind === "label") v = agent.labels[name];
    else if (kind === "attr") v = agent.attributes[name];
    else if (kind === "agent") v = name === "id" ? agent.id : name === "name" ? agent.name : undefined;
    else v = await secret(name);
    if (v === undefined) throw new RenderError(`the template uses \${${k}}, which agent ${agent.id} does not have`);
    values.set(k, String(v));
  }
  return body.replace(PLACEHOLDER, (whole, escaped, kind, name) =>
    escaped === "$" ? whole.slice(1) : values.get(`${kind}:${name}`),
  );
}
