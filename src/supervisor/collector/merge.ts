/**
 * The Collector's config merge, as its supervisor does it: maps merge deeply and a later
 * layer wins; lists and scalars are replaced whole; except `service.extensions`, whose
 * lists are concatenated without duplicates (earlier layers first), so that the injected
 * `opamp` extension survives a remote config that lists its own extensions.
 */

/** A parsed YAML mapping. */
export type ConfigTree = Record<string, unknown>;

function isMap(value: unknown): value is ConfigTree {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function mergeInto(dest: ConfigTree, src: ConfigTree): void {
  for (const [key, value] of Object.entries(src)) {
    const existing = dest[key];
    if (isMap(existing) && isMap(value)) mergeInto(existing, value);
    else dest[key] = isMap(value) ? structuredClone(value) : value;
  }
}

/** Merges `layer` into `dest` (mutated) with the Collector supervisor's semantics. */
export function mergeLayer(dest: ConfigTree, layer: ConfigTree): void {
  const before = (dest["service"] as ConfigTree | undefined)?.["extensions"];
  const added = isMap(layer["service"]) ? layer["service"]["extensions"] : undefined;
  mergeInto(dest, layer);
  if (Array.isArray(before) && Array.isArray(added)) {
    (dest["service"] as ConfigTree)["extensions"] = [...new Set([...before, ...added])];
  }
}
