/**
 * Vast.ai adapter: offer search with `POST /api/v0/bundles/`, rent an offer with `PUT /api/v0/asks/{id}/`, read one
 * instance with `GET /api/v0/instances/{id}/`, list them page by page with `GET /api/v1/instances/` (the v0 list is
 * deprecated), destroy with `DELETE /api/v0/instances/{id}/`. Every shape sent or read is the published one in
 * core/contracts/vastai.ts (sources named there and below).
 *
 * Instances carry the tag `<ownerLabel>.<workerId>` in `label`. The engine runs as the image's entrypoint with
 * `runtype: "args"` (or, for a TLS start-up, the entrypoint given in `onstart`, which args mode uses as the
 * entrypoint); its port is requested through the env key `-p P:P` and found in `ports` once running — which only a
 * host with direct ports can give, so offers without them are left out. The address is reported as http://; the
 * controller knows whether the worker serves TLS and switches to https.
 * Vast.ai bills GPU time while running and storage from creation until destroyed — so terminate destroys.
 */
import { fitsGpuMemory, GPU_MEMORY_TOLERANCE, GPUS, type GpuId, PROVIDERS } from "../../core/catalog";
import type { RuntimeConfig } from "../../core/config/runtime";
import {
  type ActualStatus,
  CreateInstanceRequest,
  type CreateInstanceResponse,
  type DestroyInstanceResponse,
  type ListInstancesQuery,
  type ListInstancesResponse,
  type SearchOffersRequest,
  type ShowInstanceResponse,
  VAST_ENV_MAX_LENGTH,
  VAST_LIST_PAGE_MAX,
  type VastInstance,
  type VastOffer,
} from "../../core/contracts/vastai";
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
  type SkippedOffer,
  specSecrets,
  TLS_ENV,
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

/**
 * `actual_status` → our status (cli/reference/show-instance.mdx; `created` from vast-cli vastai/SKILL.md). `frozen`
 * keeps its memory but serves nothing; `exited` never comes back by itself ("it will never reach running", SKILL.md);
 * `unknown` and `offline` are a host out of touch.
 */
const STATUS: Readonly<Record<ActualStatus, InstanceStatus>> = {
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

/** Status words vast.py (`instance_exist`) treats as a destroyed instance in `intended_status`/`actual_status`. */
const GONE_WORDS: ReadonlySet<string> = new Set(["destroyed", "terminated"]);

/**
 * MB per GB in `gpu_ram`: Vast reports binary MB (24576 for a 24 GB card: search_offers.yaml and show_instances.yaml
 * examples), so MB / 1024 is the catalog's GB. The CLI turns a GB filter into MB with ×1000 (vastai/api/query.py
 * `offers_mult`); filter and re-check here use one factor, so they agree.
 */
const MB_PER_GB = 1024;

/**
 * Longest part the TLS certificate and key are split into: Vast documents `env.max_length: 256`
 * (create_instance.yaml `x-input-validation`) without saying whether the key counts; parts leave room for a
 * `AIORCH_TLS_KEY_B64_NN=` prefix.
 */
const ENV_PART_CHARS = VAST_ENV_MAX_LENGTH - 32;

/** Pages of 25 followed at most (10 000 instances) before the listing is taken for a loop. */
const MAX_LIST_PAGES = 400;

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
    // The published paths carry their version (/api/v0/…, /api/v1/instances/) below the server root
    // https://console.vast.ai (every openapi yaml's `servers`; vast-cli client.py `_build_url`). A configured
    // apiBase may name the root or, like the catalog's default, its /api/v0.
    const base = apiBaseOf(options.settings.apiBase, PROVIDERS.vastai.apiBase, "vastai").replace(
      /\/api\/v0$/,
      "",
    );
    this.http = new ProviderHttp({
      ...options,
      provider: "vastai",
      baseUrl: base,
      // vast-ai/docs api-reference/authentication.mdx; vast-cli vastai/api/client.py `_build_headers`
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
    // One GPU name covers cards of different memory ("A100 SXM4": 40 and 80 GB): ask for at least what the
    // smallest wanted type needs; each offer is re-checked against its own type below.
    const minGb = Math.min(...[...byName.values()].map((g) => GPUS[g].vramGb));
    // vast-ai/docs api-reference/openapi/yaml/search_offers.yaml (request body)
    const query: SearchOffersRequest = {
      rentable: { eq: true },
      rented: { eq: false },
      gpu_name: names.length === 1 ? { eq: names[0] } : { in: names },
      num_gpus: { eq: model.gpuCount },
      gpu_ram: { gte: Math.floor(minGb * GPU_MEMORY_TOLERANCE * MB_PER_GB) },
      // A host without direct ports never maps the engine's port (vast-cli vastai/SKILL.md searches
      // `direct_port_count>=1`); the worker would bill until the boot timeout.
      direct_port_count: { gte: 1 },
      reliability: { gte: s.minReliability },
      disk_space: { gte: s.diskGb },
      // search_offers.yaml gives `verified` the default {eq: true} (vast-cli's search adds it too): without an
      // explicit filter unverified hosts never show, so verifiedOnly: false must ask for both
      verified: s.verifiedOnly ? { eq: true } : { in: [true, false] },
      // (undefined fields are left out of the JSON; written out so the type checks every name)
      datacenter: s.datacenterOnly ? { eq: true } : undefined,
      dph_total: cap !== undefined ? { lte: cap } : undefined,
      order: [["dph_total", "asc"]],
      type: "ondemand",
      allocated_storage: s.diskGb,
      limit: this.offerLimit,
    };
    const res = await this.http.send({
      operation: "offers",
      method: "POST",
      path: "/api/v0/bundles/",
      json: query,
      okStatuses: [404],
    });
    if (res.status === 404) {
      // search_offers.yaml documents a bad key on this endpoint as 404 "Invalid user key"
      const { message } = errorFields(res.json);
      const auth = message !== undefined && /invalid user key/i.test(message);
      throw this.http.error(
        "offers",
        auth ? "auth" : "fatal",
        auth ? `the API key was refused (${message})` : `search answered 404: ${message ?? "no message"}`,
        { status: 404 },
      );
    }
    const body = res.json;
    if (!isRecord(body) || !Array.isArray(body.offers))
      throw this.http.unexpected("offers", "no offers list", body);

    const offers: Offer[] = [];
    const skipped: SkippedOffer[] = [];
    for (const item of body.offers) {
      if (!isRecord(item)) continue;
      const raw = item as Partial<VastOffer>;
      const id = str(raw.id);
      const name = typeof raw.gpu_name === "string" ? raw.gpu_name : undefined;
      const price = num(raw.dph_total);
      const mb = num(raw.gpu_ram);
      const memoryGb = mb !== undefined ? Math.round((mb / MB_PER_GB) * 10) / 10 : undefined;
      const gpu = name !== undefined ? byName.get(name) : undefined;
      const reliability = num(raw.reliability);
      const reason = this.rejection(raw, { id, name, gpu, price, memoryGb, reliability, cap, model });
      if (reason !== undefined || id === undefined || gpu === undefined || price === undefined) {
        skipped.push({
          provider: "vastai",
          ...(id !== undefined ? { offerId: id } : {}),
          ...(name !== undefined ? { gpuName: name } : {}),
          ...(memoryGb !== undefined ? { gpuMemoryGb: memoryGb } : {}),
          ...(price !== undefined ? { usdPerHour: price } : {}),
          reason: reason ?? "incomplete offer",
        });
        continue;
      }
      const region = typeof raw.geolocation === "string" ? raw.geolocation : undefined;
      offers.push({
        provider: "vastai",
        gpu,
        ...(memoryGb !== undefined ? { gpuMemoryGb: memoryGb } : {}),
        usdPerHour: price,
        offerId: id,
        ...(region ? { region } : {}),
        ...(reliability !== undefined ? { reliability } : {}),
      });
    }
    offers.sort((a, b) => a.usdPerHour - b.usdPerHour || (b.reliability ?? 0) - (a.reliability ?? 0));
    return { offers, skipped };
  }

  async provision(spec: WorkerSpec, offer: Offer): Promise<InstanceInfo> {
    if (offer.provider !== "vastai" || !offer.offerId)
      throw this.http.error(
        "provision",
        "fatal",
        "the offer is not a Vast.ai ask (provider or offerId missing)",
      );
    const tag = this.tagOf(spec);
    const launch = engineLaunch(spec, { maxEnvValueChars: ENV_PART_CHARS });
    // the key also travels in parts: each part is a secret of its own
    const keyParts = Object.entries(launch.env)
      .filter(([k]) => k.startsWith(TLS_ENV.key))
      .map(([, v]) => v);
    const secrets = [...specSecrets(spec), ...keyParts];
    this.http.rememberSecrets(secrets);
    // vast-ai/docs api-reference/openapi/yaml/create_instance.yaml (request body); `env` as an object with the port
    // request `"-p P:P": "1"` (api-reference/creating-instances-with-api.mdx, "Environment Variables and Ports").
    const body: CreateInstanceRequest = {
      image: spec.image,
      disk: this.settings.diskGb,
      label: tag,
      env: { ...spec.env, ...launch.env, [`-p ${spec.port}:${spec.port}`]: "1" },
      runtype: "args",
      // In args mode `onstart` replaces the image's entrypoint (vast-cli vastai/cli/commands/instances.py:
      // `--entrypoint` is sent as `onstart`).
      onstart: launch.entrypoint,
      args: [...launch.args],
    };
    // The documented input limits (env values, args + onstart, label, image, disk): refuse here, with the reason,
    // rather than have every attempt refused. Paths name env keys, never values.
    const invalid = CreateInstanceRequest.safeParse(body);
    if (!invalid.success)
      throw this.http.error(
        "provision",
        "invalid",
        `the instance request breaks Vast.ai's published limits: ${invalid.error.issues
          .map((i) => `${i.path.map(String).join(".") || "(body)"}: ${i.message}`)
          .join("; ")}`,
        { secrets },
      );
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
    // vast-ai/docs api-reference/openapi/yaml/show_instance.yaml; `owner=me` as vast-cli vastai/api/instances.py
    // show_instance sends it. A 404 is an instance the account does not have (vast.py `instance_exist`).
    const res = await this.http.send({
      operation: "describe",
      method: "GET",
      path: `/api/v0/instances/${encodeURIComponent(providerId)}/`,
      query: { owner: "me" },
      okStatuses: [404],
    });
    if (res.status === 404) return undefined;
    if (!isRecord(res.json) || !("instances" in res.json))
      throw this.http.unexpected("describe", "no instances field", res.json);
    let raw: unknown = (res.json as Partial<ShowInstanceResponse>).instances;
    if (Array.isArray(raw)) raw = raw.find((i) => isRecord(i) && str(i.id) === providerId);
    // `instances: null`: the account has no such instance (any more)
    if (raw === null || raw === undefined) return undefined;
    if (!isRecord(raw)) throw this.http.unexpected("describe", "instance is not an object", raw);
    return this.toInfo(raw) ?? undefined;
  }

  async listOwned(ownerLabel: string): Promise<InstanceInfo[]> {
    return (await this.list("list")).filter((i) => i.ownerLabel === ownerLabel);
  }

  async terminate(providerId: string): Promise<void> {
    // vast-ai/docs api-reference/openapi/yaml/destroy_instance.yaml: 200 `{success, msg}`, 400 invalid_args,
    // 404 not_found. vast-cli (cli/commands/instances.py destroy_instance_impl) also handles a 2xx without success.
    const res = await this.http.send({
      operation: "terminate",
      method: "DELETE",
      path: `/api/v0/instances/${encodeURIComponent(providerId)}/`,
      expect: "text",
      okStatuses: [400, 404],
    });
    const json = isRecord(res.json) ? (res.json as Partial<DestroyInstanceResponse>) : undefined;
    if (res.status >= 200 && res.status < 300 && json?.success === true) {
      this.ports.delete(providerId);
      return;
    }
    // Refused or not found: gone already? Confirm by reading back.
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

  /** Why an offer the search listed is not taken (re-checking what the query asked for), or undefined. */
  private rejection(
    raw: Partial<VastOffer>,
    o: {
      id: string | undefined;
      name: string | undefined;
      gpu: GpuId | undefined;
      price: number | undefined;
      memoryGb: number | undefined;
      reliability: number | undefined;
      cap: number | undefined;
      model: OfferRequest;
    },
  ): string | undefined {
    const s = this.settings;
    const count = o.model.gpuCount;
    if (o.id === undefined) return "no offer id in the answer";
    if (o.gpu === undefined) return `GPU "${o.name ?? "?"}" is none of the model's GPU types`;
    const gpus = num(raw.num_gpus);
    if (gpus !== count) return `${gpus ?? "?"} GPUs per instance, the model needs ${count}`;
    if (raw.rented === true || raw.rentable === false) return "no longer rentable";
    const ports = num(raw.direct_port_count);
    if (ports === undefined) return "direct ports not reported: the engine's port may never be reachable";
    if (ports < 1) return "no direct ports: the engine's port would never be reachable";
    if (o.memoryGb === undefined) return "GPU memory (gpu_ram) not reported";
    if (!fitsGpuMemory(o.gpu, o.memoryGb))
      return `${o.memoryGb} GB per GPU, ${o.gpu} needs ${GPUS[o.gpu].vramGb} GB`;
    if (o.price === undefined || o.price <= 0) return "no price (dph_total)";
    if (o.cap !== undefined && o.price > o.cap)
      return `$${round4(o.price)}/h over maxUsdPerHour ($${round4(o.cap)}/h for ${count} GPU${count > 1 ? "s" : ""})`;
    if (o.reliability !== undefined && o.reliability < s.minReliability)
      return `reliability ${round4(o.reliability)} < ${s.minReliability} (minReliability)`;
    if (s.verifiedOnly && typeof raw.verification === "string" && raw.verification !== "verified")
      return `host ${raw.verification}, verifiedOnly is set`;
    const disk = num(raw.disk_space);
    if (disk !== undefined && disk < s.diskGb) return `${round4(disk)} GB of disk, ${s.diskGb} GB needed`;
    return undefined;
  }

  private tagOf(spec: WorkerSpec): string {
    try {
      return instanceTag(spec.ownerLabel, spec.workerId);
    } catch (err) {
      throw this.http.error("provision", "fatal", (err as Error).message);
    }
  }

  private async create(
    askId: string,
    body: CreateInstanceRequest,
    secrets: readonly string[],
  ): Promise<string> {
    // vast-ai/docs api-reference/openapi/yaml/create_instance.yaml: 200 `{success, new_contract}`; 4xx error JSON
    // (a gone offer: 404 "…no_such_ask… is not available", or 410 `no_such_ask`), classified by ProviderHttp.
    const res = await this.http.send({
      operation: "provision",
      method: "PUT",
      path: `/api/v0/asks/${encodeURIComponent(askId)}/`,
      json: body,
      secrets,
      retry: false,
    });
    const json = isRecord(res.json) ? (res.json as Partial<CreateInstanceResponse>) : undefined;
    if (json?.success === false) {
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
    const id = str(json?.new_contract);
    if (!id) throw this.http.unexpected("provision", "no new_contract in the answer", res.json);
    return id;
  }

  /** The live instance carrying this tag, if any (no retries: the caller's loop retries). */
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

  /**
   * Every instance of the account: vast-ai/docs api-reference/openapi/yaml/show_instances.yaml — keyset pages of at
   * most 25, the next one asked for with `after_token` = the previous answer's `next_token` until that is null
   * (vast-cli vastai/api/instances.py show_instances pages the same way, ordered by id).
   */
  private async list(operation: string, retry = true): Promise<InstanceInfo[]> {
    const out: InstanceInfo[] = [];
    const tokens = new Set<string>();
    let after: string | undefined;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const query: ListInstancesQuery = {
        limit: String(VAST_LIST_PAGE_MAX),
        order_by: JSON.stringify([{ col: "id", dir: "asc" }]),
        ...(after !== undefined ? { after_token: after } : {}),
      };
      const res = await this.http.send({
        operation,
        method: "GET",
        path: "/api/v1/instances/",
        query,
        retry,
        okStatuses: [400],
      });
      if (res.status === 400) {
        // show_instances.yaml 400: `invalid_request` (a bad filter/order) or `invalid_token` (a bad page cursor) —
        // not a credential problem, whatever the generic classification of "invalid_token" says.
        const { code, message } = errorFields(res.json);
        throw this.http.error(operation, "fatal", `${code ? `${code}: ` : ""}${message ?? "bad request"}`, {
          status: 400,
          ...(code ? { code } : {}),
        });
      }
      const body = res.json;
      if (!isRecord(body) || !Array.isArray(body.instances))
        throw this.http.unexpected(operation, "no instances list", body);
      const answer = body as Partial<ListInstancesResponse> & { instances: unknown[] };
      for (const raw of answer.instances) {
        const info = isRecord(raw) ? this.toInfo(raw) : undefined;
        if (info) out.push(info);
      }
      const next =
        typeof answer.next_token === "string" && answer.next_token !== "" ? answer.next_token : undefined;
      if (next === undefined) return out;
      if (tokens.has(next)) throw this.http.unexpected(operation, "the same next_token twice");
      tokens.add(next);
      after = next;
    }
    throw this.http.unexpected(operation, `more than ${MAX_LIST_PAGES} pages of instances`);
  }

  private toInfo(item: Record<string, unknown>): InstanceInfo | undefined {
    const raw = item as Partial<VastInstance>;
    const id = str(raw.id);
    if (id === undefined) return undefined;
    const tag = parseInstanceTag(raw.label);
    const actual = typeof raw.actual_status === "string" ? raw.actual_status : undefined;
    const curState = typeof raw.cur_state === "string" ? raw.cur_state : undefined;
    const intended = typeof raw.intended_status === "string" ? raw.intended_status : undefined;
    let status: InstanceStatus;
    // `cur_state: "unloaded"`: the machine contract was released on destroy (cli/reference/show-instance.mdx)
    if (curState === "unloaded" || GONE_WORDS.has(intended ?? "") || GONE_WORDS.has(actual ?? ""))
      status = "terminated";
    else if (actual === undefined) status = "provisioning";
    else status = STATUS[actual as ActualStatus] ?? "unknown";
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
        `actual_status=${actual ?? "null"}${curState ? ` cur_state=${curState}` : ""}${message ? `; ${message.slice(0, 200)}` : ""}`,
      ),
    };
  }

  /** `public_ipaddr` and `ports["P/tcp"][0].HostPort` (show_instances.yaml; vast.py reads them so). */
  private baseUrlOf(id: string, raw: Partial<VastInstance>): string | undefined {
    const ip = str(raw.public_ipaddr)?.trim();
    if (!ip || !isRecord(raw.ports)) return undefined;
    const ports: Record<string, unknown> = raw.ports;
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

function round4(n: number): number {
  return Math.round(n * 1e4) / 1e4;
}
