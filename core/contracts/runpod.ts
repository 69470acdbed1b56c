/**
 * RunPod's published contract, trimmed to the operations ai-orchestrator uses: REST v2 on `https://api.runpod.io`
 * (pods, serverless endpoints, templates, network volumes, the GPU catalog) and the job API on
 * `https://api.runpod.ai/v2/{endpointId}` (`/health`, `/purge-queue`).
 *
 * Source unless a schema says otherwise: runpod/docs @a900806 `api-reference-v2/openapi.json`, components/schemas
 * of the same name. Request bodies are strict (the API rejects unknown fields with 422: `unevaluatedProperties:
 * false`); responses are strict too, so the contract fakes cannot answer a field RunPod does not publish (v1's
 * `publicIp`, `portMappings`, `costPerHr`). Adapters do not strict-parse real answers (RunPod may add fields): they
 * read them through these types, so reading a field RunPod does not publish is a compile error.
 *
 * Pure: zod schemas and types only. The dynamic providers in `components/` import only the types (erased), so
 * nothing here is captured when Pulumi serializes them.
 */
import { z } from "zod";

const cudaVersion = z.string().regex(/^\d+\.\d+$/, { error: "a CUDA version as major.minor, e.g. 12.8" });
/** `ContainerConfig.env`: variable name → string value. */
const env = z.record(z.string(), z.string());

// ── errors ────────────────────────────────────────────────────────────────────────────────────────────────

/** `ErrorResponse`: RFC 9457 problem document (`application/problem+json`). */
export const ErrorResponse = z.strictObject({
  title: z.string(),
  status: z.int(),
  detail: z.string(),
  /** Individual request-validation failures (422). */
  errors: z.array(z.string()).optional(),
});
export type ErrorResponse = z.infer<typeof ErrorResponse>;

// ── pods ──────────────────────────────────────────────────────────────────────────────────────────────────

/** `Cloud`. */
export const Cloud = z.enum(["SECURE", "COMMUNITY"]);

/** `PodStatus`: PROVISIONING → STARTING → RUNNING; EXITED (stopped), ERROR, TERMINATED. */
export const PodStatus = z.enum(["PROVISIONING", "STARTING", "RUNNING", "EXITED", "ERROR", "TERMINATED"]);
export type PodStatus = z.infer<typeof PodStatus>;

/** `CreateGpuConfig`: `GpuConfig` plus the CUDA host constraints (a non-empty set and a floor exclude each other). */
export const CreateGpuConfig = z.strictObject({
  id: z.string(),
  count: z.int().min(1).optional(),
  allowedCudaVersions: z.array(cudaVersion).optional(),
  minCudaVersion: cudaVersion.optional(),
});

/** `NetworkMount`. */
const NetworkMount = z.strictObject({ volumeId: z.string(), path: z.string() });
/** `PersistentMount`. */
const PersistentMount = z.strictObject({ size: z.int().min(10), path: z.string() });
/** `Mounts`: at most one of the two. */
const Mounts = z.strictObject({
  persistent: PersistentMount.optional(),
  network: z.array(NetworkMount).max(1).optional(),
});

/**
 * `CreatePodRequest` = `ContainerConfig` (args, disk, env, image, ports, registry) + the pod fields. `args` is one
 * string passed to the image's entrypoint; `ports` like `8000/tcp` (a TCP port is published on the host's public
 * IP; `8000/http` goes through RunPod's HTTP proxy).
 */
export const CreatePodRequest = z.strictObject({
  name: z.string().min(1),
  image: z.string().optional(),
  args: z.string().optional(),
  disk: z.int().min(1).optional(),
  env: env.optional(),
  ports: z.array(z.string()).optional(),
  registry: z.string().nullable().optional(),
  cloud: Cloud.optional(),
  cpu: z.unknown().optional(),
  dataCenterIds: z.array(z.string()).optional(),
  globalNetworking: z.boolean().optional(),
  gpu: CreateGpuConfig.optional(),
  mounts: Mounts.optional(),
  startJupyter: z.boolean().optional(),
  startSsh: z.boolean().optional(),
  templateId: z.string().min(1).optional(),
});
export type CreatePodRequest = z.input<typeof CreatePodRequest>;

/** `PodRuntimePort`: a live port mapping; `public` and `ip` are where a `/tcp` port is reached from outside. */
export const PodRuntimePort = z.strictObject({
  private: z.int().optional(),
  public: z.int().nullable().optional(),
  type: z.string().optional(),
  ip: z.string().nullable().optional(),
});
export type PodRuntimePort = z.infer<typeof PodRuntimePort>;

const Utilization = z.strictObject({ util: z.int().optional() });

/** `PodRuntime`: live metrics; the pod's `runtime` is null unless it is RUNNING. */
export const PodRuntime = z.strictObject({
  uptime: z.int().optional(),
  gpus: z.array(z.strictObject({ util: z.int().optional(), memoryUtil: z.int().optional() })).optional(),
  cpu: Utilization.optional(),
  memory: Utilization.optional(),
  ports: z.array(PodRuntimePort).optional(),
});

const PodSshEndpoint = z.strictObject({
  host: z.string(),
  port: z.int(),
  username: z.string(),
  command: z.string(),
});

/** `Pod` (`getPod`, `listPods`, 201 of `createPod`). Price is `cost` (USD per hour, 0 once EXITED/TERMINATED). */
export const Pod = z.strictObject({
  id: z.string(),
  name: z.string(),
  status: PodStatus,
  actions: z.array(z.enum(["start", "stop", "restart", "terminate"])),
  image: z.string(),
  args: z.string(),
  disk: z.int(),
  mounts: Mounts,
  ports: z.array(z.string()),
  env,
  registry: z.string().nullable(),
  gpu: z.strictObject({ id: z.string(), count: z.int().optional() }).optional(),
  cpu: z.unknown().optional(),
  cloud: Cloud,
  dataCenterId: z.string().nullable(),
  cudaVersion: z.string().nullable(),
  ssh: z.strictObject({ proxy: PodSshEndpoint.nullable(), direct: PodSshEndpoint.nullable() }),
  cluster: z.unknown().optional(),
  template: z.string().nullable(),
  cost: z.number(),
  locked: z.boolean(),
  globalNetworking: z.strictObject({
    enabled: z.boolean(),
    ip: z.string().optional(),
    internalDns: z.string().optional(),
  }),
  runtime: PodRuntime.nullable(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
});
export type Pod = z.infer<typeof Pod>;

/** `ListPodsResponse`: v2 wraps lists (v1 answered a bare array). */
export const ListPodsResponse = z.strictObject({ pods: z.array(Pod) });

// ── catalog ───────────────────────────────────────────────────────────────────────────────────────────────

/** `AvailabilityLevel`. */
export const AvailabilityLevel = z.enum(["NONE", "LOW", "MEDIUM", "HIGH"]);
export type AvailabilityLevel = z.infer<typeof AvailabilityLevel>;

/**
 * `GpuType` (`GET /v2/catalog/gpus`). Prices are per GPU per hour (a unit costs the figure × count); `memory` is
 * VRAM in GB. `availability`, `dataCenters` and `cudaVersions` come only with `include=AVAILABILITY&product=…`,
 * and are scoped by the `cloud` (default SECURE) and `count` (default 1) query parameters.
 */
export const GpuType = z.strictObject({
  id: z.string(),
  name: z.string(),
  pool: z.string().nullable(),
  manufacturer: z.enum(["NVIDIA", "AMD", "UNKNOWN"]),
  memory: z.int(),
  secure: z.boolean(),
  community: z.boolean(),
  price: z.strictObject({
    secure: z.number(),
    community: z.number(),
    serverless: z.number().optional(),
  }),
  maxCount: z.strictObject({ secure: z.int(), community: z.int() }),
  availability: AvailabilityLevel.optional(),
  dataCenters: z
    .array(z.strictObject({ id: z.string(), name: z.string(), availability: AvailabilityLevel }))
    .optional(),
  cudaVersions: z.array(z.strictObject({ version: cudaVersion, available: z.boolean() })).optional(),
});
export type GpuType = z.infer<typeof GpuType>;

/** `ListGpuTypesResponse`. */
export const ListGpuTypesResponse = z.strictObject({ gpus: z.array(GpuType) });

/** The catalog query parameters we send (`CatalogIncludeParam`, `GpuProductFilter`, `GpuCountFilter`, `GpuCloudFilter`). */
export interface GpuCatalogQuery {
  readonly include: "AVAILABILITY";
  readonly product: "POD" | "SERVERLESS";
  readonly cloud: z.infer<typeof Cloud>;
  readonly count: number;
  [key: string]: string | number;
}

// ── serverless endpoints ──────────────────────────────────────────────────────────────────────────────────

/** `FlashBoot`. */
export const FlashBoot = z.enum(["OFF", "FLASHBOOT", "PRIORITY_FLASHBOOT"]);
export type FlashBoot = z.infer<typeof FlashBoot>;

/**
 * `EndpointWorkers`; `idleTimeout` in seconds (1–3600). Refused, and left out of answers, only for a QUEUE endpoint
 * scaling on REQUEST_COUNT; a LOAD_BALANCER endpoint (always REQUEST_COUNT) has one (create default 10).
 */
export const EndpointWorkers = z.strictObject({
  min: z.int().min(0).optional(),
  max: z.int().min(0).optional(),
  idleTimeout: z.int().min(1).max(3600).optional(),
});

/** `EndpointScaling`: `QueueDelayScaling` (seconds, ≥ 0.5) or `RequestCountScaling` (requests per worker, ≥ 1). */
export const EndpointScaling = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("QUEUE_DELAY"), queueDelay: z.number().min(0.5) }),
  z.strictObject({ type: z.literal("REQUEST_COUNT"), requestCount: z.int().min(1) }),
]);
export type EndpointScaling = z.infer<typeof EndpointScaling>;

/** `CreateEndpointGpuConfig`: serverless pool ids (`GpuType.pool`), GPUs per worker, the CUDA constraints. */
export const CreateEndpointGpuConfig = z.strictObject({
  pools: z.array(z.string()).min(1),
  excludedTypes: z.array(z.string()).optional(),
  count: z.int().min(1).optional(),
  allowedCudaVersions: z.array(cudaVersion).optional(),
  minCudaVersion: cudaVersion.optional(),
});

/** `UpdateEndpointGpuConfig`: every field optional; `""` clears the CUDA floor, `[]` the allowed set. */
export const UpdateEndpointGpuConfig = z.strictObject({
  pools: z.array(z.string()).min(1).optional(),
  excludedTypes: z.array(z.string()).optional(),
  count: z.int().min(1).optional(),
  allowedCudaVersions: z.array(cudaVersion).optional(),
  minCudaVersion: z.union([z.literal(""), cudaVersion]).optional(),
});

/** `ContainerConfig` fields an endpoint carries itself in v2 (no separate template needed). */
const containerFields = {
  image: z.string().optional(),
  args: z.string().optional(),
  disk: z.int().min(1).optional(),
  env: env.optional(),
  ports: z.array(z.string()).optional(),
  registry: z.string().nullable().optional(),
};

/**
 * `CreateEndpointRequest` (`POST /v2/serverless`). `type` and `scaling` are required; `timeout` is the per-request
 * execution timeout in ms (default 300 000); `networkVolumes` lists volume ids.
 */
export const CreateEndpointRequest = z.strictObject({
  ...containerFields,
  name: z.string().min(1),
  type: z.enum(["QUEUE", "LOAD_BALANCER"]),
  scaling: EndpointScaling,
  gpu: CreateEndpointGpuConfig.optional(),
  cpu: z.unknown().optional(),
  dataCenterIds: z.array(z.string()).optional(),
  flashboot: FlashBoot.optional(),
  networkVolumes: z.array(z.string()).optional(),
  templateId: z.string().min(1).optional(),
  timeout: z.int().optional(),
  workers: EndpointWorkers.optional(),
});
export type CreateEndpointRequest = z.input<typeof CreateEndpointRequest>;

/**
 * `UpdateEndpointRequest` (`PATCH /v2/serverless/{id}`): only the fields present change. `image`/`env` changes roll
 * out as a new release as workers cycle; `workers`, `scaling`, `timeout` apply promptly.
 */
export const UpdateEndpointRequest = z.strictObject({
  ...containerFields,
  name: z.string().min(1).optional(),
  gpu: UpdateEndpointGpuConfig.optional(),
  cpu: z.unknown().optional(),
  dataCenterIds: z.array(z.string()).optional(),
  flashboot: FlashBoot.optional(),
  networkVolumes: z.array(z.string()).optional(),
  scaling: EndpointScaling.optional(),
  templateId: z.string().optional(),
  timeout: z.int().optional(),
  workers: EndpointWorkers.optional(),
});
export type UpdateEndpointRequest = z.input<typeof UpdateEndpointRequest>;

/** `QueueBasedRequestUrls` (the job API URLs of a QUEUE endpoint). */
const QueueBasedRequestUrls = z.strictObject({
  run: z.string(),
  runSync: z.string(),
  status: z.string(),
  stream: z.string(),
  cancel: z.string(),
  retry: z.string(),
  purgeQueue: z.string(),
  health: z.string(),
});

/**
 * `LoadBalancingRequestUrls` (a LOAD_BALANCER endpoint): `base` for the worker's own HTTP paths
 * (`https://{id}.api.runpod.ai`), `health` the path the load balancer polls (`HEALTH_CHECK_PATH`, default `/ping`).
 */
export const LoadBalancingRequestUrls = z.strictObject({ base: z.string(), health: z.string() });
export type LoadBalancingRequestUrls = z.infer<typeof LoadBalancingRequestUrls>;

/** `Endpoint` (`getEndpoint`, `listEndpoints`, 201 of create, 200 of update). */
export const Endpoint = z.strictObject({
  ...containerFields,
  id: z.string(),
  name: z.string(),
  type: z.enum(["QUEUE", "LOAD_BALANCER"]).optional(),
  /** `EndpointRequestUrls`: by `type`, the job API's URLs or the load balancer's `base` and `health`. */
  requestUrls: z.union([QueueBasedRequestUrls, LoadBalancingRequestUrls]).optional(),
  /** `EndpointGpuConfig`: `allowedCudaVersions` (empty = any) and `minCudaVersion` (null = no floor) always present. */
  gpu: z
    .strictObject({
      pools: z.array(z.string()),
      excludedTypes: z.array(z.string()).optional(),
      count: z.int().optional(),
      allowedCudaVersions: z.array(z.string()),
      minCudaVersion: z.string().nullable(),
    })
    .nullable()
    .optional(),
  cpu: z.unknown().optional(),
  workers: z.strictObject({
    min: z.int(),
    max: z.int(),
    idleTimeout: z.int().optional(),
  }),
  scaling: EndpointScaling,
  dataCenterIds: z.array(z.string()),
  networkVolumes: z.array(z.string()),
  timeout: z.int(),
  flashboot: FlashBoot,
  createdAt: z.string(),
});
export type Endpoint = z.infer<typeof Endpoint>;

/** `ListEndpointsResponse`. */
export const ListEndpointsResponse = z.strictObject({ endpoints: z.array(Endpoint) });

// ── templates (only to clean up what GraphQL-era stacks created) ──────────────────────────────────────────

/** `Template`, the fields a cleanup reads. */
export const Template = z.strictObject({
  ...containerFields,
  id: z.string(),
  name: z.string(),
  mounts: z.strictObject({ persistent: PersistentMount.optional() }),
  serverless: z.boolean(),
  public: z.boolean(),
  category: z.enum(["CPU", "NVIDIA", "AMD"]),
  startSsh: z.boolean(),
  startJupyter: z.boolean(),
  allowedCudaVersions: z.array(z.string()),
});
export type Template = z.infer<typeof Template>;

/** `ListTemplatesResponse`. */
export const ListTemplatesResponse = z.strictObject({ templates: z.array(Template) });

// ── network volumes ───────────────────────────────────────────────────────────────────────────────────────

/** `VolumeType`. */
export const VolumeType = z.enum(["STANDARD", "HIGH_PERFORMANCE"]);

/** `NetworkVolume`; `size` in GB (10–4096). */
export const NetworkVolume = z.strictObject({
  id: z.string(),
  name: z.string(),
  size: z.int().min(10).max(4096),
  dataCenter: z.string(),
  type: VolumeType,
});

/** `CreateNetworkVolumeRequest`. */
export const CreateNetworkVolumeRequest = z.strictObject({
  name: z.string(),
  size: z.int().min(10).max(4096),
  dataCenter: z.string(),
  type: VolumeType.optional(),
});
export type CreateNetworkVolumeRequest = z.input<typeof CreateNetworkVolumeRequest>;

/** `UpdateNetworkVolumeRequest`: at least one of the two. */
export const UpdateNetworkVolumeRequest = z.strictObject({
  name: z.string().optional(),
  size: z.int().min(10).max(4096).optional(),
});

/** `ListNetworkVolumesResponse`. */
export const ListNetworkVolumesResponse = z.strictObject({ networkVolumes: z.array(NetworkVolume) });

/** `WorkerStatus`: RUNNING (serving), IDLE (ready), INITIALIZING, THROTTLED (waiting for capacity), UNHEALTHY. */
export const WorkerStatus = z.enum(["RUNNING", "IDLE", "INITIALIZING", "THROTTLED", "UNHEALTHY"]);
export type WorkerStatus = z.infer<typeof WorkerStatus>;

/** `Worker` of `GET /v2/serverless/{id}/workers`; placement fields are null until the worker is placed. */
export const ServerlessWorker = z.strictObject({
  id: z.string(),
  status: WorkerStatus,
  isStale: z.boolean(),
  version: z.int().nullable().optional(),
  gpuCount: z.int().min(0),
  image: z.string().nullable().optional(),
  uptimeSeconds: z.int().min(0).nullable().optional(),
  gpuTypeId: z.string().nullable().optional(),
  dataCenterId: z.string().nullable().optional(),
  startedAt: z.string().nullable().optional(),
});
export type ServerlessWorker = z.infer<typeof ServerlessWorker>;

/** `WorkerSummary`: a roll-up of `workers` by status (`running + idle + initializing + throttled + unhealthy == total`). */
export const WorkerSummary = z.strictObject({
  running: z.int().min(0),
  idle: z.int().min(0),
  initializing: z.int().min(0),
  throttled: z.int().min(0),
  unhealthy: z.int().min(0),
  total: z.int().min(0),
});
export type WorkerSummary = z.infer<typeof WorkerSummary>;

/**
 * `ListEndpointWorkersResponse` (`GET /v2/serverless/{id}/workers`): the REST view of an endpoint's workers, for
 * either endpoint type — a LOAD_BALANCER endpoint has no job API `/health`.
 */
export const ListEndpointWorkersResponse = z.strictObject({
  workers: z.array(ServerlessWorker),
  summary: WorkerSummary,
  endpointVersion: z.int().nullable().optional(),
});
export type ListEndpointWorkersResponse = z.infer<typeof ListEndpointWorkersResponse>;

/**
 * What a load-balancing endpoint's own load balancer (`https://{id}.api.runpod.ai/...`) answers when it cannot
 * route: `{"error":"no workers available"}` once no worker became ready in time (2 min), `{"error":"not allowed
 * for QB API"}` on a queue-based endpoint — runpod/docs `serverless/load-balancing/build-a-worker.mdx`
 * "Troubleshooting". The statuses are not published.
 */
export const LoadBalancerError = z.strictObject({ error: z.string() });
export type LoadBalancerError = z.infer<typeof LoadBalancerError>;

// ── job API (https://api.runpod.ai/v2/{endpointId}) ────────────────────────────────────────────────────────

/**
 * `GET /health` — runpod/go-sdk `pkg/sdk/endpoint/types.go` `HealthOutput` (every field optional there; the docs'
 * example, `serverless/endpoints/operation-reference.mdx`, shows jobs{completed, failed, inProgress, inQueue,
 * retried} and workers{idle, running}).
 */
export const EndpointHealth = z.strictObject({
  workers: z
    .strictObject({
      running: z.int().optional(),
      idle: z.int().optional(),
      initializing: z.int().optional(),
      ready: z.int().optional(),
      throttled: z.int().optional(),
    })
    .optional(),
  jobs: z
    .strictObject({
      inProgress: z.int().optional(),
      inQueue: z.int().optional(),
      completed: z.int().optional(),
      failed: z.int().optional(),
      retried: z.int().optional(),
    })
    .optional(),
});
export type EndpointHealth = z.infer<typeof EndpointHealth>;

/** `POST /purge-queue` — go-sdk `PurgeQueueOutput` {status, removed}; queued jobs go, running jobs finish. */
export const PurgeQueueResponse = z.strictObject({
  status: z.string().optional(),
  removed: z.int().optional(),
});
