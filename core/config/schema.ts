/**
 * The stack config schema: one definition validates `Pulumi.<stack>.yaml` (through `loadStackConfig`) and,
 * through the same field schemas, the runtime config the gateway and controller read.
 * Every field has a default where a sensible one exists; required fields say what to put there.
 */

import { z } from "zod";
import { CONFIGURABLE_PROVIDER_IDS, GPU_IDS, PROVIDER_IDS, PROVIDERS } from "../catalog";
import { engineLabel, KIND_ROUTES, servedRoutes } from "../engine-routes";
import { METRICS } from "../metrics";
import {
  HETZNER_CHART_VERSIONS,
  kubernetesMinorOf,
  RECOMMENDED_K3S_VERSION,
  SUPPORTED_KUBERNETES_MINORS,
} from "../platform-versions";
import { OPS_PORT } from "../process-env";
import { OFFERING_IDS } from "../trust";

export const DATA_CLASSES = ["public", "internal", "confidential"] as const;
export type DataClass = (typeof DATA_CLASSES)[number];

export const MODEL_KINDS = ["chat", "completion", "embedding", "image", "audio"] as const;
export const ENGINES = ["vllm", "ollama", "tgi", "vllm-omni"] as const;
export type Engine = (typeof ENGINES)[number];

/** Container images per engine, pinned; a provider's `image` setting overrides them. */
export const ENGINE_IMAGES: Readonly<Record<Engine, string>> = {
  vllm: "vllm/vllm-openai:v0.10.1.1",
  ollama: "ollama/ollama:0.11.4",
  tgi: "ghcr.io/huggingface/text-generation-inference:3.3.4",
  // vLLM-Omni (diffusion image models, `vllm serve <model> --omni`): the images API (vllm-project/vllm-omni#292)
  // shipped after v0.12.0rc1, and /v1/models — the controller's readiness probe — answers for a pure diffusion
  // model only since vllm-project/vllm-omni#805 (fixing #751, merged late January 2026), so v0.16.0 (a stable
  // release with pre-built wheels, per the vLLM-Omni installation docs). Image on Docker Hub (docs
  // getting_started/installation/gpu/cuda.inc.md: "available on Docker Hub as vllm/vllm-omni"). Pinned by tag:
  // no digest could be looked up from here.
  "vllm-omni": "vllm/vllm-omni:v0.16.0",
};

/**
 * The lowest host CUDA version each default engine image runs on, for providers that place by CUDA version
 * (RunPod `gpu.minCudaVersion`). vLLM 0.10 ships CUDA 12.8 binaries (vLLM docs
 * `getting_started/installation/gpu/cuda.inc.md`: "pre-compiled C++ and CUDA (12.8) binaries"). Images not
 * listed get no floor unless the provider's `minCudaVersion` setting gives one.
 */
export const ENGINE_IMAGE_CUDA_FLOOR: Readonly<Record<string, string>> = {
  [ENGINE_IMAGES.vllm]: "12.8",
};

/** A CUDA version as RunPod takes it: `major.minor`, compared numerically (12.11 > 12.2). */
export const cudaVersionSchema = z
  .string()
  .regex(/^\d+\.\d+$/, { error: 'must be a CUDA version as major.minor, e.g. "12.8"' });

export const HETZNER_LOCATIONS = ["fsn1", "nbg1", "hel1", "ash", "hil", "sin"] as const;

const quoted = (v: unknown): string => (typeof v === "string" ? `"${v}"` : JSON.stringify(v));

/** A required field: the message for "missing" says what the field is for. */
const required = (what: string) => ({
  error: (issue: { input?: unknown }) => (issue.input === undefined ? `is required: ${what}` : undefined),
});

/** A closed set of values with a message that names the noun and lists what is known. */
const oneOf = <const T extends readonly [string, ...string[]]>(values: T, noun: string, what?: string) =>
  z.enum(values, {
    error: (issue) =>
      issue.input === undefined && what
        ? `is required: ${what}; one of ${values.join(", ")}`
        : `${quoted(issue.input)} is not a known ${noun}; known: ${values.join(", ")}`,
  });

export const dataClassSchema = oneOf(DATA_CLASSES, "data class");
export const gpuIdSchema = oneOf(GPU_IDS, "GPU");
export const providerNameSchema = oneOf(CONFIGURABLE_PROVIDER_IDS, "provider");

/** Accept one value where a list is expected (`gpu: RTX_4090`), as people write YAML. */
const listOf = <T extends z.ZodType>(item: T, what: string) =>
  z.preprocess(
    (v) => (typeof v === "string" ? [v] : v),
    z.array(item, required(what)).min(1, { error: `needs at least one entry: ${what}` }),
  );

const positiveInt = (what: string) => z.int(required(what)).min(1);
const nonNegativeInt = z.int().min(0);
const httpUrl = (whatIfMissing?: string) =>
  z.url({
    protocol: /^https?$/,
    error: (issue) =>
      issue.input === undefined && whatIfMissing
        ? `is required: ${whatIfMissing}`
        : `${quoted(issue.input)} is not an http(s) URL; write e.g. https://api.example.com`,
  });
const cidr = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$|^[0-9a-fA-F:]+\/\d{1,3}$/, {
  error: (issue) => `${quoted(issue.input)} is not a CIDR; write e.g. 203.0.113.4/32 or 2001:db8::/64`,
});
const dnsLabel = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, {
  error: "must be a DNS label: lower-case letters, digits, '-'",
});

// ── cluster ────────────────────────────────────────────────────────────────────────────────────────────────

const serverPool = (defaults: { serverType: string; count: number }) =>
  z
    .strictObject({
      /** Hetzner Cloud server type, e.g. cpx21. */
      serverType: z
        .string()
        .regex(/^[a-z]+\d+[a-z]*$/, { error: "must be a Hetzner server type such as cpx21" }),
      count: nonNegativeInt,
    })
    .partial()
    .transform((p) => ({
      serverType: p.serverType ?? defaults.serverType,
      count: p.count ?? defaults.count,
    }));

export const createClusterSchema = z.strictObject({
  mode: z.literal("create"),
  location: oneOf(HETZNER_LOCATIONS, "Hetzner location").default("fsn1"),
  controlPlane: serverPool({ serverType: "cpx21", count: 1 })
    .default({ serverType: "cpx21", count: 1 })
    .refine((p) => p.count % 2 === 1, {
      error: "count must be odd (1, 3 or 5) so the embedded etcd keeps a quorum",
      path: ["count"],
    }),
  workers: serverPool({ serverType: "cpx21", count: 2 }).default({ serverType: "cpx21", count: 2 }),
  k3sVersion: z
    .string(required(`a pinned k3s release, e.g. "${RECOMMENDED_K3S_VERSION}"`))
    .regex(/^v\d+\.\d+\.\d+\+k3s\d+$/, {
      error: (issue) =>
        `${quoted(issue.input)} is not a pinned k3s release; write e.g. "${RECOMMENDED_K3S_VERSION}"`,
    })
    .refine(
      (v) => {
        const minor = kubernetesMinorOf(v);
        return (
          minor === undefined ||
          (minor >= SUPPORTED_KUBERNETES_MINORS.min && minor <= SUPPORTED_KUBERNETES_MINORS.max)
        );
      },
      {
        error: (issue) =>
          `${quoted(issue.input)} is Kubernetes 1.${kubernetesMinorOf(String(issue.input))}, outside what the pinned Hetzner charts support (CCM ${HETZNER_CHART_VERSIONS.ccm}, CSI ${HETZNER_CHART_VERSIONS.csi}: 1.${SUPPORTED_KUBERNETES_MINORS.min}–1.${SUPPORTED_KUBERNETES_MINORS.max}); pin e.g. "${RECOMMENDED_K3S_VERSION}"`,
      },
    ),
  image: z.string().default("ubuntu-24.04"),
  sshAllowedCidrs: z.array(cidr).default([]),
  apiAllowedCidrs: z.array(cidr).default([]),
  privateNetworkCidr: cidr.default("10.0.0.0/16"),
  sshPublicKey: z.string().optional(),
  /**
   * Name of an SSH key already in the Hetzner project, added to the servers instead of uploading sshPublicKey:
   * Hetzner refuses a second key with the same fingerprint, so stacks sharing a project and an admin key use this.
   */
  sshKeyName: z.string().min(1).optional(),
});

export const existingClusterSchema = z.strictObject({ mode: z.literal("existing") });

export const clusterSchema = z.discriminatedUnion("mode", [createClusterSchema, existingClusterSchema], {
  error: (issue) =>
    issue.code === "invalid_union" && issue.input !== undefined
      ? `mode must be "create" (a new Hetzner k3s cluster) or "existing" (kubeconfig from the secret key kubeconfig); got ${quoted(
          (issue.input as { mode?: unknown } | null)?.mode,
        )}`
      : 'is required: { mode: create | existing, … }; "existing" takes the kubeconfig from the secret key kubeconfig',
});

// ── providers ─────────────────────────────────────────────────────────────────────────────────────────────

const runpodCloud = oneOf(["secure", "community"], "RunPod cloud").default("secure");

/**
 * RunPod's vLLM worker image for serverless endpoints (runpod-workers/worker-vllm: the image tag is the release
 * tag, `docker-bake.hcl`, `.github/workflows/release.yml`). v2.24.0 and later read `VLLM_EXTRA_ARGS`
 * (shlex-split, `src/args_builder.py`); v2.25.2's hub listing (`.runpod/hub.json`) asks for CUDA 13.0 hosts.
 */
export const RUNPOD_WORKER_IMAGE = "runpod/worker-v1-vllm:v2.25.2";
/** The lowest host CUDA version `RUNPOD_WORKER_IMAGE` runs on (`.runpod/hub.json` `allowedCudaVersions: ["13.0"]`). */
export const RUNPOD_WORKER_IMAGE_CUDA_FLOOR = "13.0";

const runpodDataCenterId = z
  .string()
  .regex(/^[A-Z]{2}-[A-Z]{2,4}-\d+$/, { error: 'must be a RunPod data centre id like "EU-RO-1"' });

export const runpodServerlessSchema = z
  .strictObject({
    cloud: runpodCloud,
    /** RunPod data centres the endpoint may use, e.g. [EU-RO-1]. Empty = any. */
    dataCenters: z.array(z.string()).default([]),
    flashboot: z.boolean().default(true),
    /** Worker image; worker-vllm serves the OpenAI routes under /openai/v1. */
    image: z.string().default(RUNPOD_WORKER_IMAGE),
    /**
     * Lowest host CUDA version the workers may run on (RunPod `gpu.minCudaVersion`).
     * @default "13.0" with the default image, none with another image
     */
    minCudaVersion: cudaVersionSchema.optional(),
    scalerType: oneOf(["QUEUE_DELAY", "REQUEST_COUNT"], "RunPod scaler type").default("QUEUE_DELAY"),
    scalerValue: positiveInt("seconds of queue delay or requests per worker").default(4),
    apiBase: httpUrl().optional(),
    /**
     * Network volumes the endpoints load weights from (fetched once per data centre instead of on every cold
     * start), one per data centre. Volumes pin the endpoints to their data centres, trading placement for
     * cold-start time; RunPod gives each worker the volume of the data centre it runs in.
     */
    weightCache: z
      .strictObject({
        sizeGb: z
          .int(required("the volume size in GB, e.g. 200 (room for every model's weights)"))
          .min(10, "RunPod network volumes hold at least 10 GB")
          .max(4096, "RunPod network volumes hold at most 4096 GB"),
        /** Data centre of the one volume. @default the first of dataCenters */
        dataCenter: runpodDataCenterId.optional(),
        /** Data centres with a volume each (instead of dataCenter), e.g. [EU-RO-1, EU-SE-1]. */
        dataCenters: z
          .array(runpodDataCenterId)
          .min(1, { error: "needs at least one data centre, or leave dataCenters out" })
          .optional(),
      })
      .optional(),
  })
  .superRefine((r, ctx) => {
    const cache = r.weightCache;
    if (!cache) return;
    const field = cache.dataCenters ? "dataCenters" : "dataCenter";
    if (cache.dataCenter !== undefined && cache.dataCenters !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["weightCache", "dataCenters"],
        message:
          "give dataCenter (one volume) or dataCenters (a volume in each), not both; e.g. dataCenters: [EU-RO-1, EU-SE-1]",
      });
      return;
    }
    const dcs = weightCacheDataCenters(r);
    // (an empty dataCenters list is reported by its own rule)
    if (dcs.length === 0 && cache.dataCenters === undefined)
      ctx.addIssue({
        code: "custom",
        path: ["weightCache", "dataCenter"],
        message: "is required when dataCenters is empty: the volume lives in one data centre, e.g. EU-RO-1",
      });
    const seen = new Set<string>();
    for (const dc of dcs) {
      if (seen.has(dc))
        ctx.addIssue({
          code: "custom",
          path: ["weightCache", field],
          message: `lists "${dc}" twice; RunPod mounts one network volume per data centre`,
        });
      seen.add(dc);
      if (r.dataCenters.length > 0 && !r.dataCenters.includes(dc))
        ctx.addIssue({
          code: "custom",
          path: ["weightCache", field],
          message: `"${dc}" is not one of dataCenters (${r.dataCenters.join(", ")}); endpoints mount a volume only in its own data centre`,
        });
    }
  });

/**
 * The data centres of the stack's RunPod weight cache, one volume each (validated by the schema): `dataCenters`,
 * else `[dataCenter]`, else the first of the provider's `dataCenters`; empty without a weight cache.
 */
export function weightCacheDataCenters(r: z.output<typeof runpodServerlessSchema>): string[] {
  const cache = r.weightCache;
  if (!cache) return [];
  if (cache.dataCenters) return [...cache.dataCenters];
  const dc = cache.dataCenter ?? r.dataCenters[0];
  return dc === undefined ? [] : [dc];
}

/** The (first) data centre of the stack's RunPod weight cache, when it has one. */
export function weightCacheDataCenter(r: z.output<typeof runpodServerlessSchema>): string | undefined {
  return weightCacheDataCenters(r)[0];
}

/**
 * Weight cache of an instance provider (a fresh VM or container per worker): a Hugging Face–compatible mirror
 * (a pull-through cache the team runs near the provider) the engine downloads from instead of the Hub, via
 * `HF_ENDPOINT`. The mirror fetches each pinned revision from the Hub once; later cold starts hit it.
 */
export const instanceWeightCacheSchema = z.strictObject({
  /** https URL of the mirror; the engine sends it HF_TOKEN, so it must be TLS and trusted like the Hub. */
  mirrorUrl: z.url({
    protocol: /^https$/,
    error: (issue) =>
      issue.input === undefined
        ? "is required: the https URL of a Hugging Face mirror, e.g. https://hf-mirror.internal.example.com"
        : `${quoted(issue.input)} is not an https URL; the engine sends the mirror HF_TOKEN, so it must be TLS (https://…)`,
  }),
});

export const runpodPodSchema = z.strictObject({
  cloud: runpodCloud,
  dataCenters: z.array(z.string()).default([]),
  image: z.string().optional(),
  /** Lowest host CUDA version (RunPod `gpu.minCudaVersion`). @default the engine image's (12.8 for vLLM 0.10) */
  minCudaVersion: cudaVersionSchema.optional(),
  apiBase: httpUrl().optional(),
  weightCache: instanceWeightCacheSchema.optional(),
});

export const vastaiSchema = z.strictObject({
  verifiedOnly: z.boolean().default(true),
  /** Only hosts Vast.ai lists as data-centre hosts. */
  datacenterOnly: z.boolean().default(false),
  minReliability: z.number().min(0).max(1).default(0.98),
  maxUsdPerHour: z.number().positive().optional(),
  image: z.string().optional(),
  diskGb: positiveInt("disk in GB for image and weights").default(60),
  apiBase: httpUrl().optional(),
  weightCache: instanceWeightCacheSchema.optional(),
});

const datacrunchLocations = PROVIDERS.datacrunch.clouds.default!.regions.map((r) => r.id) as [
  string,
  ...string[],
];

export const datacrunchSchema = z.strictObject({
  location: oneOf(datacrunchLocations, "DataCrunch location").default("FIN-03"),
  /** OS image for the instance; the engine container runs on it. */
  osImage: z.string().default("ubuntu-24.04-cuda-12.8-open-docker"),
  image: z.string().optional(),
  apiBase: httpUrl().optional(),
  weightCache: instanceWeightCacheSchema.optional(),
});

export const localSchema = z.strictObject({
  /** Base URL of an OpenAI-compatible server, e.g. http://workstation:11434/v1 for Ollama. */
  url: httpUrl("the base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:11434/v1"),
});

export const providersSchema = z.strictObject({
  "runpod-serverless": runpodServerlessSchema.optional(),
  "runpod-pod": runpodPodSchema.optional(),
  vastai: vastaiSchema.optional(),
  datacrunch: datacrunchSchema.optional(),
  local: localSchema.optional(),
});
export type ProvidersConfig = z.output<typeof providersSchema>;

// ── models ────────────────────────────────────────────────────────────────────────────────────────────────

/** A full commit hash: the only revision that pins weights. */
export const PINNED_REVISION = /^[0-9a-f]{40}$/;

const revisionSchema = z
  .string()
  .min(1)
  .regex(/^[\w.\-/]+$/, {
    error: (issue) => `${quoted(issue.input)} is not a revision; write a commit hash, branch or tag`,
  });

export const variantSchema = z.strictObject({
  /** Name of the variant, shown in headers, audit lines and metric labels. */
  name: z.string(required('the variant\'s name, e.g. "v2"')).regex(/^[a-z0-9]([-a-z0-9.]{0,30}[a-z0-9])?$/, {
    error: "must be a short lower-case name: letters, digits, - and .",
  }),
  /** Hugging Face repo of this variant's weights. @default the model's source */
  source: z
    .string()
    .regex(/^[\w.-]+\/[\w.-]+$/, {
      error: (issue) => `${quoted(issue.input)} is not a Hugging Face repo id; write "org/name"`,
    })
    .optional(),
  revision: revisionSchema.optional(),
  engineArgs: z.array(z.string()).optional(),
  /** Share of the model's traffic, relative to the other variants' weights. */
  weight: z.number(required("the variant's share of traffic, e.g. 90")).min(0),
});

const TTFT_BUCKET_MAX = METRICS.timeToFirstTokenSeconds.buckets?.at(-1) ?? 300;

export const sloSchema = z.strictObject({
  /** Share of requests that must not fail (5xx), e.g. 0.995. */
  availability: z.number().gt(0).lt(1).optional(),
  /** Time to first token the `ttftTarget` share of requests must beat, seconds. */
  ttftSeconds: z
    .number()
    .positive()
    // measured at a histogram boundary, so it cannot exceed the largest one
    .max(
      TTFT_BUCKET_MAX,
      `the gateway measures time to first token up to ${TTFT_BUCKET_MAX}s; choose at most that`,
    )
    .optional(),
  /** Share of requests that must beat ttftSeconds. */
  ttftTarget: z.number().gt(0).lt(1).default(0.95),
});

export const modelSchema = z
  .strictObject({
    name: z
      .string(required('the id clients send as "model", e.g. "llama-3.1-8b"'))
      .regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/, {
        error: "must start with a letter or digit and use only letters, digits and . _ : / -",
      }),
    kind: oneOf(MODEL_KINDS, "model kind", "what the model serves"),
    source: z
      .string(required('the Hugging Face repo of the weights, e.g. "meta-llama/Llama-3.1-8B-Instruct"'))
      .regex(/^[\w.-]+\/[\w.-]+$/, {
        error: (issue) => `${quoted(issue.input)} is not a Hugging Face repo id; write "org/name"`,
      }),
    /** Weights revision: a commit hash pins the weights (a branch or tag moves under you). */
    revision: revisionSchema.optional(),
    engine: oneOf(ENGINES, "engine").default("vllm"),
    gpu: listOf(gpuIdSchema, "GPU ids the model may run on, e.g. [RTX_4090]"),
    gpuCount: z.int().min(1).max(8).default(1),
    providers: listOf(providerNameSchema, "provider names in preference order, e.g. [runpod-serverless]"),
    dataClass: dataClassSchema.optional(),
    minWorkers: nonNegativeInt.default(0),
    maxWorkers: positiveInt("the most workers the model may run at once").default(1),
    targetConcurrency: positiveInt("concurrent requests one worker should serve").default(8),
    idleTimeoutSeconds: z
      .union([z.literal("auto"), nonNegativeInt], {
        error: (issue) =>
          `must be "auto" (break-even from cold-start cost) or whole seconds ≥ 0; got ${quoted(issue.input)}`,
      })
      .default("auto"),
    /** How long a request waits for a worker to become ready before it gets 503. */
    queueTimeoutSeconds: positiveInt("seconds a request may wait for a cold start").default(180),
    /**
     * What a request waiting for a worker costs you, USD per waited second: the keep-alive weighs the waits a
     * restart causes with it (never below the worker's own price per second, the default). Raise it to buy
     * latency: workers stay up longer and pre-warm earlier.
     */
    waitUsdPerSecond: z
      .number({
        error: (issue) => `must be a price in USD per waited second, e.g. 0.001; got ${quoted(issue.input)}`,
      })
      .min(0, { error: "must be ≥ 0 (USD per waited second)" })
      .optional(),
    monthlyBudgetUsd: z.number().positive().optional(),
    /** Marks a model that deliberately keeps `minWorkers` > 0 (the scale-to-zero policy accepts it). */
    alwaysOn: z.boolean().default(false),
    maxModelLen: positiveInt("context length in tokens").optional(),
    /** Extra engine command-line arguments, e.g. ["--enable-prefix-caching"]. */
    engineArgs: z.array(z.string()).default([]),
    /** Versions served side by side, split by weight (a rollout); absent = the model's own source and revision. */
    variants: z
      .array(variantSchema)
      .min(1, { error: "needs at least one variant, or leave variants out" })
      .optional(),
    /** Keep each API key on one variant (by a hash of the key), so a client sees consistent answers. */
    stickyVariants: z.boolean().default(false),
    /** Service level objectives, rendered into multi-window burn-rate alerts. */
    slo: sloSchema.optional(),
  })
  .superRefine((m, ctx) => {
    if (m.variants) {
      const names = new Set<string>();
      m.variants.forEach((v, i) => {
        if (names.has(v.name))
          ctx.addIssue({
            code: "custom",
            path: ["variants", i, "name"],
            message: `"${v.name}" is used twice`,
          });
        names.add(v.name);
      });
      if (m.variants.every((v) => v.weight === 0)) {
        ctx.addIssue({
          code: "custom",
          path: ["variants"],
          message: "every weight is 0; give at least one variant a weight above 0",
        });
      }
    }
    if (servedRoutes(m.kind, m.engine).length === 0) {
      // the kind's routes and the engine's, by the table in core/engine-routes.ts (with its sources)
      const able = ENGINES.filter((e) => servedRoutes(m.kind, e).length > 0);
      ctx.addIssue({
        code: "custom",
        path: ["engine"],
        message:
          `${engineLabel(m.engine)} serves none of the routes of ${/^[aeiou]/.test(m.kind) ? "an" : "a"} ${m.kind} model (${KIND_ROUTES[m.kind].join(", ")}); ` +
          (able.length > 0
            ? `set engine to ${able.join(" or ")}`
            : `no engine the stack can start serves them; change kind or leave this model out`),
      });
    }
    if (m.minWorkers > m.maxWorkers) {
      ctx.addIssue({
        code: "custom",
        path: ["minWorkers"],
        message: `${m.minWorkers} exceeds maxWorkers (${m.maxWorkers}); lower minWorkers or raise maxWorkers`,
      });
    }
    const seen = new Set<string>();
    m.providers.forEach((p, i) => {
      if (seen.has(p))
        ctx.addIssue({ code: "custom", path: ["providers", i], message: `"${p}" is listed twice` });
      seen.add(p);
    });
  });
export type ModelConfig = z.output<typeof modelSchema>;

// ── stack-wide ────────────────────────────────────────────────────────────────────────────────────────────

export const budgetSchema = z.strictObject({
  monthlyUsd: z
    .number(required("the stack's monthly GPU spend cap in USD, e.g. 500"))
    .positive({ error: (issue) => `must be a positive amount in USD; got ${quoted(issue.input)}` }),
  alertAtPercent: z.array(z.int().min(1).max(200)).default([50, 80, 100]),
});

export const gatewaySchema = z.strictObject({
  host: z
    .string(required('the public host name of the gateway, e.g. "ai.example.com"'))
    .regex(/^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,}$/i, {
      error: (issue) => `${quoted(issue.input)} is not a host name; write e.g. "ai.example.com"`,
    }),
  replicas: positiveInt("gateway replicas").default(2),
  tls: z
    .strictObject({
      enabled: z.boolean().default(true),
      /** cert-manager ClusterIssuer that signs the certificate. */
      clusterIssuer: z.string().default("letsencrypt-prod"),
    })
    .default({ enabled: true, clusterIssuer: "letsencrypt-prod" }),
  /** IngressClass of the cluster's ingress controller (k3s' bundled Traefik creates `traefik`). */
  ingressClassName: z.string().default("traefik"),
  /** Namespace of the ingress controller: the only source of client traffic the gateway admits (k3s: kube-system). */
  ingressNamespace: dnsLabel.default("kube-system"),
  /** Default per-key limits for keys created without their own. */
  limits: z
    .strictObject({
      rpm: positiveInt("requests per minute").default(60),
      tpm: positiveInt("tokens per minute").default(100_000),
    })
    .default({ rpm: 60, tpm: 100_000 }),
  maxRequestBytes: positiveInt("largest accepted request body").default(1_048_576),
  /** A client must send a request's headers within this long (then 408 and the connection is closed); at most requestReadTimeoutSeconds. */
  headersTimeoutSeconds: positiveInt("seconds a client may take to send request headers").default(10),
  /**
   * A client must send a whole request, headers and body, within this long (then 408 and the connection is closed).
   * Only the request is timed: the answer may take longer (a stream, a wait for a cold start).
   */
  requestReadTimeoutSeconds: positiveInt("seconds a client may take to send a whole request").default(30),
  /** A client connection idle between requests is closed after this long (above Traefik's 90 s, so the ingress closes it first). */
  idleConnectionTimeoutSeconds: positiveInt("seconds an idle client connection is kept").default(95),
  /** Client connections one replica holds at once (each stream holds one); connections past it are closed at once. */
  maxConnections: positiveInt("client connections per replica").default(4096),
  /** Requests that may wait for a cold start per model (across replicas); more get 429. */
  maxWaitingPerModel: positiveInt("requests that may wait per model").default(100),
  /** Streaming clients that wait for a worker get an SSE comment this often, so proxies keep the line open. */
  keepAliveSeconds: positiveInt("seconds between SSE keep-alive comments").default(10),
  /** Longest an upstream call may take (headers and body). */
  upstreamTimeoutSeconds: positiveInt("seconds an upstream call may take").default(300),
  /** How long results of async jobs are kept. */
  jobResultTtlSeconds: positiveInt("seconds job results are kept").default(86_400),
  /** How long an async job that has not finished yet is kept (queued or retrying); then it is dropped. */
  jobQueuedTtlSeconds: positiveInt("seconds a queued job is kept").default(86_400),
  /** Async jobs one API key may have queued (not finished yet) at once; more get 429 `too_many_queued_jobs`. */
  maxQueuedJobsPerKey: positiveInt("queued jobs per API key").default(20),
  /** Async jobs that may be queued per model (all keys and replicas together); more get 429 `too_many_queued_jobs`. */
  maxQueuedJobsPerModel: positiveInt("queued jobs per model").default(200),
  /** Write prompt and completion text into the audit log (off: metadata only). */
  auditPrompts: z.boolean().default(false),
  /** Export request spans over OTLP/HTTP (trace context is propagated either way). */
  tracing: z
    .strictObject({
      /** Collector traces URL, e.g. http://otel-collector.monitoring:4318/v1/traces. */
      otlpEndpoint: z.url({
        protocol: /^https?$/,
        error: (issue) =>
          `${quoted(issue.input)} is not an http(s) URL; write e.g. "http://otel-collector.monitoring:4318/v1/traces"`,
      }),
      /** Share of new traces to record; a caller's sampled trace is always recorded. */
      sampleRatio: z.number().min(0).max(1).default(1),
      /** Namespace of an in-cluster collector, so the gateway's NetworkPolicy lets spans out to it. */
      collectorNamespace: dnsLabel.default("monitoring"),
    })
    .optional(),
});

export const redisSchema = z
  .strictObject({
    keyPrefix: z
      .string()
      .regex(/^[a-z0-9:_-]+$/i)
      .default("aiorch:"),
    storageGi: positiveInt("persistent volume size for the append-only file").default(5),
    /** Bump to rotate the generated Redis password (Redis and its clients roll onto the new one). */
    passwordVersion: positiveInt("version of the Redis password").default(1),
  })
  .default({ keyPrefix: "aiorch:", storageGi: 5, passwordVersion: 1 });

/** Where and how often the stack backs its Redis up (README "Disaster recovery"); absent: no backups. */
export const backupSchema = z.strictObject({
  /** S3-compatible endpoint; Hetzner Object Storage is `https://<location>.your-objectstorage.com`. */
  endpoint: httpUrl().default("https://fsn1.your-objectstorage.com"),
  /** S3 bucket naming rules: 3-63 lower-case letters, digits, dots and hyphens. */
  bucket: z
    .string(required("the object storage bucket backups go to"))
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, {
      error: (issue) =>
        `${quoted(issue.input)} is not an S3 bucket name: 3-63 lower-case letters, digits, '.' and '-'`,
    }),
  /** Key prefix inside the bucket; backups are `<prefix><stack>/<id>.json`. */
  prefix: z
    .string()
    .regex(/^([A-Za-z0-9._-]+\/)*$/, {
      error: (issue) =>
        `${quoted(issue.input)} must be empty or folder names each ending in '/', e.g. "aiorch/"`,
    })
    .default("aiorch/"),
  /** Kubernetes CronJob schedule (five cron fields, UTC). */
  schedule: z
    .string()
    .regex(/^(@(hourly|daily|weekly|monthly|yearly)|(\S+\s+){4}\S+)$/, {
      error: (issue) => `${quoted(issue.input)} is not a cron schedule; write e.g. "0 * * * *" (hourly)`,
    })
    .default("0 * * * *"),
  /** Backups older than this are deleted after each backup (the newest is always kept). */
  retentionDays: positiveInt("days backups are kept").default(14),
  /** The alert fires when no backup succeeded for this long. */
  alertAfterHours: positiveInt("hours without a successful backup before the alert").default(3),
});
export type BackupConfig = z.output<typeof backupSchema>;

/** Config keys of the alert receivers' URLs: credentials (a Slack webhook URL lets anyone post), so Pulumi secrets. */
export const ALERT_RECEIVER_SECRETS = {
  slack: "alertSlackWebhookUrl",
  webhook: "alertWebhookUrl",
} as const;

/**
 * Where the stack's alerts go (`monitoring.notify`): Alertmanager receivers declared as an AlertmanagerConfig
 * (components/alertmanager-config.ts). The URLs are Pulumi secrets (`ALERT_RECEIVER_SECRETS`), never config values.
 */
export const alertNotifySchema = z
  .strictObject({
    /** A Slack incoming webhook; its URL is the secret `alertSlackWebhookUrl`. */
    slack: z
      .strictObject({
        /**
         * Channel to post to. @default the webhook's own. A Slack app's incoming webhook always posts to the
         * channel it was created for (api.slack.com/messaging/webhooks); only legacy webhooks honour this.
         */
        channel: z
          .string()
          .regex(/^[#@]?[^\s#@]{1,80}$/, {
            error: (issue) =>
              `${quoted(issue.input)} is not a Slack channel; write e.g. "#gpu-alerts", or leave channel out to post where the webhook points`,
          })
          .optional(),
      })
      .optional(),
    /** A generic webhook (Alertmanager's JSON payload, POST); its URL is the secret `alertWebhookUrl`. */
    webhook: z.strictObject({}).optional(),
    /** Alert labels a notification groups by ("..." alone: every label, one notification per alert). */
    groupBy: z
      .array(
        z.string().regex(/^(\.\.\.|[a-zA-Z_][a-zA-Z0-9_]*)$/, {
          error: (issue) =>
            `${quoted(issue.input)} is not an alert label name; write e.g. alertname, model or provider`,
        }),
      )
      .min(1, { error: 'needs at least one label, e.g. [alertname]; "..." groups by every label' })
      // the AlertmanagerConfig CRD: unique labels, and "..." only on its own
      .refine((labels) => new Set(labels).size === labels.length, { error: "lists a label twice" })
      .refine((labels) => !labels.includes("...") || labels.length === 1, {
        error: '"..." (every label) must be the only entry',
      })
      .default(["alertname", "severity"]),
    /** A firing alert is sent again after this many minutes. */
    repeatIntervalMinutes: z
      .int(required("minutes after which a firing alert is sent again, e.g. 240"))
      .min(5, { error: "must be at least 5 (the group interval: notifications repeat no sooner)" })
      // Alertmanager's configuration docs (route `repeat_interval`): "should be a multiple of group_interval" (5m),
      // and it is bound by `--data.retention` (kube-prometheus-stack 88.5.3 `alertmanagerSpec.retention: 120h`)
      .multipleOf(5, { error: "must be a multiple of 5 (the group interval), e.g. 60 or 240" })
      .max(7200, { error: "must be at most 7200 (120 hours, Alertmanager's notification log retention)" })
      .default(240),
  })
  .refine((n) => n.slack !== undefined || n.webhook !== undefined, {
    error: `names no receiver; add slack: {} (secret ${ALERT_RECEIVER_SECRETS.slack}) or webhook: {} (secret ${ALERT_RECEIVER_SECRETS.webhook}), or remove notify`,
  });
export type AlertNotifyConfig = z.output<typeof alertNotifySchema>;

/**
 * What is wrong with a receiver URL, without echoing it (it is a credential): the operator rejects the whole
 * AlertmanagerConfig when a URL from its Secret does not parse as Alertmanager's URL — http(s) with a host
 * (prometheus-operator v0.93 `pkg/alertmanager/operator.go` checkSlackConfigs/checkWebhookConfigs,
 * `pkg/alertmanager/validation/validation.go`) — and the alerts would go nowhere.
 */
export function alertReceiverUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url.trim());
  } catch {
    return "is not a URL";
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") return "is not an http(s) URL";
  if (parsed.hostname === "") return "has no host";
  return undefined;
}

export const monitoringSchema = z
  .strictObject({
    /** Declare PrometheusRule, ServiceMonitors and the dashboard (needs the prometheus-operator CRDs). */
    enabled: z.boolean().default(true),
    /** Namespace Prometheus runs in (admitted to scrape /metrics). */
    prometheusNamespace: dnsLabel.default("monitoring"),
    /** `release` label kube-prometheus-stack selects rules and monitors by. */
    prometheusRelease: z.string().min(1).default("kube-prometheus-stack"),
    /** Label the Grafana sidecar loads dashboard ConfigMaps by. */
    dashboardLabel: z.string().min(1).default("grafana_dashboard"),
    /** Grafana's address (e.g. https://grafana.example.com), for links to the stack's dashboard; absent: uid only. */
    grafanaUrl: httpUrl().optional(),
    gpuIdleAlertMinutes: positiveInt("minutes a ready worker may idle before an alert").default(15),
    coldStartAlertSeconds: z.number().positive().default(5),
    /** Where alerts go (Slack, a webhook). @default nowhere: Alertmanager only shows them */
    notify: alertNotifySchema.optional(),
  })
  .default({
    enabled: true,
    prometheusNamespace: "monitoring",
    prometheusRelease: "kube-prometheus-stack",
    dashboardLabel: "grafana_dashboard",
    gpuIdleAlertMinutes: 15,
    coldStartAlertSeconds: 5,
  });

/**
 * What `pulumi up` installs into the cluster besides the stack, and what it expects to find there. Each add-on is
 * installed by default on a cluster the stack creates and expected (listed by `plan` as a prerequisite) on an
 * existing one.
 */
export const platformSchema = z
  .strictObject({
    /**
     * The ingress controller: `k3s-traefik` keeps the Traefik k3s bundles (create mode only); `existing` expects the
     * controller named by gateway.ingressClassName/ingressNamespace. @default create: k3s-traefik, existing: existing
     */
    ingress: oneOf(["k3s-traefik", "existing"], "ingress controller").optional(),
    certManager: z
      .strictObject({
        /** Install cert-manager and the ClusterIssuer gateway.tls.clusterIssuer names. @default create mode */
        install: z.boolean().optional(),
        /** Let's Encrypt directory the issuer uses: `staging` for trial runs (untrusted certificates, high limits). */
        acme: oneOf(["production", "staging"], "ACME directory").default("production"),
        /** Contact address Let's Encrypt registers the account under. @default none */
        email: z.email({ error: (issue) => `${quoted(issue.input)} is not an e-mail address` }).optional(),
      })
      .default({ acme: "production" }),
    monitoringStack: z
      .strictObject({
        /** Install the prometheus-operator CRDs and kube-prometheus-stack (when monitoring is on). @default create mode */
        install: z.boolean().optional(),
        /** Prometheus' volume (GiB, Hetzner volumes start at 10). */
        storageGi: z.int().min(10, { error: "Hetzner volumes start at 10 GiB" }).default(10),
        /** How long Prometheus keeps samples. */
        retention: z
          .string()
          .regex(/^\d+[hdwy]$/, { error: 'must be a duration such as "15d"' })
          .default("15d"),
      })
      .default({ storageGi: 10, retention: "15d" }),
  })
  .default({
    certManager: { acme: "production" },
    monitoringStack: { storageGi: 10, retention: "15d" },
  });

export const securitySchema = z
  .strictObject({
    /** Redis serves TLS only and admits only clients with a certificate from the stack's CA. */
    redisTls: z.boolean().default(true),
    /** Seal queued and async request bodies and results in Redis (AES-256-GCM, key generated by the stack). */
    encryptQueued: z.boolean().default(true),
    /** Bump to rotate the encryption key; the previous key stays for values sealed before. */
    encryptionKeyVersion: positiveInt("version of the queue encryption key").default(1),
  })
  .default({ redisTls: true, encryptQueued: true, encryptionKeyVersion: 1 });

export const pricesSchema = z
  .partialRecord(oneOf(PROVIDER_IDS, "provider"), z.partialRecord(gpuIdSchema, z.number().positive()))
  .default({});

export const offeringIdSchema = oneOf(OFFERING_IDS, "provider offering");

/** Trust overrides: approved lists tighten the defaults; an exception is a named, reasoned decision for one model. */
export const trustSchema = z
  .strictObject({
    approved: z
      .strictObject({
        confidential: z.array(offeringIdSchema).optional(),
        internal: z.array(offeringIdSchema).optional(),
        public: z.array(offeringIdSchema).optional(),
      })
      .default({}),
    exceptions: z
      .array(
        z.strictObject({
          name: z.string(required("a name the exception is known by in reviews and audits")).min(3),
          model: z.string(required("the model the exception is for")),
          provider: offeringIdSchema,
          reason: z.string(required("why the exception is acceptable")).min(10, {
            error: "needs a real reason (at least 10 characters)",
          }),
        }),
      )
      .default([]),
  })
  .default({ approved: {}, exceptions: [] });

/**
 * Self-healing guard rails (`ai-orchestrator:selfHealing`; controller/self-healing-policy.ts): what the controller
 * may do by itself about the anomalies it detects (core/anomalies.ts). Absent or `enabled: false`: nothing — the
 * anomalies are only surfaced (MCP `anomalies`, Prometheus alerts).
 */
export const selfHealingSchema = z.strictObject({
  /** Act on anomalies at all. @default false */
  enabled: z.boolean().default(false),
  /** Drain a worker slow to become ready versus its provider's history (the policy starts a replacement). */
  replaceSlowWorkers: z.boolean().default(true),
  /** Hold a provider erroring repeatedly back from new creates for a while, for models with another provider. */
  failOverOnProviderErrors: z.boolean().default(true),
  /** Actions of either kind per rolling hour, stack-wide; beyond it an anomaly is surfaced, not acted on. */
  maxActionsPerHour: z
    .int(required("how many self-healing actions the controller may take per hour, e.g. 3"))
    .min(1, { error: "must be at least 1; to turn self-healing off, set enabled: false" })
    .max(60, { error: "must be at most 60 (one a minute); a guard rail above that guards nothing" })
    .default(3),
});
export type SelfHealingConfig = z.output<typeof selfHealingSchema>;

/**
 * The MCP server in the cluster (`ai-orchestrator:mcp`; README "Operating with an AI assistant"): a port of the
 * controller's pod, a ClusterIP Service, never in the Ingress; its NetworkPolicy admits only the stack's namespace
 * and the namespaces listed. Absent or `enabled: false`: not served.
 */
export const mcpSchema = z.strictObject({
  enabled: z.boolean().default(false),
  /** Container and Service port of Streamable HTTP (`POST /mcp`). */
  port: z
    .int(required("the port the MCP server listens on, e.g. 8090"))
    .min(1024, { error: "must be 1024 or above (the runtime runs as a non-root user)" })
    .max(65535, { error: "must be at most 65535" })
    .refine((p) => p !== OPS_PORT, {
      error: `${OPS_PORT} is the controller's metrics port; pick another, e.g. 8090`,
    })
    .default(8090),
  /** Other namespaces whose pods may call it (an assistant's in-cluster client); the stack's own always may. */
  allowFromNamespaces: z.array(dnsLabel).default([]),
});
export type McpConfig = z.output<typeof mcpSchema>;

/** The validated, defaulted stack config (the `ai-orchestrator:*` keys without their namespace). */
export const stackConfigSchema = z.strictObject({
  cluster: clusterSchema,
  namespace: dnsLabel.default("ai-orchestrator"),
  dataClass: dataClassSchema.default("confidential"),
  /** Stack requires GDPR: confidential data only in EU/EEA data centres. */
  gdpr: z.boolean().default(false),
  budget: budgetSchema.optional(),
  providers: providersSchema,
  models: z.array(modelSchema, required("the list of models this stack serves")).min(1, {
    error: "needs at least one model",
  }),
  gateway: gatewaySchema,
  redis: redisSchema,
  prices: pricesSchema,
  trust: trustSchema,
  monitoring: monitoringSchema,
  platform: platformSchema,
  security: securitySchema,
  backup: backupSchema.optional(),
  selfHealing: selfHealingSchema.optional(),
  mcp: mcpSchema.optional(),
});
export type StackConfig = z.output<typeof stackConfigSchema>;
export type ClusterConfig = z.output<typeof clusterSchema>;

/** Config keys whose values are credentials: accepted only as Pulumi secrets. */
export const SECRET_CONFIG_KEYS = [
  "runpodApiKey",
  "vastaiApiKey",
  "datacrunchClientId",
  "datacrunchClientSecret",
  "kubeconfig",
  "hfToken",
  "backupAccessKeyId",
  "backupSecretAccessKey",
  ALERT_RECEIVER_SECRETS.slack,
  ALERT_RECEIVER_SECRETS.webhook,
] as const;
export type SecretConfigKey = (typeof SECRET_CONFIG_KEYS)[number];

/** Keys of other Pulumi packages the program reads; `hcloud:token` authenticates the Hetzner provider. */
export const FOREIGN_SECRET_KEYS = ["hcloud:token"] as const;

/** Environment variable each runtime credential reaches the controller under (from a Kubernetes Secret). */
export const CREDENTIAL_ENV: Readonly<
  Record<
    Exclude<
      SecretConfigKey,
      | "kubeconfig"
      | keyof typeof BACKUP_CREDENTIAL_ENV
      | (typeof ALERT_RECEIVER_SECRETS)[keyof typeof ALERT_RECEIVER_SECRETS]
    >,
    string
  >
> = {
  runpodApiKey: "RUNPOD_API_KEY",
  vastaiApiKey: "VASTAI_API_KEY",
  datacrunchClientId: "DATACRUNCH_CLIENT_ID",
  datacrunchClientSecret: "DATACRUNCH_CLIENT_SECRET",
  hfToken: "HF_TOKEN",
};

/** Backup credentials reach only the backup CronJob, under the AWS SDK's standard names. */
export const BACKUP_CREDENTIAL_ENV = {
  backupAccessKeyId: "AWS_ACCESS_KEY_ID",
  backupSecretAccessKey: "AWS_SECRET_ACCESS_KEY",
} as const;
