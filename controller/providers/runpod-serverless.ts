/**
 * RunPod serverless as a `ManagedBackend`: RunPod queues requests and scales its own workers. The stack's Pulumi
 * program declares one endpoint per serving unit (`components/runpod-endpoint.ts`, named by
 * `runpodEndpointName`); at run time the controller finds it, routes the gateway through its OpenAI path, steers
 * its worker bounds, purges its queue at a budget cap and books the workers `/health` reports.
 *
 * Contract (`core/contracts/runpod.ts`):
 * - REST v2 on `https://api.runpod.io` (runpod/docs `api-reference-v2/openapi.json`): `GET /v2/serverless` →
 *   `{endpoints: Endpoint[]}`; `PATCH /v2/serverless/{id}` `{workers: {min, max}}` — partial, so nothing else about
 *   the endpoint (volumes, data centres, scaler, CUDA floor) is touched, unlike GraphQL's `saveEndpoint`, which
 *   reset every field it was not sent.
 * - The job API on `https://api.runpod.ai/v2/{id}` (runpod/docs `serverless/endpoints/operation-reference.mdx`,
 *   runpod/go-sdk `pkg/sdk/endpoint`): `GET /health` → `{workers{running, idle, initializing, …}, jobs{inQueue,
 *   inProgress, …}}`; `POST /purge-queue` → `{removed, status}` (queued jobs only; running jobs finish);
 *   the OpenAI-compatible route `/openai/v1` with the RunPod key as bearer.
 * - A LOAD_BALANCER endpoint (`type`; image models on vLLM-Omni, `components/runpod-worker-settings.ts`) has no job
 *   API: requests go straight to the worker's server at `requestUrls.base` (`https://{id}.api.runpod.ai`, the RunPod
 *   key as bearer; runpod/docs `serverless/load-balancing/overview.mdx`), so the OpenAI base is `{base}/v1`; its
 *   workers come from REST `GET /v2/serverless/{id}/workers` (`ListEndpointWorkersResponse.summary`); it has no queue
 *   to purge. Nothing waits there for a worker beyond 2 min, so the steering routes to it only while a worker is
 *   ready (`routing: "direct"`).
 */
import { PROVIDERS } from "../../core/catalog";
import { type RuntimeConfig, runpodEndpointName } from "../../core/config/runtime";
import type {
  Endpoint,
  EndpointHealth,
  ListEndpointWorkersResponse,
  UpdateEndpointRequest,
} from "../../core/contracts/runpod";
import { apiBaseOf, type HttpRuntimeOptions, isRecord, ProviderHttp } from "./http";
import type { ManagedBackend, ManagedEndpoint, ManagedHealth, ManagedRoute } from "./types";

type Settings = NonNullable<RuntimeConfig["providers"]["runpod-serverless"]>;

export interface RunPodServerlessOptions extends HttpRuntimeOptions {
  readonly settings: Settings;
  readonly apiKey: string | undefined;
  /** The stack's Pulumi project and stack: endpoint names are `runpodEndpointName(project, stack, unit)`. */
  readonly project: string;
  readonly stack: string;
  /** Host of the job API (`/v2/{id}/health`, `/v2/{id}/openai/v1`). @default "https://api.runpod.ai" */
  readonly jobApiBase?: string;
}

/** The env var of the gateway's pod that holds the RunPod key it sends to the OpenAI route. */
const KEY_ENV = "RUNPOD_API_KEY";

export class RunPodServerlessBackend implements ManagedBackend {
  readonly id = "runpod-serverless" as const;
  private readonly rest: ProviderHttp;
  private readonly jobs: ProviderHttp;
  private readonly jobApiBase: string;
  private readonly project: string;
  private readonly stack: string;

  constructor(options: RunPodServerlessOptions) {
    const apiKey = options.apiKey ?? "";
    const auth = { headers: async () => ({ authorization: `Bearer ${apiKey}` }) };
    const common = { ...options, provider: "runpod-serverless" as const, auth, secrets: () => [apiKey] };
    const restBase = apiBaseOf(
      options.settings.apiBase,
      PROVIDERS["runpod-serverless"].apiBase,
      "runpod-serverless",
    );
    // `apiBase` may be written as RunPod's docs write the v2 base (…/v2); paths here carry /v2 themselves
    this.rest = new ProviderHttp({ ...common, baseUrl: restBase.replace(/\/v2$/, "") });
    this.jobApiBase = (options.jobApiBase ?? "https://api.runpod.ai").replace(/\/+$/, "");
    this.jobs = new ProviderHttp({ ...common, baseUrl: this.jobApiBase });
    this.project = options.project;
    this.stack = options.stack;
    if (!apiKey) throw this.rest.error("configure", "auth", "no API key (RUNPOD_API_KEY is empty)");
  }

  route(endpoint: ManagedEndpoint): ManagedRoute {
    const auth = { kind: "provider-key", envVar: KEY_ENV } as const;
    if (endpoint.routing === "direct") {
      const base = endpoint.directBaseUrl ?? `https://${encodeURIComponent(endpoint.id)}.api.runpod.ai`;
      return { baseUrl: `${base.replace(/\/+$/, "")}/v1`, auth };
    }
    return { baseUrl: `${this.jobApiBase}/v2/${encodeURIComponent(endpoint.id)}/openai/v1`, auth };
  }

  async endpoints(units: readonly string[]): Promise<Map<string, ManagedEndpoint>> {
    const body = await this.rest.json({ operation: "list endpoints", method: "GET", path: "/v2/serverless" });
    const list = isRecord(body) ? body.endpoints : undefined;
    if (!Array.isArray(list)) throw this.rest.unexpected("list endpoints", "no endpoints list", body);
    const found = new Map<string, ManagedEndpoint>();
    for (const unit of units) {
      const name = runpodEndpointName(this.project, this.stack, unit);
      const named = (list as Partial<Endpoint>[]).filter((e) => isRecord(e) && e.name === name);
      if (named.length > 1)
        throw this.rest.error(
          "list endpoints",
          "fatal",
          `${named.length} endpoints are named "${name}" (${named.map((e) => e.id).join(", ")}); delete the extra ones in the RunPod console`,
        );
      const view = named[0] ? viewOf(named[0]) : undefined;
      if (view) found.set(unit, view);
    }
    return found;
  }

  async setBounds(
    endpoint: ManagedEndpoint,
    workersMin: number,
    workersMax: number,
  ): Promise<ManagedEndpoint> {
    const body: UpdateEndpointRequest = { workers: { min: workersMin, max: workersMax } };
    const updated = await this.rest.json({
      operation: "set worker bounds",
      method: "PATCH",
      path: `/v2/serverless/${encodeURIComponent(endpoint.id)}`,
      json: body,
    });
    return (
      (isRecord(updated) ? viewOf(updated as Partial<Endpoint>) : undefined) ?? {
        ...endpoint,
        workersMin,
        workersMax,
      }
    );
  }

  async health(endpoint: ManagedEndpoint): Promise<ManagedHealth> {
    if (endpoint.routing === "direct") return this.workersOf(endpoint.id);
    const json = await this.jobs.json({
      operation: "health",
      method: "GET",
      path: `/v2/${encodeURIComponent(endpoint.id)}/health`,
    });
    const h = (isRecord(json) ? json : {}) as EndpointHealth;
    // every field is optional in the SDK's HealthOutput: absent counts as 0
    return {
      running: h.workers?.running ?? 0,
      idle: h.workers?.idle ?? 0,
      initializing: h.workers?.initializing ?? 0,
      inQueue: h.jobs?.inQueue ?? 0,
      inProgress: h.jobs?.inProgress ?? 0,
    };
  }

  async purgeQueue(endpoint: ManagedEndpoint): Promise<number> {
    if (endpoint.routing === "direct") return 0; // a load balancer holds no queue
    const json = await this.jobs.json({
      operation: "purge queue",
      method: "POST",
      path: `/v2/${encodeURIComponent(endpoint.id)}/purge-queue`,
    });
    const removed = isRecord(json) ? json.removed : undefined;
    return typeof removed === "number" ? removed : 0;
  }

  /**
   * A load-balancing endpoint's workers by status (REST `listEndpointWorkers`). RunPod bills a worker from start to
   * stop (`serverless/pricing.mdx`) but not while it initializes or waits for capacity (`workers/overview.mdx`):
   * RUNNING and IDLE workers are up and billed; with no job queue behind a load balancer, a ready worker reads IDLE
   * between requests.
   */
  private async workersOf(endpointId: string): Promise<ManagedHealth> {
    const json = await this.rest.json({
      operation: "list workers",
      method: "GET",
      path: `/v2/serverless/${encodeURIComponent(endpointId)}/workers`,
    });
    const summary = isRecord(json) ? (json as Partial<ListEndpointWorkersResponse>).summary : undefined;
    if (!isRecord(summary)) throw this.rest.unexpected("list workers", "no summary", json);
    const count = (n: unknown) => (typeof n === "number" && n > 0 ? n : 0);
    return {
      running: count(summary.running) + count(summary.idle),
      idle: count(summary.idle),
      initializing: count(summary.initializing) + count(summary.throttled),
      inQueue: 0,
      inProgress: count(summary.running),
    };
  }
}

/** The parts of a v2 `Endpoint` the controller uses; undefined for an answer without id or bounds. */
function viewOf(e: Partial<Endpoint>): ManagedEndpoint | undefined {
  if (typeof e.id !== "string" || typeof e.name !== "string" || !e.workers) return undefined;
  const direct = e.type === "LOAD_BALANCER";
  const urls = e.requestUrls;
  const base =
    direct && isRecord(urls) && "base" in urls && typeof urls.base === "string" ? urls.base : undefined;
  return {
    id: e.id,
    name: e.name,
    workersMin: e.workers.min,
    workersMax: e.workers.max,
    gpuCount: e.gpu?.count ?? 1,
    routing: direct ? "direct" : "queue",
    ...(base ? { directBaseUrl: base } : {}),
  };
}
