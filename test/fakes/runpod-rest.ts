/**
 * Contract fake of RunPod REST v2 pods (https://api.runpod.io/v2) as a real HTTP server on 127.0.0.1, from
 * reference/providers.md §1.4 and the RunPod fake checklist:
 * - Bearer auth only; errors as `application/problem+json` `{title,status,detail}`; unknown body fields → 422;
 *   `RateLimit`/`RateLimit-Policy` headers; a 429 carries Retry-After (inject it with `rateLimitNext`);
 * - `GET /v2/catalog/gpus?include=AVAILABILITY&product=POD` from seeded GPU types with secure/community prices
 *   and stock; a create beyond stock or outside the seeded data centres answers 400 "There are no longer any
 *   instances available with the requested specifications";
 * - `POST /v2/pods` (201), `GET /v2/pods[/{id}]` (lists wrapped in `{pods}`), `DELETE /v2/pods/{id}` (204, then
 *   404), `POST /v2/pods/{id}/action`;
 * - status walk PROVISIONING → STARTING → RUNNING (stuck STARTING, EXITED, ERROR injectable); `publicIp` and
 *   `portMappings` only once RUNNING; per-second cost while STARTING/RUNNING.
 * Fault injection, the request log and the manual clock come from the shared harness in ./vastai-api.
 */
import {
  FakeApiServer,
  type FaultMatch,
  perSecondUsd,
  type RecordedRequest,
  type Reply,
  Timeline,
} from "./fake-api-server";

export interface RunpodGpuSeed {
  id: string;
  pool?: string;
  memory?: number;
  /** USD per GPU-hour; undefined = not offered in that cloud. */
  securePrice?: number;
  communityPrice?: number;
  /** Pods that can still be placed; 0 = no capacity. */
  stock: number;
  /** Data centres that have it; empty/undefined = all. */
  dataCenters?: string[];
}

export type RunpodFate = "normal" | "stuck_starting" | "exited" | "error";
type PodStatus = "PROVISIONING" | "STARTING" | "RUNNING" | "EXITED" | "ERROR" | "TERMINATED";

interface Pod {
  id: string;
  body: Record<string, unknown>;
  name: string;
  cloud: "SECURE" | "COMMUNITY";
  gpuId: string;
  gpuCount: number;
  costPerHr: number;
  dataCenterId: string;
  createdAt: number;
  timeline: Timeline<PodStatus>;
  publicIp: string;
  portMappings: Record<string, number>;
}

export interface RunpodFakeOptions {
  apiKey: string;
  gpus?: RunpodGpuSeed[];
  now?: () => number;
  walk?: { provisioningMs?: number; startingMs?: number };
}

const CREATE_FIELDS = new Set([
  "name",
  "image",
  "args",
  "disk",
  "ports",
  "env",
  "registry",
  "mounts",
  "cloud",
  "gpu",
  "cpu",
  "dataCenterIds",
  "templateId",
]);

const NO_CAPACITY = "There are no longer any instances available with the requested specifications";

export class RunpodRestFake extends FakeApiServer {
  readonly apiKey: string;
  readonly gpus = new Map<string, RunpodGpuSeed>();
  readonly pods = new Map<string, Pod>();
  readonly fates: RunpodFate[] = [];
  private seq = 0;
  private readonly walk: { provisioningMs: number; startingMs: number };

  constructor(options: RunpodFakeOptions) {
    super(options.now);
    this.apiKey = options.apiKey;
    for (const g of options.gpus ?? []) this.gpus.set(g.id, { ...g });
    this.walk = {
      provisioningMs: options.walk?.provisioningMs ?? 5_000,
      startingMs: options.walk?.startingMs ?? 60_000,
    };
  }

  get apiBase(): string {
    return this.url;
  }

  /** 429 problem+json with Retry-After (seconds), as the v2 spec documents. */
  rateLimitNext(times = 1, retryAfterSeconds = 2, match: FaultMatch = {}): this {
    return this.inject(
      {
        type: "status",
        status: 429,
        json: { title: "Too Many Requests", status: 429, detail: "rate limit exceeded" },
        headers: { "content-type": "application/problem+json", "retry-after": String(retryAfterSeconds) },
      },
      { times, ...match },
    );
  }

  /** Pods not terminated. */
  live(): Pod[] {
    return [...this.pods.values()].filter((p) => p.timeline.statusAt(this.now()) !== "TERMINATED");
  }

  costOf(id: string): { billedSeconds: number; usd: number } {
    const pod = this.pods.get(id);
    if (!pod) throw new Error(`no pod ${id}`);
    const ms = pod.timeline.msIn(["STARTING", "RUNNING"], this.now());
    return { billedSeconds: Math.ceil(ms / 1000), usd: perSecondUsd(ms, pod.costPerHr) };
  }

  /** Create a pod directly (e.g. another stack's). */
  seedPod(name: string, gpuId: string): string {
    const reply = this.create({ name, image: "x/y:1", gpu: { id: gpuId, count: 1 }, cloud: "SECURE" });
    const id = (reply.json as { id?: string }).id;
    if (!id) throw new Error(`cannot seed pod: ${JSON.stringify(reply.json)}`);
    return id;
  }

  protected handle(req: RecordedRequest): Reply {
    const reply = this.route(req);
    return {
      ...reply,
      headers: {
        "ratelimit-policy": "60;w=60",
        ratelimit: "limit=60, remaining=59, reset=60",
        ...reply.headers,
      },
    };
  }

  private route(req: RecordedRequest): Reply {
    if (req.headers.authorization !== `Bearer ${this.apiKey}`)
      return problem(401, "Unauthorized", "invalid or missing API key");
    const p = req.path;
    if (req.method === "GET" && p === "/v2/catalog/gpus") return this.catalog();
    if (p === "/v2/pods" && req.method === "POST") return this.create(req.body);
    if (p === "/v2/pods" && req.method === "GET")
      return { status: 200, json: { pods: this.live().map((x) => this.view(x)) } };
    const one = p.match(/^\/v2\/pods\/([^/]+)$/);
    if (one) {
      const pod = this.pods.get(decodeURIComponent(one[1] ?? ""));
      const gone = !pod || pod.timeline.statusAt(this.now()) === "TERMINATED";
      if (gone) return problem(404, "Not Found", "pod not found");
      if (req.method === "GET") return { status: 200, json: this.view(pod) };
      if (req.method === "DELETE") {
        this.terminatePod(pod);
        return { status: 204 };
      }
    }
    const action = p.match(/^\/v2\/pods\/([^/]+)\/action$/);
    if (req.method === "POST" && action) {
      const pod = this.pods.get(decodeURIComponent(action[1] ?? ""));
      if (!pod || pod.timeline.statusAt(this.now()) === "TERMINATED")
        return problem(404, "Not Found", "pod not found");
      const verb = isObj(req.body) ? req.body.action : undefined;
      if (verb === "stop") pod.timeline.set("EXITED", this.now());
      else if (verb === "start")
        pod.timeline.walkFrom(this.now(), [
          { status: "STARTING", afterMs: 0 },
          { status: "RUNNING", afterMs: this.walk.startingMs },
        ]);
      else if (verb === "terminate") this.terminatePod(pod);
      else return problem(400, "Bad Request", "action must be start, stop, restart or terminate");
      return { status: 200, json: this.view(pod) };
    }
    return problem(404, "Not Found", `no route ${req.method} ${p}`);
  }

  private catalog(): Reply {
    return {
      status: 200,
      json: {
        gpus: [...this.gpus.values()].map((g) => ({
          id: g.id,
          pool: g.pool ?? null,
          memory: g.memory ?? 24,
          secure: g.securePrice !== undefined,
          community: g.communityPrice !== undefined,
          price: { secure: g.securePrice ?? null, community: g.communityPrice ?? null, serverless: null },
          availability: g.stock <= 0 ? "NONE" : g.stock < 3 ? "LOW" : "HIGH",
        })),
      },
    };
  }

  private create(body: unknown): Reply {
    if (!isObj(body)) return problem(400, "Bad Request", "body must be a JSON object");
    const unknown = Object.keys(body).filter((k) => !CREATE_FIELDS.has(k));
    if (unknown.length > 0)
      return problem(422, "Unprocessable Entity", `unknown fields: ${unknown.join(", ")}`, {
        errors: unknown.map((f) => ({ field: f, message: "unknown field" })),
      });
    if (typeof body.name !== "string" || body.name.length < 1 || typeof body.image !== "string")
      return problem(422, "Unprocessable Entity", "name and image are required");
    const gpu = isObj(body.gpu) ? body.gpu : undefined;
    const gpuId = typeof gpu?.id === "string" ? gpu.id : undefined;
    const count = typeof gpu?.count === "number" ? gpu.count : 1;
    const seed = gpuId ? this.gpus.get(gpuId) : undefined;
    if (!seed) return problem(400, "Bad Request", `unknown GPU type ${String(gpuId)}`);
    const cloud = body.cloud === "COMMUNITY" ? "COMMUNITY" : "SECURE";
    const price = cloud === "SECURE" ? seed.securePrice : seed.communityPrice;
    const wantedDcs = Array.isArray(body.dataCenterIds) ? (body.dataCenterIds as string[]) : [];
    const dcs = seed.dataCenters ?? [];
    const dcOk = wantedDcs.length === 0 || dcs.length === 0 || wantedDcs.some((d) => dcs.includes(d));
    if (price === undefined || seed.stock < count || !dcOk) return problem(400, "Bad Request", NO_CAPACITY);
    seed.stock -= count;

    const id = `pod${(++this.seq).toString(36).padStart(6, "0")}x`;
    const fate = this.fates.shift() ?? "normal";
    const walk: { status: PodStatus; afterMs: number }[] = [
      { status: "PROVISIONING", afterMs: 0 },
      { status: "STARTING", afterMs: this.walk.provisioningMs },
    ];
    if (fate === "normal") walk.push({ status: "RUNNING", afterMs: this.walk.startingMs });
    if (fate === "exited") walk.push({ status: "EXITED", afterMs: this.walk.startingMs });
    if (fate === "error") walk.push({ status: "ERROR", afterMs: this.walk.startingMs });
    const portMappings: Record<string, number> = {};
    for (const port of Array.isArray(body.ports) ? body.ports : []) {
      const pm = typeof port === "string" ? port.match(/^(\d+)\/tcp$/) : null;
      if (pm?.[1]) portMappings[pm[1]] = 10_000 + this.seq * 10 + Object.keys(portMappings).length;
    }
    const pod: Pod = {
      id,
      body,
      name: body.name,
      cloud,
      gpuId: seed.id,
      gpuCount: count,
      costPerHr: Math.round(price * count * 1e6) / 1e6,
      dataCenterId: wantedDcs.find((d) => dcs.length === 0 || dcs.includes(d)) ?? dcs[0] ?? "EU-RO-1",
      createdAt: this.now(),
      timeline: new Timeline(this.now(), walk),
      publicIp: `198.51.100.${this.seq % 250}`,
      portMappings,
    };
    this.pods.set(id, pod);
    return { status: 201, json: this.view(pod) };
  }

  private terminatePod(pod: Pod): void {
    pod.timeline.set("TERMINATED", this.now());
    const seed = this.gpus.get(pod.gpuId);
    if (seed) seed.stock += pod.gpuCount;
  }

  private view(pod: Pod): Record<string, unknown> {
    const status = pod.timeline.statusAt(this.now()) ?? "PROVISIONING";
    const running = status === "RUNNING";
    const b = pod.body;
    return {
      id: pod.id,
      name: pod.name,
      image: b.image,
      args: typeof b.args === "string" ? b.args : "",
      disk: typeof b.disk === "number" ? b.disk : 20,
      ports: Array.isArray(b.ports) ? b.ports : [],
      env: isObj(b.env) ? b.env : {},
      registry: null,
      status,
      cloud: pod.cloud,
      gpu: { id: pod.gpuId, count: pod.gpuCount },
      costPerHr: String(pod.costPerHr),
      dataCenterId: pod.dataCenterId,
      createdAt: new Date(pod.createdAt).toISOString(),
      publicIp: running ? pod.publicIp : null,
      portMappings: running ? pod.portMappings : null,
    };
  }
}

function problem(status: number, title: string, detail: string, extra: Record<string, unknown> = {}): Reply {
  return {
    status,
    json: { type: "about:blank", title, status, detail, ...extra },
    headers: { "content-type": "application/problem+json" },
  };
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
