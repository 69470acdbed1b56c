/**
 * Contract fake of RunPod REST v2 pods (https://api.runpod.io/v2) as a real HTTP server on 127.0.0.1, written from
 * runpod/docs @a900806 `api-reference-v2/openapi.json` (`createPod`, `getPod`, `listPods`, `deletePod`,
 * `podAction`, `listGpuTypes`); request and reply shapes are the schemas of `core/contracts/runpod.ts`, checked
 * on every request and reply:
 * - `POST /v2/pods` validates `CreatePodRequest` strictly (unknown fields → 422 listing each); exactly one of
 *   `gpu`/`cpu`; a CUDA set beside a floor → 400. A GPU type, count, cloud or data centre that cannot be placed
 *   answers 400 with only a human-readable `detail` ("capacity exhaustion currently carries no machine-readable
 *   code of its own"); 402 when the balance is spent (`exhaustBalance`).
 * - `Pod` as v2 has it: `cost` (USD per hour, 0 once EXITED/TERMINATED), `runtime` null unless RUNNING, and then
 *   `runtime.ports[]` with `{private, public, type, ip}` for each `N/tcp` port — no v1 `publicIp`,
 *   `portMappings` or `costPerHr`.
 * - `GET /v2/catalog/gpus?include=AVAILABILITY&product=POD&cloud=…&count=…`: per-GPU prices, `maxCount` per cloud,
 *   and `availability`/`dataCenters` for the asked cloud and count only (defaults SECURE and 1, as the spec says);
 *   `include` without `product` → 400.
 * - status walk PROVISIONING → STARTING → RUNNING (stuck STARTING, EXITED, ERROR, or RUNNING without a public
 *   port injectable); per-second cost while STARTING/RUNNING.
 */
import type { z } from "zod";
import {
  CreatePodRequest,
  type GpuType,
  ListGpuTypesResponse,
  ListPodsResponse,
  Pod as PodSchema,
  type PodStatus,
} from "../../core/contracts/runpod";
import { perSecondUsd, type RecordedRequest, type Reply, Timeline } from "./fake-api-server";
import { notAllowed, notFound, parseBody, problem, RunpodApiFake } from "./runpod-common";

export interface RunpodGpuSeed {
  id: string;
  pool?: string;
  /** VRAM in GB. @default 24 */
  memory?: number;
  /** USD per GPU-hour; undefined = not offered in that cloud. */
  securePrice?: number;
  communityPrice?: number;
  /** GPUs that can still be placed; 0 = no capacity. */
  stock: number;
  /** Largest GPU count on one machine. @default 8 */
  maxCount?: number;
  /** Data centres that have it; empty/undefined = all of FAKE_POD_DATA_CENTERS. */
  dataCenters?: string[];
  /** CUDA versions of its hosts. @default ["12.8", "13.0"] */
  cudaVersions?: string[];
}

/** How a pod's life goes. `no_port`: RUNNING, but the host publishes no public port for it. */
export type RunpodFate = "normal" | "stuck_starting" | "exited" | "error" | "no_port";

const FAKE_POD_DATA_CENTERS = ["EU-RO-1", "EU-SE-1", "US-TX-3"];

interface FakePod {
  id: string;
  body: z.output<typeof CreatePodRequest>;
  cloud: "SECURE" | "COMMUNITY";
  gpuId: string;
  gpuCount: number;
  costPerHr: number;
  dataCenterId: string;
  cudaVersion: string;
  createdAt: number;
  timeline: Timeline<PodStatus>;
  publicIp: string;
  fate: RunpodFate;
  /** private port → public port, for each `N/tcp` entry of `ports`. */
  tcpPorts: Map<number, number>;
}

export interface RunpodFakeOptions {
  apiKey: string;
  gpus?: RunpodGpuSeed[];
  now?: () => number;
  walk?: { provisioningMs?: number; startingMs?: number };
  /** Where pods' engines "run" (e.g. a local fake vLLM): the public ip and port every tcp port maps to. */
  engineAddress?: { ip: string; port: number };
}

const NO_CAPACITY =
  "There are no longer any instances available with the requested specifications. Please refresh and try again.";

export class RunpodRestFake extends RunpodApiFake {
  readonly gpus = new Map<string, RunpodGpuSeed>();
  readonly pods = new Map<string, FakePod>();
  /** Fates of the next pods created, in order (then "normal"). */
  readonly fates: RunpodFate[] = [];
  private seq = 0;
  private balanceSpent = false;
  private readonly walk: { provisioningMs: number; startingMs: number };
  private readonly engineAddress: { ip: string; port: number } | undefined;

  constructor(options: RunpodFakeOptions) {
    super(options.apiKey, options.now);
    for (const g of options.gpus ?? []) this.gpus.set(g.id, { ...g });
    this.walk = {
      provisioningMs: options.walk?.provisioningMs ?? 5_000,
      startingMs: options.walk?.startingMs ?? 60_000,
    };
    this.engineAddress = options.engineAddress;
  }

  get apiBase(): string {
    return this.url;
  }

  /** Creates from now on answer 402, as with an account whose balance is spent. */
  exhaustBalance(): void {
    this.balanceSpent = true;
  }

  /** Pods not terminated. */
  live(): FakePod[] {
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
    const reply = this.place(
      { name, image: "x/y:1", gpu: { id: gpuId, count: 1 }, cloud: "SECURE" },
      this.now(),
    );
    const id = (reply.json as { id?: string }).id;
    if (!id) throw new Error(`cannot seed pod: ${JSON.stringify(reply.json)}`);
    return id;
  }

  protected route(req: RecordedRequest): Reply {
    const p = req.path;
    if (p === "/v2/catalog/gpus") return req.method === "GET" ? this.catalog(req.query) : notAllowed("GET");
    if (p === "/v2/pods") {
      if (req.method === "GET") return { status: 200, json: { pods: this.live().map((x) => this.view(x)) } };
      if (req.method === "POST") return this.create(req);
      return notAllowed("GET, POST");
    }
    const one = p.match(/^\/v2\/pods\/([^/]+)$/);
    if (one) {
      const pod = this.pods.get(decodeURIComponent(one[1] ?? ""));
      if (!pod || pod.timeline.statusAt(this.now()) === "TERMINATED") return notFound("Pod");
      if (req.method === "GET") return { status: 200, json: this.view(pod) };
      if (req.method === "DELETE") {
        this.terminatePod(pod);
        return { status: 204 };
      }
      return notAllowed("GET, PATCH, DELETE");
    }
    const action = p.match(/^\/v2\/pods\/([^/]+)\/action$/);
    if (action && req.method === "POST") {
      const pod = this.pods.get(decodeURIComponent(action[1] ?? ""));
      if (!pod || pod.timeline.statusAt(this.now()) === "TERMINATED") return notFound("Pod");
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

  protected successSchema(req: RecordedRequest): z.ZodType | undefined {
    if (req.path === "/v2/catalog/gpus") return ListGpuTypesResponse;
    if (req.path === "/v2/pods") return req.method === "GET" ? ListPodsResponse : PodSchema;
    if (/^\/v2\/pods\/[^/]+(\/action)?$/.test(req.path)) return PodSchema;
    return undefined;
  }

  /** `listGpuTypes`: availability for the asked cloud (default SECURE) and count (default 1) only. */
  private catalog(query: Record<string, string>): Reply {
    const withAvailability = query.include === "AVAILABILITY";
    if (withAvailability && !query.product)
      return problem(400, "Bad Request", "product is required with include=AVAILABILITY");
    if (!withAvailability && (query.product || query.cloud || query.count))
      return problem(400, "Bad Request", "product, cloud and count are valid only with include=AVAILABILITY");
    const cloud = query.cloud ?? "SECURE";
    if (cloud !== "SECURE" && cloud !== "COMMUNITY")
      return problem(422, "Unprocessable Entity", "Request validation failed.", {
        errors: ["$.cloud: must be SECURE or COMMUNITY"],
      });
    const count = query.count === undefined ? 1 : Number(query.count);
    const floor = query.minCudaVersion;
    const gpus = [...this.gpus.values()].map((g): z.input<typeof GpuType> => {
      const inCloud = (cloud === "SECURE" ? g.securePrice : g.communityPrice) !== undefined;
      const cudas = (g.cudaVersions ?? ["12.8", "13.0"]).filter((v) => !floor || cudaAtLeast(v, floor));
      const placeable = inCloud && count <= (g.maxCount ?? 8) && g.stock >= count && cudas.length > 0;
      const dcs = g.dataCenters ?? FAKE_POD_DATA_CENTERS;
      const level = !placeable ? "NONE" : g.stock - count < 2 ? "LOW" : "HIGH";
      return {
        id: g.id,
        name: g.id.replace(/^NVIDIA (GeForce )?/, ""),
        pool: g.pool ?? null,
        manufacturer: "NVIDIA",
        memory: g.memory ?? 24,
        secure: g.securePrice !== undefined,
        community: g.communityPrice !== undefined,
        // the catalog quotes 0 for a cloud the type is not in (the spec's price fields are required numbers)
        price: { secure: g.securePrice ?? 0, community: g.communityPrice ?? 0 },
        maxCount: {
          secure: g.securePrice !== undefined ? (g.maxCount ?? 8) : 0,
          community: g.communityPrice !== undefined ? (g.maxCount ?? 8) : 0,
        },
        ...(withAvailability
          ? {
              availability: level,
              ...(placeable ? { dataCenters: dcs.map((id) => ({ id, name: id, availability: level })) } : {}),
              cudaVersions: cudas.map((version) => ({ version, available: placeable })),
            }
          : {}),
      };
    });
    return { status: 200, json: { gpus } };
  }

  private create(req: RecordedRequest): Reply {
    const parsed = parseBody(req, CreatePodRequest);
    if ("reply" in parsed) return parsed.reply;
    return this.place(parsed.body, this.now());
  }

  private place(body: z.output<typeof CreatePodRequest>, now: number): Reply {
    if ((body.gpu === undefined) === (body.cpu === undefined))
      return problem(400, "Bad Request", "exactly one of gpu or cpu must be set");
    if (body.image === undefined && body.templateId === undefined)
      return problem(422, "Unprocessable Entity", "Request validation failed.", {
        errors: ["$: missing property 'image'"],
      });
    const gpu = body.gpu!;
    if ((gpu.allowedCudaVersions?.length ?? 0) > 0 && gpu.minCudaVersion)
      return problem(400, "Bad Request", "allowedCudaVersions and minCudaVersion are mutually exclusive");
    if (this.balanceSpent)
      return problem(402, "Payment Required", "Insufficient balance to deploy this pod.");
    const count = gpu.count ?? 1;
    const seed = this.gpus.get(gpu.id);
    if (!seed) return problem(400, "Bad Request", `GPU type "${gpu.id}" is not a valid GPU type.`);
    const cloud = body.cloud ?? "SECURE";
    const price = cloud === "SECURE" ? seed.securePrice : seed.communityPrice;
    const wantedDcs = body.dataCenterIds ?? [];
    const dcs = seed.dataCenters ?? FAKE_POD_DATA_CENTERS;
    const dc = wantedDcs.length === 0 ? dcs[0] : wantedDcs.find((d) => dcs.includes(d));
    const cudas = (seed.cudaVersions ?? ["12.8", "13.0"]).filter(
      (v) =>
        (!gpu.minCudaVersion || cudaAtLeast(v, gpu.minCudaVersion)) &&
        (!gpu.allowedCudaVersions?.length || gpu.allowedCudaVersions.includes(v)),
    );
    const cuda = cudas.at(-1);
    if (price === undefined || seed.stock < count || count > (seed.maxCount ?? 8) || !dc || !cuda)
      return problem(400, "Bad Request", NO_CAPACITY);
    seed.stock -= count;

    const id = `pod${(++this.seq).toString(36).padStart(6, "0")}x`;
    const fate = this.fates.shift() ?? "normal";
    const walk: { status: PodStatus; afterMs: number }[] = [
      { status: "PROVISIONING", afterMs: 0 },
      { status: "STARTING", afterMs: this.walk.provisioningMs },
    ];
    if (fate === "normal" || fate === "no_port")
      walk.push({ status: "RUNNING", afterMs: this.walk.startingMs });
    if (fate === "exited") walk.push({ status: "EXITED", afterMs: this.walk.startingMs });
    if (fate === "error") walk.push({ status: "ERROR", afterMs: this.walk.startingMs });
    const tcpPorts = new Map<number, number>();
    for (const port of body.ports ?? []) {
      const pm = port.match(/^(\d+)\/tcp$/);
      if (pm?.[1])
        tcpPorts.set(Number(pm[1]), this.engineAddress?.port ?? 10_000 + this.seq * 10 + tcpPorts.size);
    }
    const pod: FakePod = {
      id,
      body,
      cloud,
      gpuId: seed.id,
      gpuCount: count,
      costPerHr: Math.round(price * count * 1e6) / 1e6,
      dataCenterId: dc,
      cudaVersion: cuda,
      createdAt: now,
      timeline: new Timeline(now, walk),
      publicIp: this.engineAddress?.ip ?? `198.51.100.${this.seq % 250}`,
      fate,
      tcpPorts,
    };
    this.pods.set(id, pod);
    return { status: 201, json: this.view(pod) };
  }

  private terminatePod(pod: FakePod): void {
    pod.timeline.set("TERMINATED", this.now());
    const seed = this.gpus.get(pod.gpuId);
    if (seed) seed.stock += pod.gpuCount;
  }

  /** The pod as `getPod` shows it. */
  private view(pod: FakePod): z.input<typeof PodSchema> {
    const status = pod.timeline.statusAt(this.now()) ?? "PROVISIONING";
    const running = status === "RUNNING";
    const b = pod.body;
    const started = pod.timeline.enteredAt("STARTING", this.now());
    return {
      id: pod.id,
      name: b.name,
      status,
      actions: running ? ["stop", "restart", "terminate"] : ["terminate"],
      image: b.image ?? "",
      args: b.args ?? "",
      disk: b.disk ?? 20,
      mounts: {},
      ports: b.ports ?? [],
      env: b.env ?? {},
      registry: null,
      gpu: { id: pod.gpuId, count: pod.gpuCount },
      cloud: pod.cloud,
      dataCenterId: pod.dataCenterId,
      cudaVersion: pod.cudaVersion,
      ssh: { proxy: null, direct: null },
      template: null,
      cost: status === "EXITED" || status === "TERMINATED" ? 0 : pod.costPerHr,
      locked: false,
      globalNetworking: { enabled: false },
      runtime: running
        ? {
            uptime: Math.floor(
              (this.now() - (pod.timeline.enteredAt("RUNNING", this.now()) ?? this.now())) / 1000,
            ),
            ports: [...pod.tcpPorts].map(([priv, pub]) => ({
              private: priv,
              public: pod.fate === "no_port" ? null : pub,
              type: "tcp",
              ip: pod.fate === "no_port" ? null : pod.publicIp,
            })),
          }
        : null,
      createdAt: new Date(pod.createdAt).toISOString(),
      startedAt: started !== undefined ? new Date(started).toISOString() : null,
    };
  }
}

/** `a >= b` for CUDA versions compared numerically per part (12.11 > 12.2), as the spec says. */
function cudaAtLeast(a: string, b: string): boolean {
  const [am = 0, an = 0] = a.split(".").map(Number);
  const [bm = 0, bn = 0] = b.split(".").map(Number);
  return am > bm || (am === bm && an >= bn);
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
