// Label selectors, in the syntax Kubernetes made familiar:
//
//   env=prod,region in (eu,us)     every requirement must hold (comma = and)
//   tier!=canary                   not equal (true when the label is missing)
//   region notin (cn)              not one of
//   gpu                            the label exists
//   !legacy                        the label does not exist
//   (empty)                        matches every agent
//
// parseSelector() refuses anything else with a message naming the part it could not read.

const KEY = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,253}[A-Za-z0-9])?$/;
const VALUE = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$|^$/;

/** Splits on commas outside parentheses. */
function requirements(text) {
  const parts = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "(") depth++;
    else if (text[i] === ")") depth--;
    else if (text[i] === "," && depth === 0) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
    if (depth < 0) throw new SelectorError(`unbalanced ")" in "${text}"`);
  }
  if (depth !== 0) throw new SelectorError(`unbalanced "(" in "${text}"`);
  parts.push(text.slice(start));
  return parts.map((p) => p.trim());
}

export class SelectorError extends Error {}

function key(k, part) {
  if (!KEY.test(k)) throw new SelectorError(`"${k}" is not a label key (in "${part}")`);
  return k;
}

function value(v, part) {
  if (!VALUE.test(v)) throw new SelectorError(`"${v}" is not a label value (in "${part}")`);
  return v;
}

/** Parses a selector into a list of requirements. Throws SelectorError when it cannot. */
export function parseSelector(text) {
  if (typeof text !== "string") throw new SelectorError("a selector is a string");
  if (text.trim() === "") return [];
  return requirements(text).map((part) => {
    let m = /^(\S+?)\s+(in|notin)\s*\((.*)\)$/.exec(part);
    if (m) {
      const values = m[3]
        .split(",")
        .map((v) => v.trim())
        .filter((v) => v !== "");
      if (values.length === 0) throw new SelectorError(`"${part}" lists no values`);
      return { key: key(m[1], part), op: m[2], values: values.map((v) => value(v, part)) };
    }
    m = /^([^!=\s]+)\s*(==|=|!=)\s*(\S*)$/.exec(part);
    if (m) return { key: key(m[1], part), op: m[2] === "!=" ? "!=" : "=", values: [value(m[3], part)] };
    m = /^!\s*(\S+)$/.exec(part);
    if (m) return { key: key(m[1], part), op: "!exists", values: [] };
    if (KEY.test(part)) return { key: part, op: "exists", values: [] };
    throw new SelectorError(`cannot read "${part}"`);
  });
}

/** True when `labels` (a plain object of strings) satisfy every requirement. */
export function matches(requirementsList, labels) {
  return requirementsList.every(({ key: k, op, values }) => {
    const has = Object.hasOwn(labels, k);
    const v = has ? String(labels[k]) : undefined;
    switch (op) {
      case "=":
        return has && v === values[0];
      case "!=":
        return !has || v !== values[0];
      case "in":
        return has && values.includes(v);
      case "notin":
        return !has || !values.includes(v);
      case "exists":
        return has;
      case "!exists":
        return !has;
      default:
        return false;
    }
  });
}
