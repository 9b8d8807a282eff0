import { defineConfig } from "tsup";

// One entry per public subpath; each must also be listed in package.json "exports".
const entries: Record<string, string> = {
  index: "src/index.ts",
  "client/index": "src/client/index.ts",
  "client/node": "src/client/node.ts",
  "server/index": "src/server/index.ts",
  "server/cluster/index": "src/server/cluster/index.ts",
  "storage/postgres/index": "src/storage/postgres/index.ts",
  "gateway/index": "src/gateway/index.ts",
  "testing/index": "src/testing/index.ts",
  "supervisor/index": "src/supervisor/index.ts",
  // The `opamp-conformance` bin (package.json "bin"), not an export.
  "cli/conformance": "src/cli/conformance.ts",
  // The `opamp-supervisor` bin.
  "cli/supervisor": "src/cli/supervisor.ts",
  // The `opamp-gateway` bin.
  "cli/gateway": "src/cli/gateway.ts",
};

export default defineConfig({
  entry: entries,
  format: ["esm", "cjs"],
  // tsup's declaration bundler still passes `baseUrl`, which TypeScript 6 deprecates.
  dts: { compilerOptions: { ignoreDeprecations: "6.0" } },
  sourcemap: true,
  clean: true,
  splitting: true,
  treeshake: true,
  target: "node20",
  // No keepNames: it wraps every named closure in a `__name()` call (a defineProperty per
  // closure made, measurable per connection at fleet scale). Class names survive anyway
  // as long as no class names itself inside its own body (esbuild then renames it
  // `_Name`); scripts/check-package.mjs checks every exported class and function name.
  platform: "node",
  outDir: "dist",
  // Optional peer dependencies, loaded on demand by openDatabase(): never bundled.
  external: ["pg", "@electric-sql/pglite"],
});
