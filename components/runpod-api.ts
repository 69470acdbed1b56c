/**
 * A small client for the parts of RunPod's REST v2 API (`{apiBase}/v2/…`, runpod/docs `api-reference-v2/openapi.json`)
 * that the dynamic providers need: serverless endpoints (`/v2/serverless`), the templates GraphQL-era stacks left
 * behind (`/v2/templates`, deletion only) and network volumes (`/v2/network-volumes`). RunPod's GraphQL API is
 * retired in early 2027 and REST v1 was retired on 15 Nov 2026, so nothing here talks to either.
 *
 * The RunPod dynamic providers (`runpod-endpoint.ts`, `runpod-network-volume.ts`) call it from inside their methods,
 * and Pulumi serializes those providers by value, so this module keeps no state and creates nothing at import time:
 * every call takes a plain `RunPodClient` settings object made by `runpodClient()`. What it shares with the
 * controller's adapters — how a failure is classified, when and how long to wait before a retry, redaction — comes
 * from `core/provider-http.ts` (pure functions, serialized with the providers); request bodies are typed by
 * `core/contracts/runpod.ts` (type imports only, erased at run time), so a field the spec lacks is a compile error.
 *
 * Contract:
 * - Bearer auth; errors are RFC 9457 `application/problem+json` `{title, status, detail, errors?: string[]}`
 *   (`ErrorResponse`); they become thrown errors carrying `detail` with the validation `errors`.
 * - 401/403: the key is refused (`auth`), never retried. 422: the body breaks the published schema (`invalid`),
 *   never retried. Any other 4xx but 404 and 429 is `fatal` (or `capacity` by its wording), never retried.
 * - 429 and 5xx are retried with exponential backoff and full jitter, honouring `Retry-After` (or, without it, the
 *   reset time of an exhausted `RateLimit` window), within a bounded number of attempts and total time (the shared
 *   `nextRetryDelayMs`). Timeouts and network errors are transient too.
 * - A create that fails ambiguously (5xx, timeout, dropped connection: it may have happened) is never repeated
 *   blindly: the client looks the object up by its name first and adopts it, so creates are idempotent.
 * - A 404 for one object is "gone" only when the listing works and leaves it out (a wrong `apiBase` answers 404 to
 *   everything; that must never read as a deleted, still-billed endpoint or volume).
 * - The API key travels only in the `Authorization` header (never the URL) and is redacted from every message.
 */
import type {
  CreateEndpointRequest,
  CreateNetworkVolumeRequest,
  Endpoint,
  UpdateEndpointRequest,
} from "../core/contracts/runpod";
import {
  backoffMs,
  classifyFailure,
  DEFAULT_RETRY_POLICY,
  errorFields,
  excerpt,
  nextRetryDelayMs,
  type ProviderErrorKind,
  parseRateLimitReset,
  parseRetryAfter,
  RETRYABLE_KINDS,
  type RetryPolicy,
  redact,
  shapeOf,
} from "../core/provider-http";

export type { Endpoint as RunPodEndpoint } from "../core/contracts/runpod";

/** Retry and timeout settings; every default suits the real API, tests shrink them. */
export interface RetryTuning extends RetryPolicy {
  /** Attempts per request when RunPod answers 429/5xx or does not answer. @default 5 (`DEFAULT_RETRY_POLICY`) */
  readonly maxAttempts: number;
  /** Backoff cap of the first retry; doubles per retry, full jitter. @default 500 */
  readonly baseDelayMs: number;
  /** Longest single backoff (a longer `Retry-After` is still honoured within `maxTotalMs`). @default 20000 */
  readonly maxDelayMs: number;
  /** Total time one request may take across its retries. @default 90000 */
  readonly maxTotalMs: number;
  /** Time to wait for one answer. @default 30000 */
  readonly requestTimeoutMs: number;
  /** Attempts to delete a GraphQL-era template while RunPod still sees it in use (that lags about 2 min). @default 10 */
  readonly templateDeleteAttempts: number;
  /** Pause between those attempts. @default 15000 */
  readonly templateDeleteDelayMs: number;
}

export const DEFAULT_RETRY_TUNING: Readonly<RetryTuning> = {
  ...DEFAULT_RETRY_POLICY,
  requestTimeoutMs: 30_000,
  templateDeleteAttempts: 10,
  templateDeleteDelayMs: 15_000,
};

/** The host of RunPod's REST v2 API (`/v2/…`), the `servers` entry of `openapi.json`. */
export const DEFAULT_RUNPOD_API_BASE = "https://api.runpod.io";

/** The subset of `fetch` the client uses, so tests can pass a stub. `body` is absent on GET and DELETE. */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string; signal: AbortSignal },
) => Promise<{ status: number; headers: { get(name: string): string | null }; text(): Promise<string> }>;

export interface RunPodClientOptions {
  /** RunPod API key (`rpa_…`). */
  apiKey: string;
  /**
   * Host of REST v2 (`{apiBase}/v2/…`); a trailing `/v2` (how RunPod's docs write the v2 base) is accepted too.
   * @default "https://api.runpod.io"
   */
  apiBase?: string;
  /** @default the global fetch */
  fetch?: FetchLike;
  tuning?: Partial<RetryTuning>;
  /** @default setTimeout-based */
  sleep?: (ms: number) => Promise<void>;
  /** Jitter source in [0, 1). @default Math.random */
  random?: () => number;
}

export interface RunPodClient {
  readonly apiKey: string;
  /** REST v2 base, `{apiBase}/v2`, without a trailing slash. */
  readonly v2Url: string;
  readonly fetch: FetchLike;
  readonly tuning: RetryTuning;
  readonly sleep: (ms: number) => Promise<void>;
  readonly random: () => number;
}

export function runpodClient(options: RunPodClientOptions): RunPodClient {
  const base = (options.apiBase ?? DEFAULT_RUNPOD_API_BASE).replace(/\/+$/, "").replace(/\/v2$/, "");
  return {
    apiKey: options.apiKey,
    v2Url: `${base}/v2`,
    fetch: options.fetch ?? ((url, init) => globalThis.fetch(url, init)),
    tuning: { ...DEFAULT_RETRY_TUNING, ...options.tuning },
    sleep: options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
    random: options.random ?? Math.random,
  };
}

/**
 * The shared taxonomy (`ProviderErrorKind`: auth, capacity, rate_limit, transient, invalid, fatal) plus two kinds
 * only a create-or-adopt client has: `ambiguous` (a create may or may not have happened; the caller looks before it
 * repeats) and `conflict` (an object with our name exists but cannot be ours, or several do).
 */
export type RunPodErrorKind = ProviderErrorKind | "ambiguous" | "conflict";

export interface RunPodApiError extends Error {
  readonly operation: string;
  readonly kind: RunPodErrorKind;
  /** The message without the `RunPod <operation> failed:` prefix. */
  readonly detail: string;
  readonly status?: number;
}

export function isRunPodApiError(error: unknown): error is RunPodApiError {
  return error instanceof Error && typeof (error as Partial<RunPodApiError>).kind === "string";
}

function apiError(
  client: RunPodClient,
  operation: string,
  kind: RunPodErrorKind,
  detail: string,
  status?: number,
): RunPodApiError {
  const clean = redact(detail, [client.apiKey, encodeURIComponent(client.apiKey)]);
  const error = new Error(`RunPod ${operation} failed: ${clean}`) as Error & {
    operation: string;
    kind: RunPodErrorKind;
    detail: string;
    status?: number;
  };
  error.name = "RunPodApiError";
  error.operation = operation;
  error.kind = kind;
  error.detail = clean;
  if (status !== undefined) error.status = status;
  return error;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** RunPod's reason in an error body: `detail` with the validation `errors`, else `title`, else an excerpt. */
function reasonOf(client: RunPodClient, text: string): string {
  const { message } = errorFields(parseJson(text));
  return excerpt(message ?? text, [client.apiKey], 500);
}

interface Failure {
  kind: ProviderErrorKind;
  detail: string;
  status?: number;
  retryAfterMs?: number;
  /** The request may have been carried out (5xx, timeout, dropped connection) — unlike a 429. */
  ambiguous: boolean;
}

/**
 * One HTTP exchange with retries. 2xx and 404 go to `interpret`; every other answer is classified by the shared
 * `classifyFailure`: `auth` throws at once, `rate_limit` and `transient` are retried (a `transient` one only with
 * `retryAmbiguous`, since the request may have been carried out), anything else goes to `interpret`, which throws.
 */
async function exchange<T>(
  client: RunPodClient,
  operation: string,
  request: { method: string; url: string; body?: string },
  interpret: (status: number, text: string) => T,
  retryAmbiguous: boolean,
): Promise<T> {
  const { tuning } = client;
  const started = Date.now();
  const headers: Record<string, string> = {
    authorization: `Bearer ${client.apiKey}`,
    // REST v2 answers errors as RFC 9457 problem documents.
    accept: "application/json, application/problem+json",
  };
  if (request.body !== undefined) headers["content-type"] = "application/json";
  for (let attempt = 1; ; attempt++) {
    let failure: Failure;
    try {
      const response = await client.fetch(request.url, {
        method: request.method,
        headers,
        ...(request.body === undefined ? {} : { body: request.body }),
        signal: AbortSignal.timeout(tuning.requestTimeoutMs),
      });
      const text = await response.text();
      const status = response.status;
      if ((status >= 200 && status < 300) || status === 404) return interpret(status, text);
      const fields = errorFields(parseJson(text));
      const kind = classifyFailure({ status, ...fields });
      if (kind === "auth") {
        throw apiError(
          client,
          operation,
          "auth",
          `RunPod refused the API key (HTTP ${status}); check that the key exists, is not revoked and has ` +
            "read/write access (set it with `pulumi config set --secret ai-orchestrator:runpodApiKey …`)",
          status,
        );
      }
      if (!RETRYABLE_KINDS.includes(kind)) return interpret(status, text);
      const now = Date.now();
      failure =
        kind === "rate_limit"
          ? {
              kind,
              detail: `rate limited (HTTP ${status}${fields.message ? `: ${excerpt(fields.message, [client.apiKey])}` : ""})`,
              status,
              retryAfterMs:
                parseRetryAfter(response.headers.get("retry-after") ?? undefined, now) ??
                parseRateLimitReset(response.headers.get("ratelimit")),
              ambiguous: false,
            }
          : { kind, detail: `HTTP ${status} ${excerpt(text, [client.apiKey])}`, status, ambiguous: true };
    } catch (error) {
      if (isRunPodApiError(error)) throw error;
      const name = error instanceof Error ? error.name : "";
      failure = {
        kind: classifyFailure({}),
        detail:
          name === "TimeoutError" || name === "AbortError"
            ? `no answer within ${tuning.requestTimeoutMs} ms`
            : `network error: ${error instanceof Error ? error.message : String(error)}`,
        ambiguous: true,
      };
    }
    if (failure.ambiguous && !retryAmbiguous) {
      throw apiError(
        client,
        operation,
        "ambiguous",
        `${failure.detail}; it may or may not have happened`,
        failure.status,
      );
    }
    const elapsed = Date.now() - started;
    const delay = nextRetryDelayMs({
      failedAttempt: attempt,
      elapsedMs: elapsed,
      ...(failure.retryAfterMs !== undefined ? { retryAfterMs: failure.retryAfterMs } : {}),
      policy: tuning,
      random: client.random,
    });
    if (delay === undefined) {
      const budget =
        attempt < tuning.maxAttempts
          ? ` and ${elapsed} ms` +
            (failure.retryAfterMs !== undefined
              ? ` (RunPod asked to retry after ${Math.ceil(failure.retryAfterMs / 1000)} s, beyond the ${tuning.maxTotalMs} ms budget)`
              : "")
          : "";
      throw apiError(
        client,
        operation,
        failure.kind,
        `${failure.detail}; gave up after ${attempt} attempts${budget}`,
        failure.status,
      );
    }
    await client.sleep(delay);
  }
}

/**
 * One REST v2 call (`{apiBase}/v2{path}`) with retries. Answers 2xx (with the parsed JSON body, or undefined when
 * empty, as on a 204) and 404 (so the caller decides what "not there" means); throws for any other answer with
 * RunPod's problem detail and the shared kind (`invalid` for a 422, `fatal` for a 400, …).
 */
export async function rest(
  client: RunPodClient,
  operation: string,
  method: "GET" | "POST" | "PATCH" | "DELETE",
  path: string,
  options: { body?: unknown; retryAmbiguous?: boolean } = {},
): Promise<{ status: number; data: unknown }> {
  return exchange(
    client,
    operation,
    {
      method,
      url: `${client.v2Url}${path}`,
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
    },
    (status, text) => {
      if (status === 404) return { status, data: undefined };
      if (status < 200 || status >= 300) {
        const fields = errorFields(parseJson(text));
        throw apiError(
          client,
          operation,
          classifyFailure({ status, ...fields }),
          `RunPod answered HTTP ${status}: ${reasonOf(client, text)}`,
          status,
        );
      }
      if (text.trim() === "") return { status, data: undefined };
      const data = parseJson(text);
      if (data === undefined) {
        throw apiError(client, operation, "transient", `HTTP ${status} with a body that is not JSON`, status);
      }
      return { status, data };
    },
    options.retryAmbiguous ?? true,
  );
}

/** A listing or create that answers 404 means the path does not exist there: a wrong `apiBase`, not "empty". */
function wrongBase(client: RunPodClient, operation: string, method: string, path: string): RunPodApiError {
  return apiError(
    client,
    operation,
    "fatal",
    `${method} ${client.v2Url}${path} answered 404; check apiBase (RunPod's REST v2 host, ${DEFAULT_RUNPOD_API_BASE})`,
    404,
  );
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

// ── serverless endpoints ──────────────────────────────────────────────────────────────────────────────────
//
// Contract (openapi.json, operations listEndpoints, getEndpoint, createEndpoint, updateEndpoint, deleteEndpoint):
// - `GET /v2/serverless` → 200 `ListEndpointsResponse` `{endpoints: Endpoint[]}` (wrapped, not paginated);
// - `GET /v2/serverless/{id}` → 200 `Endpoint`, 404 when gone;
// - `POST /v2/serverless` `CreateEndpointRequest` → 201 `Endpoint`; `name`, `type`, `scaling` required, `image`
//   unless `templateId`; exactly one of `gpu`/`cpu`; unknown fields → 422; names are not unique;
// - `PATCH /v2/serverless/{id}` `UpdateEndpointRequest` → 200 `Endpoint`: only the fields present change;
//   `workers`/`scaling`/`timeout` apply promptly, image/env changes roll out as a new release; `type` and the
//   compute family (gpu vs cpu) are not in the body, so they cannot change;
// - `DELETE /v2/serverless/{id}` → 204: deletes the endpoint and its bound template, terminates its workers and
//   cancels its queued and running jobs; 404 when gone.

const ENDPOINTS_PATH = "/serverless";
const endpointPath = (id: string) => `${ENDPOINTS_PATH}/${encodeURIComponent(id)}`;

/** An `Endpoint` as RunPod answered it; only what every reader relies on is checked (RunPod may add fields). */
function endpointOf(client: RunPodClient, operation: string, data: unknown): Endpoint {
  if (
    !isObject(data) ||
    typeof data.id !== "string" ||
    typeof data.name !== "string" ||
    !isObject(data.workers) ||
    !isObject(data.scaling)
  ) {
    throw apiError(
      client,
      operation,
      "transient",
      `expected a serverless endpoint {id, name, workers, scaling, …}; got ${shapeOf(data)}`,
    );
  }
  return data as unknown as Endpoint;
}

/** Every serverless endpoint of the account. */
export async function listEndpoints(client: RunPodClient): Promise<Endpoint[]> {
  const { status, data } = await rest(client, "listEndpoints", "GET", ENDPOINTS_PATH);
  if (status === 404) throw wrongBase(client, "listEndpoints", "GET", ENDPOINTS_PATH);
  const list = isObject(data) ? data.endpoints : undefined;
  if (!Array.isArray(list)) {
    throw apiError(
      client,
      "listEndpoints",
      "transient",
      `expected {endpoints: [...]}; got ${Array.isArray(data) ? "a bare array (a REST v1 answer?)" : shapeOf(data)}`,
      status,
    );
  }
  return list.map((item) => endpointOf(client, "listEndpoints", item));
}

/** After a 404 for one endpoint: it is gone only when the listing works and leaves it out. */
async function confirmEndpointGone(client: RunPodClient, operation: string, id: string): Promise<void> {
  if ((await listEndpoints(client)).some((e) => e.id === id)) {
    throw apiError(
      client,
      operation,
      "transient",
      `RunPod answered 404 for serverless endpoint ${id}, yet lists it; try again later`,
      404,
    );
  }
}

/** The endpoint with this id, or undefined when it no longer exists (404, confirmed by the listing). */
export async function getEndpoint(client: RunPodClient, id: string): Promise<Endpoint | undefined> {
  const { status, data } = await rest(client, "getEndpoint", "GET", endpointPath(id));
  if (status !== 404) return endpointOf(client, "getEndpoint", data);
  await confirmEndpointGone(client, "getEndpoint", id);
  return undefined;
}

/** The endpoint with exactly this name; RunPod does not keep names unique, so several is a `conflict`. */
export async function findEndpointByName(client: RunPodClient, name: string): Promise<Endpoint | undefined> {
  const found = (await listEndpoints(client)).filter((e) => e.name === name);
  if (found.length > 1) {
    throw apiError(
      client,
      "findEndpointByName",
      "conflict",
      `${found.length} endpoints are named "${name}" (${found.map((e) => e.id).join(", ")}); delete the extra ones in the RunPod console`,
    );
  }
  return found[0];
}

/** Order-insensitive for maps (env); lists compared as given unless `asSet`. */
function sameValue(a: unknown, b: unknown, asSet = false): boolean {
  const norm = (v: unknown): unknown => {
    if (Array.isArray(v)) return asSet ? [...v].map(String).sort() : v;
    if (isObject(v))
      return Object.fromEntries(Object.entries(v).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
    return v ?? null;
  };
  return JSON.stringify(norm(a)) === JSON.stringify(norm(b));
}

/**
 * The partial update that brings an existing endpoint to what `want` asks for: only the fields that differ. A
 * CUDA floor is sent with `allowedCudaVersions: []`, because a non-empty allowed set beside a floor is a 400 and
 * "setting one does not clear the other" (`UpdateEndpointGpuConfig`).
 */
export function endpointPatchToMatch(current: Endpoint, want: CreateEndpointRequest): UpdateEndpointRequest {
  const patch: UpdateEndpointRequest = {};
  if (want.image !== undefined && current.image !== want.image) patch.image = want.image;
  if (want.env !== undefined && !sameValue(current.env ?? {}, want.env)) patch.env = want.env;
  if (want.disk !== undefined && current.disk !== want.disk) patch.disk = want.disk;
  if (want.gpu) {
    const gpu: NonNullable<UpdateEndpointRequest["gpu"]> = {};
    if (!sameValue(current.gpu?.pools, want.gpu.pools, true)) gpu.pools = want.gpu.pools;
    if ((current.gpu?.count ?? 1) !== (want.gpu.count ?? 1)) gpu.count = want.gpu.count ?? 1;
    const floor = want.gpu.minCudaVersion ?? "";
    if ((current.gpu?.minCudaVersion ?? "") !== floor) gpu.minCudaVersion = floor;
    if (floor !== "" && (current.gpu?.allowedCudaVersions?.length ?? 0) > 0) gpu.allowedCudaVersions = [];
    if (Object.keys(gpu).length > 0) patch.gpu = gpu;
  }
  if (want.workers) {
    const workers: NonNullable<UpdateEndpointRequest["workers"]> = {};
    if (want.workers.min !== undefined && current.workers.min !== want.workers.min)
      workers.min = want.workers.min;
    if (want.workers.max !== undefined && current.workers.max !== want.workers.max)
      workers.max = want.workers.max;
    if (want.workers.idleTimeout !== undefined && current.workers.idleTimeout !== want.workers.idleTimeout)
      workers.idleTimeout = want.workers.idleTimeout;
    if (Object.keys(workers).length > 0) patch.workers = workers;
  }
  if (!sameValue(current.scaling, want.scaling)) patch.scaling = want.scaling;
  if (want.flashboot !== undefined && current.flashboot !== want.flashboot) patch.flashboot = want.flashboot;
  if (want.dataCenterIds !== undefined && !sameValue(current.dataCenterIds, want.dataCenterIds, true))
    patch.dataCenterIds = want.dataCenterIds;
  const volumes = want.networkVolumes ?? [];
  if (!sameValue(current.networkVolumes, volumes, true)) patch.networkVolumes = volumes;
  if (want.timeout !== undefined && current.timeout !== want.timeout) patch.timeout = want.timeout;
  return patch;
}

/**
 * `PATCH /v2/serverless/{id}` with only the fields that change. An empty patch makes no call and reads the
 * endpoint instead. A 404 is an error naming the fix (the endpoint was deleted outside Pulumi).
 */
export async function updateEndpoint(
  client: RunPodClient,
  id: string,
  patch: UpdateEndpointRequest,
): Promise<Endpoint> {
  const missing = () =>
    apiError(
      client,
      "updateEndpoint",
      "fatal",
      `serverless endpoint ${id} does not exist (HTTP 404); run \`pulumi refresh\` to drop it from the state`,
      404,
    );
  if (Object.keys(patch).length === 0) {
    const current = await getEndpoint(client, id);
    if (!current) throw missing();
    return current;
  }
  const { status, data } = await rest(client, "updateEndpoint", "PATCH", endpointPath(id), { body: patch });
  if (status === 404) {
    await confirmEndpointGone(client, "updateEndpoint", id);
    throw missing();
  }
  if (data !== undefined) return endpointOf(client, "updateEndpoint", data);
  // The spec promises the endpoint in the answer; read it back if it is not there.
  const current = await getEndpoint(client, id);
  if (!current) throw missing();
  return current;
}

/**
 * Creates a serverless endpoint, crash-safe: an endpoint with the same name is adopted (patched to `body`) instead
 * of creating a second, both before the create (a crash between create and state write) and after a create whose
 * answer was lost (5xx, timeout, dropped connection). A namesake of another routing type or compute family cannot
 * be adopted (neither can change), nor can several namesakes: both are a `conflict`.
 */
export async function createEndpoint(client: RunPodClient, body: CreateEndpointRequest): Promise<Endpoint> {
  const adopt = async (existing: Endpoint): Promise<Endpoint> => {
    const conflict = (why: string) =>
      apiError(
        client,
        "createEndpoint",
        "conflict",
        `an endpoint named "${body.name}" already exists (${existing.id}) ${why}; choose another name or delete that endpoint`,
      );
    if (existing.type !== undefined && existing.type !== body.type)
      throw conflict(`as a ${existing.type} endpoint, not ${body.type} (the type cannot change)`);
    if (body.gpu && (existing.gpu === null || existing.gpu === undefined))
      throw conflict("as a CPU endpoint (the compute family cannot change)");
    return updateEndpoint(client, existing.id, endpointPatchToMatch(existing, body));
  };

  const existing = await findEndpointByName(client, body.name);
  if (existing) return adopt(existing);
  for (let attempt = 1; ; attempt++) {
    try {
      const { status, data } = await rest(client, "createEndpoint", "POST", ENDPOINTS_PATH, {
        body,
        retryAmbiguous: false,
      });
      if (status === 404) throw wrongBase(client, "createEndpoint", "POST", ENDPOINTS_PATH);
      return endpointOf(client, "createEndpoint", data);
    } catch (error) {
      if (!isRunPodApiError(error) || error.kind !== "ambiguous") throw error;
      const found = await findEndpointByName(client, body.name);
      if (found) return adopt(found);
      if (attempt >= client.tuning.maxAttempts) throw error;
      await client.sleep(backoffMs(attempt, client.tuning, client.random));
    }
  }
}

/**
 * Deletes a serverless endpoint (`DELETE`, 204): RunPod terminates its workers, cancels its queued and running
 * jobs and deletes its bound template. Already gone (404, confirmed by the listing) is success. Deletes are
 * idempotent, so every transient failure is retried.
 */
export async function deleteEndpoint(client: RunPodClient, id: string): Promise<void> {
  const { status } = await rest(client, "deleteEndpoint", "DELETE", endpointPath(id));
  if (status === 404) await confirmEndpointGone(client, "deleteEndpoint", id);
}

// ── templates (cleanup of GraphQL-era stacks only) ────────────────────────────────────────────────────────
//
// Contract (openapi.json, operation deleteTemplate): `DELETE /v2/templates/{id}` → 204; 404 when gone (or not
// ours); 400 "Template is in use by a pod or serverless endpoint and cannot be deleted" while still bound.

/**
 * Deletes a template a GraphQL-era stack created. Already gone (404: RunPod deletes an endpoint's bound template
 * with the endpoint) is success; a 400 "in use" is retried, because RunPod lags behind a just-deleted endpoint.
 */
export async function deleteTemplate(client: RunPodClient, id: string): Promise<void> {
  const { tuning } = client;
  const path = `/templates/${encodeURIComponent(id)}`;
  for (let attempt = 1; ; attempt++) {
    try {
      await rest(client, "deleteTemplate", "DELETE", path);
      return;
    } catch (error) {
      if (!isRunPodApiError(error) || error.status !== 400) throw error;
      if (attempt >= tuning.templateDeleteAttempts) {
        throw apiError(
          client,
          "deleteTemplate",
          error.kind,
          `template ${id} still refused after ${attempt} attempts: ${error.detail}`,
          400,
        );
      }
      await client.sleep(tuning.templateDeleteDelayMs);
    }
  }
}

// ── network volumes ───────────────────────────────────────────────────────────────────────────────────────
//
// Contract (openapi.json and `network-volumes/*.mdx`; runpod/runpod-plugins-official
// `runpod-migrate/reference/rest-v1-to-v2.md`):
// - `GET /v2/network-volumes` → 200 `{networkVolumes: NetworkVolume[]}` (wrapped, not paginated);
// - `POST /v2/network-volumes {name, size, dataCenter, type?}` → 201 NetworkVolume; `size` 10..4096 GB; `type`
//   (STANDARD | HIGH_PERFORMANCE) defaults to the data centre's primary tier and is immutable; names need not be
//   unique; a data centre without volume support is a 400 whose detail lists those that have it;
// - `GET /v2/network-volumes/{id}` → 200 NetworkVolume, 404 when gone;
// - `PATCH /v2/network-volumes/{id} {name?, size?}` (at least one) → 200 NetworkVolume; a smaller size is a 400;
// - `DELETE /v2/network-volumes/{id}` → 204 without a body, 404 when gone;
// - NetworkVolume is `{id, name, size, dataCenter, type}`; unknown body fields (e.g. v1's `dataCenterId`) → 422.

/** Storage tier of a network volume; set at creation and immutable. */
export type NetworkVolumeType = "STANDARD" | "HIGH_PERFORMANCE";
export const NETWORK_VOLUME_TYPES: readonly NetworkVolumeType[] = ["STANDARD", "HIGH_PERFORMANCE"];

/** A RunPod network volume (REST v2 `NetworkVolume`). `size` is in GB. */
export interface NetworkVolume {
  id: string;
  name: string;
  size: number;
  /** Data centre id such as "EU-RO-1" (v1 called it `dataCenterId`). */
  dataCenter: string;
  /** Storage tier; a string, so a tier RunPod adds later is read, not refused. Absent if RunPod leaves it out. */
  type?: string;
}

/** `POST /v2/network-volumes` (`CreateNetworkVolumeRequest`): size in GB (10–4096); names need not be unique. */
export interface NetworkVolumeInput {
  name: string;
  size: number;
  dataCenter: string;
  /** @default the data centre's primary tier */
  type?: NetworkVolumeType;
}

function volumeOf(client: RunPodClient, operation: string, data: unknown): NetworkVolume {
  const v = data as Partial<Record<keyof NetworkVolume, unknown>> | null | undefined;
  if (
    typeof v !== "object" ||
    v === null ||
    typeof v.id !== "string" ||
    typeof v.name !== "string" ||
    typeof v.size !== "number" ||
    typeof v.dataCenter !== "string"
  ) {
    throw apiError(
      client,
      operation,
      "transient",
      `expected a network volume {id, name, size, dataCenter, type}; got ${shapeOf(data)}`,
    );
  }
  return {
    id: v.id,
    name: v.name,
    size: v.size,
    dataCenter: v.dataCenter,
    ...(typeof v.type === "string" ? { type: v.type } : {}),
  };
}

const VOLUMES_PATH = "/network-volumes";
const volumePath = (id: string) => `${VOLUMES_PATH}/${encodeURIComponent(id)}`;

/** Every network volume of the account (v2 wraps the list as `{networkVolumes: [...]}`). */
export async function listNetworkVolumes(client: RunPodClient): Promise<NetworkVolume[]> {
  const { status, data } = await rest(client, "listNetworkVolumes", "GET", VOLUMES_PATH);
  if (status === 404) throw wrongBase(client, "listNetworkVolumes", "GET", VOLUMES_PATH);
  const list = (data as { networkVolumes?: unknown } | null | undefined)?.networkVolumes;
  if (!Array.isArray(list)) {
    throw apiError(
      client,
      "listNetworkVolumes",
      "transient",
      `expected {networkVolumes: [...]}; got ${Array.isArray(data) ? "a bare array (a REST v1 answer?)" : shapeOf(data)}`,
      status,
    );
  }
  return list.map((item) => volumeOf(client, "listNetworkVolumes", item));
}

/**
 * After a 404 for one volume: true when it is really gone. The listing must work and leave the volume out, so a
 * wrong `apiBase` (or a retired API version) that answers 404 to everything is an error, not a deleted volume —
 * else `refresh` would drop live, billed volumes from the state and `destroy` would leave them behind.
 */
async function confirmVolumeGone(client: RunPodClient, operation: string, id: string): Promise<void> {
  if ((await listNetworkVolumes(client)).some((v) => v.id === id)) {
    throw apiError(
      client,
      operation,
      "transient",
      `RunPod answered 404 for network volume ${id}, yet lists it; try again later`,
      404,
    );
  }
}

/** The volume with this id, or undefined when it no longer exists (404, confirmed by the listing). */
export async function getNetworkVolume(client: RunPodClient, id: string): Promise<NetworkVolume | undefined> {
  const { status, data } = await rest(client, "getNetworkVolume", "GET", volumePath(id));
  if (status !== 404) return volumeOf(client, "getNetworkVolume", data);
  await confirmVolumeGone(client, "getNetworkVolume", id);
  return undefined;
}

/**
 * The volume with exactly this name in this data centre. A volume of the same name elsewhere is another volume;
 * two in the same data centre is a `conflict`, because the provider could not tell which one is ours.
 */
export async function findNetworkVolume(
  client: RunPodClient,
  name: string,
  dataCenter: string,
): Promise<NetworkVolume | undefined> {
  const found = (await listNetworkVolumes(client)).filter(
    (v) => v.name === name && v.dataCenter === dataCenter,
  );
  if (found.length > 1) {
    throw apiError(
      client,
      "findNetworkVolume",
      "conflict",
      `${found.length} network volumes are named "${name}" in ${dataCenter} (${found.map((v) => v.id).join(", ")}); ` +
        "delete or rename the extra ones in the RunPod console",
    );
  }
  return found[0];
}

/**
 * `PATCH /v2/network-volumes/{id}`: rename and/or grow. Only the given fields change; RunPod refuses a smaller
 * size with a 400 (an equal one is accepted) and an empty body, so an empty patch only reads the volume.
 */
export async function updateNetworkVolume(
  client: RunPodClient,
  id: string,
  patch: { name?: string; size?: number },
): Promise<NetworkVolume> {
  const body = {
    ...(patch.name !== undefined ? { name: patch.name } : {}),
    ...(patch.size !== undefined ? { size: patch.size } : {}),
  };
  const missing = () =>
    apiError(
      client,
      "updateNetworkVolume",
      "fatal",
      `network volume ${id} does not exist (HTTP 404); run \`pulumi refresh\` to drop it from the state`,
      404,
    );
  if (Object.keys(body).length === 0) {
    const current = await getNetworkVolume(client, id);
    if (!current) throw missing();
    return current;
  }
  const { status, data } = await rest(client, "updateNetworkVolume", "PATCH", volumePath(id), { body });
  if (status === 404) throw missing();
  // The spec promises the volume in the answer; read it back if it is not there.
  if (data === undefined) {
    const current = await getNetworkVolume(client, id);
    if (!current) {
      throw apiError(
        client,
        "updateNetworkVolume",
        "fatal",
        `network volume ${id} vanished during the update`,
      );
    }
    return current;
  }
  return volumeOf(client, "updateNetworkVolume", data);
}

/**
 * Creates a network volume, crash-safe: a volume with the same name in the same data centre is adopted (grown if
 * smaller) instead of creating a second, both before the create (a crash between create and state write) and
 * after a create whose answer was lost (5xx, timeout, dropped connection). A larger namesake is refused, because
 * a volume cannot shrink, and so is one of another storage tier, because the tier cannot change.
 */
export async function createNetworkVolume(
  client: RunPodClient,
  input: NetworkVolumeInput,
): Promise<NetworkVolume> {
  const adopt = async (existing: NetworkVolume) => {
    const conflict = (why: string) =>
      apiError(
        client,
        "createNetworkVolume",
        "conflict",
        `a network volume named "${input.name}" already exists in ${input.dataCenter} (${existing.id}) ${why}`,
      );
    if (input.type !== undefined && existing.type !== undefined && existing.type !== input.type) {
      throw conflict(
        `with storage type ${existing.type}, not ${input.type}, and the type cannot change; set type to ` +
          `${existing.type} to adopt it, or choose another name`,
      );
    }
    if (existing.size === input.size) return existing;
    if (existing.size < input.size) return updateNetworkVolume(client, existing.id, { size: input.size });
    throw conflict(
      `with ${existing.size} GB, more than the ${input.size} GB asked, and volumes cannot shrink; set sizeGb to ` +
        `${existing.size} or more to adopt it, or choose another name`,
    );
  };

  const existing = await findNetworkVolume(client, input.name, input.dataCenter);
  if (existing) return adopt(existing);
  const body: CreateNetworkVolumeRequest = {
    name: input.name,
    size: input.size,
    dataCenter: input.dataCenter,
    ...(input.type !== undefined ? { type: input.type } : {}),
  };
  for (let attempt = 1; ; attempt++) {
    try {
      const { status, data } = await rest(client, "createNetworkVolume", "POST", VOLUMES_PATH, {
        body,
        retryAmbiguous: false,
      });
      if (status === 404) throw wrongBase(client, "createNetworkVolume", "POST", VOLUMES_PATH);
      return volumeOf(client, "createNetworkVolume", data);
    } catch (error) {
      if (!isRunPodApiError(error) || error.kind !== "ambiguous") throw error;
      const found = await findNetworkVolume(client, input.name, input.dataCenter);
      if (found) return adopt(found);
      if (attempt >= client.tuning.maxAttempts) throw error;
      await client.sleep(backoffMs(attempt, client.tuning, client.random));
    }
  }
}

/**
 * Deletes a network volume (204). Already gone (404, confirmed by the listing) is success. Deletes are
 * idempotent, so every transient failure is retried.
 */
export async function deleteNetworkVolume(client: RunPodClient, id: string): Promise<void> {
  const { status } = await rest(client, "deleteNetworkVolume", "DELETE", volumePath(id));
  if (status === 404) await confirmVolumeGone(client, "deleteNetworkVolume", id);
}
