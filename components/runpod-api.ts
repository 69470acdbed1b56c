/**
 * A small client for the parts of RunPod's APIs that the dynamic providers need: GraphQL (`POST {apiBase}/graphql`)
 * for serverless templates and endpoints, and REST v2 (`{apiBase}/v2/network-volumes`) for network volumes. The
 * RunPod dynamic providers (`runpod-endpoint.ts`, `runpod-network-volume.ts`) call it from inside their methods, and
 * Pulumi serializes those providers by value, so this module keeps no state and creates nothing at import time:
 * every call takes a plain `RunPodClient` settings object made by `runpodClient()`.
 *
 * Network volumes use REST v2 because REST v1 (`rest.runpod.io/v1/networkvolumes`) was retired on 15 Nov 2026
 * (providers.md §1.1); v2 lives on the same host as GraphQL, so one `apiBase` serves both.
 *
 * Contract (providers.md §1.1, §1.2, §1.4; runpod/docs `api-reference-v2/openapi.json`):
 * - GraphQL errors arrive as HTTP 200 with `errors[0].message`; they become thrown errors carrying that message.
 *   REST v2 errors are RFC 9457 `application/problem+json` `{title, status, detail, errors?: string[]}`; they
 *   become thrown errors carrying `detail` (and the validation `errors`).
 * - A bad key is HTTP 401 (403 for a key without access); neither is retried.
 * - 429 and 5xx are transient: retried with exponential backoff and jitter, honouring `Retry-After` (or, without
 *   it, the reset time of an exhausted `RateLimit` window), within a bounded number of attempts and total time.
 *   Timeouts and network errors are transient too.
 * - A create that fails ambiguously (5xx, timeout, dropped connection: it may have happened) is never repeated
 *   blindly: the client looks the object up by its name first and adopts it, so creates are idempotent.
 * - The API key travels only in the `Authorization` header (never the URL) and is scrubbed from every message.
 */

export type ScalerType = "QUEUE_DELAY" | "REQUEST_COUNT";
export type FlashBootType = "OFF" | "FLASHBOOT";

export interface EnvVar {
  key: string;
  value: string;
}

/** `saveTemplate(input:)`: an upsert keyed by `id`; template names are unique per account. */
export interface TemplateInput {
  /** Present to update an existing template, absent to create one. */
  id?: string;
  name: string;
  imageName: string;
  containerDiskInGb: number;
  /** Serverless templates have no pod volume. */
  volumeInGb: number;
  dockerArgs: string;
  env: EnvVar[];
  isServerless: boolean;
  /** e.g. `8000/http`; serverless workers need none. */
  ports?: string;
}

export interface Template {
  id: string;
  name: string;
  imageName: string;
  containerDiskInGb: number;
  volumeInGb: number;
  isServerless: boolean;
  env: EnvVar[];
}

/** `saveEndpoint(input:)`: creates without `id`, updates with it (and then needs the full input again). */
export interface EndpointInput {
  id?: string;
  /** 3+ characters. */
  name: string;
  templateId: string;
  /** Comma string of pool ids, e.g. `ADA_24,AMPERE_24`. */
  gpuIds: string;
  workersMin: number;
  workersMax: number;
  /** Seconds a worker stays up after its last job. */
  idleTimeout: number;
  scalerType: ScalerType;
  scalerValue: number;
  /** Comma string of data-centre ids; empty = any. */
  locations?: string;
  networkVolumeId?: string | null;
  flashBootType: FlashBootType;
}

export interface Endpoint {
  id: string;
  name: string;
  templateId: string;
  gpuIds: string;
  workersMin: number;
  workersMax: number;
  idleTimeout: number;
  scalerType: ScalerType;
  scalerValue: number;
  locations: string | null;
  networkVolumeId: string | null;
  flashBootType: FlashBootType | null;
}

/** Retry and timeout settings; every default suits the real API, tests shrink them. */
export interface RetryTuning {
  /** Attempts per request when RunPod answers 429/5xx or does not answer. @default 5 */
  maxAttempts: number;
  /** First backoff; doubles per attempt, with jitter. @default 500 */
  baseDelayMs: number;
  /** Longest single backoff (a longer `Retry-After` is still honoured within `maxTotalMs`). @default 8000 */
  maxDelayMs: number;
  /** Total time one request may take across its retries. @default 60000 */
  maxTotalMs: number;
  /** Time to wait for one answer. @default 30000 */
  requestTimeoutMs: number;
  /** `deleteEndpoint` attempts while RunPod refuses because workers still drain. @default 4 */
  deleteAttempts: number;
  /** Pause before the second delete attempt; doubles after that. @default 2000 */
  deleteDelayMs: number;
  /** `deleteTemplate` attempts while RunPod still sees the template in use (that lags about 2 min). @default 10 */
  templateDeleteAttempts: number;
  /** Pause between `deleteTemplate` attempts. @default 15000 */
  templateDeleteDelayMs: number;
}

export const DEFAULT_RETRY_TUNING: Readonly<RetryTuning> = {
  maxAttempts: 5,
  baseDelayMs: 500,
  maxDelayMs: 8_000,
  maxTotalMs: 60_000,
  requestTimeoutMs: 30_000,
  deleteAttempts: 4,
  deleteDelayMs: 2_000,
  templateDeleteAttempts: 10,
  templateDeleteDelayMs: 15_000,
};

/**
 * The host of RunPod's GraphQL API (`/graphql`) and REST v2 (`/v2/…`). REST v1 (`https://rest.runpod.io/v1`) was
 * retired on 15 Nov 2026 (providers.md §1.1), so nothing here talks to it any more.
 */
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
   * Host of GraphQL (`{apiBase}/graphql`) and REST v2 (`{apiBase}/v2/…`); a trailing `/v2` (how RunPod's docs
   * write the v2 base) is accepted too. @default "https://api.runpod.io"
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
  readonly graphqlUrl: string;
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
    graphqlUrl: `${base}/graphql`,
    v2Url: `${base}/v2`,
    fetch: options.fetch ?? ((url, init) => globalThis.fetch(url, init)),
    tuning: { ...DEFAULT_RETRY_TUNING, ...options.tuning },
    sleep: options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
    random: options.random ?? Math.random,
  };
}

/**
 * auth: key refused (401/403). graphql: RunPod answered with `errors[]`. rejected: the REST API refused the
 * request (a 4xx other than 401/403/429, with RunPod's reason). transient: 429/5xx/timeouts outlasted the
 * retries. ambiguous: a create may or may not have happened. protocol: an answer the client cannot read.
 * conflict: an object with our name exists but is not ours.
 */
export type RunPodErrorKind =
  | "auth"
  | "graphql"
  | "rejected"
  | "transient"
  | "ambiguous"
  | "protocol"
  | "conflict";

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

/** Replaces the API key (and its URL-encoded form) wherever it appears. */
function scrub(text: string, apiKey: string): string {
  if (apiKey.length < 4) return text;
  return text.split(apiKey).join("***").split(encodeURIComponent(apiKey)).join("***");
}

function apiError(
  client: RunPodClient,
  operation: string,
  kind: RunPodErrorKind,
  detail: string,
  status?: number,
): RunPodApiError {
  const clean = scrub(detail, client.apiKey);
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

/** Seconds or an HTTP date → milliseconds from now; undefined when absent or unreadable. */
function parseRetryAfter(value: string | null): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/**
 * Without a Retry-After: how long until every exhausted window of a REST v2 `RateLimit` header resets, e.g.
 * `"minute";r=0;t=12, "hour";r=2800;t=1812` → 12 s. Undefined when absent, unreadable or nothing is exhausted.
 */
function parseRateLimitReset(value: string | null): number | undefined {
  if (value === null) return undefined;
  let waitSeconds: number | undefined;
  for (const member of value.split(",")) {
    const params = new Map(
      member
        .split(";")
        .slice(1)
        .map((p) => p.trim().split("=", 2) as [string, string | undefined]),
    );
    const remaining = Number(params.get("r"));
    const resetSeconds = Number(params.get("t"));
    if (params.has("r") && remaining <= 0 && Number.isFinite(resetSeconds) && resetSeconds >= 0) {
      waitSeconds = Math.max(waitSeconds ?? 0, resetSeconds);
    }
  }
  return waitSeconds === undefined ? undefined : waitSeconds * 1000;
}

function excerpt(text: string, max = 200): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

interface Failure {
  detail: string;
  status?: number;
  retryAfterMs?: number;
  /** The request may have been carried out (5xx, timeout, dropped connection) — unlike a 429. */
  ambiguous: boolean;
}

/**
 * One HTTP exchange with retries — what GraphQL and REST calls share. 401/403 throw an `auth` error; 429, 5xx,
 * timeouts and network errors are retried (5xx, timeouts and network errors only when `retryAmbiguous`, since the
 * request may have been carried out); every other answer goes to `interpret`, which returns the result or throws.
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
      if (status === 401 || status === 403) {
        throw apiError(
          client,
          operation,
          "auth",
          `RunPod refused the API key (HTTP ${status}); check that the key exists, is not revoked and has ` +
            "read/write access (set it with `pulumi config set --secret ai-orchestrator:runpodApiKey …`)",
          status,
        );
      }
      if (status === 429) {
        const reason = problemOf(text)?.detail;
        failure = {
          detail: `rate limited (HTTP 429${reason ? `: ${excerpt(reason)}` : ""})`,
          status,
          retryAfterMs:
            parseRetryAfter(response.headers.get("retry-after")) ??
            parseRateLimitReset(response.headers.get("ratelimit")),
          ambiguous: false,
        };
      } else if (status >= 500) {
        failure = { detail: `HTTP ${status} ${excerpt(text)}`.trim(), status, ambiguous: true };
      } else {
        return interpret(status, text);
      }
    } catch (error) {
      if (isRunPodApiError(error)) throw error;
      const name = error instanceof Error ? error.name : "";
      failure = {
        detail:
          name === "TimeoutError" || name === "AbortError"
            ? `no answer within ${tuning.requestTimeoutMs} ms`
            : `network error: ${error instanceof Error ? error.message : String(error)}`,
        ambiguous: true,
      };
    }
    if (failure.ambiguous && !retryAmbiguous) {
      throw apiError(client, operation, "ambiguous", `${failure.detail}; it may or may not have happened`);
    }
    if (attempt >= tuning.maxAttempts) {
      throw apiError(
        client,
        operation,
        "transient",
        `${failure.detail}; gave up after ${attempt} attempts`,
        failure.status,
      );
    }
    const backoff = Math.min(tuning.maxDelayMs, tuning.baseDelayMs * 2 ** (attempt - 1));
    const delay = failure.retryAfterMs ?? backoff / 2 + (client.random() * backoff) / 2;
    const elapsed = Date.now() - started;
    if (elapsed + delay > tuning.maxTotalMs) {
      const wait =
        failure.retryAfterMs !== undefined ? `RunPod asked to retry after ${Math.ceil(delay / 1000)} s` : "";
      throw apiError(
        client,
        operation,
        "transient",
        `${failure.detail}; gave up after ${attempt} attempts and ${elapsed} ms` +
          (wait ? ` (${wait}, beyond the ${tuning.maxTotalMs} ms budget)` : ""),
        failure.status,
      );
    }
    await client.sleep(delay);
  }
}

/**
 * One GraphQL operation with retries. `retryAmbiguous: false` (creates) turns a 5xx or timeout into an
 * `ambiguous` error at once, so the caller can look before it repeats the create.
 */
export async function graphql<T>(
  client: RunPodClient,
  operation: string,
  query: string,
  variables: Record<string, unknown> = {},
  options: { retryAmbiguous?: boolean } = {},
): Promise<T> {
  return exchange(
    client,
    operation,
    { method: "POST", url: client.graphqlUrl, body: JSON.stringify({ query, variables }) },
    (status, text) => {
      if (status < 200 || status >= 300) {
        throw apiError(client, operation, "protocol", `HTTP ${status} ${excerpt(text)}`.trim(), status);
      }
      let parsed: { data?: unknown; errors?: { message?: unknown }[] };
      try {
        parsed = JSON.parse(text) as typeof parsed;
      } catch {
        throw apiError(client, operation, "protocol", `HTTP ${status} with a body that is not JSON`, status);
      }
      const first = parsed.errors?.[0];
      if (first !== undefined) {
        const message = typeof first.message === "string" ? first.message : JSON.stringify(first);
        throw apiError(client, operation, "graphql", `RunPod answered: ${message}`, status);
      }
      if (parsed.data === undefined || parsed.data === null) {
        throw apiError(client, operation, "protocol", "the answer has neither data nor errors", status);
      }
      return parsed.data as T;
    },
    options.retryAmbiguous ?? true,
  );
}

const TEMPLATE_FIELDS = "id name imageName containerDiskInGb volumeInGb isServerless env { key value }";
const ENDPOINT_FIELDS =
  "id name templateId gpuIds workersMin workersMax idleTimeout scalerType scalerValue locations networkVolumeId flashBootType";

const SAVE_TEMPLATE = `mutation SaveTemplate($input: SaveTemplateInput!) { saveTemplate(input: $input) { ${TEMPLATE_FIELDS} } }`;
const SAVE_ENDPOINT = `mutation SaveEndpoint($input: EndpointInput!) { saveEndpoint(input: $input) { ${ENDPOINT_FIELDS} } }`;
const LIST_TEMPLATES = `query PodTemplates { myself { podTemplates { ${TEMPLATE_FIELDS} } } }`;
const LIST_ENDPOINTS = `query Endpoints { myself { endpoints { ${ENDPOINT_FIELDS} } } }`;

/** Every template of the account. */
export async function listTemplates(client: RunPodClient): Promise<Template[]> {
  const data = await graphql<{ myself: { podTemplates: Template[] | null } }>(
    client,
    "listTemplates",
    LIST_TEMPLATES,
  );
  return data.myself.podTemplates ?? [];
}

export async function findTemplateByName(client: RunPodClient, name: string): Promise<Template | undefined> {
  return (await listTemplates(client)).find((t) => t.name === name);
}

const sameEnv = (a: readonly EnvVar[], b: readonly EnvVar[]): boolean => {
  const norm = (env: readonly EnvVar[]) =>
    JSON.stringify(
      [...env].map((e) => [e.key, e.value]).sort(([x], [y]) => (x! < y! ? -1 : x! > y! ? 1 : 0)),
    );
  return norm(a) === norm(b);
};

const matchesTemplate = (t: Template, input: TemplateInput): boolean =>
  t.imageName === input.imageName &&
  t.containerDiskInGb === input.containerDiskInGb &&
  sameEnv(t.env ?? [], input.env);

/**
 * Creates or updates a template. Without `id` the template is looked up by its exact name first and adopted
 * (updated in place if its spec differs), so a create that crashed halfway — or answered 500 after creating —
 * is repeated safely instead of failing on RunPod's unique-name rule.
 */
export async function saveTemplate(client: RunPodClient, input: TemplateInput): Promise<Template> {
  const upsert = async (withId: TemplateInput, retryAmbiguous: boolean) =>
    (
      await graphql<{ saveTemplate: Template }>(
        client,
        "saveTemplate",
        SAVE_TEMPLATE,
        { input: withId },
        { retryAmbiguous },
      )
    ).saveTemplate;
  const adopt = async (existing: Template) =>
    matchesTemplate(existing, input) ? existing : upsert({ ...input, id: existing.id }, true);

  if (input.id !== undefined) return upsert(input, true);
  const existing = await findTemplateByName(client, input.name);
  if (existing) return adopt(existing);
  for (let attempt = 1; ; attempt++) {
    try {
      return await upsert(input, false);
    } catch (error) {
      if (!isRunPodApiError(error) || (error.kind !== "ambiguous" && error.kind !== "graphql")) throw error;
      // A duplicate name (someone — or our own earlier attempt — created it) or an answer we could not read.
      const found = await findTemplateByName(client, input.name);
      if (found) return adopt(found);
      if (error.kind === "graphql" || attempt >= client.tuning.maxAttempts) throw error;
      await client.sleep(client.tuning.baseDelayMs * 2 ** (attempt - 1));
    }
  }
}

/** Deletes a template by name. Already gone is success; "in use" is retried because RunPod lags behind. */
export async function deleteTemplate(client: RunPodClient, templateName: string): Promise<void> {
  const { tuning } = client;
  if (!(await findTemplateByName(client, templateName))) return;
  for (let attempt = 1; ; attempt++) {
    try {
      await graphql(
        client,
        "deleteTemplate",
        `mutation DeleteTemplate { deleteTemplate(templateName: ${JSON.stringify(templateName)}) }`,
      );
      return;
    } catch (error) {
      if (!isRunPodApiError(error) || error.kind !== "graphql") throw error;
      if (!(await findTemplateByName(client, templateName))) return;
      if (attempt >= tuning.templateDeleteAttempts) {
        throw apiError(
          client,
          "deleteTemplate",
          "graphql",
          `template "${templateName}" still refused after ${attempt} attempts: ${error.detail}`,
        );
      }
      await client.sleep(tuning.templateDeleteDelayMs);
    }
  }
}

/** Every serverless endpoint of the account. */
export async function listEndpoints(client: RunPodClient): Promise<Endpoint[]> {
  const data = await graphql<{ myself: { endpoints: Endpoint[] | null } }>(
    client,
    "listEndpoints",
    LIST_ENDPOINTS,
  );
  return data.myself.endpoints ?? [];
}

/** The endpoint with this id, or undefined when it no longer exists. */
export async function getEndpoint(client: RunPodClient, id: string): Promise<Endpoint | undefined> {
  return (await listEndpoints(client)).find((e) => e.id === id);
}

/** The endpoint with exactly this name; RunPod does not promise unique names, so several is an error. */
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

/**
 * Creates or updates an endpoint. Without `id`, an endpoint of the same name on the same template is adopted
 * (and updated to `input`), and a create that fails ambiguously is looked up before it is repeated.
 */
export async function saveEndpoint(client: RunPodClient, input: EndpointInput): Promise<Endpoint> {
  const upsert = async (withId: EndpointInput, retryAmbiguous: boolean) =>
    (
      await graphql<{ saveEndpoint: Endpoint }>(
        client,
        "saveEndpoint",
        SAVE_ENDPOINT,
        { input: withId },
        { retryAmbiguous },
      )
    ).saveEndpoint;
  const adopt = (existing: Endpoint) => {
    if (existing.templateId !== input.templateId) {
      throw apiError(
        client,
        "saveEndpoint",
        "conflict",
        `an endpoint named "${input.name}" already exists (${existing.id}) on template ${existing.templateId}, ` +
          `not ${input.templateId}; choose another name or delete that endpoint`,
      );
    }
    return upsert({ ...input, id: existing.id }, true);
  };

  if (input.id !== undefined) return upsert(input, true);
  const existing = await findEndpointByName(client, input.name);
  if (existing) return adopt(existing);
  for (let attempt = 1; ; attempt++) {
    try {
      return await upsert(input, false);
    } catch (error) {
      if (!isRunPodApiError(error) || error.kind !== "ambiguous") throw error;
      const found = await findEndpointByName(client, input.name);
      if (found) return adopt(found);
      if (attempt >= client.tuning.maxAttempts) throw error;
      await client.sleep(client.tuning.baseDelayMs * 2 ** (attempt - 1));
    }
  }
}

/** The input that re-saves an endpoint as it is. */
export function endpointInputOf(endpoint: Endpoint): EndpointInput {
  return {
    id: endpoint.id,
    name: endpoint.name,
    templateId: endpoint.templateId,
    gpuIds: endpoint.gpuIds,
    workersMin: endpoint.workersMin,
    workersMax: endpoint.workersMax,
    idleTimeout: endpoint.idleTimeout,
    scalerType: endpoint.scalerType,
    scalerValue: endpoint.scalerValue,
    locations: endpoint.locations ?? "",
    networkVolumeId: endpoint.networkVolumeId,
    flashBootType: endpoint.flashBootType ?? "OFF",
  };
}

/**
 * Deletes an endpoint: sets workersMin = workersMax = 0 (RunPod refuses to delete otherwise), then deletes,
 * retrying with a short backoff while RunPod still refuses because workers drain. Already gone is success.
 */
export async function deleteEndpoint(client: RunPodClient, id: string): Promise<void> {
  const { tuning } = client;
  const endpoint = await getEndpoint(client, id);
  if (!endpoint) return;
  if (endpoint.workersMin !== 0 || endpoint.workersMax !== 0) {
    await saveEndpoint(client, { ...endpointInputOf(endpoint), workersMin: 0, workersMax: 0 });
  }
  for (let attempt = 1; ; attempt++) {
    try {
      await graphql(
        client,
        "deleteEndpoint",
        `mutation DeleteEndpoint { deleteEndpoint(id: ${JSON.stringify(id)}) }`,
      );
      return;
    } catch (error) {
      if (!isRunPodApiError(error) || error.kind !== "graphql") throw error;
      if (!(await getEndpoint(client, id))) return;
      if (attempt >= tuning.deleteAttempts) {
        throw apiError(
          client,
          "deleteEndpoint",
          "graphql",
          `endpoint ${id} still refused after ${attempt} attempts: ${error.detail}`,
        );
      }
      await client.sleep(tuning.deleteDelayMs * 2 ** (attempt - 1));
    }
  }
}

// ── REST v2: network volumes ─────────────────────────────────────────────────────────────────────────────────
//
// Contract (runpod/docs `api-reference-v2/openapi.json` and `network-volumes/*.mdx`, Aug 2026;
// runpod/runpod-plugins-official `runpod-migrate/reference/rest-v1-to-v2.md`):
// - `GET /v2/network-volumes` → 200 `{networkVolumes: NetworkVolume[]}` (wrapped, not paginated);
// - `POST /v2/network-volumes {name, size, dataCenter, type?}` → 201 NetworkVolume; `size` 10..4096 GB; `type`
//   (STANDARD | HIGH_PERFORMANCE) defaults to the data centre's primary tier and is immutable; names need not be
//   unique; a data centre without volume support is a 400 whose detail lists those that have it;
// - `GET /v2/network-volumes/{id}` → 200 NetworkVolume, 404 when gone;
// - `PATCH /v2/network-volumes/{id} {name?, size?}` (at least one) → 200 NetworkVolume; a smaller size is a 400;
// - `DELETE /v2/network-volumes/{id}` → 204 without a body, 404 when gone;
// - NetworkVolume is `{id, name, size, dataCenter, type}`; unknown body fields (e.g. v1's `dataCenterId`) → 422.

/** An RFC 9457 problem document as REST v2 sends it (`ErrorResponse`): `errors` lists validation failures. */
export interface RunPodProblem {
  title?: string;
  status?: number;
  detail?: string;
  errors?: string[];
}

/** The problem document in an error body, or undefined when the body is not one (e.g. a proxy's HTML page). */
function problemOf(text: string): RunPodProblem | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return undefined;
  const body = parsed as Record<string, unknown>;
  const nonEmpty = (value: unknown) => (typeof value === "string" && value.trim() !== "" ? value : undefined);
  const title = nonEmpty(body.title);
  const detail = nonEmpty(body.detail);
  if (title === undefined && detail === undefined) return undefined;
  // The spec has strings; an object `{message}` or `{field, message}` is read too, in case that changes.
  const errors = Array.isArray(body.errors)
    ? body.errors.flatMap((e) => {
        if (typeof e === "string") return e === "" ? [] : [e];
        const message = nonEmpty((e as { message?: unknown } | null)?.message);
        const field = nonEmpty((e as { field?: unknown } | null)?.field);
        return message ? [field ? `${field}: ${message}` : message] : [];
      })
    : [];
  return {
    ...(title !== undefined ? { title } : {}),
    ...(typeof body.status === "number" ? { status: body.status } : {}),
    ...(detail !== undefined ? { detail } : {}),
    ...(errors.length > 0 ? { errors } : {}),
  };
}

/** RunPod's reason in a REST v2 error body: `detail` with the validation `errors`, else `title`, else an excerpt. */
function problemReason(text: string): string {
  const problem = problemOf(text);
  if (!problem) return excerpt(text) || "no details";
  const reason = problem.detail ?? problem.title ?? "";
  return excerpt(problem.errors ? `${reason} (${problem.errors.join("; ")})` : reason, 500);
}

/**
 * One REST v2 call (`{apiBase}/v2{path}`) with retries. Answers 2xx (with the parsed JSON body, or undefined
 * when empty, as on a 204) and 404 (so the caller decides what "not there" means); throws `rejected` with
 * RunPod's problem detail for any other 4xx (400, 422, …). 401/403 and 429/5xx are handled by `exchange`.
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
        throw apiError(
          client,
          operation,
          "rejected",
          `RunPod answered HTTP ${status}: ${problemReason(text)}`,
          status,
        );
      }
      if (text.trim() === "") return { status, data: undefined };
      try {
        return { status, data: JSON.parse(text) as unknown };
      } catch {
        throw apiError(client, operation, "protocol", `HTTP ${status} with a body that is not JSON`, status);
      }
    },
    options.retryAmbiguous ?? true,
  );
}

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
      "protocol",
      `expected a network volume {id, name, size, dataCenter, type}; got ${excerpt(JSON.stringify(data) ?? "nothing")}`,
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
  if (status === 404) {
    throw apiError(
      client,
      "listNetworkVolumes",
      "protocol",
      `GET ${client.v2Url}${VOLUMES_PATH} answered 404; check apiBase (RunPod's REST v2 host, https://api.runpod.io)`,
      status,
    );
  }
  const list = (data as { networkVolumes?: unknown } | null | undefined)?.networkVolumes;
  if (!Array.isArray(list)) {
    throw apiError(
      client,
      "listNetworkVolumes",
      "protocol",
      `expected {networkVolumes: [...]}; got ${Array.isArray(data) ? "a bare array (a REST v1 answer?)" : excerpt(JSON.stringify(data) ?? "nothing")}`,
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
async function confirmGone(client: RunPodClient, operation: string, id: string): Promise<void> {
  if ((await listNetworkVolumes(client)).some((v) => v.id === id)) {
    throw apiError(
      client,
      operation,
      "protocol",
      `RunPod answered 404 for network volume ${id}, yet lists it; try again later`,
      404,
    );
  }
}

/** The volume with this id, or undefined when it no longer exists (404, confirmed by the listing). */
export async function getNetworkVolume(client: RunPodClient, id: string): Promise<NetworkVolume | undefined> {
  const { status, data } = await rest(client, "getNetworkVolume", "GET", volumePath(id));
  if (status !== 404) return volumeOf(client, "getNetworkVolume", data);
  await confirmGone(client, "getNetworkVolume", id);
  return undefined;
}

/**
 * The volume with exactly this name in this data centre. A volume of the same name elsewhere is another volume;
 * two in the same data centre is an error, because the provider could not tell which one is ours.
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
      "rejected",
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
        "rejected",
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
  for (let attempt = 1; ; attempt++) {
    try {
      const { status, data } = await rest(client, "createNetworkVolume", "POST", VOLUMES_PATH, {
        body: {
          name: input.name,
          size: input.size,
          dataCenter: input.dataCenter,
          ...(input.type !== undefined ? { type: input.type } : {}),
        },
        retryAmbiguous: false,
      });
      if (status === 404) {
        throw apiError(
          client,
          "createNetworkVolume",
          "protocol",
          `POST ${client.v2Url}${VOLUMES_PATH} answered 404; check apiBase`,
          status,
        );
      }
      return volumeOf(client, "createNetworkVolume", data);
    } catch (error) {
      if (!isRunPodApiError(error) || error.kind !== "ambiguous") throw error;
      const found = await findNetworkVolume(client, input.name, input.dataCenter);
      if (found) return adopt(found);
      if (attempt >= client.tuning.maxAttempts) throw error;
      await client.sleep(client.tuning.baseDelayMs * 2 ** (attempt - 1));
    }
  }
}

/**
 * Deletes a network volume (204). Already gone (404, confirmed by the listing) is success. Deletes are
 * idempotent, so every failure is retried.
 */
export async function deleteNetworkVolume(client: RunPodClient, id: string): Promise<void> {
  const { status } = await rest(client, "deleteNetworkVolume", "DELETE", volumePath(id));
  if (status === 404) await confirmGone(client, "deleteNetworkVolume", id);
}
