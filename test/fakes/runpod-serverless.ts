/**
 * Contract fake of RunPod serverless as a real HTTP server on 127.0.0.1: REST v2 endpoints and templates
 * (`https://api.runpod.io/v2/serverless`, `/v2/templates`) and the job API of each endpoint
 * (`https://api.runpod.ai/v2/{id}/health`, `/purge-queue`) on the same port.
 *
 * Written from runpod/docs @a900806 `api-reference-v2/openapi.json` (request and response shapes are the schemas
 * of `core/contracts/runpod.ts`, checked on every request and reply), not from our adapters:
 * - `POST /v2/serverless` (201 `Endpoint`): unknown fields and wrong types → 422 with `errors`; exactly one of
 *   `gpu`/`cpu` (400 otherwise); a non-empty `allowedCudaVersions` with a `minCudaVersion` → 400; `idleTimeout`
 *   on a QUEUE endpoint scaling on REQUEST_COUNT → 400; an unknown pool → 400; defaults `timeout` 300 000 ms, `workers` {0, 3, 10},
 *   `flashboot` OFF, `gpu.count` 1. Names need not be unique (the spec does not say they are).
 * - `PATCH /v2/serverless/{id}` (200 `Endpoint`): only the fields present change; nested `workers` fields one by
 *   one; `gpu.pools` replaces pools and clears `excludedTypes`; `minCudaVersion: ""` clears the floor; `env`
 *   replaces the env; an image/env change is a new release (`releases`).
 * - `DELETE /v2/serverless/{id}` (204, then 404) cancels queued jobs and deletes the endpoint's bound template.
 * - `GET /v2/templates[/{id}]`, `DELETE /v2/templates/{id}` (400 while bound to an endpoint).
 * - Job API: `/health` (`workers`, `jobs` as runpod/go-sdk `HealthOutput`), `/purge-queue` (queued jobs removed,
 *   running ones untouched; `{removed, status}`).
 * GraphQL-era endpoints (created through `saveEndpoint` with a template) are seeded with `seedLegacyEndpoint`.
 *
 * Load-balancing endpoints (`type: "LOAD_BALANCER"`, the same schemas): `CreateEndpointRequest`'s if/then makes
 * their `scaling` a `RequestCountScaling` (QUEUE_DELAY → 422 as any schema failure; on PATCH, where `type` is
 * immutable and not in the schema, → 400 as a broken request rule); `workers.idleTimeout` is kept (default 10:
 * `EndpointWorkers` refuses it only for QUEUE endpoints on REQUEST_COUNT); the view has `requestUrls {base,
 * health}`; `GET /v2/serverless/{id}/workers` lists workers for both types; the load balancer itself, its workers
 * and their scaler are `FakeLoadBalancer` (runpod-load-balancer.ts), served under `${url}/lb/{id}`.
 */
import type { ServerResponse } from "node:http";
import type { z } from "zod";
import {
  CreateEndpointRequest,
  Endpoint,
  EndpointHealth,
  type EndpointScaling,
  type FlashBoot,
  ListEndpointsResponse,
  ListEndpointWorkersResponse,
  ListTemplatesResponse,
  PurgeQueueResponse,
  Template,
  UpdateEndpointRequest,
} from "../../core/contracts/runpod";
import type { RecordedRequest, Reply } from "./fake-api-server";
import { invalid, notAllowed, notFound, parseBody, problem, RunpodApiFake } from "./runpod-common";
import {
  type AttachWorkerOptions,
  type FakeLbWorker,
  FakeLoadBalancer,
  healthPath,
  type LoadBalancerTiming,
  rollUp,
  type WorkerServer,
} from "./runpod-load-balancer";

/** Serverless pool ids (`GpuType.pool`), runpod/docs `references/gpu-types.mdx` "GPU pools". */
export const SERVERLESS_POOLS = [
  "AMPERE_16",
  "AMPERE_24",
  "ADA_24",
  "AMPERE_48",
  "ADA_48_PRO",
  "AMPERE_80",
  "ADA_80_PRO",
  "HOPPER_141",
] as const;

export interface FakeServerlessEndpoint {
  id: string;
  name: string;
  /** `EndpointType`; immutable after create (not in `UpdateEndpointRequest`). */
  type: "QUEUE" | "LOAD_BALANCER";
  image: string;
  /** `ContainerConfig.ports`, e.g. `8000/http` (a load-balancing worker's custom `PORT` must be exposed here). */
  ports: string[];
  args: string;
  disk: number;
  env: Record<string, string>;
  gpu: {
    pools: string[];
    excludedTypes?: string[];
    count: number;
    allowedCudaVersions: string[];
    minCudaVersion: string | null;
  };
  workers: { min: number; max: number; idleTimeout?: number };
  scaling: EndpointScaling;
  dataCenterIds: string[];
  networkVolumes: string[];
  timeout: number;
  flashboot: FlashBoot;
  createdAt: string;
  /** The template a GraphQL-era endpoint is bound to (not part of the v2 `Endpoint`). */
  boundTemplateId?: string;
  /** Container releases: 1 at creation, +1 per image/env change. */
  releases: number;
  /** The job queue as /health reports it; tests move it. */
  jobs: { inQueue: number; inProgress: number; completed: number; failed: number; retried: number };
  /** Workers as /health reports them; tests move them. */
  workersNow: { running: number; idle: number; initializing: number; ready: number; throttled: number };
}

export interface FakeTemplate {
  id: string;
  name: string;
  image: string;
  env: Record<string, string>;
  disk: number;
  serverless: boolean;
}

export interface RunpodServerlessFakeOptions {
  apiKey: string;
  now?: () => number;
  /** Network volume ids that exist (e.g. `RunpodVolumesFake.volume`); unknown ids → 400. @default every id exists */
  volumeExists?: (id: string) => boolean;
  /** Durations of load-balancing endpoints' workers and load balancer (real ms); see `LoadBalancerTiming`. */
  loadBalancer?: Partial<LoadBalancerTiming>;
}

export class RunpodServerlessFake extends RunpodApiFake {
  readonly endpoints = new Map<string, FakeServerlessEndpoint>();
  readonly templates = new Map<string, FakeTemplate>();
  private readonly volumeExists: (id: string) => boolean;
  private seq = 0;
  /** Load balancer, workers and scaler of the LOAD_BALANCER endpoints. */
  readonly loadBalancer: FakeLoadBalancer;

  constructor(options: RunpodServerlessFakeOptions) {
    super(options.apiKey, options.now);
    this.volumeExists = options.volumeExists ?? (() => true);
    this.loadBalancer = new FakeLoadBalancer(
      {
        apiKey: options.apiKey,
        now: this.now,
        endpoint: (id) => this.endpoints.get(id),
        endpoints: () => this.endpoints.values(),
      },
      options.loadBalancer,
    );
  }

  override async start(): Promise<string> {
    const url = await super.start();
    this.loadBalancer.start();
    return url;
  }

  override async close(): Promise<void> {
    this.loadBalancer.stop();
    this.loadBalancer.reset();
    await super.close();
  }

  /**
   * Where a load-balancing endpoint's load balancer answers: `${url}/lb/{id}` (RunPod: `https://{id}.api.runpod.ai`;
   * a loopback fake has no per-endpoint subdomains). Also the endpoint's `requestUrls.base`.
   */
  loadBalancerUrl(endpointId: string): string {
    return `${this.url}/lb/${encodeURIComponent(endpointId)}`;
  }

  /**
   * The HTTP server the endpoint's workers run (e.g. `startFakeVllm().origin`), or a function giving one per
   * worker. Workers started before it is attached get it now; until then their health checks get no answer.
   */
  attachWorkerServer(endpointId: string, server: WorkerServer, options: AttachWorkerOptions = {}): void {
    this.loadBalancer.attach(endpointId, server, options);
  }

  detachWorkerServer(endpointId: string): void {
    this.loadBalancer.detach(endpointId);
  }

  /** Change load-balancer durations (real ms) from now on. */
  configureLoadBalancer(timing: Partial<LoadBalancerTiming>): void {
    Object.assign(this.loadBalancer.timing, timing);
  }

  /** A load-balancing endpoint's workers with their status now. */
  workersOf(endpointId: string): FakeLbWorker[] {
    return this.loadBalancer.workersOf(endpointId);
  }

  /** Resolves with the endpoint's workers once `done` holds (rejects after `timeoutMs`, default 5000). */
  waitForWorkers(
    endpointId: string,
    done: (workers: FakeLbWorker[]) => boolean,
    timeoutMs?: number,
  ): Promise<FakeLbWorker[]> {
    return this.loadBalancer.waitForWorkers(endpointId, done, timeoutMs);
  }

  /** No GPU capacity (`true`): the endpoint's new workers are THROTTLED until `throttleWorkers(id, false)`. */
  throttleWorkers(endpointId: string, noCapacity: boolean): void {
    this.loadBalancer.throttle(endpointId, noCapacity);
  }

  /** Remove a worker at once (crash, preemption); the requests it serves are cut. */
  removeWorker(workerId: string): boolean {
    return this.loadBalancer.removeWorker(workerId);
  }

  /** One scaler and health-check pass now (it also runs every `healthCheckIntervalMs`). */
  scaleNow(): Promise<void> {
    return this.loadBalancer.passNow();
  }

  protected override streamingRoute(
    req: RecordedRequest,
  ): ((res: ServerResponse) => Promise<void>) | undefined {
    return FakeLoadBalancer.matches(req.path) ? this.loadBalancer.handler(req) : undefined;
  }

  /** REST v2 host (`apiBase`) and job API host (`jobApiBase`) are both this server. */
  get apiBase(): string {
    return this.url;
  }

  endpointNamed(name: string): FakeServerlessEndpoint | undefined {
    return [...this.endpoints.values()].find((e) => e.name === name);
  }

  /** A GraphQL-era endpoint: created with `saveEndpoint` on a template it stays bound to. */
  seedLegacyEndpoint(options: {
    name: string;
    image: string;
    env?: Record<string, string>;
    pools: string[];
    min?: number;
    max?: number;
  }): FakeServerlessEndpoint {
    const template: FakeTemplate = {
      id: this.newId("tp"),
      name: `${options.name}-legacy`,
      image: options.image,
      env: options.env ?? {},
      disk: 30,
      serverless: true,
    };
    this.templates.set(template.id, template);
    const endpoint = this.add({
      name: options.name,
      image: options.image,
      env: options.env ?? {},
      gpu: { pools: options.pools, count: 1, allowedCudaVersions: [], minCudaVersion: null },
      workers: { min: options.min ?? 0, max: options.max ?? 1, idleTimeout: 5 },
      // GraphQL's executionTimeoutMs default: 600 s (runpod/docs serverless/endpoints/endpoint-configurations.mdx)
      timeout: 600_000,
    });
    endpoint.boundTemplateId = template.id;
    return endpoint;
  }

  /** Forget endpoints, templates, faults and requests (between tests). */
  reset(): void {
    this.endpoints.clear();
    this.templates.clear();
    this.loadBalancer.reset();
    this.clearFaults();
    (this.requests as RecordedRequest[]).length = 0;
    this.contractViolations.length = 0;
  }

  /** What RunPod does to endpoints idle for days (`troubleshooting.mdx`): lower max workers. */
  lowerIdleMax(id: string, max: number): void {
    const e = this.endpoints.get(id);
    if (e) e.workers.max = max;
  }

  protected route(req: RecordedRequest): Reply {
    const p = req.path;
    if (p === "/v2/serverless") {
      if (req.method === "GET") return { status: 200, json: { endpoints: this.views() } };
      if (req.method === "POST") return this.create(req);
      return notAllowed("GET, POST");
    }
    if (p === "/v2/templates") {
      if (req.method !== "GET") return notAllowed("GET");
      return { status: 200, json: { templates: [...this.templates.values()].map(templateView) } };
    }
    const template = /^\/v2\/templates\/([^/]+)$/.exec(p);
    if (template) return this.template(req, decodeURIComponent(template[1] ?? ""));
    const one = /^\/v2\/serverless\/([^/]+)$/.exec(p);
    if (one) return this.endpoint(req, decodeURIComponent(one[1] ?? ""));
    const workers = /^\/v2\/serverless\/([^/]+)\/workers$/.exec(p);
    if (workers) return this.listWorkers(req, decodeURIComponent(workers[1] ?? ""));
    const job = /^\/v2\/([^/]+)\/(health|purge-queue)$/.exec(p);
    if (job) return this.jobApi(req, decodeURIComponent(job[1] ?? ""), job[2] as "health" | "purge-queue");
    return problem(404, "Not Found", `no route ${req.method} ${p}`);
  }

  protected successSchema(req: RecordedRequest): z.ZodType | undefined {
    const p = req.path;
    if (p === "/v2/serverless") return req.method === "GET" ? ListEndpointsResponse : Endpoint;
    if (p === "/v2/templates") return ListTemplatesResponse;
    if (/^\/v2\/templates\/[^/]+$/.test(p)) return Template;
    if (/^\/v2\/serverless\/[^/]+$/.test(p)) return Endpoint;
    if (/^\/v2\/serverless\/[^/]+\/workers$/.test(p)) return ListEndpointWorkersResponse;
    if (p.endsWith("/health")) return EndpointHealth;
    if (p.endsWith("/purge-queue")) return PurgeQueueResponse;
    return undefined;
  }

  // ── endpoints ─────────────────────────────────────────────────────────────────────────────────────────

  private create(req: RecordedRequest): Reply {
    const parsed = parseBody(req, CreateEndpointRequest);
    if ("reply" in parsed) return parsed.reply;
    const b = parsed.body;
    if ((b.gpu === undefined) === (b.cpu === undefined))
      return problem(400, "Bad Request", "exactly one of gpu or cpu must be set");
    if (b.cpu !== undefined) return problem(400, "Bad Request", "CPU endpoints are not part of this fake");
    if (b.image === undefined && b.templateId === undefined)
      return problem(422, "Unprocessable Entity", "Request validation failed.", {
        errors: ["$: missing property 'image'"],
      });
    const gpu = b.gpu!;
    const refused = this.checkGpu(gpu.pools, gpu.allowedCudaVersions, gpu.minCudaVersion);
    if (refused) return refused;
    // CreateEndpointRequest if type == LOAD_BALANCER then scaling: RequestCountScaling — a schema failure (422)
    if (b.type === "LOAD_BALANCER" && b.scaling.type !== "REQUEST_COUNT")
      return invalid([
        "$.scaling.type: a LOAD_BALANCER endpoint scales on REQUEST_COUNT (QUEUE_DELAY is for QUEUE endpoints)",
      ]);
    // EndpointWorkers.idleTimeout: rejected only for queue-based endpoints scaling on requestCount
    if (b.type === "QUEUE" && b.scaling.type === "REQUEST_COUNT" && b.workers?.idleTimeout !== undefined)
      return problem(
        400,
        "Bad Request",
        "workers.idleTimeout does not apply to a QUEUE endpoint scaling on REQUEST_COUNT; leave it out",
      );
    const volumes = this.checkVolumes(b.networkVolumes);
    if (volumes) return volumes;
    const template = b.templateId !== undefined ? this.templates.get(b.templateId) : undefined;
    if (b.templateId !== undefined && !template) return notFound("template");
    const workers = {
      min: b.workers?.min ?? 0,
      max: b.workers?.max ?? 3,
      idleTimeout: b.workers?.idleTimeout,
    };
    if (workers.min > workers.max)
      return problem(400, "Bad Request", "workers.min must not exceed workers.max");
    const endpoint = this.add({
      name: b.name,
      type: b.type,
      image: b.image ?? template?.image ?? "",
      ports: b.ports ?? [],
      args: b.args ?? "",
      disk: b.disk ?? template?.disk ?? 5,
      env: { ...template?.env, ...b.env },
      gpu: {
        pools: gpu.pools,
        ...(gpu.excludedTypes ? { excludedTypes: gpu.excludedTypes } : {}),
        count: gpu.count ?? 1,
        allowedCudaVersions: gpu.allowedCudaVersions ?? [],
        minCudaVersion: gpu.minCudaVersion ?? null,
      },
      workers: {
        min: workers.min,
        max: workers.max,
        // CreateEndpointRequest workers.idleTimeout default 10; omitted only for QUEUE + REQUEST_COUNT
        ...(b.type === "LOAD_BALANCER" || b.scaling.type === "QUEUE_DELAY"
          ? { idleTimeout: workers.idleTimeout ?? 10 }
          : {}),
      },
      scaling: b.scaling,
      dataCenterIds: b.dataCenterIds ?? [],
      networkVolumes: b.networkVolumes ?? [],
      timeout: b.timeout ?? 300_000,
      flashboot: b.flashboot ?? "OFF",
    });
    return { status: 201, json: this.view(endpoint) };
  }

  private endpoint(req: RecordedRequest, id: string): Reply {
    if (!["GET", "PATCH", "DELETE"].includes(req.method)) return notAllowed("GET, PATCH, DELETE");
    const e = this.endpoints.get(id);
    if (!e) return notFound("serverless endpoint");
    if (req.method === "GET") return { status: 200, json: this.view(e) };
    if (req.method === "DELETE") {
      this.endpoints.delete(id);
      this.loadBalancer.endpointDeleted(id);
      if (e.boundTemplateId) this.templates.delete(e.boundTemplateId);
      return { status: 204 };
    }
    const parsed = parseBody(req, UpdateEndpointRequest);
    if ("reply" in parsed) return parsed.reply;
    const b = parsed.body;
    if (b.cpu !== undefined) return problem(400, "Bad Request", "cpu on a GPU endpoint");
    const next = structuredClone(e);
    if (b.gpu) {
      if (b.gpu.pools) {
        next.gpu.pools = b.gpu.pools;
        if (b.gpu.excludedTypes) next.gpu.excludedTypes = b.gpu.excludedTypes;
        else delete next.gpu.excludedTypes;
      }
      if (b.gpu.count !== undefined) next.gpu.count = b.gpu.count;
      if (b.gpu.allowedCudaVersions !== undefined) next.gpu.allowedCudaVersions = b.gpu.allowedCudaVersions;
      if (b.gpu.minCudaVersion !== undefined) next.gpu.minCudaVersion = b.gpu.minCudaVersion || null;
      const refused = this.checkGpu(
        next.gpu.pools,
        next.gpu.allowedCudaVersions,
        next.gpu.minCudaVersion ?? undefined,
      );
      if (refused) return refused;
    }
    if (b.networkVolumes) {
      const volumes = this.checkVolumes(b.networkVolumes);
      if (volumes) return volumes;
      next.networkVolumes = b.networkVolumes;
    }
    if (b.workers) {
      if (b.workers.min !== undefined) next.workers.min = b.workers.min;
      if (b.workers.max !== undefined) next.workers.max = b.workers.max;
      if (b.workers.idleTimeout !== undefined) next.workers.idleTimeout = b.workers.idleTimeout;
    }
    if (b.scaling) next.scaling = b.scaling;
    // EndpointScaling: QUEUE_DELAY is for queue-based endpoints only; `type` cannot change (not in the schema)
    if (next.type === "LOAD_BALANCER" && next.scaling.type !== "REQUEST_COUNT")
      return problem(
        400,
        "Bad Request",
        "scaling.type QUEUE_DELAY is for QUEUE endpoints; a LOAD_BALANCER endpoint scales on REQUEST_COUNT",
      );
    if (
      next.type === "QUEUE" &&
      next.scaling.type === "REQUEST_COUNT" &&
      next.workers.idleTimeout !== undefined
    ) {
      if (b.workers?.idleTimeout !== undefined)
        return problem(
          400,
          "Bad Request",
          "workers.idleTimeout does not apply to a QUEUE endpoint scaling on REQUEST_COUNT; leave it out",
        );
      delete next.workers.idleTimeout;
    }
    if (next.workers.min > next.workers.max)
      return problem(400, "Bad Request", "workers.min must not exceed workers.max");
    const container =
      b.image !== undefined || b.env !== undefined || b.args !== undefined || b.ports !== undefined;
    if (b.name !== undefined) next.name = b.name;
    if (b.image !== undefined) next.image = b.image;
    if (b.env !== undefined) next.env = b.env;
    if (b.args !== undefined) next.args = b.args;
    if (b.ports !== undefined) next.ports = b.ports;
    if (b.disk !== undefined) next.disk = b.disk;
    if (b.dataCenterIds !== undefined) next.dataCenterIds = b.dataCenterIds;
    if (b.timeout !== undefined) next.timeout = b.timeout;
    if (b.flashboot !== undefined) next.flashboot = b.flashboot;
    if (container) next.releases += 1;
    this.endpoints.set(id, next);
    return { status: 200, json: this.view(next) };
  }

  private checkGpu(
    pools: readonly string[],
    allowed: readonly string[] | undefined,
    floor: string | undefined,
  ): Reply | undefined {
    const unknown = pools.filter((p) => !(SERVERLESS_POOLS as readonly string[]).includes(p));
    if (unknown.length > 0) return problem(400, "Bad Request", `unknown GPU pool(s): ${unknown.join(", ")}`);
    if ((allowed?.length ?? 0) > 0 && floor)
      return problem(400, "Bad Request", "allowedCudaVersions and minCudaVersion are mutually exclusive");
    return undefined;
  }

  private checkVolumes(ids: readonly string[] | undefined): Reply | undefined {
    const missing = (ids ?? []).filter((id) => !this.volumeExists(id));
    return missing.length > 0
      ? problem(400, "Bad Request", `network volume(s) not found: ${missing.join(", ")}`)
      : undefined;
  }

  private template(req: RecordedRequest, id: string): Reply {
    if (!["GET", "DELETE"].includes(req.method)) return notAllowed("GET, PATCH, DELETE");
    const t = this.templates.get(id);
    if (!t) return notFound("template");
    if (req.method === "GET") return { status: 200, json: templateView(t) };
    if ([...this.endpoints.values()].some((e) => e.boundTemplateId === id))
      return problem(
        400,
        "Bad Request",
        "Template is in use by a pod or serverless endpoint and cannot be deleted",
      );
    this.templates.delete(id);
    return { status: 204 };
  }

  // ── job API ───────────────────────────────────────────────────────────────────────────────────────────

  private jobApi(req: RecordedRequest, id: string, op: "health" | "purge-queue"): Reply {
    const e = this.endpoints.get(id);
    if (!e) return problem(404, "Not Found", "endpoint not found");
    // A load-balancing endpoint has no job API (EndpointRequestUrls: only `base` and `health`); the answer is
    // not published, 404 as for a path that does not exist.
    if (e.type === "LOAD_BALANCER")
      return problem(
        404,
        "Not Found",
        `a LOAD_BALANCER endpoint has no job API; read GET /v2/serverless/${id}/workers`,
      );
    if (op === "health") {
      if (req.method !== "GET") return notAllowed("GET");
      return { status: 200, json: { jobs: { ...e.jobs }, workers: { ...e.workersNow } } };
    }
    if (req.method !== "POST") return notAllowed("POST");
    const removed = e.jobs.inQueue;
    e.jobs.inQueue = 0;
    return { status: 200, json: { removed, status: "completed" } };
  }

  // ── internals ─────────────────────────────────────────────────────────────────────────────────────────

  private add(
    fields: Pick<FakeServerlessEndpoint, "name" | "image" | "env" | "gpu" | "workers"> &
      Partial<FakeServerlessEndpoint>,
  ): FakeServerlessEndpoint {
    const endpoint: FakeServerlessEndpoint = {
      id: this.newId("ep"),
      type: "QUEUE",
      ports: [],
      args: "",
      disk: 5,
      scaling: { type: "QUEUE_DELAY", queueDelay: 4 },
      dataCenterIds: [],
      networkVolumes: [],
      timeout: 300_000,
      flashboot: "OFF",
      createdAt: new Date(this.now()).toISOString(),
      releases: 1,
      jobs: { inQueue: 0, inProgress: 0, completed: 0, failed: 0, retried: 0 },
      workersNow: { running: 0, idle: 0, initializing: 0, ready: 0, throttled: 0 },
      ...fields,
    };
    this.endpoints.set(endpoint.id, endpoint);
    return endpoint;
  }

  private views(): z.input<typeof Endpoint>[] {
    return [...this.endpoints.values()].map((e) => this.view(e));
  }

  private view(e: FakeServerlessEndpoint): z.input<typeof Endpoint> {
    return view(e, this.loadBalancerUrl(e.id));
  }

  /**
   * `GET /v2/serverless/{id}/workers` (`ListEndpointWorkersResponse`): a load-balancing endpoint's live workers;
   * for a queue-based one, one worker per count in `workersNow` (what tests set), so both types answer the same.
   */
  private listWorkers(req: RecordedRequest, id: string): Reply {
    if (req.method !== "GET") return notAllowed("GET");
    const e = this.endpoints.get(id);
    if (!e) return notFound("serverless endpoint");
    if (e.type === "LOAD_BALANCER") return { status: 200, json: this.loadBalancer.listWorkers(e) };
    const startedAt = new Date(this.now()).toISOString();
    const byStatus = [
      ["RUNNING", e.workersNow.running],
      ["IDLE", e.workersNow.idle],
      ["INITIALIZING", e.workersNow.initializing],
      ["THROTTLED", e.workersNow.throttled],
    ] as const;
    const workers = byStatus.flatMap(([status, n]) =>
      Array.from({ length: n }, (_, i) => ({
        id: `${e.id}-${status.toLowerCase()}-${i}`,
        status,
        isStale: false,
        version: e.releases,
        gpuCount: e.gpu.count,
        image: e.image,
        ...(status === "THROTTLED"
          ? { uptimeSeconds: null, gpuTypeId: null, dataCenterId: null, startedAt: null }
          : {
              uptimeSeconds: 0,
              gpuTypeId: e.gpu.pools[0] ?? null,
              dataCenterId: e.dataCenterIds[0] ?? null,
              startedAt,
            }),
      })),
    );
    return { status: 200, json: rollUp(workers, e.releases) };
  }

  /** RunPod-like ids. */
  private newId(prefix: string): string {
    return `${prefix}${(++this.seq).toString(36).padStart(8, "0")}`;
  }
}

/** The endpoint as the API shows it (`Endpoint`): without the fake's own bookkeeping. */
function view(e: FakeServerlessEndpoint, loadBalancerBase: string): z.input<typeof Endpoint> {
  const base = `https://api.runpod.ai/v2/${e.id}`;
  return {
    id: e.id,
    name: e.name,
    type: e.type,
    image: e.image,
    args: e.args,
    disk: e.disk,
    env: { ...e.env },
    ports: [...e.ports],
    registry: null,
    // LoadBalancingRequestUrls: base (RunPod: https://{id}.api.runpod.ai; here the fake's /lb/{id}) and the
    // HEALTH_CHECK_PATH under it; QueueBasedRequestUrls otherwise
    requestUrls:
      e.type === "LOAD_BALANCER"
        ? { base: loadBalancerBase, health: `${loadBalancerBase}${healthPath(e)}` }
        : queueUrls(base),
    gpu: structuredClone(e.gpu),
    workers: { ...e.workers },
    scaling: { ...e.scaling },
    dataCenterIds: [...e.dataCenterIds],
    networkVolumes: [...e.networkVolumes],
    timeout: e.timeout,
    flashboot: e.flashboot,
    createdAt: e.createdAt,
  };
}

/** `QueueBasedRequestUrls` of the job API at `base`. */
function queueUrls(base: string) {
  return {
    run: `${base}/run`,
    runSync: `${base}/runsync`,
    status: `${base}/status`,
    stream: `${base}/stream`,
    cancel: `${base}/cancel`,
    retry: `${base}/retry`,
    purgeQueue: `${base}/purge-queue`,
    health: `${base}/health`,
  };
}

function templateView(t: FakeTemplate): z.input<typeof Template> {
  return {
    id: t.id,
    name: t.name,
    image: t.image,
    args: "",
    disk: t.disk,
    env: { ...t.env },
    ports: [],
    registry: null,
    mounts: {},
    serverless: t.serverless,
    public: false,
    category: "NVIDIA",
    startSsh: false,
    startJupyter: false,
    allowedCudaVersions: [],
  };
}
