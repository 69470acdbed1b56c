/**
 * Vast.ai adapter (REST v0, https://console.vast.ai/api/v0): offer search over `/bundles/`, rent an ask with
 * `PUT /asks/{id}/`, read and list `/instances/`, destroy with `DELETE /instances/{id}/`.
 *
 * Instances carry the tag `<ownerLabel>.<workerId>` in `label`. The engine runs as the image's entrypoint with
 * `runtype: "args"` (or, for a TLS start-up, the entrypoint given in `onstart`, which args mode uses as the
 * entrypoint); its port is requested through the env key `-p P:P` and found in `ports` once running. The
 * address is reported as http://; the controller knows whether the worker serves TLS and switches to https.
 * Vast.ai bills GPU time while running and storage from creation until destroyed — so terminate destroys.
 */
import { type GpuId, PROVIDERS } from "../../core/catalog";
import type { RuntimeConfig } from "../../core/config/runtime";
import {
  apiBaseOf,
  classifyFailure,
  errorFields,
  type HttpRuntimeOptions,
  isRecord,
  num,
  ProviderHttp,
  str,
} from "./http";
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
  specSecrets,
  type WorkerSpec,
} from "./types";

export type VastaiSettings = NonNullable<RuntimeConfig["providers"]["vastai"]>;

export interface VastAiAdapterOptions extends HttpRuntimeOptions {
  /** `providers.vastai` from the runtime config (defaults applied by the schema). */
  readonly settings: VastaiSettings;
  /** VASTAI_API_KEY, sent as a bearer token. */
  readonly apiKey: string;
  /** Engine port to look up in `ports` for instances this process did not create. @default 8000 */
  readonly defaultPort?: number;
  /** Offers asked for per search. @default 20 */
  readonly offerLimit?: number;
}

const STATUS: Readonly<Record<string, InstanceStatus>> = {
  created: "provisioning",
  loading: "booting",
  rebooting: "booting",
  running: "running",
  stopped: "stopped",
  frozen: "stopped",
  exited: "failed",
  offline: "unknown",
  unknown: "unknown",
};

export class VastAiAdapter implements ProviderAdapter {
  readonly id = "vastai" as const;
  private readonly http: ProviderHttp;
  private readonly settings: VastaiSettings;
  private readonly defaultPort: number;
  private readonly offerLimit: number;
  /** Engine port of instances provisioned or adopted by this process. */
  private readonly ports = new Map<string, number>();

  constructor(options: VastAiAdapterOptions) {
    this.settings = options.settings;
    this.defaultPort = options.defaultPort ?? 8000;
    this.offerLimit = options.offerLimit ?? 20;
    const apiKey = options.apiKey;
    this.http = new ProviderHttp({
      ...options,
      provider: "vastai",
      baseUrl: apiBaseOf(options.settings.apiBase, PROVIDERS.vastai.apiBase, "vastai"),
      auth: { headers: async () => ({ authorization: `Bearer ${apiKey}` }) },
      secrets: () => [apiKey],
    });
    if (!apiKey) throw this.http.error("configure", "auth", "no API key (VASTAI_API_KEY is empty)");
  }

  async offers(model: OfferRequest): Promise<OfferSearch> {
    const byName = new Map<string, GpuId>();
    for (const gpu of model.gpu) {
      const name = PROVIDERS.vastai.gpus[gpu]?.providerGpuId;
      if (name) byName.set(name, gpu);
    }
    const names = [...byName.keys()];
    if (names.length === 0) return { offers: [], skipped: [] };
    const s = this.settings;
    // The cap is per GPU-hour, like every price in the catalog; Vast quotes the whole machine.
    const cap = s.maxUsdPerHour !== undefined ? s.maxUsdPerHour * model.gpuCount : undefined;
    const query: Record<string, unknown> = {
      rentable: { eq: true },
      rented: { eq: false },
      gpu_name: names.length === 1 ? { eq: names[0] } : { in: names },
      num_gpus: { eq: model.gpuCount },
      reliability: { gte: s.minReliability },
      disk_space: { gte: s.diskGb },
      ...(s.verifiedOnly ? { verified: { eq: true } } : {}),
      ...(s.datacenterOnly ? { datacenter: { eq: true } } : {}),
      ...(cap !== undefined ? { dph_total: { lte: cap } } : {}),
      order: [["dph_total", "asc"]],
      type: "on-demand",
      allocated_storage: s.diskGb,
      limit: this.offerLimit,
    };
    const body = await this.http.json({
      operation: "offers",
      method: "POST",
      path: "/bundles/",
      json: query,
    });
    if (!isRecord(body) || !Array.isArray(body.offers))
      throw this.http.unexpected("offers", "no offers list", body);

    const offers: Offer[] = [];
    for (const raw of body.offers) {
      if (!isRecord(raw)) continue;
      const id = str(raw.id);
      const name = str(raw.gpu_name);
      const price = num(raw.dph_total);
      const gpu = name !== undefined ? byName.get(name) : undefined;
      const reliability = num(raw.reliability);
      if (id === undefined || gpu === undefined || price === undefined || price <= 0) continue;
      // The API filters already; check again so a sloppy answer can never exceed the stack's limits.
      if (num(raw.num_gpus) !== model.gpuCount) continue;
      if (cap !== undefined && price > cap) continue;
      if (reliability !== undefined && reliability < s.minReliability) continue;
      if (raw.rented === true || raw.rentable === false) continue;
      const region = str(raw.geolocation);
      offers.push({
        provider: "vastai",
        gpu,
        usdPerHour: price,
        offerId: id,
        ...(region ? { region } : {}),
        ...(reliability !== undefined ? { reliability } : {}),
      });
    }
    offers.sort((a, b) => a.usdPerHour - b.usdPerHour || (b.reliability ?? 0) - (a.reliability ?? 0));
    return { offers, skipped: [] };
  }

  async provision(spec: WorkerSpec, offer: Offer): Promise<InstanceInfo> {
    if (offer.provider !== "vastai" || !offer.offerId)
      throw this.http.error(
        "provision",
        "fatal",
        "the offer is not a Vast.ai ask (provider or offerId missing)",
      );
    const tag = this.tagOf(spec);
    const launch = engineLaunch(spec);
    const secrets = specSecrets(spec);
    this.http.rememberSecrets(secrets);
    const body = {
      client_id: "me",
      image: spec.image,
      disk: this.settings.diskGb,
      label: tag,
      env: { ...spec.env, ...launch.env, [`-p ${spec.port}:${spec.port}`]: "1" },
      runtype: "args",
      // In args mode `onstart` replaces the image's entrypoint (vast-cli `create instance --entrypoint`).
      ...(launch.entrypoint ? { onstart: launch.entrypoint } : {}),
      args: launch.args,
    };
    const askId = offer.offerId;

    return this.http.retrying("provision", async () => {
      // Idempotency: a previous attempt may have created the instance although its answer never arrived.
      const existing = await this.findWorker(tag, spec.port);
      if (existing) return existing;
      let id: string;
      try {
        id = await this.create(askId, body, secrets);
      } catch (err) {
        if (err instanceof ProviderError && err.retryable) {
          const adopted = await this.findWorker(tag, spec.port).catch(() => undefined);
          if (adopted) return adopted;
        }
        throw err;
      }
      this.ports.set(id, spec.port);
      // The instance exists from here on: never fail the provision because a follow-up read failed.
      const info = await this.describe(id).catch(() => undefined);
      return (
        info ?? {
          providerId: id,
          workerId: spec.workerId,
          ownerLabel: spec.ownerLabel,
          status: "provisioning",
          usdPerHour: offer.usdPerHour,
          createdAtMs: this.http.now(),
        }
      );
    });
  }

  async describe(providerId: string): Promise<InstanceInfo | undefined> {
    const res = await this.http.send({
      operation: "describe",
      method: "GET",
      path: `/instances/${encodeURIComponent(providerId)}/`,
      query: { owner: "me" },
      okStatuses: [404],
    });
    if (res.status === 404) return undefined;
    if (!isRecord(res.json) || !("instances" in res.json))
      throw this.http.unexpected("describe", "no instances field", res.json);
    let raw = res.json.instances;
    if (Array.isArray(raw)) raw = raw.find((i) => isRecord(i) && str(i.id) === providerId);
    if (raw === null || raw === undefined) return undefined;
    if (!isRecord(raw)) throw this.http.unexpected("describe", "instance is not an object", raw);
    return this.toInfo(raw) ?? undefined;
  }

  async listOwned(ownerLabel: string): Promise<InstanceInfo[]> {
    return (await this.list("list")).filter((i) => i.ownerLabel === ownerLabel);
  }

  async terminate(providerId: string): Promise<void> {
    const res = await this.http.send({
      operation: "terminate",
      method: "DELETE",
      path: `/instances/${encodeURIComponent(providerId)}/`,
      expect: "text",
      okStatuses: [400, 404, 410],
    });
    if (res.status >= 200 && res.status < 300 && isRecord(res.json) && res.json.success === true) {
      this.ports.delete(providerId);
      return;
    }
    // Vast answers `success:false` for an instance that is already gone; confirm by reading back.
    const still = await this.describe(providerId);
    if (still === undefined || still.status === "terminated") {
      this.ports.delete(providerId);
      return;
    }
    const { message } = errorFields(res.json);
    throw this.http.error(
      "terminate",
      "fatal",
      `destroy of ${providerId} was refused (${message ?? `HTTP ${res.status}`}) and the instance is still ${still.status}`,
      { status: res.status },
    );
  }

  // ── internals ─────────────────────────────────────────────────────────────────────────────────────────

  private tagOf(spec: WorkerSpec): string {
    try {
      return instanceTag(spec.ownerLabel, spec.workerId);
    } catch (err) {
      throw this.http.error("provision", "fatal", (err as Error).message);
    }
  }

  private async create(askId: string, body: unknown, secrets: readonly string[]): Promise<string> {
    const res = await this.http.send({
      operation: "provision",
      method: "PUT",
      path: `/asks/${encodeURIComponent(askId)}/`,
      json: body,
      secrets,
      retry: false,
    });
    const json = res.json;
    if (isRecord(json) && json.success === false) {
      const fields = errorFields(json);
      const kind = classifyFailure({ status: 400, ...fields });
      throw this.http.error(
        "provision",
        kind,
        `${fields.code ? `${fields.code}: ` : ""}${fields.message ?? "refused"}`,
        {
          status: res.status,
          ...(fields.code ? { code: fields.code } : {}),
          secrets,
        },
      );
    }
    const id = isRecord(json) ? str(json.new_contract) : undefined;
    if (!id) throw this.http.unexpected("provision", "no new_contract in the answer", json);
    return id;
  }

  /** The live instance carrying this tag, if any (one request, no retries: the caller's loop retries). */
  private async findWorker(tag: string, port: number): Promise<InstanceInfo | undefined> {
    const parsed = parseInstanceTag(tag);
    const found = (await this.list("provision", false)).find(
      (i) =>
        i.workerId === parsed?.workerId &&
        i.ownerLabel === parsed?.ownerLabel &&
        !FINAL_STATUSES.includes(i.status),
    );
    if (!found) return undefined;
    if (!this.ports.has(found.providerId)) {
      this.ports.set(found.providerId, port);
      return (await this.describe(found.providerId).catch(() => undefined)) ?? found;
    }
    return found;
  }

  private async list(operation: string, retry = true): Promise<InstanceInfo[]> {
    const body = await this.http.json({
      operation,
      method: "GET",
      path: "/instances/",
      query: { owner: "me" },
      retry,
    });
    if (!isRecord(body) || !Array.isArray(body.instances))
      throw this.http.unexpected(operation, "no instances list", body);
    return body.instances.flatMap((raw) => {
      const info = isRecord(raw) ? this.toInfo(raw) : undefined;
      return info ? [info] : [];
    });
  }

  private toInfo(raw: Record<string, unknown>): InstanceInfo | undefined {
    const id = str(raw.id);
    if (id === undefined) return undefined;
    const tag = parseInstanceTag(raw.label);
    const actual = typeof raw.actual_status === "string" ? raw.actual_status : undefined;
    const status: InstanceStatus = actual === undefined ? "provisioning" : (STATUS[actual] ?? "unknown");
    const baseUrl = status === "running" ? this.baseUrlOf(id, raw) : undefined;
    const usdPerHour = num(raw.dph_total);
    const started = num(raw.start_date);
    const message = typeof raw.status_msg === "string" ? raw.status_msg : undefined;
    return {
      providerId: id,
      ...(tag ? { workerId: tag.workerId, ownerLabel: tag.ownerLabel } : {}),
      status,
      ...(baseUrl ? { baseUrl } : {}),
      ...(usdPerHour !== undefined ? { usdPerHour } : {}),
      ...(started !== undefined ? { createdAtMs: Math.round(started * 1000) } : {}),
      detail: this.http.redact(
        `actual_status=${actual ?? "null"}${message ? `; ${message.slice(0, 200)}` : ""}`,
      ),
    };
  }

  private baseUrlOf(id: string, raw: Record<string, unknown>): string | undefined {
    const ip = str(raw.public_ipaddr)?.trim();
    if (!ip || !isRecord(raw.ports)) return undefined;
    const ports = raw.ports;
    const wanted = this.ports.get(id) ?? this.defaultPort;
    let mapping = ports[`${wanted}/tcp`];
    if (mapping === undefined) {
      const others = Object.keys(ports).filter((k) => k.endsWith("/tcp") && k !== "22/tcp");
      if (others.length === 1 && others[0] !== undefined) mapping = ports[others[0]];
    }
    const first = Array.isArray(mapping) ? mapping[0] : undefined;
    const hostPort = isRecord(first) ? num(first.HostPort) : undefined;
    if (hostPort === undefined) return undefined;
    return `http://${ip}:${hostPort}`;
  }
}
