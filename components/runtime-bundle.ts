import { createHash } from "node:crypto";
import { join } from "node:path";
import { brotliCompressSync, constants } from "node:zlib";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { buildSync } from "esbuild";
import { runtimeBuildOptions } from "../core/runtime-build";
import { labelsFor } from "./labels";

/** Processes the runtime ships; each is one esbuild bundle of its `main.ts`. */
export type RuntimeProcess = "gateway" | "controller" | "backup";

/** Kubernetes refuses a ConfigMap over 1 MiB; the tests keep each bundle's object well under it. */
export const CONFIGMAP_LIMIT_BYTES = 1_048_576;

export interface ProcessBundle {
  readonly process: RuntimeProcess;
  /** File name of the compressed bundle in the ConfigMap's binaryData. */
  readonly fileName: string;
  /** Brotli-compressed CommonJS bundle for Node 22. */
  readonly compressed: Buffer;
  /** SHA-256 of the compressed bundle: a pod annotation, so a new bundle rolls the Deployment. */
  readonly sha256: string;
  readonly rawBytes: number;
}

const cache = new Map<RuntimeProcess, ProcessBundle>();

/**
 * Bundle a runtime process (pure apart from reading the sources): minified for Node 22, compressed with brotli
 * because a ConfigMap holds at most 1 MiB (DESIGN.md §8: the gateway's dependencies alone are ~2 MB minified).
 */
export function bundleProcess(process: RuntimeProcess, root: string = join(__dirname, "..")): ProcessBundle {
  const cached = cache.get(process);
  if (cached) return cached;
  const result = buildSync({ ...runtimeBuildOptions(join(root, process, "main.ts")), write: false });
  const code = result.outputFiles[0]!.contents;
  const compressed = brotliCompressSync(code, {
    // Quality 9 with a 16 MiB window: within 10% of the smallest output at a twentieth of the time of quality 11.
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 9,
      [constants.BROTLI_PARAM_LGWIN]: 24,
      [constants.BROTLI_PARAM_SIZE_HINT]: code.length,
    },
  });
  const bundle: ProcessBundle = {
    process,
    fileName: `${process}.js.br`,
    compressed,
    sha256: createHash("sha256").update(compressed).digest("hex"),
    rawBytes: code.length,
  };
  cache.set(process, bundle);
  return bundle;
}

/** Where pods find things: the bundle ConfigMap, the unpacked bundle, the runtime config. */
export const BUNDLE_DIR = "/opt/aiorch/bundle";
export const APP_DIR = "/opt/aiorch/app";
export const CONFIG_DIR = "/etc/aiorch";

/**
 * The init container's one-line loader: unpack the bundle into a writable emptyDir, so the main container runs
 * it as a plain file (`node app/gateway.js`) on a read-only root filesystem.
 */
export function unpackCommand(bundle: ProcessBundle): string[] {
  const source = `${BUNDLE_DIR}/${bundle.fileName}`;
  const target = `${APP_DIR}/${bundle.process}.js`;
  return [
    "node",
    "-e",
    `const z=require("zlib"),f=require("fs");f.writeFileSync(${JSON.stringify(target)},z.brotliDecompressSync(f.readFileSync(${JSON.stringify(source)})))`,
  ];
}

export interface RuntimeBundleArgs {
  /** Which process to bundle. */
  readonly process: RuntimeProcess;
  /** Namespace of the ConfigMap. */
  readonly namespace: pulumi.Input<string>;
  /** Kubernetes provider of the target cluster. */
  readonly provider: pulumi.ProviderResource;
  /** Repository root holding `<process>/main.ts`. @default the folder above components/ */
  readonly root?: string;
}

/**
 * One process's code in a ConfigMap (binaryData), run on a stock `node:22-bookworm-slim` image (pinned by digest): no image registry needed.
 * The ConfigMap is auto-named, so new code means a new ConfigMap and, through the hash annotation, a rollout.
 */
export class RuntimeBundle extends pulumi.ComponentResource {
  /** Name of the ConfigMap holding the compressed bundle. */
  public readonly configMapName: pulumi.Output<string>;
  public readonly bundle: ProcessBundle;

  constructor(name: string, args: RuntimeBundleArgs, opts?: pulumi.ComponentResourceOptions) {
    super("aiorch:k8s:RuntimeBundle", name, {}, opts);
    this.bundle = bundleProcess(args.process, args.root);
    const configMap = new k8s.core.v1.ConfigMap(
      `${name}-code`,
      {
        metadata: {
          namespace: args.namespace,
          labels: labelsFor(`${args.process}-bundle`),
          annotations: { "aiorch.dev/bundle-sha256": this.bundle.sha256 },
        },
        binaryData: { [this.bundle.fileName]: this.bundle.compressed.toString("base64") },
      },
      { parent: this, provider: args.provider },
    );
    this.configMapName = configMap.metadata.name;
    this.registerOutputs({ configMapName: this.configMapName });
  }
}
