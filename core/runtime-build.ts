import type { BuildOptions } from "esbuild";

/**
 * How a runtime process (`gateway/main.ts`, `controller/main.ts`) is bundled: one minified CommonJS file for Node.
 * The RuntimeBundle component ships it to the cluster (target Node 22, the image's); bench:gateway builds the same
 * bundle for the Node it runs on, so what it measures is what is deployed.
 */
export function runtimeBuildOptions(entry: string, target = "node22"): BuildOptions {
  return {
    entryPoints: [entry],
    bundle: true,
    platform: "node",
    target,
    format: "cjs",
    minify: true,
    legalComments: "none",
    logLevel: "silent",
  };
}
