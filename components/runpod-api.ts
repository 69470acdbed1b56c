/**
 * A small client for the parts of RunPod's GraphQL API (`POST {apiBase}/graphql`) that manage serverless
 * templates and endpoints. The RunPod dynamic provider (`runpod-endpoint.ts`) calls it from inside its methods,
 * and Pulumi serializes that provider by value, so this module keeps no state and creates nothing at import
 * time: every call takes a plain `RunPodClient` settings object made by `runpodClient()`.
 *
 * Contract (providers.md §1.2):
 * - GraphQL errors arrive as HTTP 200 with `errors[0].message`; they become thrown errors carrying that message.
 * - A bad key is HTTP 401 (403 for a key without write scope); neither is retried.
 * - 429 and 5xx are transient: retried with exponential backoff and jitter, honouring `Retry-After`, within a
 *   bounded number of attempts and a bounded total time. Timeouts and network errors are transient too.
 * - A create that fails ambiguously (5xx, timeout: it may have happened) is never repeated blindly: the client
 *   looks the object up by its name first and adopts it, so creates are idempotent.
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

export const DEFAULT_RUNPOD_API_BASE = "https://api.runpod.io";

/** The subset of `fetch` the client uses, so tests can pass a stub. */
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body: string; signal: AbortSignal },
) => Promise<{ status: number; headers: { get(name: string): string | null }; text(): Promise<string> }>;

export interface RunPodClientOptions {
  /** RunPod API key (`rpa_…`). */
  apiKey: string;
  /** @default "https://api.runpod.io" */
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
  readonly fetch: FetchLike;
  readonly tuning: RetryTuning;
  readonly sleep: (ms: number) => Promise<void>;
  readonly random: () => number;
}

export function runpodClient(options: RunPodClientOptions): RunPodClient {
  const base = (options.apiBase ?? DEFAULT_RUNPOD_API_BASE).replace(/\/+$/, "");
  return {
    apiKey: options.apiKey,
    graphqlUrl: `${base}/graphql`,
    fetch: options.fetch ?? ((url, init) => globalThis.fetch(url, init)),
    tuning: { ...DEFAULT_RETRY_TUNING, ...options.tuning },
    sleep: options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
    random: options.random ?? Math.random,
  };
}

/**
 * auth: key refused (401/403). graphql: RunPod answered with `errors[]`. transient: 429/5xx/timeouts outlasted
 * the retries. ambiguous: a create may or may not have happened. protocol: an answer the client cannot read.
 * conflict: an object with our name exists but is not ours.
 */
export type RunPodErrorKind = "auth" | "graphql" | "transient" | "ambiguous" | "protocol" | "conflict";

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

function excerpt(text: string): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > 200 ? `${flat.slice(0, 200)}…` : flat;
}

interface Failure {
  detail: string;
  status?: number;
  retryAfterMs?: number;
  /** The request may have been carried out (5xx, timeout, dropped connection) — unlike a 429. */
  ambiguous: boolean;
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
  const { tuning } = client;
  const retryAmbiguous = options.retryAmbiguous ?? true;
  const started = Date.now();
  const body = JSON.stringify({ query, variables });
  for (let attempt = 1; ; attempt++) {
    let failure: Failure;
    try {
      const response = await client.fetch(client.graphqlUrl, {
        method: "POST",
        headers: {
          authorization: `Bearer ${client.apiKey}`,
          "content-type": "application/json",
          accept: "application/json",
        },
        body,
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
        failure = {
          detail: "rate limited (HTTP 429)",
          status,
          retryAfterMs: parseRetryAfter(response.headers.get("retry-after")),
          ambiguous: false,
        };
      } else if (status >= 500) {
        failure = { detail: `HTTP ${status} ${excerpt(text)}`.trim(), status, ambiguous: true };
      } else if (status < 200 || status >= 300) {
        throw apiError(client, operation, "protocol", `HTTP ${status} ${excerpt(text)}`.trim(), status);
      } else {
        let parsed: { data?: unknown; errors?: { message?: unknown }[] };
        try {
          parsed = JSON.parse(text) as typeof parsed;
        } catch {
          throw apiError(
            client,
            operation,
            "protocol",
            `HTTP ${status} with a body that is not JSON`,
            status,
          );
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
