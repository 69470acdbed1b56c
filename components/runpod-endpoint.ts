import * as pulumi from "@pulumi/pulumi";
import { PROVIDERS } from "../core/catalog";
import * as api from "./runpod-api";

// The RunPod Pulumi SDK is not installable here, so RunPod serverless endpoints are a dynamic provider over
// RunPod's GraphQL API (pulumi-anchors §3). Pulumi serializes the provider object *by value* into the state:
// its methods may use this module's constants and functions and `./runpod-api`, but never a client, a logger,
// a `pulumi.Config` or the API key — those are built inside each method from the resource's own inputs.

/** RunPod serverless GPU pools: the pools of the catalog's RunPod GPUs, plus AMPERE_16 (A4000-class, 16 GB). */
const POOLS: readonly string[] = [
  ...new Set([
    "AMPERE_16",
    ...Object.values(PROVIDERS["runpod-serverless"].gpus).flatMap((g) => (g?.pool ? [g.pool] : [])),
  ]),
];
const DEFAULT_IMAGE = "runpod/worker-v1-vllm:v2.7.0stable-cuda12.1.0";
const SCALER_TYPES: readonly string[] = ["QUEUE_DELAY", "REQUEST_COUNT"];
/** What the Pulumi engine sends for a value not known yet (preview); validation skips it. */
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/** A RunPod data centre id such as "EU-RO-1" or "US-TX-3". */
const DATA_CENTER_ID = /^[A-Z]{2}(-[A-Z0-9]+)*$/;

export { DEFAULT_IMAGE as RUNPOD_DEFAULT_WORKER_IMAGE, POOLS as RUNPOD_GPU_POOL_IDS };

/** Where a serverless worker mounts the endpoint's network volume. */
export const RUNPOD_VOLUME_MOUNT_PATH = "/runpod-volume";

/**
 * Worker env that makes the network volume the weight cache: worker-vllm downloads to and loads from BASE_PATH,
 * and the Hugging Face caches (where vLLM fetches weights) sit under it, at the paths worker-vllm's image uses by
 * default, so every endpoint sharing a volume shares one cache.
 */
export const RUNPOD_VOLUME_CACHE_ENV: Readonly<Record<string, string>> = {
  BASE_PATH: RUNPOD_VOLUME_MOUNT_PATH,
  HF_HOME: `${RUNPOD_VOLUME_MOUNT_PATH}/huggingface-cache`,
  HF_HUB_CACHE: `${RUNPOD_VOLUME_MOUNT_PATH}/huggingface-cache/hub`,
  HUGGINGFACE_HUB_CACHE: `${RUNPOD_VOLUME_MOUNT_PATH}/huggingface-cache/hub`,
  HF_DATASETS_CACHE: `${RUNPOD_VOLUME_MOUNT_PATH}/huggingface-cache/datasets`,
};

/**
 * The data centres an endpoint may use once it mounts a network volume in `volumeDataCenterId`: only that one.
 * Without a volume data centre the list is unchanged; a list that leaves the volume's data centre out is returned
 * unchanged too, for validation to report (it names both and the fix).
 */
export function narrowToVolumeDataCenter(
  dataCenterIds: readonly string[],
  volumeDataCenterId: string | undefined,
): string[] {
  if (volumeDataCenterId === undefined) return [...dataCenterIds];
  return dataCenterIds.length === 0 || dataCenterIds.includes(volumeDataCenterId)
    ? [volumeDataCenterId]
    : [...dataCenterIds];
}

/** The dynamic resource's inputs after `check` has applied the defaults. */
export interface RunPodEndpointInputs {
  name: string;
  image: string;
  env: Record<string, string>;
  gpuPoolIds: string[];
  workersMin: number;
  workersMax: number;
  idleTimeout: number;
  scalerType: api.ScalerType;
  scalerValue: number;
  flashboot: boolean;
  dataCenterIds: string[];
  networkVolumeId?: string;
  /** Data centre of the network volume; `check` narrows dataCenterIds to it. */
  networkVolumeDataCenterId?: string;
  containerDiskInGb: number;
  apiBase?: string;
  apiKey: string;
  /** Informational (for the policy pack); never sent to RunPod. */
  model?: string;
  /** Informational (for the policy pack); never sent to RunPod. */
  dataClass?: string;
}

export interface RunPodEndpointOutputs extends RunPodEndpointInputs {
  endpointId: string;
  templateId: string;
  templateName: string;
}

/**
 * Fills in every default `check` applies, and narrows dataCenterIds to the network volume's data centre;
 * values not known yet are left alone.
 */
export function applyEndpointDefaults(news: Partial<RunPodEndpointInputs>): RunPodEndpointInputs {
  const dcs = news.dataCenterIds ?? [];
  const volumeDc = news.networkVolumeDataCenterId;
  const narrow =
    typeof volumeDc === "string" && volumeDc !== UNKNOWN && Array.isArray(dcs) && !dcs.includes(UNKNOWN);
  return {
    ...news,
    name: news.name as string,
    image: news.image ?? DEFAULT_IMAGE,
    env: news.env ?? {},
    gpuPoolIds: news.gpuPoolIds as string[],
    workersMin: news.workersMin ?? 0,
    workersMax: news.workersMax as number,
    idleTimeout: news.idleTimeout ?? 5,
    scalerType: news.scalerType ?? "QUEUE_DELAY",
    scalerValue: news.scalerValue ?? 4,
    flashboot: news.flashboot ?? true,
    dataCenterIds: narrow ? narrowToVolumeDataCenter(dcs, volumeDc) : dcs,
    containerDiskInGb: news.containerDiskInGb ?? 30,
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

  if (known("name") && (typeof name !== "string" || name.trim().length < 3)) {
    fail("name", `name must have at least 3 characters (RunPod's minimum); got ${show(name)}`);
  }
  if (known("image") && (typeof image !== "string" || image.trim() === "")) {
    fail("image", `image must be a container image, e.g. "${DEFAULT_IMAGE}"; got ${show(image)}`);
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
  if (known("dataCenterIds")) {
    const ids = inputs.dataCenterIds;
    if (!Array.isArray(ids)) {
      fail(
        "dataCenterIds",
        `dataCenterIds must be a list such as ["EU-RO-1"] (empty = any); got ${show(ids)}`,
      );
    } else {
      for (const id of ids) {
        if (id !== UNKNOWN && !(typeof id === "string" && DATA_CENTER_ID.test(id))) {
          fail("dataCenterIds", `${show(id)} is not a RunPod data centre id such as "EU-RO-1" or "US-TX-3"`);
        }
      }
    }
  }
  const volume = inputs.networkVolumeId;
  if (known("networkVolumeId") && volume !== undefined && (typeof volume !== "string" || volume === "")) {
    fail(
      "networkVolumeId",
      `networkVolumeId must be a RunPod network volume id or left out; got ${show(volume)}`,
    );
  }
  const volumeDc = inputs.networkVolumeDataCenterId;
  if (known("networkVolumeDataCenterId") && volumeDc !== undefined) {
    const ids = inputs.dataCenterIds;
    if (!(typeof volumeDc === "string" && DATA_CENTER_ID.test(volumeDc))) {
      fail(
        "networkVolumeDataCenterId",
        `networkVolumeDataCenterId must be the RunPod data centre of the network volume, such as "EU-RO-1"; got ${show(volumeDc)}`,
      );
    } else if (volume === undefined || volume === "") {
      fail(
        "networkVolumeDataCenterId",
        "networkVolumeDataCenterId is set but networkVolumeId is not; give both (the volume and its data centre) or neither",
      );
    } else if (
      known("dataCenterIds") &&
      Array.isArray(ids) &&
      ids.length > 0 &&
      !ids.includes(UNKNOWN) &&
      !ids.includes(volumeDc)
    ) {
      fail(
        "networkVolumeDataCenterId",
        `the network volume is in ${volumeDc}, which dataCenterIds (${ids.join(", ")}) leaves out; a network volume ` +
          `pins the endpoint to its data centre, so create the volume in one of those data centres or add ` +
          `"${volumeDc}" to dataCenterIds`,
      );
    }
  }
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

const sortedEnv = (env: Readonly<Record<string, string>>): api.EnvVar[] =>
  Object.entries(env)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => ({ key, value }));

/**
 * The template for an endpoint. Its name is the endpoint's name plus a short hash of what RunPod bakes into
 * the template (image, env, disk), so a template found under that name is exactly this one and can be adopted.
 */
export async function templateInputFor(inputs: RunPodEndpointInputs): Promise<api.TemplateInput> {
  const env = sortedEnv(inputs.env);
  // Web Crypto is a global: nothing to capture when Pulumi serializes the provider (a `node:crypto` import
  // would be captured as a module object, which fails under some loaders).
  const hash = await globalThis.crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(JSON.stringify([inputs.image, inputs.containerDiskInGb, env])),
  );
  const digest = Buffer.from(hash).toString("hex").slice(0, 8);
  return {
    name: `${inputs.name}-${digest}`,
    imageName: inputs.image,
    containerDiskInGb: inputs.containerDiskInGb,
    volumeInGb: 0,
    dockerArgs: "",
    env,
    isServerless: true,
  };
}

/** The `saveEndpoint` input for these inputs; with `id` it updates that endpoint. */
export function endpointInputFor(
  inputs: RunPodEndpointInputs,
  templateId: string,
  id?: string,
): api.EndpointInput {
  return {
    ...(id === undefined ? {} : { id }),
    name: inputs.name,
    templateId,
    gpuIds: inputs.gpuPoolIds.join(","),
    workersMin: inputs.workersMin,
    workersMax: inputs.workersMax,
    idleTimeout: inputs.idleTimeout,
    scalerType: inputs.scalerType,
    scalerValue: inputs.scalerValue,
    locations: inputs.dataCenterIds.join(","),
    // "" = no volume (RunPod's own examples send it so); it also clears a volume on update.
    networkVolumeId: inputs.networkVolumeId ?? "",
    flashBootType: inputs.flashboot ? "FLASHBOOT" : "OFF",
  };
}

/** RunPod resolves a template once, when the endpoint is created: these need a new template and endpoint. */
const REPLACE_KEYS = ["name", "image", "env", "containerDiskInGb"] as const;
/** `saveEndpoint` with the id changes these in place. */
const ENDPOINT_KEYS = [
  "workersMin",
  "workersMax",
  "idleTimeout",
  "scalerType",
  "scalerValue",
  "gpuPoolIds",
  "flashboot",
  "dataCenterIds",
  "networkVolumeId",
  "networkVolumeDataCenterId",
] as const;
/** Kept in state for the policy pack; a change is an update that makes no RunPod call. */
const INFO_KEYS = ["model", "dataClass"] as const;

/** Order-insensitive for objects (env), order-sensitive for lists (pools are a preference order). */
function canonical(value: unknown): string {
  if (value === undefined || value === null || value === "") return "null";
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (typeof value === "object") {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(value);
}

const changed = (olds: object, news: object, keys: readonly string[]): string[] =>
  keys.filter(
    (k) =>
      canonical((olds as Record<string, unknown>)[k]) !== canonical((news as Record<string, unknown>)[k]),
  );

const splitList = (text: string | null | undefined): string[] =>
  (text ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");

/**
 * The dynamic provider. `tuning` shortens retries and timeouts (tests); the default suits the real API.
 *
 * - create: template (adopted by name if it exists), then endpoint (adopted by name on the same template).
 * - diff: name, image, env or containerDiskInGb → replace, delete-before-replace (RunPod names are unique);
 *   scaling, scaler, idle timeout, pools, FlashBoot, data centres, network volume → update in place.
 *   `apiKey` and `apiBase` are how to reach RunPod, not part of the endpoint: changing only them is no diff,
 *   so a rotated key reaches the state with the next real change (keep the old key valid until then).
 * - read: refreshes the endpoint's settings; a vanished endpoint reads as gone.
 * - delete: bounds to 0, delete the endpoint (retried while workers drain), then the template; gone = done.
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
      const replaces = changed(olds, news, REPLACE_KEYS);
      const updates = changed(olds, news, [...ENDPOINT_KEYS, ...INFO_KEYS]);
      return {
        changes: replaces.length > 0 || updates.length > 0,
        replaces,
        deleteBeforeReplace: replaces.length > 0,
      };
    },

    async create(inputs) {
      const client = clientFor(inputs);
      const template = await api.saveTemplate(client, await templateInputFor(inputs));
      const endpoint = await api.saveEndpoint(client, endpointInputFor(inputs, template.id));
      return {
        id: endpoint.id,
        outs: { ...inputs, endpointId: endpoint.id, templateId: template.id, templateName: template.name },
      };
    },

    async read(id, props) {
      if (!props) return { id };
      const endpoint = await api.getEndpoint(clientFor(props), id);
      if (!endpoint) return { id: "", props: {} as RunPodEndpointOutputs };
      return {
        id,
        props: {
          ...props,
          name: endpoint.name,
          gpuPoolIds: splitList(endpoint.gpuIds),
          workersMin: endpoint.workersMin,
          workersMax: endpoint.workersMax,
          idleTimeout: endpoint.idleTimeout,
          scalerType: endpoint.scalerType,
          scalerValue: endpoint.scalerValue,
          dataCenterIds: splitList(endpoint.locations),
          networkVolumeId: endpoint.networkVolumeId || undefined,
          // Older API answers may lack the field: keep what the state says then.
          flashboot: endpoint.flashBootType ? endpoint.flashBootType === "FLASHBOOT" : props.flashboot,
          endpointId: endpoint.id,
          templateId: endpoint.templateId,
        },
      };
    },

    async update(id, olds, news) {
      if (changed(olds, news, ENDPOINT_KEYS).length > 0) {
        await api.saveEndpoint(clientFor(news), endpointInputFor(news, olds.templateId, id));
      }
      return {
        outs: { ...news, endpointId: id, templateId: olds.templateId, templateName: olds.templateName },
      };
    },

    async delete(id, props) {
      const client = clientFor(props);
      await api.deleteEndpoint(client, id);
      if (props.templateName) await api.deleteTemplate(client, props.templateName);
    },
  };
}

const provider = createRunPodEndpointProvider();

/** Inputs of the dynamic resource; every optional field has the default `check` gives it. */
export interface RunPodEndpointResourceArgs {
  name: pulumi.Input<string>;
  image?: pulumi.Input<string>;
  env?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  gpuPoolIds: pulumi.Input<pulumi.Input<string>[]>;
  workersMin?: pulumi.Input<number>;
  workersMax: pulumi.Input<number>;
  idleTimeout?: pulumi.Input<number>;
  scalerType?: pulumi.Input<api.ScalerType>;
  scalerValue?: pulumi.Input<number>;
  flashboot?: pulumi.Input<boolean>;
  dataCenterIds?: pulumi.Input<pulumi.Input<string>[]>;
  networkVolumeId?: pulumi.Input<string>;
  networkVolumeDataCenterId?: pulumi.Input<string>;
  containerDiskInGb?: pulumi.Input<number>;
  apiBase?: pulumi.Input<string>;
  apiKey: pulumi.Input<string>;
  model?: pulumi.Input<string>;
  dataClass?: pulumi.Input<string>;
}

/** A RunPod serverless endpoint and its template (`pulumi-nodejs:dynamic/runpod:Endpoint`). */
export class RunPodEndpointResource extends pulumi.dynamic.Resource {
  /** RunPod endpoint id. */
  declare readonly endpointId: pulumi.Output<string>;
  /** RunPod template id. */
  declare readonly templateId: pulumi.Output<string>;
  /** RunPod template name (the endpoint name plus a hash of image, env and disk). */
  declare readonly templateName: pulumi.Output<string>;
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
        additionalSecretOutputs: [...new Set([...(opts?.additionalSecretOutputs ?? []), "apiKey"])],
      },
      "runpod",
      "Endpoint",
    );
  }
}

export interface RunPodServerlessEndpointArgs {
  /** RunPod endpoint name, 3+ characters, unique in the account. @default "{project}-{stack}-{resource name}" */
  readonly name?: string;
  /** RunPod API key; pass a secret (`config.requireSecret("runpodApiKey")`). */
  readonly apiKey: pulumi.Input<string>;
  /** Worker image; worker-vllm serves the OpenAI routes. @default "runpod/worker-v1-vllm:v2.7.0stable-cuda12.1.0" */
  readonly image?: string;
  /** Worker environment, e.g. MODEL_NAME, MAX_MODEL_LEN, OPENAI_SERVED_MODEL_NAME_OVERRIDE; wrap tokens in `pulumi.secret`. @default {} */
  readonly env?: Readonly<Record<string, pulumi.Input<string>>>;
  /** RunPod GPU pools in order of preference, e.g. ["ADA_24", "AMPERE_24"]. */
  readonly gpuPoolIds: readonly string[];
  /** Workers RunPod keeps running; 0 scales to zero. @default 0 */
  readonly workersMin?: number;
  /** Upper bound of workers, at least 1. */
  readonly workersMax: number;
  /** Seconds a worker stays (billed) after its last job, 1–3600. @default 5 */
  readonly idleTimeout?: number;
  /** QUEUE_DELAY adds workers when jobs wait longer than scalerValue s; REQUEST_COUNT targets requests/worker. @default "QUEUE_DELAY" */
  readonly scalerType?: api.ScalerType;
  /** Seconds of queue delay or requests per worker, by scalerType. @default 4 */
  readonly scalerValue?: number;
  /** RunPod FlashBoot (faster cold starts). @default true */
  readonly flashboot?: boolean;
  /** RunPod data centres the workers may run in, e.g. ["EU-RO-1"]; empty = any. @default [] */
  readonly dataCenterIds?: readonly string[];
  /**
   * Network volume (e.g. `RunPodNetworkVolume.volumeId`) mounted at /runpod-volume as the weight cache: workers
   * download weights to it once per data centre and later workers load them from it (BASE_PATH and the Hugging
   * Face caches point under it, unless `env` sets them). Needs networkVolumeDataCenterId. Adding or removing a
   * volume changes the template env and so replaces the endpoint; moving to another volume updates it in place.
   * @default none
   */
  readonly networkVolumeId?: pulumi.Input<string>;
  /**
   * Data centre of networkVolumeId (e.g. `RunPodNetworkVolume.dataCenterId`): the volume pins the endpoint there,
   * so the endpoint's data centres become exactly this one, which dataCenterIds must include when not empty.
   * Required with networkVolumeId. @default none
   */
  readonly networkVolumeDataCenterId?: pulumi.Input<string>;
  /** Container disk per worker in GB. @default 30 */
  readonly containerDiskInGb?: number;
  /** RunPod API base (a contract fake in tests). @default "https://api.runpod.io" */
  readonly apiBase?: string;
  /** Model the endpoint serves; informational, for the policy pack. @default none */
  readonly model?: string;
  /** Data class of the model's traffic (public, internal, confidential); informational, for the policy pack. @default none */
  readonly dataClass?: string;
  /** The controller steers workersMin/workersMax at run time; a refresh or update must not put them back. @default false */
  readonly workersSteeredAtRuntime?: boolean;
}

/**
 * A RunPod serverless endpoint with its template, managed through RunPod's GraphQL API, and the
 * OpenAI-compatible base URL the gateway routes to. RunPod queues and scales the workers itself between
 * workersMin and workersMax; the controller steers those bounds at run time.
 */
export class RunPodServerlessEndpoint extends pulumi.ComponentResource {
  /** RunPod endpoint id. */
  public readonly endpointId: pulumi.Output<string>;
  /** RunPod template id. */
  public readonly templateId: pulumi.Output<string>;
  /** `https://api.runpod.ai/v2/{endpointId}/openai/v1` (note `.ai`: the job API host). */
  public readonly openaiBaseUrl: pulumi.Output<string>;
  /** The dynamic resource that owns the template and endpoint. */
  public readonly endpoint: RunPodEndpointResource;

  constructor(name: string, args: RunPodServerlessEndpointArgs, opts?: pulumi.ComponentResourceOptions) {
    super("aiorch:runpod:ServerlessEndpoint", name, {}, opts);
    const endpointName = args.name ?? `${pulumi.getProject()}-${pulumi.getStack()}-${name}`;
    const plain = (value: unknown) =>
      value === undefined || pulumi.Output.isInstance(value) ? UNKNOWN : value;
    const volumeDc = args.networkVolumeDataCenterId;
    const failures = validateEndpointInputs({
      ...applyEndpointDefaults({
        name: endpointName,
        image: args.image,
        env: Object.fromEntries(Object.entries(args.env ?? {}).map(([k, v]) => [k, plain(v) as string])),
        gpuPoolIds: [...args.gpuPoolIds],
        workersMin: args.workersMin,
        workersMax: args.workersMax,
        idleTimeout: args.idleTimeout,
        scalerType: args.scalerType,
        scalerValue: args.scalerValue,
        flashboot: args.flashboot,
        dataCenterIds: args.dataCenterIds ? [...args.dataCenterIds] : undefined,
        networkVolumeId:
          args.networkVolumeId === undefined ? undefined : (plain(args.networkVolumeId) as string),
        networkVolumeDataCenterId: volumeDc === undefined ? undefined : (plain(volumeDc) as string),
        containerDiskInGb: args.containerDiskInGb,
        apiBase: args.apiBase,
        model: args.model,
        dataClass: args.dataClass,
      }),
      // Checked again by the provider once resolved; here only whether one was given at all.
      apiKey: args.apiKey === undefined ? undefined : UNKNOWN,
    });
    if (args.networkVolumeId !== undefined && volumeDc === undefined) {
      failures.push({
        property: "networkVolumeDataCenterId",
        reason:
          "networkVolumeDataCenterId is required with networkVolumeId: a network volume pins the endpoint to its " +
          "data centre, so pass the volume's (RunPodNetworkVolume.dataCenterId)",
      });
    }
    if (failures.length > 0) {
      throw new Error(`RunPodServerlessEndpoint ${name}: ${failures.map((f) => f.reason).join("; ")}`);
    }

    // With a network volume: the weight-cache env (the caller's env wins), and the volume's data centre only.
    const env =
      args.networkVolumeId === undefined
        ? args.env && { ...args.env }
        : { ...RUNPOD_VOLUME_CACHE_ENV, ...args.env };
    const configuredDcs = [...(args.dataCenterIds ?? [])];
    const dataCenterIds: pulumi.Input<string[]> | undefined =
      volumeDc === undefined
        ? args.dataCenterIds && configuredDcs
        : pulumi.output(volumeDc).apply((dc) => narrowToVolumeDataCenter(configuredDcs, dc));

    this.endpoint = new RunPodEndpointResource(
      name,
      {
        name: endpointName,
        image: args.image,
        env,
        gpuPoolIds: [...args.gpuPoolIds],
        workersMin: args.workersMin,
        workersMax: args.workersMax,
        idleTimeout: args.idleTimeout,
        scalerType: args.scalerType,
        scalerValue: args.scalerValue,
        flashboot: args.flashboot,
        dataCenterIds,
        networkVolumeId: args.networkVolumeId,
        networkVolumeDataCenterId: volumeDc,
        containerDiskInGb: args.containerDiskInGb,
        apiBase: args.apiBase,
        apiKey: args.apiKey,
        model: args.model,
        dataClass: args.dataClass,
      },
      { parent: this, ignoreChanges: args.workersSteeredAtRuntime ? ["workersMin", "workersMax"] : [] },
    );
    this.endpointId = this.endpoint.endpointId;
    this.templateId = this.endpoint.templateId;
    this.openaiBaseUrl = pulumi.interpolate`https://api.runpod.ai/v2/${this.endpointId}/openai/v1`;
    this.registerOutputs({
      endpointId: this.endpointId,
      templateId: this.templateId,
      openaiBaseUrl: this.openaiBaseUrl,
    });
  }
}
