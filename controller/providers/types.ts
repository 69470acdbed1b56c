/**
 * The interfaces every provider implements — `ProviderAdapter` for providers where we rent instances one by one,
 * `ManagedBackend` for providers that queue and scale their own workers — the error type they all throw, and the
 * helpers they share for tagging instances and starting the inference engine.
 *
 * Adapters do not decide trust: the controller calls `decideProvision` (core/trust) before `provision`.
 * Adapters never log or put into an error message a credential, the worker token or the worker's env.
 */
import type { ConfigurableProviderId, GpuId } from "../../core/catalog";
import type { Engine } from "../../core/config/schema";
import { VLLM_OMNI_PROGRAM, vllmExtrasInstall, vllmOmniServeArgs } from "../../core/engine-command";
import { type ProviderErrorKind, RETRYABLE_KINDS } from "../../core/provider-http";

export { shellJoin, shellQuote } from "../../core/shell";

// ── errors ────────────────────────────────────────────────────────────────────────────────────────────────

export { type ProviderErrorKind, RETRYABLE_KINDS } from "../../core/provider-http";

export interface ProviderErrorInit {
  readonly kind: ProviderErrorKind;
  readonly provider: ConfigurableProviderId;
  /** What the adapter was doing: offers, provision, describe, list, terminate, auth … */
  readonly operation: string;
  /** Why, already free of credentials. */
  readonly detail: string;
  readonly status?: number;
  readonly retryAfterMs?: number;
  /** The provider's own error code (`forbidden_action`, `no_such_ask`), when it sent one. */
  readonly code?: string;
  /** How many attempts were made before giving up. */
  readonly attempts?: number;
}

export class ProviderError extends Error {
  readonly kind: ProviderErrorKind;
  readonly provider: ConfigurableProviderId;
  readonly operation: string;
  readonly status?: number;
  readonly retryAfterMs?: number;
  readonly code?: string;
  readonly attempts?: number;
  readonly detail: string;

  constructor(init: ProviderErrorInit) {
    const where = init.status !== undefined ? `${init.kind}, HTTP ${init.status}` : init.kind;
    const tries =
      init.attempts !== undefined && init.attempts > 1 ? ` (after ${init.attempts} attempts)` : "";
    super(`${init.provider} ${init.operation} failed (${where}): ${init.detail}${tries}`);
    this.name = "ProviderError";
    this.kind = init.kind;
    this.provider = init.provider;
    this.operation = init.operation;
    this.detail = init.detail;
    if (init.status !== undefined) this.status = init.status;
    if (init.retryAfterMs !== undefined) this.retryAfterMs = init.retryAfterMs;
    if (init.code !== undefined) this.code = init.code;
    if (init.attempts !== undefined) this.attempts = init.attempts;
  }

  /** rate_limit and transient errors may succeed when tried again. */
  get retryable(): boolean {
    return RETRYABLE_KINDS.includes(this.kind);
  }

  /** The same error with the attempt count recorded. */
  withAttempts(attempts: number): ProviderError {
    return new ProviderError({ ...this.init(), attempts });
  }

  private init(): ProviderErrorInit {
    return {
      kind: this.kind,
      provider: this.provider,
      operation: this.operation,
      detail: this.detail,
      ...(this.status !== undefined ? { status: this.status } : {}),
      ...(this.retryAfterMs !== undefined ? { retryAfterMs: this.retryAfterMs } : {}),
      ...(this.code !== undefined ? { code: this.code } : {}),
    };
  }
}

/**
 * The `code` of a capacity error that may also be a malformed request: the provider refused to place this offer,
 * and only its detail text tells why (RunPod `createPod` answers 400 for both). When every offer of one provider
 * tried in a provisioning is refused so, the controller reads it as the provider's advice does — "if every
 * candidate returns 400, read the last detail as a problem with the request" — and treats it as invalid.
 */
export const PLACEMENT_REFUSED = "placement_refused";

export function isProviderError(value: unknown): value is ProviderError {
  return value instanceof ProviderError;
}

// ── the contract ──────────────────────────────────────────────────────────────────────────────────────────

export interface WorkerSpec {
  /** The controller's id for this worker; also the idempotency key of `provision`. */
  readonly workerId: string;
  /** The stack's owner label (RuntimeConfig.ownerLabel); the reconciler lists instances by it. */
  readonly ownerLabel: string;
  /** Model name clients send (served model name). */
  readonly model: string;
  /** Hugging Face repo of the weights. */
  readonly source: string;
  readonly revision?: string;
  readonly engine: Engine;
  /** Container image, already resolved by the controller (provider `image` setting or the engine default). */
  readonly image: string;
  readonly gpuCount: number;
  readonly maxModelLen?: number;
  readonly engineArgs: readonly string[];
  /**
   * Optional Python extras the engine installs before it starts (vLLM's `audio` for speech-to-text: its image
   * leaves them out; `engineExtrasFor` in core/engine-command.ts). @default none
   */
  readonly engineExtras?: readonly string[];
  /** Port the engine listens on inside the container or VM. */
  readonly port: number;
  /** The engine's --api-key; a secret: never logged, never in an error message. */
  readonly workerToken: string;
  /** Extra environment for the engine (e.g. HF_TOKEN); values are secrets. */
  readonly env: Readonly<Record<string, string>>;
  /**
   * The provider's weight cache (`providers.<id>.weightCache`): a Hugging Face mirror the engine downloads from
   * instead of the Hub. Without one every cold start downloads from the Hub.
   */
  readonly weightCache?: { readonly mirrorUrl: string };
  /**
   * TLS for the engine's port: the certificate the controller issued for this worker and pins, and its private
   * key. The key is a secret (never logged, never in an error message, never stored by the controller); it
   * reaches the worker only through the provider's environment/startup. Only engines for which
   * `engineServesTls` is true can take it.
   */
  readonly tls?: { readonly certPem: string; readonly keyPem: string };
}

/** What the controller asks an adapter for: one of these GPU types, this many per worker. */
export interface OfferRequest {
  /** GPU types the model may run on; an offer must be one of them, by name and by memory (`fitsGpuMemory`). */
  readonly gpu: readonly GpuId[];
  readonly gpuCount: number;
  /** The image the worker will run: a provider that filters hosts by CUDA version needs to know its floor. */
  readonly image?: string;
}

export interface Offer {
  readonly provider: ConfigurableProviderId;
  readonly gpu: GpuId;
  /** Memory per GPU in GB as the provider reports it for this offer (Vast `gpu_ram`, Verda `gpu_memory`). */
  readonly gpuMemoryGb?: number;
  /** USD per hour for the whole instance (all its GPUs, storage where the provider quotes it). */
  readonly usdPerHour: number;
  /** The provider's handle for the offer: Vast ask id, Verda instance type, RunPod GPU type id. */
  readonly offerId?: string;
  readonly region?: string;
  /** 0..1 where the provider publishes it (Vast.ai). */
  readonly reliability?: number;
}

/** An offer the provider listed that the adapter did not take, and why (for the scale-decision log). */
export interface SkippedOffer {
  readonly provider: ConfigurableProviderId;
  /** The provider's handle for it (Vast ask id, Verda instance type, RunPod GPU type id). */
  readonly offerId?: string;
  /** The provider's name for the GPU ("A100 SXM4", "1A100.40S.22V"). */
  readonly gpuName?: string;
  readonly gpuMemoryGb?: number;
  readonly usdPerHour?: number;
  /** Why, in words a user can act on: "no direct ports", "40 GB per GPU, A100_80GB needs 80 GB", "no stock". */
  readonly reason: string;
}

/** The answer to an offer search: what can be rented, cheapest first, and what was listed but left out. */
export interface OfferSearch {
  readonly offers: Offer[];
  readonly skipped: SkippedOffer[];
}

export type InstanceStatus =
  | "provisioning"
  | "booting"
  | "running"
  | "stopped"
  | "terminating"
  | "terminated"
  | "failed"
  | "unknown";

export interface InstanceInfo {
  readonly providerId: string;
  readonly workerId?: string;
  readonly ownerLabel?: string;
  readonly status: InstanceStatus;
  /** http(s)://host:port of the engine once the provider reports it reachable (no /v1 suffix). */
  readonly baseUrl?: string;
  readonly usdPerHour?: number;
  readonly createdAtMs?: number;
  /** The provider's own status words, for logs (never secrets). */
  readonly detail?: string;
}

export interface ProviderAdapter {
  readonly id: ConfigurableProviderId;
  /**
   * Offers for the model's GPUs and count, cheapest first, within the provider's settings (filters, price cap);
   * an offer whose GPU has less memory than the GPU type it is named for is skipped, not offered.
   */
  offers(request: OfferRequest): Promise<OfferSearch>;
  /**
   * Rent an instance for the worker, tagged with ownerLabel and workerId. Idempotent: an instance that already
   * carries this workerId (a create that "failed" but did create) is adopted instead of creating a second one.
   */
  provision(spec: WorkerSpec, offer: Offer): Promise<InstanceInfo>;
  /** The instance, or undefined when the provider no longer knows it. */
  describe(providerId: string): Promise<InstanceInfo | undefined>;
  /** Every instance carrying the owner label (for the reconciler). */
  listOwned(ownerLabel: string): Promise<InstanceInfo[]>;
  /** Stop billing for good. Idempotent: an instance that is already gone counts as success. */
  terminate(providerId: string): Promise<void>;
}

// ── managed backends ──────────────────────────────────────────────────────────────────────────────────────

/** An endpoint a managed backend runs for one serving unit, as the provider reports it. */
export interface ManagedEndpoint {
  readonly id: string;
  readonly name: string;
  readonly workersMin: number;
  readonly workersMax: number;
  /** GPUs per worker, as the provider bills them (RunPod `gpu.count`). */
  readonly gpuCount: number;
  /**
   * How requests reach the workers: through the provider's queue, which holds them while a worker starts
   * ("queue"), or straight to a worker's own server, with nothing held when none is ready ("direct": RunPod's
   * load-balancing endpoints) — then the gateway holds them, and the controller starts the first worker.
   */
  readonly routing: "queue" | "direct";
  /** A direct endpoint's base URL for the worker's own paths (RunPod `requestUrls.base`), when the provider gives it. */
  readonly directBaseUrl?: string;
}

/** What a managed endpoint runs and holds right now. */
export interface ManagedHealth {
  /** Workers billed right now (running, including their idle timeout). */
  readonly running: number;
  readonly idle: number;
  readonly initializing: number;
  /** Jobs waiting for a worker (always 0 for a direct endpoint: nothing waits there). */
  readonly inQueue: number;
  readonly inProgress: number;
}

/** How the gateway reaches a managed endpoint: its OpenAI base URL and the credential it sends. */
export interface ManagedRoute {
  /** OpenAI base URL, with `/v1`. */
  readonly baseUrl: string;
  /** The gateway authenticates with this provider credential (an env var of its pod), never a stored token. */
  readonly auth: { readonly kind: "provider-key"; readonly envVar: string };
}

/**
 * A provider that queues and scales its own workers (RunPod serverless). The stack declares one endpoint per
 * serving unit; at run time the controller finds it, routes the gateway through it, keeps its worker bounds where
 * the config and the budget say (restoring bounds the provider lowers on idle endpoints), drops its queue at a
 * budget cap, and books the workers it reports.
 */
export interface ManagedBackend {
  readonly id: ConfigurableProviderId;
  /**
   * The endpoints the stack declared for these serving units, by unit (a unit without one is absent): one listing
   * for all of them, since the provider's API is rate-limited per account.
   */
  endpoints(units: readonly string[]): Promise<Map<string, ManagedEndpoint>>;
  /** Set the worker bounds; nothing else about the endpoint changes. */
  setBounds(endpoint: ManagedEndpoint, workersMin: number, workersMax: number): Promise<ManagedEndpoint>;
  health(endpoint: ManagedEndpoint): Promise<ManagedHealth>;
  /** Remove the jobs waiting in the endpoint's queue (running jobs finish); answers how many went. */
  purgeQueue(endpoint: ManagedEndpoint): Promise<number>;
  route(endpoint: ManagedEndpoint): ManagedRoute;
}

/** Statuses after which an instance never serves again. */
export const FINAL_STATUSES: readonly InstanceStatus[] = ["terminating", "terminated"];

// ── instance tags ─────────────────────────────────────────────────────────────────────────────────────────

/**
 * The tag put on every instance (Vast `label`, RunPod pod `name`, Verda `description`): `<ownerLabel>.<workerId>`.
 * Owner labels are DNS labels (no dots), so the first dot separates the two without ambiguity, and one stack's
 * label can never be a prefix match for another's.
 */
export function instanceTag(ownerLabel: string, workerId: string): string {
  if (!/^[a-z0-9-]{1,63}$/.test(ownerLabel))
    throw new Error(`owner label "${ownerLabel}" must be a DNS label (a-z, 0-9, -)`);
  if (!/^[A-Za-z0-9._:-]{1,100}$/.test(workerId))
    throw new Error(`worker id "${workerId}" may use only letters, digits and . _ : -`);
  return `${ownerLabel}.${workerId}`;
}

export function parseInstanceTag(tag: unknown): { ownerLabel: string; workerId: string } | undefined {
  if (typeof tag !== "string") return undefined;
  const dot = tag.indexOf(".");
  if (dot <= 0 || dot === tag.length - 1) return undefined;
  const ownerLabel = tag.slice(0, dot);
  const workerId = tag.slice(dot + 1);
  if (!/^[a-z0-9-]{1,63}$/.test(ownerLabel) || !/^[A-Za-z0-9._:-]{1,100}$/.test(workerId)) return undefined;
  return { ownerLabel, workerId };
}

// ── engine launch ─────────────────────────────────────────────────────────────────────────────────────────

export interface EngineLaunch {
  /**
   * Replaces the image's entrypoint (one executable; `args` go to it) — set when the engine needs a step before
   * it starts (writing its TLS files). Vast.ai: `onstart` in args mode; RunPod: the JSON start command;
   * Verda: `docker run --entrypoint`.
   */
  readonly entrypoint?: string;
  /** Arguments for the entrypoint (the image's: vllm/vllm-openai, TGI launcher, ollama; or `entrypoint`). */
  readonly args: readonly string[];
  /** Extra environment the engine needs (besides spec.env). */
  readonly env: Readonly<Record<string, string>>;
  /** Whether the engine itself checks the worker token (Ollama has no API key support). */
  readonly authEnforced: boolean;
}

/**
 * Whether the engine can serve its API over TLS with a given certificate. vLLM can (`--ssl-certfile`,
 * `--ssl-keyfile`, uvicorn's options). TGI's launcher has no TLS options, and Ollama serves plain HTTP only
 * (it has no API key either): neither may run outside the cluster, where traffic must be encrypted.
 */
export function engineServesTls(engine: Engine): boolean {
  // vLLM-Omni's `vllm serve … --omni` takes vLLM's own argument parser (vllm_omni/entrypoints/cli/serve.py:
  // `make_arg_parser(serve_parser)`), --ssl-certfile and --ssl-keyfile included
  return engine === "vllm" || engine === "vllm-omni";
}

/**
 * The engine's download directory inside the container: weights land here (vLLM `--download-dir`, TGI's
 * `HUGGINGFACE_HUB_CACHE`, Ollama's `OLLAMA_MODELS`), on the instance's own disk, which goes with the instance.
 */
export const ENGINE_DOWNLOAD_DIR = "/aiorch/weights";

/** Environment that points an engine's downloads at the download dir and, with a weight cache, at the mirror. */
function downloadEnv(spec: WorkerSpec): Record<string, string> {
  switch (spec.engine) {
    case "vllm":
    case "vllm-omni":
      // huggingface_hub reads HF_ENDPOINT; HF_HOME keeps its other files (token, xet cache) beside the weights
      return {
        HF_HOME: `${ENGINE_DOWNLOAD_DIR}/hf`,
        ...(spec.weightCache ? { HF_ENDPOINT: spec.weightCache.mirrorUrl } : {}),
      };
    case "tgi":
      return {
        HUGGINGFACE_HUB_CACHE: ENGINE_DOWNLOAD_DIR,
        ...(spec.weightCache ? { HF_ENDPOINT: spec.weightCache.mirrorUrl } : {}),
      };
    case "ollama":
      // Ollama pulls from its own registry, not the Hub: a Hugging Face mirror does not apply
      return { OLLAMA_MODELS: ENGINE_DOWNLOAD_DIR };
  }
}

/** vLLM's OpenAI server, as its image's entrypoint runs it (docker/Dockerfile `ENTRYPOINT`). */
const VLLM_SERVER = "python3 -m vllm.entrypoints.openai.api_server";

/** Where the vLLM start-up script writes the worker's certificate and key inside the container. */
export const TLS_DIR = "/tmp/aiorch-tls";
/** Environment that carries the certificate and key to the start-up script (base64 of the PEM, one line). */
export const TLS_ENV = { cert: "AIORCH_TLS_CERT_B64", key: "AIORCH_TLS_KEY_B64" } as const;

/**
 * Start-up script for vLLM with TLS (`/bin/sh -c SCRIPT aiorch-engine ARGS…`): write the certificate and key
 * from the environment to files only the engine's user can read, drop them from the environment, then run the
 * OpenAI server with ARGS (which name the files). The script holds no secret itself. Each of certificate and key
 * is read from one variable, or joined in order from several (`printf '%s' "$A_0" "$A_1"` prints them end to end).
 */
function vllmTlsScript(
  certVars: readonly string[],
  keyVars: readonly string[],
  exec = VLLM_SERVER,
  prelude: readonly string[] = [],
): string {
  const read = (vars: readonly string[]) => vars.map((v) => `"$${v}"`).join(" ");
  return [
    "set -eu",
    ...prelude,
    "umask 077",
    `mkdir -p ${TLS_DIR}`,
    `printf '%s' ${read(certVars)} | base64 -d > ${TLS_DIR}/cert.pem`,
    `printf '%s' ${read(keyVars)} | base64 -d > ${TLS_DIR}/key.pem`,
    `unset ${[...certVars, ...keyVars].join(" ")}`,
    `exec ${exec} "$@"`,
  ].join("; ");
}

/**
 * `value` under `name`, or — when longer than `max` — in parts of at most `max` characters under `name_0`,
 * `name_1`, … (in order).
 */
function envParts(name: string, value: string, max: number | undefined): Record<string, string> {
  if (max === undefined || value.length <= max) return { [name]: value };
  const parts: Record<string, string> = {};
  for (let i = 0; i * max < value.length; i++) parts[`${name}_${i}`] = value.slice(i * max, (i + 1) * max);
  return parts;
}

/**
 * How to start the engine so it serves the model on spec.port and demands spec.workerToken.
 *
 * `maxEnvValueChars`: the longest environment value the provider accepts (Vast.ai documents 256). The TLS
 * certificate and key (base64 of the PEM, one to three thousand characters) are then carried in numbered parts
 * (`AIORCH_TLS_CERT_B64_0`, `_1`, …) that the start-up script joins; without it, or when they fit, in one variable each.
 */
/**
 * A vLLM-style server started behind `vllmTlsScript`: the certificate and key travel base64 in env (split by
 * `envParts` where a provider caps a value's length), are written to files, and the server is pointed at them.
 * vLLM and vLLM-Omni share it (vLLM-Omni's `vllm serve` takes vLLM's --ssl-* flags).
 */
function vllmWithTls(
  spec: WorkerSpec,
  tls: NonNullable<WorkerSpec["tls"]>,
  args: readonly string[],
  maxEnv: number | undefined,
  exec?: string,
  prelude: readonly string[] = [],
): EngineLaunch {
  const certEnv = envParts(TLS_ENV.cert, Buffer.from(tls.certPem, "utf8").toString("base64"), maxEnv);
  const keyEnv = envParts(TLS_ENV.key, Buffer.from(tls.keyPem, "utf8").toString("base64"), maxEnv);
  return {
    entrypoint: "/bin/sh",
    args: [
      "-c",
      vllmTlsScript(Object.keys(certEnv), Object.keys(keyEnv), exec, prelude),
      "aiorch-engine",
      ...args,
      "--ssl-certfile",
      `${TLS_DIR}/cert.pem`,
      "--ssl-keyfile",
      `${TLS_DIR}/key.pem`,
    ],
    env: { ...downloadEnv(spec), ...certEnv, ...keyEnv },
    authEnforced: true,
  };
}

export function engineLaunch(
  spec: WorkerSpec,
  options: { readonly maxEnvValueChars?: number } = {},
): EngineLaunch {
  const port = String(spec.port);
  const maxEnv = options.maxEnvValueChars;
  if (maxEnv !== undefined && !(Number.isInteger(maxEnv) && maxEnv >= 1))
    throw new Error(`maxEnvValueChars must be a positive integer, not ${maxEnv}`);
  if (spec.tls && !engineServesTls(spec.engine))
    throw new Error(`engine ${spec.engine} cannot serve TLS; the worker would be reachable in plain text`);
  switch (spec.engine) {
    case "vllm": {
      const args = [
        "--model",
        spec.source,
        ...(spec.revision ? ["--revision", spec.revision] : []),
        "--served-model-name",
        spec.model,
        "--host",
        "0.0.0.0",
        "--port",
        port,
        "--tensor-parallel-size",
        String(spec.gpuCount),
        ...(spec.maxModelLen ? ["--max-model-len", String(spec.maxModelLen)] : []),
        "--download-dir",
        ENGINE_DOWNLOAD_DIR,
        "--api-key",
        spec.workerToken,
        ...spec.engineArgs,
      ];
      // extras first (a speech-to-text model needs vLLM's `audio`), then the server; both under one shell
      const install = vllmExtrasInstall(spec.engineExtras ?? []);
      if (spec.tls) return vllmWithTls(spec, spec.tls, args, maxEnv, VLLM_SERVER, install);
      if (install.length === 0) return { args, env: downloadEnv(spec), authEnforced: true };
      return {
        entrypoint: "/bin/sh",
        args: [
          "-c",
          ["set -eu", ...install, `exec ${VLLM_SERVER} "$@"`].join("; "),
          "aiorch-engine",
          ...args,
        ],
        env: downloadEnv(spec),
        authEnforced: true,
      };
    }
    case "vllm-omni": {
      // The image's default entrypoint is `vllm serve --omni` (installation/gpu/cuda.inc.md); set explicitly, so
      // the launch does not depend on it (core/engine-command.ts).
      const args = vllmOmniServeArgs({
        source: spec.source,
        revision: spec.revision,
        servedName: spec.model,
        port: spec.port,
        apiKey: spec.workerToken,
        engineArgs: spec.engineArgs,
      });
      if (!spec.tls)
        return { entrypoint: VLLM_OMNI_PROGRAM, args, env: downloadEnv(spec), authEnforced: true };
      return vllmWithTls(spec, spec.tls, args, maxEnv, VLLM_OMNI_PROGRAM);
    }
    case "tgi":
      return {
        args: [
          "--model-id",
          spec.source,
          ...(spec.revision ? ["--revision", spec.revision] : []),
          "--hostname",
          "0.0.0.0",
          "--port",
          port,
          "--num-shard",
          String(spec.gpuCount),
          ...(spec.maxModelLen ? ["--max-total-tokens", String(spec.maxModelLen)] : []),
          "--api-key",
          spec.workerToken,
          ...spec.engineArgs,
        ],
        env: downloadEnv(spec),
        authEnforced: true,
      };
    case "ollama":
      return {
        args: ["serve", ...spec.engineArgs],
        env: { ...downloadEnv(spec), OLLAMA_HOST: `0.0.0.0:${port}` },
        authEnforced: false,
      };
  }
}

/**
 * Every secret a spec carries, for redaction of anything the provider echoes back. The TLS key counts in every
 * form it travels in: the PEM, each of its base64 lines (an echo may escape the newlines), and the base64 of the
 * whole PEM that the start-up environment carries.
 */
export function specSecrets(spec: WorkerSpec): string[] {
  const key = spec.tls?.keyPem;
  const keyForms = key
    ? [
        key,
        Buffer.from(key, "utf8").toString("base64"),
        ...key.split(/\r?\n/).filter((line) => line.length > 0 && !line.startsWith("-----")),
      ]
    : [];
  return [spec.workerToken, ...Object.values(spec.env), ...keyForms].filter((s) => s.length >= 4);
}
