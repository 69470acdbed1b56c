/**
 * RunPod pods adapter (REST v2, https://api.runpod.io/v2/pods): offers from the GPU catalog
 * (`/v2/catalog/gpus?include=AVAILABILITY&product=POD`), create with `POST /v2/pods`, read, list, and
 * `DELETE /v2/pods/{id}` (404 = already gone).
 *
 * Pods carry the tag `<ownerLabel>.<workerId>` as `name`. v2 rejects unknown body fields with 422, so the
 * create body holds only documented fields; the engine runs as the image's entrypoint with `args` — or, when
 * it must write its TLS files first, `args` is RunPod's JSON start command `{"entrypoint":[…],"cmd":[…]}`.
 * The engine port is exposed as TCP (`8000/tcp`) and reached at `publicIp:portMappings[port]` — RunPod's
 * HTTP proxy cuts requests at about 100 s, too short for long streams. RunPod serverless is a separate adapter.
 */
import { type GpuId, PROVIDERS } from "../../core/catalog";
import type { RuntimeConfig } from "../../core/config/runtime";
import { apiBaseOf, type HttpRuntimeOptions, isRecord, num, ProviderHttp, str } from "./http";
import {
  engineLaunch,
  FINAL_STATUSES,
  type InstanceInfo,
  type InstanceStatus,
  instanceTag,
  type Offer,
  type OfferRequest,
  type OfferSearch,
  type ProviderAdapter,
  ProviderError,
  parseInstanceTag,
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
  /** USD per GPU-hour used when the catalog answer carries no price (RuntimeConfig.prices). */
  readonly prices?: RuntimeConfig["prices"];
  /** Container disk in GB. @default 60 */
  readonly diskGb?: number;
  /** Engine port to look up for pods this process did not create. @default 8000 */
  readonly defaultPort?: number;
}

/** REST v2 lives on api.runpod.io (rest.runpod.io is the v1 host, retired in Nov 2026). */
const V2_HOST = "https://api.runpod.io";

const STATUS: Readonly<Record<string, InstanceStatus>> = {
  PROVISIONING: "provisioning",
  CREATED: "provisioning",
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

  async offers(model: OfferRequest): Promise<OfferSearch> {
    const wanted = new Map<string, GpuId>();
    for (const gpu of model.gpu) {
      const id = PROVIDERS["runpod-pod"].gpus[gpu]?.providerGpuId;
      if (id) wanted.set(id, gpu);
    }
    if (wanted.size === 0) return { offers: [], skipped: [] };
    const body = await this.http.json({
      operation: "offers",
      method: "GET",
      path: "/v2/catalog/gpus",
      query: { include: "AVAILABILITY", product: "POD" },
    });
    const list = isRecord(body) ? body.gpus : body;
    if (!Array.isArray(list)) throw this.http.unexpected("offers", "no gpus list", body);

    const cloudKey = this.cloud === "SECURE" ? "secure" : "community";
    const ranked: { offer: Offer; availability: number }[] = [];
    for (const raw of list) {
      if (!isRecord(raw)) continue;
      const id = str(raw.id);
      const gpu = id !== undefined ? wanted.get(id) : undefined;
      if (id === undefined || gpu === undefined) continue;
      if (raw[cloudKey] === false) continue;
      const availability = availabilityOf(raw.availability, cloudKey);
      if (availability === 0) continue;
      const listed = isRecord(raw.price) ? num(raw.price[cloudKey]) : undefined;
      const perGpu =
        listed ?? this.prices.find((p) => p.provider === "runpod-pod" && p.gpu === gpu)?.usdPerHour;
      if (perGpu === undefined || perGpu <= 0) continue;
      const region = this.settings.dataCenters.length === 1 ? this.settings.dataCenters[0] : undefined;
      ranked.push({
        offer: {
          provider: "runpod-pod",
          gpu,
          usdPerHour: Math.round(perGpu * model.gpuCount * 1e6) / 1e6,
          offerId: id,
          ...(region ? { region } : {}),
        },
        availability: availability ?? 1,
      });
    }
    const offers = ranked
      .sort((a, b) => a.offer.usdPerHour - b.offer.usdPerHour || b.availability - a.availability)
      .map((r) => r.offer);
    return { offers, skipped: [] };
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
    const body = {
      name: tag,
      image: spec.image,
      cloud: this.cloud,
      gpu: { id: gpuId, count: spec.gpuCount },
      disk: this.diskGb,
      ports: [`${spec.port}/tcp`],
      env: { ...spec.env, ...launch.env },
      // A start command may be JSON with `entrypoint` and `cmd` to replace the image's entrypoint as well.
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
        throw err;
      }
      const id = isRecord(created) ? str(created.id) : undefined;
      if (id === undefined) {
        // Created or not? Look before giving up; the retry loop looks again before creating.
        const adopted = await this.findWorker(tag, spec.port).catch(() => undefined);
        if (adopted) return adopted;
        throw this.http.unexpected("provision", "no pod id in the answer", created);
      }
      this.ports.set(id, spec.port);
      return (
        (isRecord(created) ? this.toInfo(created) : undefined) ?? {
          providerId: id,
          workerId: spec.workerId,
          ownerLabel: spec.ownerLabel,
          status: "provisioning",
          usdPerHour: offer.usdPerHour,
        }
      );
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
    const info = this.toInfo(res.json);
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

  private async list(operation: string, retry = true): Promise<InstanceInfo[]> {
    const body = await this.http.json({ operation, method: "GET", path: "/v2/pods", retry });
    const pods = isRecord(body) ? body.pods : body;
    if (!Array.isArray(pods)) throw this.http.unexpected(operation, "no pods list", body);
    return pods.flatMap((raw) => {
      const info = isRecord(raw) ? this.toInfo(raw) : undefined;
      return info ? [info] : [];
    });
  }

  private toInfo(raw: Record<string, unknown>): InstanceInfo | undefined {
    const id = str(raw.id);
    if (id === undefined) return undefined;
    const tag = parseInstanceTag(raw.name);
    const word = str(raw.status) ?? str(raw.desiredStatus);
    const status: InstanceStatus = word === undefined ? "unknown" : (STATUS[word.toUpperCase()] ?? "unknown");
    const baseUrl = status === "running" ? this.baseUrlOf(id, raw) : undefined;
    const usdPerHour = num(raw.costPerHr) ?? num(raw.adjustedCostPerHr);
    const created = str(raw.createdAt) ?? str(raw.lastStartedAt);
    const createdAtMs = created !== undefined ? Date.parse(created) : Number.NaN;
    return {
      providerId: id,
      ...(tag ? { workerId: tag.workerId, ownerLabel: tag.ownerLabel } : {}),
      status,
      ...(baseUrl ? { baseUrl } : {}),
      ...(usdPerHour !== undefined ? { usdPerHour } : {}),
      ...(Number.isFinite(createdAtMs) ? { createdAtMs } : {}),
      detail: `status=${word ?? "none"}`,
    };
  }

  private baseUrlOf(id: string, raw: Record<string, unknown>): string | undefined {
    const ip = str(raw.publicIp)?.trim();
    const mappings = raw.portMappings;
    if (!ip || !isRecord(mappings)) return undefined;
    const port = this.ports.get(id) ?? this.defaultPort;
    const external = num(mappings[String(port)]);
    return external !== undefined ? `http://${ip}:${external}` : undefined;
  }
}

/** Catalog availability as a rank (0 = none); undefined when the answer does not say. */
function availabilityOf(value: unknown, cloudKey: string): number | undefined {
  const word = isRecord(value) ? str(value[cloudKey]) : str(value);
  if (word === undefined) return undefined;
  return AVAILABILITY_RANK[word.toUpperCase()];
}
