/**
 * The load balancer and worker pool of RunPod's load-balancing serverless endpoints (`type: "LOAD_BALANCER"`), for
 * `RunpodServerlessFake`. Written from runpod/docs @a900806, not from our adapters:
 * - `serverless/load-balancing/overview.mdx`: requests to `https://{id}.api.runpod.ai/<any path>` go straight to a
 *   worker's own HTTP server; the load balancer polls `HEALTH_CHECK_PATH` (default `/ping`) on `PORT_HEALTH`
 *   (default `PORT`, default 80): 200 healthy, 204 initializing, anything else unhealthy (out of the routing pool);
 *   request timeout 2 min when no worker is available, processing timeout 5.5 min, payload limit 30 MB (request
 *   and response); misconfigured ports → 502s. A custom `PORT` must be set in env and exposed in `ports`.
 * - `build-a-worker.mdx` "Troubleshooting": `{"error":"no workers available"}` when no worker got ready in time,
 *   `{"error":"not allowed for QB API"}` on a queue-based endpoint (statuses not published: 503 and 400 here).
 * - `worker-affinity.mdx`: every answer carries `X-Runpod-Worker-Id`; a request naming a worker prefers it.
 * - `serverless/endpoints/endpoint-configurations.mdx`: request-count scaling wants
 *   `ceil((requestsWaiting + requestsInProgress) / requestCount)` workers, between `workers.min` and `workers.max`;
 *   a worker idle for `idleTimeout` seconds shuts down.
 * - `api-reference-v2/openapi.json` `Worker`, `WorkerStatus`: RUNNING serving, IDLE ready, INITIALIZING starting,
 *   THROTTLED waiting for capacity, UNHEALTHY failing health checks.
 *
 * A loopback fake cannot give each endpoint its own subdomain, so each endpoint's load balancer is served under a
 * path of the fake's own URL, `${fake.url}/lb/{id}`, and that is the endpoint's `requestUrls.base`.
 *
 * Time: the worker lifecycle runs on real timers (a real gateway and a real worker server talk to it over real
 * sockets, which a manual clock cannot drive), with every duration test-settable (`LoadBalancerTiming`) so tests
 * stay fast: e.g. `idleSecondMs: 20` makes an `idleTimeout` of 1 s last 20 ms. Reported timestamps (`startedAt`,
 * `uptimeSeconds`) use the fake's own clock like the rest of the fake.
 */
import {
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import type { z } from "zod";
import type {
  EndpointScaling,
  ListEndpointWorkersResponse,
  LoadBalancerError,
  ServerlessWorker,
  WorkerStatus,
} from "../../core/contracts/runpod";
import type { RecordedRequest } from "./fake-api-server";

export interface LoadBalancerTiming {
  /** Real ms from a worker's start until its server can answer (health polls before that get no answer). @default 0 */
  bootMs: number;
  /** Real ms between scaler passes, each polling every started worker's health path once. @default 50 */
  healthCheckIntervalMs: number;
  /** How long a request waits for a ready worker before `{"error":"no workers available"}`. @default 120_000 (2 min) */
  noWorkerTimeoutMs: number;
  /** How long one request may take at the worker (whole response). @default 330_000 (5.5 min) */
  processingTimeoutMs: number;
  /** Real ms that one second of `workers.idleTimeout` lasts. @default 1000 */
  idleSecondMs: number;
  /** Request and response payload limit in bytes ("30 MB", read as 30 000 000: the stricter reading). */
  maxPayloadBytes: number;
}

export const DEFAULT_LOAD_BALANCER_TIMING: LoadBalancerTiming = {
  bootMs: 0,
  healthCheckIntervalMs: 50,
  noWorkerTimeoutMs: 120_000,
  processingTimeoutMs: 330_000,
  idleSecondMs: 1000,
  maxPayloadBytes: 30_000_000,
};

/** What the load balancer needs to know of an endpoint (the fake's own record). */
export interface LoadBalancedEndpoint {
  readonly id: string;
  readonly type: "QUEUE" | "LOAD_BALANCER";
  readonly image: string;
  readonly env: Record<string, string>;
  readonly ports: readonly string[];
  readonly workers: { min: number; max: number; idleTimeout?: number };
  readonly scaling: EndpointScaling;
  readonly gpu: { pools: string[]; count: number };
  readonly dataCenterIds: readonly string[];
  readonly releases: number;
}

/** The worker's HTTP server a test attaches to an endpoint: a URL, or one per worker. */
export type WorkerServer = string | ((workerId: string) => string | Promise<string>);

export interface AttachWorkerOptions {
  /**
   * The port the image's server listens on inside the container. When given, the load balancer reaches the
   * attached server only if the endpoint's env `PORT` (default 80) and `PORT_HEALTH` (default `PORT`) are this
   * port and, when it is not 80, `ports` exposes `<port>/http`; otherwise its workers are UNHEALTHY and requests
   * end in 502 (overview.mdx: misconfigured ports → 502). Without it, any port config reaches the server.
   */
  port?: number;
}

/** Last health-check outcome of a worker. */
type Health = "no-answer" | "initializing" | "healthy" | "unhealthy" | "unreachable-port";

/** One worker of a load-balancing endpoint. */
export interface FakeLbWorker {
  readonly id: string;
  readonly endpointId: string;
  /** Endpoint release (`releases`) the worker started on; `isStale` when the endpoint has moved on. */
  readonly version: number;
  readonly image: string;
  readonly gpuCount: number;
  readonly gpuTypeId: string;
  readonly dataCenterId: string;
  /** ISO time on the fake's clock when it was placed (null while THROTTLED: `Worker.startedAt`). */
  startedAt: string | null;
  /** Real ms (Date.now) of its placement, for boot and idle timing. */
  startedRealMs: number;
  /** Waiting for GPU capacity (`throttle`): not placed, not booting. */
  throttled: boolean;
  /** The attached server's base URL once resolved; undefined = no server attached (health gets no answer). */
  serverUrl?: string;
  health: Health;
  /** Requests the worker is serving now. */
  inFlight: number;
  /** Requests it has served (begun). */
  served: number;
  /** Real ms of its last request's end, or of becoming ready. */
  lastActiveRealMs: number;
  /** WorkerStatus right now. */
  readonly status: WorkerStatus;
}

interface WorkerRecord extends Omit<FakeLbWorker, "status"> {
  polling: boolean;
  everReady: boolean;
  /** Cut the requests it is serving (when it is removed). */
  cutters: Set<() => void>;
}

/** Headers a proxy does not pass on (RFC 9110 §7.6.1 connection-specific fields), plus those it sets itself. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
]);

const LB_PATH = /^\/lb\/([^/]+)(\/.*)?$/;

export class FakeLoadBalancer {
  timing: LoadBalancerTiming;
  /**
   * Whether the caller's `Authorization` header (the RunPod API key) reaches the worker. The docs do not say;
   * stripped by default so nothing can come to depend on the API key reaching a worker.
   */
  forwardAuthorization = false;
  private readonly workers = new Map<string, WorkerRecord>();
  private readonly servers = new Map<string, { server: WorkerServer; options: AttachWorkerOptions }>();
  /** Requests waiting for a ready worker, per endpoint (they count towards request-count scaling). */
  private readonly waiting = new Map<string, number>();
  private readonly wakers = new Set<() => void>();
  private readonly openPolls = new Set<Promise<void>>();
  /** Endpoints whose new workers find no GPU capacity (THROTTLED until `throttle(id, false)`). */
  private readonly noCapacity = new Set<string>();
  private timer?: NodeJS.Timeout;
  private seq = 0;

  constructor(
    private readonly deps: {
      apiKey: string;
      now: () => number;
      endpoint: (id: string) => LoadBalancedEndpoint | undefined;
      endpoints: () => Iterable<LoadBalancedEndpoint>;
    },
    timing: Partial<LoadBalancerTiming> = {},
  ) {
    this.timing = { ...DEFAULT_LOAD_BALANCER_TIMING, ...timing };
  }

  static matches(path: string): boolean {
    return LB_PATH.test(path);
  }

  start(): void {
    this.stop();
    const loop = (): void => {
      this.pass();
      this.timer = setTimeout(loop, this.timing.healthCheckIntervalMs);
      this.timer.unref();
    };
    this.timer = setTimeout(loop, this.timing.healthCheckIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Forget workers, attachments and waiting requests (waiting requests then time out as usual). */
  reset(): void {
    this.workers.clear();
    this.servers.clear();
    this.waiting.clear();
  }

  attach(endpointId: string, server: WorkerServer, options: AttachWorkerOptions = {}): void {
    this.servers.set(endpointId, { server, options });
    // Workers already started without a server get it now (a container whose server comes up late).
    for (const w of this.workers.values())
      if (w.endpointId === endpointId && w.serverUrl === undefined) void this.resolveServer(w);
    this.pass();
  }

  detach(endpointId: string): void {
    this.servers.delete(endpointId);
  }

  /** The endpoint's workers with their status now. */
  workersOf(endpointId: string): FakeLbWorker[] {
    return [...this.workers.values()].filter((w) => w.endpointId === endpointId).map((w) => this.snapshot(w));
  }

  /**
   * No GPU capacity for the endpoint (`true`): workers it starts from now on are THROTTLED — counted, not placed,
   * not booting. `false`: capacity is back; throttled workers are placed and boot from now.
   */
  throttle(endpointId: string, noCapacity: boolean): void {
    if (noCapacity) this.noCapacity.add(endpointId);
    else {
      this.noCapacity.delete(endpointId);
      for (const w of this.workers.values())
        if (w.endpointId === endpointId && w.throttled) {
          w.throttled = false;
          w.startedRealMs = Date.now();
          w.lastActiveRealMs = w.startedRealMs;
          w.startedAt = new Date(this.deps.now()).toISOString();
        }
    }
    this.pass();
  }

  /** Remove a worker at once (a crash or preemption); requests it is serving are cut. */
  removeWorker(workerId: string): boolean {
    const w = this.workers.get(workerId);
    if (w) this.drop(w);
    this.wake();
    return w !== undefined;
  }

  /** Drop every worker of a deleted endpoint (deleteEndpoint: "all workers are terminated"). */
  endpointDeleted(endpointId: string): void {
    for (const w of [...this.workers.values()]) if (w.endpointId === endpointId) this.drop(w);
    this.servers.delete(endpointId);
    this.wake();
  }

  /** One scaler pass now, awaiting the health polls it starts. */
  async passNow(): Promise<void> {
    this.pass();
    await Promise.all([...this.openPolls]);
  }

  /** Resolves with the endpoint's workers once `done` holds for them (checked after every change and pass). */
  async waitForWorkers(
    endpointId: string,
    done: (workers: FakeLbWorker[]) => boolean,
    timeoutMs = 5000,
  ): Promise<FakeLbWorker[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const now = this.workersOf(endpointId);
      if (done(now)) return now;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `waitForWorkers(${endpointId}): condition not met in ${timeoutMs} ms; workers: ${JSON.stringify(now.map((w) => ({ id: w.id, status: w.status })))}`,
        );
      await this.changeOrTimeout(Math.min(left, this.timing.healthCheckIntervalMs));
    }
  }

  /** `ListEndpointWorkersResponse` of a load-balancing endpoint. */
  listWorkers(e: LoadBalancedEndpoint): z.input<typeof ListEndpointWorkersResponse> {
    return rollUp(
      this.workersOf(e.id).map((w) => workerView(w, e.releases, this.deps.now())),
      e.releases,
    );
  }

  // ── the scaler ─────────────────────────────────────────────────────────────────────────────────────────

  private pass(): void {
    const live = new Set<string>();
    for (const e of this.deps.endpoints()) {
      if (e.type !== "LOAD_BALANCER") continue;
      live.add(e.id);
      this.scale(e);
    }
    for (const w of [...this.workers.values()]) if (!live.has(w.endpointId)) this.drop(w);
    for (const w of this.workers.values()) this.poll(w);
  }

  /** The worker stops: gone from the pool, its requests cut. */
  private drop(w: WorkerRecord): void {
    this.workers.delete(w.id);
    for (const cut of [...w.cutters]) cut();
  }

  private scale(e: LoadBalancedEndpoint): void {
    const mine = [...this.workers.values()].filter((w) => w.endpointId === e.id);
    const inProgress = mine.reduce((n, w) => n + w.inFlight, 0);
    const demand = (this.waiting.get(e.id) ?? 0) + inProgress;
    // endpoint-configurations.mdx: request count wants ceil((waiting + in progress) / requestCount) workers
    const perWorker = e.scaling.type === "REQUEST_COUNT" ? e.scaling.requestCount : 1;
    const wanted = Math.min(e.workers.max, Math.max(e.workers.min, Math.ceil(demand / perWorker)));
    const before = this.workers.size;
    for (let n = mine.length; n < wanted; n++) this.startWorker(e);
    // Above max (max lowered): workers not serving go at once; busy ones when they are done.
    let count = mine.length;
    for (const w of mine) {
      if (count <= e.workers.max) break;
      if (w.inFlight === 0) {
        this.workers.delete(w.id);
        count--;
      }
    }
    // Idle above min and above what the load wants: gone after idleTimeout seconds without a request.
    const idleMs = (e.workers.idleTimeout ?? 10) * this.timing.idleSecondMs;
    const nowMs = Date.now();
    for (const w of mine) {
      if (count <= Math.max(e.workers.min, wanted)) break;
      if (!this.workers.has(w.id)) continue;
      if (this.status(w) === "IDLE" && nowMs - w.lastActiveRealMs >= idleMs) {
        this.workers.delete(w.id);
        count--;
      }
    }
    // only on a change: concurrent waiters each run a pass, and must not wake one another for nothing
    if (this.workers.size !== before) this.wake();
  }

  private startWorker(e: LoadBalancedEndpoint): void {
    const nowMs = Date.now();
    const throttled = this.noCapacity.has(e.id);
    const w: WorkerRecord = {
      id: `wk${(++this.seq).toString(36).padStart(8, "0")}`,
      endpointId: e.id,
      version: e.releases,
      image: e.image,
      gpuCount: e.gpu.count,
      gpuTypeId: e.gpu.pools[0] ?? "ADA_24",
      dataCenterId: e.dataCenterIds[0] ?? "US-KS-2",
      startedAt: throttled ? null : new Date(this.deps.now()).toISOString(),
      startedRealMs: nowMs,
      throttled,
      health: "no-answer",
      inFlight: 0,
      served: 0,
      lastActiveRealMs: nowMs,
      polling: false,
      everReady: false,
      cutters: new Set(),
    };
    this.workers.set(w.id, w);
    void this.resolveServer(w);
  }

  private async resolveServer(w: WorkerRecord): Promise<void> {
    const attached = this.servers.get(w.endpointId);
    if (!attached) return;
    const url = typeof attached.server === "string" ? attached.server : await attached.server(w.id);
    w.serverUrl = url;
    this.poll(w);
  }

  /** Poll the worker's health path once (unless a poll is under way or it is still booting). */
  private poll(w: WorkerRecord): void {
    if (w.polling || w.throttled || w.serverUrl === undefined) return;
    if (Date.now() - w.startedRealMs < this.timing.bootMs) return;
    const e = this.deps.endpoint(w.endpointId);
    if (!e) return;
    const portProblem = this.portProblem(e);
    if (portProblem) {
      w.health = "unreachable-port";
      return;
    }
    w.polling = true;
    const done = this.probe(w.serverUrl, healthPath(e)).then((health) => {
      w.polling = false;
      this.openPolls.delete(done);
      if (!this.workers.has(w.id)) return;
      // a server that answered before and now does not is failing its checks, not starting
      w.health = health === "no-answer" && w.everReady ? "unhealthy" : health;
      if (health === "healthy" && !w.everReady) {
        w.everReady = true;
        w.lastActiveRealMs = Date.now();
      }
      this.wake();
    });
    this.openPolls.add(done);
  }

  /**
   * overview.mdx: 200 healthy, 204 initializing, any other status unhealthy. No answer at all (connection refused,
   * 2 s timeout) is not covered by the docs: before the first 200 it reads as a server still starting
   * (INITIALIZING), after it as UNHEALTHY.
   */
  private probe(serverUrl: string, path: string): Promise<Health> {
    return new Promise((resolve) => {
      const req = httpRequest(joinUrl(serverUrl, path, ""), { method: "GET", timeout: 2000 }, (res) => {
        res.resume();
        const s = res.statusCode ?? 0;
        resolve(s === 200 ? "healthy" : s === 204 ? "initializing" : "unhealthy");
      });
      req.on("timeout", () => req.destroy());
      req.on("error", () => resolve("no-answer"));
      req.end();
    });
  }

  /** Why the attached server cannot be reached with this endpoint's port config, if it cannot. */
  private portProblem(e: LoadBalancedEndpoint): string | undefined {
    const listensOn = this.servers.get(e.id)?.options.port;
    if (listensOn === undefined) return undefined;
    const port = Number(e.env.PORT ?? "80");
    const healthPort = Number(e.env.PORT_HEALTH ?? String(port));
    if (port !== listensOn) return `env PORT is ${port}, the server listens on ${listensOn}`;
    if (healthPort !== listensOn)
      return `env PORT_HEALTH is ${healthPort}, the server listens on ${listensOn}`;
    if (port !== 80 && !e.ports.includes(`${port}/http`)) return `ports does not expose ${port}/http`;
    return undefined;
  }

  private status(w: WorkerRecord): WorkerStatus {
    if (w.throttled) return "THROTTLED";
    switch (w.health) {
      case "healthy":
        return w.inFlight > 0 ? "RUNNING" : "IDLE";
      case "unhealthy":
      case "unreachable-port":
        return "UNHEALTHY";
      default:
        return "INITIALIZING";
    }
  }

  private snapshot(w: WorkerRecord): FakeLbWorker {
    const { polling: _polling, everReady: _everReady, cutters: _cutters, ...rest } = w;
    return { ...rest, status: this.status(w) };
  }

  private wake(): void {
    for (const waker of [...this.wakers]) waker();
  }

  private changeOrTimeout(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakers.add(done);
    });
  }

  // ── the load balancer ──────────────────────────────────────────────────────────────────────────────────

  /** The answer to a request under `/lb/{id}/...`, streamed through from a worker. */
  handler(req: RecordedRequest): (res: ServerResponse) => Promise<void> {
    return (res) => this.serve(req, res);
  }

  private async serve(req: RecordedRequest, res: ServerResponse): Promise<void> {
    const [, rawId = "", rest = "/"] = LB_PATH.exec(req.path) ?? [];
    const id = decodeURIComponent(rawId);
    // The same bearer check as the REST API (the docs' examples send `Authorization: Bearer RUNPOD_API_KEY`).
    const auth = req.headers.authorization;
    if (auth === undefined || !auth.startsWith("Bearer ")) return problem401(res, "missing bearer token");
    if (auth !== `Bearer ${this.deps.apiKey}`) return problem401(res, "invalid bearer token");
    const e = this.deps.endpoint(id);
    // Not published: what an unknown endpoint's subdomain answers; 404 is the least surprising.
    if (!e) return lbError(res, 404, "endpoint not found");
    if (e.type !== "LOAD_BALANCER") return lbError(res, 400, "not allowed for QB API");
    const body = req.rawBytes ?? Buffer.from(req.rawBody);
    // Not published: the status of the 30 MB limit; 413 Content Too Large is what the limit means in HTTP.
    if (body.length > this.timing.maxPayloadBytes)
      return lbError(
        res,
        413,
        `payload of ${body.length} bytes exceeds the ${this.timing.maxPayloadBytes}-byte limit`,
      );

    let clientGone = false;
    res.on("close", () => {
      if (!res.writableFinished) clientGone = true;
    });
    const worker = await this.waitForReady(e.id, req.headers["x-runpod-worker-id"], () => clientGone);
    if (clientGone) return;
    if (!worker) {
      const current = this.deps.endpoint(id);
      if (current && this.portProblem(current) && this.workersOf(id).length > 0)
        return lbError(res, 502, "bad gateway: the worker's server is not reachable on the configured port");
      // build-a-worker.mdx: `{"error":"no workers available"}`; its status is not published, 503 chosen.
      return lbError(res, 503, "no workers available");
    }
    await this.forward(req, res, rest, body, worker, () => clientGone);
  }

  /** A ready worker (least busy; the one `X-Runpod-Worker-Id` names if it is ready), waiting up to the timeout. */
  private async waitForReady(
    endpointId: string,
    affinity: string | string[] | undefined,
    gone: () => boolean,
  ): Promise<WorkerRecord | undefined> {
    const deadline = Date.now() + this.timing.noWorkerTimeoutMs;
    const preferred = typeof affinity === "string" ? affinity.trim() : undefined;
    this.waiting.set(endpointId, (this.waiting.get(endpointId) ?? 0) + 1);
    try {
      for (;;) {
        const ready = [...this.workers.values()].filter(
          (w) => w.endpointId === endpointId && w.health === "healthy",
        );
        if (ready.length > 0) {
          // worker-affinity.mdx soft affinity: prefer the named worker, else normal selection
          const chosen =
            ready.find((w) => w.id === preferred) ??
            ready.reduce((a, b) => (b.inFlight < a.inFlight ? b : a));
          return chosen;
        }
        const left = deadline - Date.now();
        if (left <= 0 || gone()) return undefined;
        const e = this.deps.endpoint(endpointId);
        if (e) this.scale(e);
        await this.changeOrTimeout(Math.min(left, this.timing.healthCheckIntervalMs));
      }
    } finally {
      this.waiting.set(endpointId, Math.max(0, (this.waiting.get(endpointId) ?? 1) - 1));
    }
  }

  private forward(
    req: RecordedRequest,
    res: ServerResponse,
    rest: string,
    body: Buffer,
    worker: WorkerRecord,
    gone: () => boolean,
  ): Promise<void> {
    const search = new URLSearchParams(req.query).toString();
    const target = joinUrl(worker.serverUrl ?? "", rest, search ? `?${search}` : "");
    const headers = forwardedHeaders(req.headers, this.forwardAuthorization);
    if (body.length > 0) headers["content-length"] = String(body.length);
    worker.inFlight++;
    worker.served++;
    this.wake();
    return new Promise<void>((resolve) => {
      let settled = false;
      let sentBytes = 0;
      const cut = (): void => {
        upstream.destroy();
        res.destroy();
        finish();
      };
      worker.cutters.add(cut);
      const finish = (): void => {
        if (settled) return;
        settled = true;
        worker.cutters.delete(cut);
        clearTimeout(processing);
        worker.inFlight = Math.max(0, worker.inFlight - 1);
        worker.lastActiveRealMs = Date.now();
        this.wake();
        resolve();
      };
      const upstream = httpRequest(target, { method: req.method, headers }, (up: IncomingMessage) => {
        const out: Record<string, string | string[]> = { "x-runpod-worker-id": worker.id };
        for (const [k, v] of Object.entries(up.headers))
          if (v !== undefined && !HOP_BY_HOP.has(k.toLowerCase())) out[k] = v;
        res.writeHead(up.statusCode ?? 502, out);
        // SSE and other streams pass through chunk by chunk as the worker writes them.
        up.on("data", (chunk: Buffer) => {
          sentBytes += chunk.length;
          if (sentBytes > this.timing.maxPayloadBytes) {
            // Not published: what happens past the 30 MB response limit; the connection is cut.
            upstream.destroy();
            res.destroy();
            finish();
            return;
          }
          res.write(chunk);
        });
        up.on("end", () => {
          res.end();
          finish();
        });
        up.on("close", () => {
          // The worker's answer broke off before its end: so does ours.
          if (!up.complete) {
            res.destroy();
            finish();
          }
        });
      });
      const processing = setTimeout(() => {
        upstream.destroy();
        // Not published: the answer past the 5.5 min processing timeout; 504 before any byte, a cut after.
        if (!res.headersSent) lbError(res, 504, "request timed out");
        else res.destroy();
        finish();
      }, this.timing.processingTimeoutMs);
      upstream.on("error", () => {
        if (settled) return; // we cut it ourselves (timeout, limit, caller gone) and answered already
        // Not published: a worker that fails mid-request; 502 as a proxy answers, a cut once bytes have gone out.
        if (!res.headersSent && !gone()) lbError(res, 502, "bad gateway: the worker did not answer");
        else res.destroy();
        finish();
      });
      res.on("close", () => {
        // The caller went away: the worker's request is cancelled too (what a proxy does).
        if (!res.writableFinished) {
          upstream.destroy();
          finish();
        }
      });
      upstream.end(body);
    });
  }
}

/** `HEALTH_CHECK_PATH` from the endpoint env, default `/ping` (`LoadBalancingRequestUrls.health`). */
export function healthPath(e: { env: Record<string, string> }): string {
  const path = e.env.HEALTH_CHECK_PATH?.trim() || "/ping";
  return path.startsWith("/") ? path : `/${path}`;
}

/** `ListEndpointWorkersResponse` from a list of workers: the summary is their roll-up by status. */
export function rollUp(
  workers: z.input<typeof ServerlessWorker>[],
  endpointVersion: number,
): z.input<typeof ListEndpointWorkersResponse> {
  const count = (s: WorkerStatus): number => workers.filter((w) => w.status === s).length;
  return {
    workers,
    summary: {
      running: count("RUNNING"),
      idle: count("IDLE"),
      initializing: count("INITIALIZING"),
      throttled: count("THROTTLED"),
      unhealthy: count("UNHEALTHY"),
      total: workers.length,
    },
    endpointVersion,
  };
}

function workerView(
  w: FakeLbWorker,
  endpointVersion: number,
  nowMs: number,
): z.input<typeof ServerlessWorker> {
  // Worker: uptime, GPU type, data centre and start are null until the worker is placed
  const placedAt = w.startedAt === null ? undefined : Date.parse(w.startedAt);
  const placed = placedAt !== undefined;
  return {
    id: w.id,
    status: w.status,
    isStale: w.version !== endpointVersion,
    version: w.version,
    gpuCount: w.gpuCount,
    image: w.image,
    uptimeSeconds: placedAt !== undefined ? Math.max(0, Math.floor((nowMs - placedAt) / 1000)) : null,
    gpuTypeId: placed ? w.gpuTypeId : null,
    dataCenterId: placed ? w.dataCenterId : null,
    startedAt: w.startedAt,
  };
}

function joinUrl(base: string, path: string, search: string): string {
  const url = new URL(base);
  url.pathname = url.pathname.replace(/\/$/, "") + path;
  url.search = search;
  return url.toString();
}

function forwardedHeaders(
  headers: IncomingHttpHeaders,
  withAuthorization: boolean,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || HOP_BY_HOP.has(k)) continue;
    if (k === "authorization" && !withAuthorization) continue;
    out[k] = v;
  }
  return out;
}

function lbError(res: ServerResponse, status: number, error: string): void {
  const body: LoadBalancerError = { error };
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

/** The REST API's 401 (`UnauthorizedError`). */
function problem401(res: ServerResponse, detail: string): void {
  res.writeHead(401, { "content-type": "application/problem+json" });
  res.end(JSON.stringify({ title: "Unauthorized", status: 401, detail }));
}
