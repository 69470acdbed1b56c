/**
 * RunPod pods adapter over REST v2 (https://api.runpod.io/v2; runpod/docs `api-reference-v2/openapi.json`, the
 * shapes of `core/contracts/runpod.ts`): offers from the GPU catalog, `POST /v2/pods`, `GET /v2/pods[/{id}]`,
 * `DELETE /v2/pods/{id}` (404 = already gone).
 *
 * - Offers: `GET /v2/catalog/gpus?include=AVAILABILITY&product=POD&cloud=…&count=…` — stock is reported for the
 *   asked cloud and GPU count only (`GpuCloudFilter` defaults to SECURE, `GpuCountFilter` to 1), and with
 *   `minCudaVersion` only for hosts at that CUDA floor. Prices are per GPU per hour (× count for the pod);
 *   `memory` is VRAM in GB, checked against the catalog GPU type (`fitsGpuMemory`); `maxCount` caps GPUs per pod.
 * - Create: the body holds only `CreatePodRequest` fields (RunPod answers 422 to any other). The engine runs as the
 *   image's entrypoint with `args` — or, when it must write its TLS files first, `args` is the JSON start command
 *   `{"entrypoint":[…],"cmd":[…]}` (runpod/docs `pods/templates/manage-templates.mdx`, "Container start command").
 *   The engine port is exposed as TCP (`8000/tcp`): RunPod's HTTP proxy cuts requests at about 100 s, too short
 *   for long streams. `createPod` documents the failures: 400 is a broken cross-field rule *or* no capacity for
 *   this GPU and data centre (detail text only) → capacity, try the next offer; 402 insufficient balance → fatal;
 *   403 no access to the pool → capacity (skip this candidate, keep going); 422 → invalid, never retried.
 * - Address: a RUNNING pod's `runtime.ports[]` entry for the engine port (`private` = 8000, `type` tcp) gives the
 *   public `ip` and `public` port; `runtime` is null until RUNNING. Price: the pod's `cost` (USD per hour).
 *
 * Pods carry the tag `<ownerLabel>.<workerId>` as `name`. RunPod serverless is the `ManagedBackend` in
 * `runpod-serverless.ts`.
 */
import { fitsGpuMemory, GPUS, type GpuId, PROVIDERS } from "../../core/catalog";
import type { RuntimeConfig } from "../../core/config/runtime";
import { ENGINE_IMAGE_CUDA_FLOOR } from "../../core/config/schema";
import type { CreatePodRequest, GpuCatalogQuery, GpuType, Pod, PodStatus } from "../../core/contracts/runpod";
import { apiBaseOf, type HttpRuntimeOptions, isRecord, ProviderHttp } from "./http";
import {
  engineLaunch,
  FINAL_STATUSES,
  type InstanceInfo,
  type InstanceStatus,
  instanceTag,
  type Offer,
  type OfferRequest,
  type OfferSearch,
  PLACEMENT_REFUSED,
  type ProviderAdapter,
  ProviderError,
  parseInstanceTag,
  type SkippedOffer,
  shellJoin,
  specSecrets,
  type WorkerSpec,
} from "./types";

export type RunpodPodSettings = NonNullable<RuntimeConfig["providers"]["runpod-pod"]>;

export interface RunpodPodAdapterOptions extends HttpRuntimeOptions {
  /** `providers.runpod-pod` from the runtime config. */
  readonly settings: RunpodPodSettings;
  /** RUNPOD_API_KEY, sent as a bearer token. */
  readonly apiKey: string;
  /** USD per GPU-hour used when the catalog quotes no price (RuntimeConfig.prices). */
  readonly prices?: RuntimeConfig["prices"];
  /** Container disk in GB. @default 60 */
  readonly diskGb?: number;
  /** Engine port to look up for pods this process did not create. @default 8000 */
  readonly defaultPort?: number;
}

/** REST v2 lives on api.runpod.io (`servers` of the v2 OpenAPI document). */
const V2_HOST = "https://api.runpod.io";

const STATUS: Readonly<Record<PodStatus, InstanceStatus>> = {
  PROVISIONING: "provisioning",
  STARTING: "booting",
  RUNNING: "running",
  EXITED: "stopped",
  ERROR: "failed",
  TERMINATED: "terminated",
};

const AVAILABILITY_RANK: Readonly<Record<string, number>> = { HIGH: 3, MEDIUM: 2, LOW: 1, NONE: 0 };

export class RunpodPodAdapter implements ProviderAdapter {
  readonly id = "runpod-pod" as const;
  private readonly http: ProviderHttp;
  private readonly settings: RunpodPodSettings;
  private readonly prices: RuntimeConfig["prices"];
  private readonly diskGb: number;
  private readonly defaultPort: number;
  private readonly ports = new Map<string, number>();

  constructor(options: RunpodPodAdapterOptions) {
    this.settings = options.settings;
    this.prices = options.prices ?? [];
    this.diskGb = options.diskGb ?? 60;
    this.defaultPort = options.defaultPort ?? 8000;
    const apiKey = options.apiKey;
    const base = apiBaseOf(options.settings.apiBase, V2_HOST, "runpod-pod");
    this.http = new ProviderHttp({
      ...options,
      provider: "runpod-pod",
      baseUrl: base.replace(/\/v2$/, ""),
      auth: { headers: async () => ({ authorization: `Bearer ${apiKey}` }) },
      secrets: () => [apiKey],
    });
    if (!apiKey) throw this.http.error("configure", "auth", "no API key (RUNPOD_API_KEY is empty)");
  }

  private get cloud(): "SECURE" | "COMMUNITY" {
    return this.settings.cloud === "community" ? "COMMUNITY" : "SECURE";
  }

  /** The CUDA floor for the image: the setting, else what the default engine image needs. */
  private cudaFloor(image: string | undefined): string | undefined {
    return this.settings.minCudaVersion ?? (image ? ENGINE_IMAGE_CUDA_FLOOR[image] : undefined);
  }

  async offers(request: OfferRequest): Promise<OfferSearch> {
    const wanted = new Map<string, GpuId>();
    for (const gpu of request.gpu) {
      const id = PROVIDERS["runpod-pod"].gpus[gpu]?.providerGpuId;
      if (id) wanted.set(id, gpu);
    }
    if (wanted.size === 0) return { offers: [], skipped: [] };
    // the controller resolves the image (the provider setting, else the engine default)
    const floor = this.cudaFloor(request.image);
    const query: GpuCatalogQuery = {
      include: "AVAILABILITY",
      product: "POD",
      cloud: this.cloud,
      count: request.gpuCount,
      ...(floor ? { minCudaVersion: floor } : {}),
    };
    const body = await this.http.json({
      operation: "offers",
      method: "GET",
      path: "/v2/catalog/gpus",
      query,
    });
    const list = isRecord(body) ? body.gpus : undefined;
    if (!Array.isArray(list)) throw this.http.unexpected("offers", "no gpus list", body);

    const cloudKey = this.cloud === "SECURE" ? "secure" : "community";
    const ranked: { offer: Offer; availability: number }[] = [];
    const skipped: SkippedOffer[] = [];
    for (const raw of list as Partial<GpuType>[]) {
      const gpu = raw.id !== undefined ? wanted.get(raw.id) : undefined;
      if (raw.id === undefined || gpu === undefined) continue;
      const perGpu =
        (raw.price?.[cloudKey] ?? 0) > 0
          ? raw.price?.[cloudKey]
          : this.prices.find((p) => p.provider === "runpod-pod" && p.gpu === gpu)?.usdPerHour;
      const skip = (reason: string) =>
        skipped.push({
          provider: "runpod-pod",
          offerId: raw.id,
          gpuName: raw.name ?? raw.id,
          ...(raw.memory !== undefined ? { gpuMemoryGb: raw.memory } : {}),
          ...(perGpu !== undefined ? { usdPerHour: round(perGpu * request.gpuCount) } : {}),
          reason,
        });
      if (raw.memory !== undefined && !fitsGpuMemory(gpu, raw.memory)) {
        skip(`${raw.memory} GB per GPU, ${gpu} has ${GPUS[gpu].vramGb} GB`);
        continue;
      }
      if (raw[cloudKey] === false) {
        skip(`not offered in RunPod's ${this.cloud} cloud`);
        continue;
      }
      const maxCount = raw.maxCount?.[cloudKey];
      if (maxCount !== undefined && maxCount < request.gpuCount) {
        skip(
          `at most ${maxCount} per pod in the ${this.cloud} cloud, the model asks for ${request.gpuCount}`,
        );
        continue;
      }
      const stock = this.stockOf(raw);
      if (stock.rank === 0) {
        skip(
          `no stock for ${request.gpuCount} GPU(s) in ${stock.where}${floor ? ` at CUDA ≥ ${floor}` : ""}`,
        );
        continue;
      }
      if (perGpu === undefined || perGpu <= 0) {
        skip("no price in the catalog or the stack's prices");
        continue;
      }
      ranked.push({
        offer: {
          provider: "runpod-pod",
          gpu,
          usdPerHour: round(perGpu * request.gpuCount),
          offerId: raw.id,
          ...(raw.memory !== undefined ? { gpuMemoryGb: raw.memory } : {}),
          ...(stock.dataCenters.length === 1 ? { region: stock.dataCenters[0] } : {}),
        },
        availability: stock.rank,
      });
    }
    const offers = ranked
      .sort((a, b) => a.offer.usdPerHour - b.offer.usdPerHour || b.availability - a.availability)
      .map((r) => r.offer);
    return { offers, skipped };
  }

  /**
   * Stock of a GPU type where the stack may run: in the configured data centres when there are any
   * (`dataCenters[]`), else overall (`availability`). A type whose configuration is unavailable everywhere has no
   * `dataCenters` at all.
   */
  private stockOf(raw: Partial<GpuType>): { rank: number; dataCenters: string[]; where: string } {
    const configured = this.settings.dataCenters;
    if (configured.length === 0) {
      const rank = raw.availability !== undefined ? (AVAILABILITY_RANK[raw.availability] ?? 0) : 1;
      return { rank, dataCenters: [], where: `RunPod's ${this.cloud} cloud` };
    }
    const inStock = (raw.dataCenters ?? [])
      .filter((dc) => configured.includes(dc.id) && (AVAILABILITY_RANK[dc.availability] ?? 0) > 0)
      .sort((a, b) => (AVAILABILITY_RANK[b.availability] ?? 0) - (AVAILABILITY_RANK[a.availability] ?? 0));
    return {
      rank: Math.max(0, ...inStock.map((dc) => AVAILABILITY_RANK[dc.availability] ?? 0)),
      dataCenters: inStock.map((dc) => dc.id),
      where: configured.join(", "),
    };
  }

  async provision(spec: WorkerSpec, offer: Offer): Promise<InstanceInfo> {
    if (offer.provider !== "runpod-pod")
      throw this.http.error("provision", "fatal", `the offer is for ${offer.provider}, not runpod-pod`);
    const gpuId = offer.offerId ?? PROVIDERS["runpod-pod"].gpus[offer.gpu]?.providerGpuId;
    if (!gpuId) throw this.http.error("provision", "fatal", `RunPod has no GPU type for ${offer.gpu}`);
    const tag = this.tagOf(spec);
    const launch = engineLaunch(spec);
    const secrets = specSecrets(spec);
    this.http.rememberSecrets(secrets);
    const floor = this.cudaFloor(spec.image);
    const body: CreatePodRequest = {
      name: tag,
      image: spec.image,
      cloud: this.cloud,
      gpu: { id: gpuId, count: spec.gpuCount, ...(floor ? { minCudaVersion: floor } : {}) },
      disk: this.diskGb,
      ports: [`${spec.port}/tcp`],
      env: { ...spec.env, ...launch.env },
      args: launch.entrypoint
        ? JSON.stringify({ entrypoint: [launch.entrypoint], cmd: launch.args })
        : shellJoin(launch.args),
      ...(this.settings.dataCenters.length > 0 ? { dataCenterIds: [...this.settings.dataCenters] } : {}),
    };

    return this.http.retrying("provision", async () => {
      const existing = await this.findWorker(tag, spec.port);
      if (existing) return existing;
      let created: unknown;
      try {
        created = await this.http.json({
          operation: "provision",
          method: "POST",
          path: "/v2/pods",
          json: body,
          secrets,
          retry: false,
        });
      } catch (err) {
        if (err instanceof ProviderError && err.retryable) {
          const adopted = await this.findWorker(tag, spec.port).catch(() => undefined);
          if (adopted) return adopted;
        }
        throw this.createFailure(err, gpuId);
      }
      const pod = (isRecord(created) ? created : {}) as Partial<Pod>;
      if (pod.id === undefined) {
        // Created or not? Look before giving up; the retry loop looks again before creating.
        const adopted = await this.findWorker(tag, spec.port).catch(() => undefined);
        if (adopted) return adopted;
        throw this.http.unexpected("provision", "no pod id in the answer", created);
      }
      this.ports.set(pod.id, spec.port);
      return (
        this.toInfo(pod) ?? {
          providerId: pod.id,
          workerId: spec.workerId,
          ownerLabel: spec.ownerLabel,
          status: "provisioning",
          usdPerHour: offer.usdPerHour,
        }
      );
    });
  }

  /**
   * `createPod`'s own reading of its failures: a 400 is no capacity for this GPU and data centre as often as a
   * broken rule (only the detail text tells), and RunPod's advice is to try the next candidate; a 403 means the
   * account cannot use this pool (skip the candidate). Both fail over to the next offer.
   */
  private createFailure(err: unknown, gpuId: string): unknown {
    if (!(err instanceof ProviderError) || (err.status !== 400 && err.status !== 403)) return err;
    const why = err.status === 403 ? "the account cannot use this GPU pool" : "RunPod could not place it";
    return this.http.error("provision", "capacity", `${gpuId}: ${why}: ${err.detail}`, {
      status: err.status,
      // a 400 may also be a broken rule: when every candidate answers it, the request is the problem
      code: err.status === 400 ? PLACEMENT_REFUSED : (err.code ?? "pool_forbidden"),
    });
  }

  async describe(providerId: string): Promise<InstanceInfo | undefined> {
    const res = await this.http.send({
      operation: "describe",
      method: "GET",
      path: `/v2/pods/${encodeURIComponent(providerId)}`,
      okStatuses: [404],
    });
    if (res.status === 404) return undefined;
    if (!isRecord(res.json)) throw this.http.unexpected("describe", "pod is not an object", res.json);
    const info = this.toInfo(res.json as Partial<Pod>);
    if (!info) throw this.http.unexpected("describe", "pod without id", res.json);
    return info;
  }

  async listOwned(ownerLabel: string): Promise<InstanceInfo[]> {
    return (await this.list("list")).filter((i) => i.ownerLabel === ownerLabel && i.status !== "terminated");
  }

  async terminate(providerId: string): Promise<void> {
    await this.http.send({
      operation: "terminate",
      method: "DELETE",
      path: `/v2/pods/${encodeURIComponent(providerId)}`,
      expect: "none",
      okStatuses: [404],
    });
    this.ports.delete(providerId);
  }

  // ── internals ─────────────────────────────────────────────────────────────────────────────────────────

  private tagOf(spec: WorkerSpec): string {
    try {
      return instanceTag(spec.ownerLabel, spec.workerId);
    } catch (err) {
      throw this.http.error("provision", "fatal", (err as Error).message);
    }
  }

  private async findWorker(tag: string, port: number): Promise<InstanceInfo | undefined> {
    const parsed = parseInstanceTag(tag);
    const found = (await this.list("provision", false)).find(
      (i) =>
        i.ownerLabel === parsed?.ownerLabel &&
        i.workerId === parsed?.workerId &&
        !FINAL_STATUSES.includes(i.status),
    );
    if (found && !this.ports.has(found.providerId)) this.ports.set(found.providerId, port);
    return found;
  }

  /** `listPods` answers `{pods: Pod[]}` (v2 wraps lists; v1 answered a bare array). */
  private async list(operation: string, retry = true): Promise<InstanceInfo[]> {
    const body = await this.http.json({ operation, method: "GET", path: "/v2/pods", retry });
    const pods = isRecord(body) ? body.pods : undefined;
    if (!Array.isArray(pods)) throw this.http.unexpected(operation, "no pods list", body);
    return pods.flatMap((raw) => {
      const info = isRecord(raw) ? this.toInfo(raw as Partial<Pod>) : undefined;
      return info ? [info] : [];
    });
  }

  private toInfo(pod: Partial<Pod>): InstanceInfo | undefined {
    if (typeof pod.id !== "string") return undefined;
    const tag = parseInstanceTag(pod.name);
    const word = typeof pod.status === "string" ? pod.status : undefined;
    const status: InstanceStatus =
      word === undefined ? "unknown" : (STATUS[word.toUpperCase() as PodStatus] ?? "unknown");
    const address = status === "running" ? this.addressOf(pod) : undefined;
    const created = typeof pod.createdAt === "string" ? Date.parse(pod.createdAt) : Number.NaN;
    return {
      providerId: pod.id,
      ...(tag ? { workerId: tag.workerId, ownerLabel: tag.ownerLabel } : {}),
      status,
      ...(address?.baseUrl ? { baseUrl: address.baseUrl } : {}),
      // `cost` is 0 once a pod is EXITED or TERMINATED: no price to learn from then
      ...(typeof pod.cost === "number" && pod.cost > 0 ? { usdPerHour: pod.cost } : {}),
      ...(Number.isFinite(created) ? { createdAtMs: created } : {}),
      detail: `status=${word ?? "none"}${address?.note ? `; ${address.note}` : ""}`,
    };
  }

  /**
   * The engine port's public address from `runtime.ports`, or why there is none. A port may be listed more than
   * once (`PodRuntimePort` carries no public/private flag): an entry with a public IP wins over one on a private
   * network, which the controller could not reach.
   */
  private addressOf(pod: Partial<Pod>): { baseUrl?: string; note?: string } {
    const port = this.ports.get(pod.id ?? "") ?? this.defaultPort;
    const entries = (pod.runtime?.ports ?? []).filter(
      (p) => p.private === port && (p.type === undefined || p.type === "tcp"),
    );
    if (entries.length === 0) return { note: `no runtime port for ${port}/tcp` };
    const reachable = entries
      .filter((p) => p.ip && p.public !== null && p.public !== undefined)
      .sort((a, b) => Number(isPrivateIp(a.ip ?? "")) - Number(isPrivateIp(b.ip ?? "")));
    const best = reachable[0];
    if (!best || isPrivateIp(best.ip ?? "")) return { note: `${port}/tcp has no public ip:port` };
    return { baseUrl: `http://${best.ip}:${best.public}` };
  }
}

/** RFC 1918, carrier-grade NAT (100.64/10), loopback and link-local IPv4: not reachable from the cluster. */
function isPrivateIp(ip: string): boolean {
  const [a = -1, b = -1] = ip.split(".").map(Number);
  return (
    a === 10 ||
    a === 127 ||
    (a === 172 && b >= 16 && b <= 31) ||
    (a === 192 && b === 168) ||
    (a === 100 && b >= 64 && b <= 127) ||
    (a === 169 && b === 254)
  );
}

function round(usd: number): number {
  return Math.round(usd * 1e6) / 1e6;
}
