import * as pulumi from "@pulumi/pulumi";
import { PROVIDERS } from "../core/catalog";
import { RUNPOD_WORKER_IMAGE, RUNPOD_WORKER_IMAGE_CUDA_FLOOR } from "../core/config/schema";
import type { CreateEndpointRequest, UpdateEndpointRequest } from "../core/contracts/runpod";
import * as api from "./runpod-api";

// The RunPod Pulumi SDK is not installable here, so RunPod serverless endpoints are a dynamic provider over
// RunPod's REST v2 API (`/v2/serverless`; pulumi-anchors §3). Pulumi serializes the provider object *by value*
// into the state: its methods may use this module's constants and functions, `./runpod-api` and the pure
// `core/provider-http` rules, but never a client, a logger, a `pulumi.Config` or the API key — those are built
// inside each method from the resource's own inputs. Request bodies are typed by `core/contracts/runpod.ts`
// (type-only imports, erased, so nothing of zod is captured).

/** RunPod serverless GPU pools: the pools of the catalog's RunPod GPUs, plus AMPERE_16 (A4000-class, 16 GB). */
const POOLS: readonly string[] = [
  ...new Set([
    "AMPERE_16",
    ...Object.values(PROVIDERS["runpod-serverless"].gpus).flatMap((g) => (g?.pool ? [g.pool] : [])),
  ]),
];
const DEFAULT_IMAGE = RUNPOD_WORKER_IMAGE;
/** The CUDA floor the default image needs (worker-vllm v2.25.2 `.runpod/hub.json`: CUDA 13.0). */
const DEFAULT_IMAGE_CUDA_FLOOR = RUNPOD_WORKER_IMAGE_CUDA_FLOOR;
/**
 * The execution timeout when none is given: 600 s, as `serverless/endpoints/endpoint-configurations.mdx` documents
 * (the v2 spec's `CreateEndpointRequest.timeout` default is 300 000 ms; the stack always sends one).
 */
const DEFAULT_EXECUTION_TIMEOUT_MS = 600_000;
/** RunPod's execution-timeout range: 5 s to 7 days (`endpoint-configurations.mdx`). */
const MIN_EXECUTION_TIMEOUT_MS = 5_000;
const MAX_EXECUTION_TIMEOUT_MS = 7 * 24 * 3600 * 1000;
const SCALER_TYPES: readonly string[] = ["QUEUE_DELAY", "REQUEST_COUNT"];
/** What the Pulumi engine sends for a value not known yet (preview); validation skips it. */
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/** A RunPod data centre id such as "EU-RO-1" or "US-TX-3". */
const DATA_CENTER_ID = /^[A-Z]{2}(-[A-Z0-9]+)*$/;
/** A CUDA version as RunPod takes it (`major.minor`, compared numerically). */
const CUDA_VERSION = /^\d+\.\d+$/;

export {
  DEFAULT_EXECUTION_TIMEOUT_MS as RUNPOD_DEFAULT_EXECUTION_TIMEOUT_MS,
  DEFAULT_IMAGE as RUNPOD_DEFAULT_WORKER_IMAGE,
  DEFAULT_IMAGE_CUDA_FLOOR as RUNPOD_DEFAULT_WORKER_CUDA_FLOOR,
  MAX_EXECUTION_TIMEOUT_MS as RUNPOD_MAX_EXECUTION_TIMEOUT_MS,
  MIN_EXECUTION_TIMEOUT_MS as RUNPOD_MIN_EXECUTION_TIMEOUT_MS,
  POOLS as RUNPOD_GPU_POOL_IDS,
};

export type ScalerType = "QUEUE_DELAY" | "REQUEST_COUNT";
/**
 * How RunPod routes requests (v2 `EndpointType`, immutable after create): QUEUE through its job queue (worker-vllm's
 * handler, the `/openai/v1` route), LOAD_BALANCER straight to the worker's own HTTP server
 * (`https://{id}.api.runpod.ai/<path>`; runpod/docs `serverless/load-balancing/overview.mdx`).
 */
export type EndpointType = "QUEUE" | "LOAD_BALANCER";
const ENDPOINT_TYPES: readonly string[] = ["QUEUE", "LOAD_BALANCER"];
/** `ContainerConfig.ports` entries: `port/protocol` (v2 spec example `["8888/http", "22/tcp"]`). */
const PORT_SPEC = /^\d{1,5}\/(http|tcp)$/;

/** Where a serverless worker mounts the endpoint's network volume. */
export const RUNPOD_VOLUME_MOUNT_PATH = "/runpod-volume";

/**
 * Worker env that makes the network volume the weight cache: worker-vllm downloads to and loads from BASE_PATH,
 * and the Hugging Face caches (where vLLM fetches weights) sit under it, so every endpoint sharing a volume shares
 * one cache.
 */
export const RUNPOD_VOLUME_CACHE_ENV: Readonly<Record<string, string>> = {
  BASE_PATH: RUNPOD_VOLUME_MOUNT_PATH,
  HF_HOME: `${RUNPOD_VOLUME_MOUNT_PATH}/huggingface-cache`,
  HF_HUB_CACHE: `${RUNPOD_VOLUME_MOUNT_PATH}/huggingface-cache/hub`,
  HUGGINGFACE_HUB_CACHE: `${RUNPOD_VOLUME_MOUNT_PATH}/huggingface-cache/hub`,
  HF_DATASETS_CACHE: `${RUNPOD_VOLUME_MOUNT_PATH}/huggingface-cache/datasets`,
};

/**
 * The execution timeout (ms) an endpoint serving a model needs: a request may wait `queueTimeoutSeconds` for a
 * worker and then take as long as the gateway waits upstream (`upstreamTimeoutSeconds`), so a job is never cut off
 * before the gateway gives up on it; clamped to RunPod's range (5 s – 7 days).
 */
export function runpodExecutionTimeoutMs(
  queueTimeoutSeconds: number,
  upstreamTimeoutSeconds: number,
): number {
  const ms = Math.ceil((queueTimeoutSeconds + upstreamTimeoutSeconds) * 1000);
  return Math.min(MAX_EXECUTION_TIMEOUT_MS, Math.max(MIN_EXECUTION_TIMEOUT_MS, ms));
}

/**
 * The data centres an endpoint may use once it mounts network volumes in `volumeDataCenterIds`: only those (in the
 * order of `dataCenterIds` when it lists them). Without volumes the list is unchanged; a list that leaves a volume's
 * data centre out is returned unchanged too, for validation to report (it names both and the fix).
 */
export function narrowToVolumeDataCenters(
  dataCenterIds: readonly string[],
  volumeDataCenterIds: readonly string[],
): string[] {
  if (volumeDataCenterIds.length === 0) return [...dataCenterIds];
  if (dataCenterIds.length === 0) return [...new Set(volumeDataCenterIds)];
  return volumeDataCenterIds.every((dc) => dataCenterIds.includes(dc))
    ? dataCenterIds.filter((dc) => volumeDataCenterIds.includes(dc))
    : [...dataCenterIds];
}

/** The dynamic resource's inputs after `check` has applied the defaults. */
export interface RunPodEndpointInputs {
  name: string;
  /** v2 `type`; absent in states written before load-balancing endpoints, which are QUEUE. */
  endpointType: EndpointType;
  image: string;
  /** v2 `args`: arguments to the image's entrypoint, or the JSON start command `{"entrypoint":[…],"cmd":[…]}`. */
  args: string;
  /** v2 `ports`, `port/http` or `port/tcp`; a load-balancing endpoint exposes its server's port as http. */
  ports: string[];
  env: Record<string, string>;
  /** Container disk per worker, GB (v2 `disk`). */
  containerDiskInGb: number;
  /** Serverless GPU pools (v2 `gpu.pools`). */
  gpuPoolIds: string[];
  /** GPUs per worker (v2 `gpu.count`). */
  gpuCount: number;
  /** Lowest host CUDA version (v2 `gpu.minCudaVersion`); absent = no floor. */
  minCudaVersion?: string;
  workersMin: number;
  workersMax: number;
  /** Seconds (v2 `workers.idleTimeout`); not sent for a QUEUE endpoint with REQUEST_COUNT scaling, which has none. */
  idleTimeout: number;
  scalerType: ScalerType;
  scalerValue: number;
  flashboot: boolean;
  dataCenterIds: string[];
  /** Network volumes (v2 `networkVolumes`), at most one per data centre. */
  networkVolumeIds: string[];
  /** The data centre of each of networkVolumeIds, same order; `check` narrows dataCenterIds to them. */
  networkVolumeDataCenterIds: string[];
  /** Per-request execution timeout, ms (v2 `timeout`). */
  executionTimeoutMs: number;
  /** The controller steers workersMin/workersMax: an update never sends them (a create does). */
  workersSteeredAtRuntime?: boolean;
  apiBase?: string;
  apiKey: string;
  /** Informational (for the policy pack); never sent to RunPod. */
  model?: string;
  /** Informational (for the policy pack); never sent to RunPod. */
  dataClass?: string;
}

export interface RunPodEndpointOutputs extends RunPodEndpointInputs {
  endpointId: string;
  /**
   * The template a GraphQL-era provider created for this endpoint (absent for endpoints created through REST v2,
   * which carry image, env and disk themselves); kept until `delete` removes it.
   */
  templateId?: string;
  /** The name of that template. */
  templateName?: string;
}

/**
 * Fields only state written by the GraphQL-era provider has: one network volume and its data centre (now the
 * lists networkVolumeIds/networkVolumeDataCenterIds); inputs without gpuCount, executionTimeoutMs, minCudaVersion.
 */
export interface LegacyEndpointFields {
  networkVolumeId?: string;
  networkVolumeDataCenterId?: string;
}

/** Inputs as a program, an old state or the engine may give them: any field may be missing. */
type AnyEndpointInputs = Partial<RunPodEndpointOutputs> & LegacyEndpointFields;

/** Network volumes and their data centres, from the lists or a GraphQL-era state's single volume. */
function volumesOf(inputs: AnyEndpointInputs): { ids: string[]; dataCenters: string[] } {
  const single = <T>(value: T | undefined): T[] => (value === undefined || value === "" ? [] : [value]);
  return {
    ids: inputs.networkVolumeIds ?? single(inputs.networkVolumeId),
    dataCenters: inputs.networkVolumeDataCenterIds ?? single(inputs.networkVolumeDataCenterId),
  };
}

/** The CUDA floor an image gets when none is set: the default image's, none for any other. */
export function defaultCudaFloor(image: string | undefined): string | undefined {
  return (image ?? DEFAULT_IMAGE) === DEFAULT_IMAGE ? DEFAULT_IMAGE_CUDA_FLOOR : undefined;
}

/**
 * Fills in every default `check` applies, moves a single networkVolumeId/networkVolumeDataCenterId into the lists,
 * and narrows dataCenterIds to the network volumes' data centres; values not known yet are left alone.
 * `minCudaVersion: ""` means no floor (also with the default image).
 */
export function applyEndpointDefaults(news: AnyEndpointInputs): RunPodEndpointInputs {
  const { networkVolumeId: _id, networkVolumeDataCenterId: _dc, minCudaVersion, ...rest } = news;
  const volumes = volumesOf(news);
  const dcs = news.dataCenterIds ?? [];
  const narrow =
    Array.isArray(dcs) &&
    !dcs.includes(UNKNOWN) &&
    Array.isArray(volumes.dataCenters) &&
    !volumes.dataCenters.includes(UNKNOWN);
  const image = news.image ?? DEFAULT_IMAGE;
  const floor = minCudaVersion === undefined ? defaultCudaFloor(image) : minCudaVersion || undefined;
  return {
    ...rest,
    name: news.name as string,
    endpointType: news.endpointType ?? "QUEUE",
    image,
    args: news.args ?? "",
    ports: news.ports ?? [],
    env: news.env ?? {},
    containerDiskInGb: news.containerDiskInGb ?? 30,
    gpuPoolIds: news.gpuPoolIds as string[],
    gpuCount: news.gpuCount ?? 1,
    ...(floor !== undefined ? { minCudaVersion: floor } : {}),
    workersMin: news.workersMin ?? 0,
    workersMax: news.workersMax as number,
    idleTimeout: news.idleTimeout ?? 5,
    scalerType: news.scalerType ?? "QUEUE_DELAY",
    scalerValue: news.scalerValue ?? 4,
    flashboot: news.flashboot ?? true,
    dataCenterIds: narrow ? narrowToVolumeDataCenters(dcs, volumes.dataCenters) : dcs,
    networkVolumeIds: volumes.ids,
    networkVolumeDataCenterIds: volumes.dataCenters,
    executionTimeoutMs: news.executionTimeoutMs ?? DEFAULT_EXECUTION_TIMEOUT_MS,
    apiKey: news.apiKey as string,
  };
}

const show = (value: unknown): string => (value === undefined ? "nothing" : JSON.stringify(value));
const isInt = (value: unknown): value is number => typeof value === "number" && Number.isInteger(value);

/**
 * Field-named validation of (defaulted) inputs; each reason says what to write instead. Values equal to the
 * engine's unknown marker are skipped, so a preview with outputs not yet known passes.
 */
export function validateEndpointInputs(
  inputs: Readonly<Record<string, unknown>>,
): pulumi.dynamic.CheckFailure[] {
  const failures: pulumi.dynamic.CheckFailure[] = [];
  const fail = (property: string, reason: string) => failures.push({ property, reason });
  const known = (key: string) => inputs[key] !== UNKNOWN;
  const { name, image, env, gpuPoolIds, workersMin, workersMax, idleTimeout, scalerType, scalerValue } =
    inputs;

  if (known("name") && (typeof name !== "string" || name.trim() === "")) {
    fail("name", `name must be a non-empty string, e.g. "aiorch-prod-llama"; got ${show(name)}`);
  }
  if (known("image") && (typeof image !== "string" || image.trim() === "")) {
    fail("image", `image must be a container image, e.g. "${DEFAULT_IMAGE}"; got ${show(image)}`);
  }
  const endpointType = inputs.endpointType;
  if (known("endpointType") && !ENDPOINT_TYPES.includes(endpointType as string)) {
    fail("endpointType", `endpointType must be ${ENDPOINT_TYPES.join(" or ")}; got ${show(endpointType)}`);
  }
  if (endpointType === "LOAD_BALANCER" && known("scalerType") && scalerType !== "REQUEST_COUNT") {
    // v2 `RequestCountScaling`: "Required for load-balancing endpoints"; QUEUE_DELAY is queue-based only
    fail(
      "scalerType",
      `a LOAD_BALANCER endpoint scales on REQUEST_COUNT (RunPod has no queue delay to measure there); set scalerType to "REQUEST_COUNT", got ${show(scalerType)}`,
    );
  }
  if (known("args") && inputs.args !== undefined && typeof inputs.args !== "string") {
    fail("args", `args must be one string (RunPod's container start command); got ${show(inputs.args)}`);
  }
  const ports = inputs.ports;
  if (known("ports") && ports !== undefined) {
    if (!Array.isArray(ports))
      fail("ports", `ports must be a list such as ["8000/http"]; got ${show(ports)}`);
    else
      for (const port of ports)
        if (port !== UNKNOWN && !(typeof port === "string" && PORT_SPEC.test(port)))
          fail("ports", `${show(port)} is not a port as RunPod takes it: "8000/http" or "22/tcp"`);
  }
  if (known("env")) {
    if (typeof env !== "object" || env === null || Array.isArray(env)) {
      fail("env", `env must map variable names to strings, e.g. { MODEL_NAME: "…" }; got ${show(env)}`);
    } else {
      for (const [key, value] of Object.entries(env)) {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
          fail(
            "env",
            `env variable name ${show(key)} must be letters, digits and _ (not starting with a digit)`,
          );
        }
        if (value !== UNKNOWN && typeof value !== "string") {
          fail("env", `env.${key} must be a string; got ${typeof value} (quote numbers: "4096")`);
        }
      }
    }
  }
  const minOk = !known("workersMin") || (isInt(workersMin) && workersMin >= 0);
  const maxOk = !known("workersMax") || (isInt(workersMax) && workersMax >= 1);
  if (!minOk) fail("workersMin", `workersMin must be a whole number ≥ 0; got ${show(workersMin)}`);
  if (!maxOk) {
    fail(
      "workersMax",
      `workersMax must be a whole number ≥ 1 (scale to zero with workersMin 0, not workersMax 0); got ${show(workersMax)}`,
    );
  }
  if (isInt(workersMin) && isInt(workersMax) && minOk && maxOk && workersMin > workersMax) {
    fail(
      "workersMin",
      `workersMin (${workersMin}) is greater than workersMax (${workersMax}); lower workersMin or raise workersMax`,
    );
  }
  if (known("gpuPoolIds")) {
    if (!Array.isArray(gpuPoolIds) || gpuPoolIds.length === 0) {
      fail("gpuPoolIds", `gpuPoolIds must list at least one RunPod GPU pool: ${POOLS.join(", ")}`);
    } else {
      for (const pool of gpuPoolIds) {
        if (pool !== UNKNOWN && !POOLS.includes(pool as string)) {
          fail("gpuPoolIds", `${show(pool)} is not a RunPod GPU pool; use one of ${POOLS.join(", ")}`);
        }
      }
    }
  }
  const gpuCount = inputs.gpuCount;
  if (known("gpuCount") && !(isInt(gpuCount) && gpuCount >= 1)) {
    fail(
      "gpuCount",
      `gpuCount must be a whole number of GPUs per worker, 1 or more (RunPod's gpu.count); got ${show(gpuCount)}`,
    );
  }
  const floor = inputs.minCudaVersion;
  if (
    known("minCudaVersion") &&
    floor !== undefined &&
    floor !== "" &&
    !(typeof floor === "string" && CUDA_VERSION.test(floor))
  ) {
    fail(
      "minCudaVersion",
      `minCudaVersion must be a CUDA version as major.minor, e.g. "${DEFAULT_IMAGE_CUDA_FLOOR}" (or "" for no floor); got ${show(floor)}`,
    );
  }
  const timeout = inputs.executionTimeoutMs;
  if (
    known("executionTimeoutMs") &&
    !(isInt(timeout) && timeout >= MIN_EXECUTION_TIMEOUT_MS && timeout <= MAX_EXECUTION_TIMEOUT_MS)
  ) {
    const seconds =
      isInt(timeout) && timeout >= MIN_EXECUTION_TIMEOUT_MS / 1000 && timeout < MIN_EXECUTION_TIMEOUT_MS
        ? `; in milliseconds, ${timeout} s is ${timeout * 1000}`
        : "";
    fail(
      "executionTimeoutMs",
      `executionTimeoutMs must be whole milliseconds from ${MIN_EXECUTION_TIMEOUT_MS} (5 s) to ` +
        `${MAX_EXECUTION_TIMEOUT_MS} (7 days), RunPod's range; got ${show(timeout)}${seconds}`,
    );
  }
  if (known("idleTimeout") && !(isInt(idleTimeout) && idleTimeout >= 1 && idleTimeout <= 3600)) {
    fail("idleTimeout", `idleTimeout must be whole seconds from 1 to 3600; got ${show(idleTimeout)}`);
  }
  if (known("scalerType") && !SCALER_TYPES.includes(scalerType as string)) {
    fail("scalerType", `scalerType must be ${SCALER_TYPES.join(" or ")}; got ${show(scalerType)}`);
  }
  if (known("scalerValue") && !(isInt(scalerValue) && scalerValue >= 1)) {
    fail(
      "scalerValue",
      `scalerValue must be a whole number ≥ 1 (seconds of queue delay, or requests per worker); got ${show(scalerValue)}`,
    );
  }
  if (known("flashboot") && typeof inputs.flashboot !== "boolean") {
    fail("flashboot", `flashboot must be true or false; got ${show(inputs.flashboot)}`);
  }
  const dataCenterIds = inputs.dataCenterIds;
  if (known("dataCenterIds")) {
    if (!Array.isArray(dataCenterIds)) {
      fail(
        "dataCenterIds",
        `dataCenterIds must be a list such as ["EU-RO-1"] (empty = any); got ${show(dataCenterIds)}`,
      );
    } else {
      for (const id of dataCenterIds) {
        if (id !== UNKNOWN && !(typeof id === "string" && DATA_CENTER_ID.test(id))) {
          fail("dataCenterIds", `${show(id)} is not a RunPod data centre id such as "EU-RO-1" or "US-TX-3"`);
        }
      }
    }
  }
  validateVolumes(inputs, fail);
  const disk = inputs.containerDiskInGb;
  if (known("containerDiskInGb") && !(isInt(disk) && disk >= 1)) {
    fail("containerDiskInGb", `containerDiskInGb must be a whole number of GB ≥ 1; got ${show(disk)}`);
  }
  const base = inputs.apiBase;
  if (
    known("apiBase") &&
    base !== undefined &&
    !(typeof base === "string" && /^https?:\/\/[^\s/]+/.test(base))
  ) {
    fail(
      "apiBase",
      `apiBase must be an http(s) URL such as "${api.DEFAULT_RUNPOD_API_BASE}"; got ${show(base)}`,
    );
  }
  if (known("apiKey") && (typeof inputs.apiKey !== "string" || inputs.apiKey.trim() === "")) {
    // Never echo the value: it is a credential.
    fail(
      "apiKey",
      "apiKey is required: set it with `pulumi config set --secret ai-orchestrator:runpodApiKey …`",
    );
  }
  for (const key of ["model", "dataClass"]) {
    if (known(key) && inputs[key] !== undefined && typeof inputs[key] !== "string") {
      fail(key, `${key} must be a string; got ${show(inputs[key])}`);
    }
  }
  return failures;
}

/** networkVolumeIds and networkVolumeDataCenterIds: one volume per data centre, each inside dataCenterIds. */
function validateVolumes(
  inputs: Readonly<Record<string, unknown>>,
  fail: (property: string, reason: string) => void,
): void {
  const ids = inputs.networkVolumeIds ?? [];
  const dcs = inputs.networkVolumeDataCenterIds ?? [];
  if (ids === UNKNOWN || dcs === UNKNOWN) return;
  if (!Array.isArray(ids) || ids.some((id) => id !== UNKNOWN && (typeof id !== "string" || id === ""))) {
    fail(
      "networkVolumeIds",
      `networkVolumeIds must list RunPod network volume ids (e.g. RunPodNetworkVolume.volumeId), or be left out; got ${show(ids)}`,
    );
    return;
  }
  const repeated = ids.filter((id, i) => id !== UNKNOWN && ids.indexOf(id) !== i);
  if (repeated.length > 0) {
    fail("networkVolumeIds", `networkVolumeIds lists ${show(repeated[0])} twice; list each volume once`);
  }
  if (!Array.isArray(dcs)) {
    fail(
      "networkVolumeDataCenterIds",
      `networkVolumeDataCenterIds must list the data centre of each network volume, e.g. ["EU-RO-1"]; got ${show(dcs)}`,
    );
    return;
  }
  if (dcs.length !== ids.length) {
    fail(
      "networkVolumeDataCenterIds",
      `networkVolumeDataCenterIds must give the data centre of each of the ${ids.length} networkVolumeIds, in the ` +
        `same order (RunPodNetworkVolume.dataCenterId); got ${dcs.length}`,
    );
    return;
  }
  const seen = new Set<string>();
  for (const dc of dcs) {
    if (dc === UNKNOWN) continue;
    if (!(typeof dc === "string" && DATA_CENTER_ID.test(dc))) {
      fail(
        "networkVolumeDataCenterIds",
        `${show(dc)} is not a RunPod data centre id such as "EU-RO-1"; give the data centre of each network volume`,
      );
      continue;
    }
    if (seen.has(dc)) {
      fail(
        "networkVolumeDataCenterIds",
        `two network volumes are in ${dc}; RunPod mounts one network volume per data centre, so keep one of them`,
      );
    }
    seen.add(dc);
  }
  const allowed = inputs.dataCenterIds;
  if (!Array.isArray(allowed) || allowed.length === 0 || allowed.includes(UNKNOWN)) return;
  const outside = [...seen].filter((dc) => !allowed.includes(dc));
  if (outside.length > 0) {
    const which = outside.join(", ");
    fail(
      "networkVolumeDataCenterIds",
      `the network volume${outside.length > 1 ? "s are" : " is"} in ${which}, which dataCenterIds (${allowed.join(", ")}) ` +
        `leaves out; a network volume pins the endpoint's workers to its data centre, so create the volume in one ` +
        `of those data centres or add ${outside.map((dc) => `"${dc}"`).join(", ")} to dataCenterIds`,
    );
  }
}

/**
 * The REST v2 body that creates an endpoint with these inputs (`CreateEndpointRequest`). Given an older state it
 * describes what that state asked for; a field the state lacks (a GraphQL-era state has no gpuCount,
 * executionTimeoutMs or minCudaVersion) stays undefined, so it differs from any value asked now.
 */
export function endpointRequestFor(inputs: AnyEndpointInputs): CreateEndpointRequest {
  const queueDelay = inputs.scalerType !== "REQUEST_COUNT";
  const type = inputs.endpointType ?? "QUEUE";
  const volumes = volumesOf(inputs);
  return {
    name: inputs.name as string,
    type,
    image: inputs.image,
    // none given: the image's own start command and no exposed port (worker-vllm's queue handler needs neither)
    ...(inputs.args ? { args: inputs.args } : {}),
    ...(inputs.ports && inputs.ports.length > 0 ? { ports: inputs.ports } : {}),
    env: inputs.env ?? {},
    disk: inputs.containerDiskInGb,
    gpu: {
      pools: inputs.gpuPoolIds as string[],
      count: inputs.gpuCount,
      ...(inputs.minCudaVersion ? { minCudaVersion: inputs.minCudaVersion } : {}),
    },
    workers: {
      min: inputs.workersMin,
      max: inputs.workersMax,
      // A QUEUE endpoint scaling on REQUEST_COUNT has no idle timeout: RunPod rejects one
      // (`EndpointWorkers.idleTimeout`); a LOAD_BALANCER endpoint (always REQUEST_COUNT) has one.
      ...(queueDelay || type === "LOAD_BALANCER" ? { idleTimeout: inputs.idleTimeout } : {}),
    },
    scaling: queueDelay
      ? { type: "QUEUE_DELAY", queueDelay: inputs.scalerValue as number }
      : { type: "REQUEST_COUNT", requestCount: inputs.scalerValue as number },
    flashboot: inputs.flashboot === false ? "OFF" : "FLASHBOOT",
    dataCenterIds: inputs.dataCenterIds ?? [],
    networkVolumes: volumes.ids,
    timeout: inputs.executionTimeoutMs,
  };
}

/** Order-insensitive for maps (env) and, with `asSet`, for lists. */
function same(a: unknown, b: unknown, asSet = false): boolean {
  const norm = (v: unknown): unknown => {
    if (Array.isArray(v)) return asSet ? [...v].map(String).sort() : v;
    if (typeof v === "object" && v !== null) {
      return Object.fromEntries(Object.entries(v).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
    }
    return v ?? null;
  };
  return JSON.stringify(norm(a)) === JSON.stringify(norm(b));
}

/**
 * The `PATCH /v2/serverless/{id}` body that takes an endpoint from `olds` (a state, maybe GraphQL-era) to `news`:
 * only what changed, nested fields one by one (`workers.max` alone, `gpu.count` alone). A new CUDA floor is sent
 * with `allowedCudaVersions: []`, since RunPod refuses a non-empty allowed set beside a floor and "setting one does
 * not clear the other" (`UpdateEndpointGpuConfig`; a GraphQL-era endpoint may carry a set from its template). A
 * floor removed is `minCudaVersion: ""`. With workersSteeredAtRuntime the bounds are the controller's: never sent.
 */
export function endpointPatch(olds: AnyEndpointInputs, news: RunPodEndpointInputs): UpdateEndpointRequest {
  const was = endpointRequestFor(olds);
  const want = endpointRequestFor(news);
  const patch: UpdateEndpointRequest = {};
  if (was.name !== want.name) patch.name = want.name;
  if (was.image !== want.image) patch.image = want.image;
  if ((was.args ?? "") !== (want.args ?? "")) patch.args = want.args ?? "";
  if (!same(was.ports ?? [], want.ports ?? [], true)) patch.ports = want.ports ?? [];
  if (!same(was.env, want.env)) patch.env = want.env;
  if (was.disk !== want.disk) patch.disk = want.disk;

  const gpu: NonNullable<UpdateEndpointRequest["gpu"]> = {};
  if (!same(was.gpu?.pools, want.gpu?.pools)) gpu.pools = want.gpu?.pools;
  if (was.gpu?.count !== want.gpu?.count) gpu.count = want.gpu?.count;
  const floor = want.gpu?.minCudaVersion ?? "";
  if ((was.gpu?.minCudaVersion ?? "") !== floor) {
    gpu.minCudaVersion = floor;
    if (floor !== "") gpu.allowedCudaVersions = [];
  }
  if (Object.keys(gpu).length > 0) patch.gpu = gpu;

  const workers: NonNullable<UpdateEndpointRequest["workers"]> = {};
  if (!news.workersSteeredAtRuntime) {
    if (was.workers?.min !== want.workers?.min) workers.min = want.workers?.min;
    if (was.workers?.max !== want.workers?.max) workers.max = want.workers?.max;
  }
  const idle = want.workers?.idleTimeout;
  if (idle !== undefined && was.workers?.idleTimeout !== idle) workers.idleTimeout = idle;
  if (Object.keys(workers).length > 0) patch.workers = workers;

  if (!same(was.scaling, want.scaling)) patch.scaling = want.scaling;
  if (was.flashboot !== want.flashboot) patch.flashboot = want.flashboot;
  if (!same(was.dataCenterIds, want.dataCenterIds)) patch.dataCenterIds = want.dataCenterIds;
  if (!same(was.networkVolumes, want.networkVolumes, true)) patch.networkVolumes = want.networkVolumes;
  if (was.timeout !== want.timeout) patch.timeout = want.timeout;
  return patch;
}

/** Kept in state only (for the policy pack, or to narrow data centres); a change is an update without a RunPod call. */
const STATE_ONLY_KEYS = [
  "model",
  "dataClass",
  "networkVolumeDataCenterIds",
  "workersSteeredAtRuntime",
] as const;

/** A state the GraphQL-era provider wrote: it has the single-volume fields or lacks the v2-era inputs. */
const isLegacyState = (olds: AnyEndpointInputs): boolean =>
  "networkVolumeId" in olds ||
  "networkVolumeDataCenterId" in olds ||
  olds.gpuCount === undefined ||
  olds.executionTimeoutMs === undefined;

function stateOnlyChanges(olds: AnyEndpointInputs, news: RunPodEndpointInputs): string[] {
  const oldVolumeDcs = volumesOf(olds).dataCenters;
  return STATE_ONLY_KEYS.filter((k) =>
    k === "networkVolumeDataCenterIds"
      ? !same(oldVolumeDcs, news.networkVolumeDataCenterIds)
      : k === "workersSteeredAtRuntime"
        ? Boolean(olds[k]) !== Boolean(news[k])
        : !same(olds[k], news[k]),
  );
}

/** The outputs after a create or an update: the inputs, the id, and a GraphQL-era template until it is deleted. */
function outputsOf(
  inputs: RunPodEndpointInputs,
  id: string,
  olds?: AnyEndpointInputs,
): RunPodEndpointOutputs {
  return {
    ...inputs,
    endpointId: id,
    ...(olds?.templateId ? { templateId: olds.templateId } : {}),
    ...(olds?.templateName ? { templateName: olds.templateName } : {}),
  };
}

/**
 * The dynamic provider over REST v2 `/v2/serverless`. `tuning` shortens retries and timeouts (tests); the default
 * suits the real API.
 *
 * - create: one `POST /v2/serverless` carrying image, env, disk, GPUs, workers, scaling, FlashBoot, data centres,
 *   network volumes and execution timeout (no template); an endpoint of the same name is adopted and patched.
 * - diff: nothing replaces — `PATCH` changes every field in place (image and env roll out as a new release);
 *   `type` and the compute family are the only immutable fields: a new `endpointType` replaces the endpoint (the old
 *   one deleted first: names are how the controller finds endpoints), the compute family is not an input.
 *   `apiKey` and `apiBase` are how to reach RunPod, not part of the endpoint: changing only them is an update that
 *   calls nothing and rewrites the state, since refresh and destroy reach RunPod with the key the state holds.
 * - update: one `PATCH` with only the changed fields (none for state-only fields); a GraphQL-era state is updated
 *   in place the same way, and its template is remembered for `delete`.
 * - read: `GET /v2/serverless/{id}`; a vanished endpoint (404, not listed) reads as gone.
 * - delete: `DELETE /v2/serverless/{id}` (RunPod terminates the workers, cancels jobs and deletes a bound
 *   template); gone = done. Then a GraphQL-era template, if the state names one: `DELETE /v2/templates/{id}`.
 */
export function createRunPodEndpointProvider(
  tuning: Partial<api.RetryTuning> = {},
): pulumi.dynamic.ResourceProvider<RunPodEndpointInputs, RunPodEndpointOutputs> {
  const clientFor = (p: { apiKey: string; apiBase?: string }) =>
    api.runpodClient({ apiKey: p.apiKey, apiBase: p.apiBase, tuning });

  return {
    async check(_olds, news) {
      const inputs = applyEndpointDefaults(news);
      return { inputs, failures: validateEndpointInputs(inputs as unknown as Record<string, unknown>) };
    },

    async diff(_id, olds, news) {
      // The type cannot change in place (v2 `UpdateEndpointRequest` has no `type`): a new endpoint, made after the
      // old one is gone, since the controller finds endpoints by name and refuses two of one name.
      if ((olds.endpointType ?? "QUEUE") !== news.endpointType)
        return { changes: true, replaces: ["endpointType"], deleteBeforeReplace: true };
      const patch = endpointPatch(olds, news);
      // A new key or base alone changes no endpoint field, but the state must take it: refresh and destroy read
      // the key from the state, and the old one may be revoked (an update with an empty patch calls nothing).
      const reach = olds.apiKey !== news.apiKey || olds.apiBase !== news.apiBase;
      const changes =
        Object.keys(patch).length > 0 ||
        stateOnlyChanges(olds, news).length > 0 ||
        isLegacyState(olds) ||
        reach;
      return { changes, replaces: [], deleteBeforeReplace: false };
    },

    async create(inputs) {
      const endpoint = await api.createEndpoint(clientFor(inputs), endpointRequestFor(inputs));
      return { id: endpoint.id, outs: outputsOf(inputs, endpoint.id) };
    },

    async read(id, props) {
      if (!props) return { id };
      const endpoint = await api.getEndpoint(clientFor(props), id);
      if (!endpoint) return { id: "", props: {} as RunPodEndpointOutputs };
      const scaling = endpoint.scaling;
      return {
        id,
        props: {
          ...props,
          name: endpoint.name,
          endpointType: endpoint.type ?? props.endpointType ?? "QUEUE",
          image: endpoint.image ?? props.image,
          args: endpoint.args ?? props.args ?? "",
          ports: endpoint.ports ?? props.ports ?? [],
          env: endpoint.env ?? props.env,
          containerDiskInGb: endpoint.disk ?? props.containerDiskInGb,
          gpuPoolIds: endpoint.gpu?.pools ?? props.gpuPoolIds,
          gpuCount: endpoint.gpu?.count ?? props.gpuCount ?? 1,
          minCudaVersion: endpoint.gpu ? endpoint.gpu.minCudaVersion || undefined : props.minCudaVersion,
          workersMin: endpoint.workers.min,
          workersMax: endpoint.workers.max,
          // REQUEST_COUNT endpoints have none: keep what the state says.
          idleTimeout: endpoint.workers.idleTimeout ?? props.idleTimeout,
          scalerType: scaling.type,
          scalerValue: scaling.type === "QUEUE_DELAY" ? scaling.queueDelay : scaling.requestCount,
          flashboot: endpoint.flashboot !== "OFF",
          dataCenterIds: endpoint.dataCenterIds,
          networkVolumeIds: endpoint.networkVolumes,
          executionTimeoutMs: endpoint.timeout,
          endpointId: endpoint.id,
        },
      };
    },

    async update(id, olds, news) {
      const patch = endpointPatch(olds, news);
      if (Object.keys(patch).length > 0) await api.updateEndpoint(clientFor(news), id, patch);
      return { outs: outputsOf(news, id, olds) };
    },

    async delete(id, props) {
      const client = clientFor(props);
      await api.deleteEndpoint(client, id);
      // A GraphQL-era template: RunPod deletes a bound one with the endpoint (then this is a 404, which is fine).
      if (props.templateId) await api.deleteTemplate(client, props.templateId);
    },
  };
}

const provider = createRunPodEndpointProvider();

/** Inputs of the dynamic resource; every optional field has the default `check` gives it. */
export interface RunPodEndpointResourceArgs {
  name: pulumi.Input<string>;
  endpointType?: pulumi.Input<EndpointType>;
  image?: pulumi.Input<string>;
  args?: pulumi.Input<string>;
  ports?: pulumi.Input<pulumi.Input<string>[]>;
  env?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  containerDiskInGb?: pulumi.Input<number>;
  gpuPoolIds: pulumi.Input<pulumi.Input<string>[]>;
  gpuCount?: pulumi.Input<number>;
  minCudaVersion?: pulumi.Input<string>;
  workersMin?: pulumi.Input<number>;
  workersMax: pulumi.Input<number>;
  idleTimeout?: pulumi.Input<number>;
  scalerType?: pulumi.Input<ScalerType>;
  scalerValue?: pulumi.Input<number>;
  flashboot?: pulumi.Input<boolean>;
  dataCenterIds?: pulumi.Input<pulumi.Input<string>[]>;
  networkVolumeIds?: pulumi.Input<pulumi.Input<string>[]>;
  networkVolumeDataCenterIds?: pulumi.Input<pulumi.Input<string>[]>;
  executionTimeoutMs?: pulumi.Input<number>;
  workersSteeredAtRuntime?: pulumi.Input<boolean>;
  apiBase?: pulumi.Input<string>;
  apiKey: pulumi.Input<string>;
  model?: pulumi.Input<string>;
  dataClass?: pulumi.Input<string>;
}

/** A RunPod serverless endpoint (`pulumi-nodejs:dynamic/runpod:Endpoint`). */
export class RunPodEndpointResource extends pulumi.dynamic.Resource {
  /** RunPod endpoint id. */
  declare readonly endpointId: pulumi.Output<string>;
  /** The template of a GraphQL-era endpoint, until the endpoint is deleted; undefined for REST v2 endpoints. */
  declare readonly templateId: pulumi.Output<string | undefined>;
  /** The API key the provider uses (secret). */
  declare readonly apiKey: pulumi.Output<string>;

  constructor(name: string, args: RunPodEndpointResourceArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      provider,
      name,
      {
        endpointId: undefined,
        templateId: undefined,
        templateName: undefined,
        ...args,
        apiKey: pulumi.secret(args.apiKey),
      },
      {
        ...opts,
        // env carries HF_TOKEN; read() brings it back from RunPod.
        additionalSecretOutputs: [...new Set([...(opts?.additionalSecretOutputs ?? []), "apiKey", "env"])],
      },
      "runpod",
      "Endpoint",
    );
  }
}

export interface RunPodServerlessEndpointArgs {
  /** RunPod endpoint name; the controller finds the endpoint by it. @default "{project}-{stack}-{resource name}" */
  readonly name?: string;
  /** RunPod API key; pass a secret (`config.requireSecret("runpodApiKey")`). */
  readonly apiKey: pulumi.Input<string>;
  /**
   * How RunPod routes requests: "QUEUE" through its job queue (worker-vllm's handler and its `/openai/v1` route), or
   * "LOAD_BALANCER" straight to the worker's own HTTP server (any OpenAI route the engine serves, e.g. vLLM-Omni's
   * images API; needs scalerType "REQUEST_COUNT", `ports`, and PORT/PORT_HEALTH/HEALTH_CHECK_PATH in `env`). A
   * change replaces the endpoint.
   * @default "QUEUE"
   */
  readonly endpointType?: EndpointType;
  /**
   * The container start command (v2 `args`): arguments to the image's entrypoint, or the JSON form
   * `{"entrypoint":[…],"cmd":[…]}` (runpod/docs `pods/templates/manage-templates.mdx`).
   * @default "" (the image's own)
   */
  readonly args?: string;
  /** Ports the worker exposes, `port/http` or `port/tcp`; a LOAD_BALANCER endpoint's server port as http. @default [] */
  readonly ports?: readonly string[];
  /**
   * Worker image; worker-vllm serves the OpenAI routes. A change rolls out in place as a new release.
   * @default "runpod/worker-v1-vllm:v2.25.2"
   */
  readonly image?: string;
  /**
   * Worker environment, e.g. MODEL_NAME, MAX_MODEL_LEN, OPENAI_SERVED_MODEL_NAME_OVERRIDE, VLLM_EXTRA_ARGS (build it
   * with `shellJoin`); wrap tokens in `pulumi.secret`. A change rolls out in place as a new release.
   * @default {}
   */
  readonly env?: Readonly<Record<string, pulumi.Input<string>>>;
  /** RunPod GPU pools in order of preference, e.g. ["ADA_24", "AMPERE_24"]. */
  readonly gpuPoolIds: readonly string[];
  /**
   * GPUs per worker (RunPod `gpu.count`); with worker-vllm also set TENSOR_PARALLEL_SIZE to it in `env`.
   * @default 1
   */
  readonly gpuCount?: number;
  /**
   * Lowest host CUDA version the workers may run on, `major.minor` (RunPod `gpu.minCudaVersion`); "" for none.
   * @default "13.0" with the default image (worker-vllm v2.25.2 needs CUDA 13), none with another image
   */
  readonly minCudaVersion?: string;
  /**
   * Longest a job may run, in ms (RunPod `timeout`), from 5000 (5 s) to 604800000 (7 days); a job that takes
   * longer fails and its worker stops.
   * @default 600000 (RunPod's documented default, 10 min)
   */
  readonly executionTimeoutMs?: number;
  /** Workers RunPod keeps running; 0 scales to zero. @default 0 */
  readonly workersMin?: number;
  /** Upper bound of workers, at least 1. */
  readonly workersMax: number;
  /** Seconds a worker stays (billed) after its last job, 1–3600; not used with REQUEST_COUNT scaling. @default 5 */
  readonly idleTimeout?: number;
  /** QUEUE_DELAY adds workers when jobs wait longer than scalerValue s; REQUEST_COUNT targets requests/worker. @default "QUEUE_DELAY" */
  readonly scalerType?: ScalerType;
  /** Seconds of queue delay or requests per worker, by scalerType. @default 4 */
  readonly scalerValue?: number;
  /** RunPod FlashBoot (faster cold starts). @default true */
  readonly flashboot?: boolean;
  /** RunPod data centres the workers may run in, e.g. ["EU-RO-1"]; empty = any. @default [] */
  readonly dataCenterIds?: readonly string[];
  /**
   * Network volumes (e.g. `RunPodNetworkVolume.volumeId`), at most one per data centre, mounted at /runpod-volume
   * as the weight cache: workers download weights to the volume of their data centre once and later workers load
   * them from it (BASE_PATH and the Hugging Face caches point under it, unless `env` sets them). RunPod gives each
   * worker the volume of the data centre it runs in. Needs networkVolumeDataCenterIds.
   * @default []
   */
  readonly networkVolumeIds?: readonly pulumi.Input<string>[];
  /**
   * The data centre of each of networkVolumeIds, in the same order (e.g. `RunPodNetworkVolume.dataCenterId`): the
   * volumes pin the endpoint to their data centres, so its data centres become exactly these, which dataCenterIds
   * must include when not empty. Required with networkVolumeIds.
   * @default []
   */
  readonly networkVolumeDataCenterIds?: readonly pulumi.Input<string>[];
  /** @deprecated one volume: use networkVolumeIds (this one is appended to them). */
  readonly networkVolumeId?: pulumi.Input<string>;
  /** @deprecated the data centre of networkVolumeId: use networkVolumeDataCenterIds. */
  readonly networkVolumeDataCenterId?: pulumi.Input<string>;
  /** Container disk per worker in GB. @default 30 */
  readonly containerDiskInGb?: number;
  /** RunPod API base (a contract fake in tests). @default "https://api.runpod.io" */
  readonly apiBase?: string;
  /** Model the endpoint serves; informational, for the policy pack. @default none */
  readonly model?: string;
  /** Data class of the model's traffic (public, internal, confidential); informational, for the policy pack. @default none */
  readonly dataClass?: string;
  /**
   * The controller steers workersMin/workersMax at run time; an update never sends them back (a create does).
   * @default false
   */
  readonly workersSteeredAtRuntime?: boolean;
}

/**
 * A RunPod serverless endpoint managed through RunPod's REST v2 API, and the OpenAI-compatible base URL the
 * gateway routes to. RunPod queues and scales the workers itself between workersMin and workersMax; the controller
 * steers those bounds at run time. Every change is made in place.
 */
export class RunPodServerlessEndpoint extends pulumi.ComponentResource {
  /** RunPod endpoint id. */
  public readonly endpointId: pulumi.Output<string>;
  /**
   * The OpenAI base URL: `https://api.runpod.ai/v2/{endpointId}/openai/v1` for a QUEUE endpoint (note `.ai`: the job
   * API host), `https://{endpointId}.api.runpod.ai/v1` for a LOAD_BALANCER one (v2 `LoadBalancingRequestUrls.base`).
   */
  public readonly openaiBaseUrl: pulumi.Output<string>;
  /** The dynamic resource that owns the endpoint. */
  public readonly endpoint: RunPodEndpointResource;

  constructor(name: string, args: RunPodServerlessEndpointArgs, opts?: pulumi.ComponentResourceOptions) {
    super("aiorch:runpod:ServerlessEndpoint", name, {}, opts);
    const endpointName = args.name ?? `${pulumi.getProject()}-${pulumi.getStack()}-${name}`;
    const plain = (value: unknown) =>
      value === undefined || pulumi.Output.isInstance(value) ? UNKNOWN : value;
    const failures: pulumi.dynamic.CheckFailure[] = [];
    if (args.networkVolumeId !== undefined && args.networkVolumeDataCenterId === undefined) {
      failures.push({
        property: "networkVolumeDataCenterId",
        reason:
          "networkVolumeDataCenterId is required with networkVolumeId: a network volume pins the endpoint to its " +
          "data centre, so pass the volume's (RunPodNetworkVolume.dataCenterId)",
      });
    }
    const volumeIds = [
      ...(args.networkVolumeIds ?? []),
      ...(args.networkVolumeId !== undefined ? [args.networkVolumeId] : []),
    ];
    const volumeDcs = [
      ...(args.networkVolumeDataCenterIds ?? []),
      ...(args.networkVolumeDataCenterId !== undefined ? [args.networkVolumeDataCenterId] : []),
    ];
    if (volumeIds.length > 0 && volumeDcs.length === 0 && failures.length === 0) {
      failures.push({
        property: "networkVolumeDataCenterIds",
        reason:
          "networkVolumeDataCenterIds is required with networkVolumeIds: network volumes pin the endpoint to their " +
          "data centres, so pass each volume's (RunPodNetworkVolume.dataCenterId), in the same order",
      });
    }
    failures.push(
      ...validateEndpointInputs({
        ...applyEndpointDefaults({
          name: endpointName,
          endpointType: args.endpointType,
          image: args.image,
          args: args.args,
          ports: args.ports ? [...args.ports] : undefined,
          env: Object.fromEntries(Object.entries(args.env ?? {}).map(([k, v]) => [k, plain(v) as string])),
          gpuPoolIds: [...args.gpuPoolIds],
          gpuCount: args.gpuCount,
          minCudaVersion: args.minCudaVersion,
          workersMin: args.workersMin,
          workersMax: args.workersMax,
          idleTimeout: args.idleTimeout,
          scalerType: args.scalerType,
          scalerValue: args.scalerValue,
          flashboot: args.flashboot,
          dataCenterIds: args.dataCenterIds ? [...args.dataCenterIds] : undefined,
          networkVolumeIds: volumeIds.map((v) => plain(v) as string),
          networkVolumeDataCenterIds: volumeDcs.map((v) => plain(v) as string),
          executionTimeoutMs: args.executionTimeoutMs,
          containerDiskInGb: args.containerDiskInGb,
          apiBase: args.apiBase,
          model: args.model,
          dataClass: args.dataClass,
        }),
        // Checked again by the provider once resolved; here only whether one was given at all.
        apiKey: args.apiKey === undefined ? undefined : UNKNOWN,
      }),
    );
    if (failures.length > 0) {
      throw new Error(`RunPodServerlessEndpoint ${name}: ${failures.map((f) => f.reason).join("; ")}`);
    }

    // With network volumes: the weight-cache env (the caller's env wins), and the volumes' data centres only.
    const env =
      volumeIds.length === 0 ? args.env && { ...args.env } : { ...RUNPOD_VOLUME_CACHE_ENV, ...args.env };
    const configuredDcs = [...(args.dataCenterIds ?? [])];
    const dataCenterIds: pulumi.Input<string[]> | undefined =
      volumeDcs.length === 0
        ? args.dataCenterIds && configuredDcs
        : pulumi.all(volumeDcs).apply((dcs) => narrowToVolumeDataCenters(configuredDcs, dcs));

    this.endpoint = new RunPodEndpointResource(
      name,
      {
        name: endpointName,
        endpointType: args.endpointType,
        image: args.image,
        args: args.args,
        ports: args.ports ? [...args.ports] : undefined,
        env,
        containerDiskInGb: args.containerDiskInGb,
        gpuPoolIds: [...args.gpuPoolIds],
        gpuCount: args.gpuCount,
        minCudaVersion: args.minCudaVersion,
        workersMin: args.workersMin,
        workersMax: args.workersMax,
        idleTimeout: args.idleTimeout,
        scalerType: args.scalerType,
        scalerValue: args.scalerValue,
        flashboot: args.flashboot,
        dataCenterIds,
        ...(volumeIds.length > 0
          ? { networkVolumeIds: volumeIds, networkVolumeDataCenterIds: volumeDcs }
          : {}),
        executionTimeoutMs: args.executionTimeoutMs,
        ...(args.workersSteeredAtRuntime ? { workersSteeredAtRuntime: true } : {}),
        apiBase: args.apiBase,
        apiKey: args.apiKey,
        model: args.model,
        dataClass: args.dataClass,
      },
      { parent: this, ignoreChanges: args.workersSteeredAtRuntime ? ["workersMin", "workersMax"] : [] },
    );
    this.endpointId = this.endpoint.endpointId;
    this.openaiBaseUrl =
      args.endpointType === "LOAD_BALANCER"
        ? pulumi.interpolate`https://${this.endpointId}.api.runpod.ai/v1`
        : pulumi.interpolate`https://api.runpod.ai/v2/${this.endpointId}/openai/v1`;
    this.registerOutputs({ endpointId: this.endpointId, openaiBaseUrl: this.openaiBaseUrl });
  }
}
