/**
 * DataCrunch / Verda adapter (https://api.verda.com/v1): OAuth2 client credentials with a cached token that is
 * refreshed before expiry and re-obtained on a 401; offers from `/instance-types` matched to the catalog's GPUs by
 * GPU model AND memory per GPU, filtered by `/instance-availability` at the configured location; `POST /instances`
 * (answers a plain-text id) with a startup script that runs the engine container (`--entrypoint` set when the
 * engine writes its TLS files first); read, list, and `PUT /instances {action:"delete"}`.
 *
 * Every request body and every field read comes from Verda's published shapes in `core/contracts/verda.ts`,
 * which names the SDK file behind each (verda-cloud/sdk-python, verda-cloud/verdacloud-sdk-go, verda-cloud/verda-cli).
 * Bodies are typed with the contract's request types; answers are read through its response types, defensively
 * (never strict-parsed: Verda may add fields).
 *
 * Prices: an instance TYPE's `price_per_hour` is the whole instance's (verda-cli commit 26d3b11), so an offer
 * carries it as is; an INSTANCE's own `price_per_hour` is per GPU (verda-cli `cmd/util/pricing.go`), so `describe`
 * multiplies it by the instance's GPU count. GPU memory: `gpu_memory.size_in_gigabytes` is the total over the GPUs
 * (sdk-python `tests/unit_tests/instance_types/`), so memory per GPU is that over `gpu.number_of_gpus`.
 *
 * Instances carry the tag `<ownerLabel>.<workerId>` in `description` (the ownership record the reconciler
 * reads) and a DNS-safe `hostname` derived from both. A delete of an instance that is already gone answers
 * `forbidden_action`: success once a read-back confirms it.
 *
 * OS volumes (ephemeral workers): each instance gets an OS volume named `<hostname>-os`; the delete asks for it
 * with `volume_ids` + `delete_permanently`, and the adapter does not take the provider's word for it. Once the
 * instance is gone, `describe` keeps reporting the worker as not terminated ("os volume <id> still present")
 * while a volume it created for the instance is listed — active in `GET /volumes` or in `GET /volumes/trash`
 * (unless flagged `is_permanently_deleted`) — and `terminate` deletes such a volume with
 * `DELETE /volumes/{id} {is_permanent: true}` (also from the trash). A volume is matched to its instance by
 * the `os_volume_id` and `hostname` remembered from the instance (so a controller restarted while the instance
 * is still listed, even `deleting`, finds it by name) or by a volume's `instance_id`/`instances[].id`.
 * `listOwned` also reports leftovers: those of instances it remembers (under the instance id) and, after a
 * restart, detached OS volumes named `<ownerLabel>-…-os` that no existing instance uses (under
 * `volume:<id>`, which `describe`/`terminate` understand), so the reconciler deletes them as orphans.
 * UNVERIFIED: that a DELETE with `is_permanent` also purges a trashed volume, whether a volume left behind keeps
 * its `instance_id`, and whether the trash list shows purged volumes (handled either way).
 */
import { fitsGpuMemory, GPUS, type GpuId, PROVIDERS } from "../../core/catalog";
import type { RuntimeConfig } from "../../core/config/runtime";
import type {
  CreateInstanceRequest,
  CreateScriptRequest,
  DeleteScriptsRequest,
  DeleteVolumeRequest,
  InstanceActionRequest,
  InstanceActionResult,
  InstanceAvailabilityQuery,
  InstanceTypesQuery,
  LocationAvailability,
  TokenRequest,
  TokenResponse,
  Instance as VerdaInstance,
  InstanceType as VerdaInstanceType,
  Volume as VerdaVolume,
  VolumeInTrash as VerdaVolumeInTrash,
} from "../../core/contracts/verda";
import {
  type AuthSource,
  apiBaseOf,
  classifyFailure,
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
  shellJoin,
  shellQuote,
  specSecrets,
  type WorkerSpec,
} from "./types";

export type DatacrunchSettings = NonNullable<RuntimeConfig["providers"]["datacrunch"]>;

export interface DatacrunchAdapterOptions extends HttpRuntimeOptions {
  /** `providers.datacrunch` from the runtime config. */
  readonly settings: DatacrunchSettings;
  /** DATACRUNCH_CLIENT_ID and DATACRUNCH_CLIENT_SECRET. */
  readonly clientId: string;
  readonly clientSecret: string;
  /** USD per GPU-hour used when the API quotes no price (RuntimeConfig.prices). */
  readonly prices?: RuntimeConfig["prices"];
  /** OS volume size in GB (image, weights). @default 100 */
  readonly osVolumeGb?: number;
  /** Renew the token this long before it expires. @default 60 000 */
  readonly tokenSkewMs?: number;
  /** Engine port for instances this process did not create. @default 8000 */
  readonly defaultPort?: number;
}

/** Verda's instance statuses (core/contracts/verda.ts `InstanceStatus`: go `instances_types.go`, py `constants.py`). */
const STATUS: Readonly<Record<VerdaInstance["status"], InstanceStatus>> = {
  ordered: "provisioning",
  validating: "provisioning",
  pending: "provisioning",
  new: "provisioning",
  provisioning: "provisioning",
  running: "running",
  offline: "stopped",
  starting_hibernation: "stopped",
  hibernating: "stopped",
  restoring: "booting",
  deleting: "terminating",
  discontinued: "terminated",
  notfound: "terminated",
  error: "failed",
  no_capacity: "failed",
  unknown: "unknown",
};

/** Pseudo provider id under which `listOwned` reports a leftover volume no remembered instance accounts for. */
const VOLUME_ID_PREFIX = "volume:";
/** Bound on the instances whose OS volume the adapter remembers (oldest forgotten first). */
const MAX_WATCHED = 10_000;

/** What the adapter remembers of an instance so it can find the instance's OS volume after the instance is gone. */
interface VolumeWatch {
  volumeId?: string;
  /** `<hostname>-os`, the name the adapter gave the OS volume (only for instances carrying our tag). */
  volumeName?: string;
  workerId?: string;
  ownerLabel?: string;
  /** This process asked for the instance's deletion (or to clean up after it). */
  deleteRequested?: boolean;
}

/** A volume as listed by `GET /volumes` or `GET /volumes/trash`. */
interface VolumeView {
  readonly id: string;
  readonly name?: string;
  readonly status?: string;
  readonly isOsVolume?: boolean;
  /** Instances it is attached to (`instance_id` and `instances[].id`). */
  readonly instanceIds: readonly string[];
  readonly inTrash: boolean;
}

/** OAuth2 client credentials with refresh; one token request at a time. */
class VerdaAuth implements AuthSource {
  private token?: { access: string; refresh?: string; expiresAt: number };
  private pending?: Promise<string>;

  constructor(
    private readonly http: ProviderHttp,
    private readonly clientId: string,
    private readonly clientSecret: string,
    private readonly skewMs: number,
  ) {}

  secrets(): string[] {
    return [this.clientId, this.clientSecret, this.token?.access ?? "", this.token?.refresh ?? ""];
  }

  async headers(): Promise<Record<string, string>> {
    return { authorization: `Bearer ${await this.accessToken()}` };
  }

  /** The API refused the token: the next request obtains a new one (refresh first, then credentials). */
  invalidate(): void {
    if (this.token) this.token.expiresAt = 0;
  }

  private accessToken(): Promise<string> {
    const t = this.token;
    if (t && this.http.now() < t.expiresAt - this.skewMs) return Promise.resolve(t.access);
    this.pending ??= this.obtain().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async obtain(): Promise<string> {
    const refresh = this.token?.refresh;
    if (refresh) {
      try {
        return await this.grant({ grant_type: "refresh_token", refresh_token: refresh });
      } catch (err) {
        // A refused refresh (400/401) means: authenticate again with the client credentials.
        if (!(err instanceof ProviderError) || (err.kind !== "auth" && err.kind !== "fatal")) throw err;
        this.token = undefined;
      }
    }
    return this.grant({
      grant_type: "client_credentials",
      client_id: this.clientId,
      client_secret: this.clientSecret,
    });
  }

  /** `POST /oauth2/token`, a JSON body (core/contracts/verda.ts `TokenRequest`, `TokenResponse`). */
  private async grant(body: TokenRequest): Promise<string> {
    const json = await this.http.json({
      operation: "auth",
      method: "POST",
      path: "/oauth2/token",
      json: body,
      auth: false,
      retry: false,
    });
    if (!isRecord(json)) throw this.http.unexpected("auth", "no access_token", json);
    const answer = json as Partial<TokenResponse>;
    const access = str(answer.access_token);
    if (!access) throw this.http.unexpected("auth", "no access_token", json);
    const expiresIn = num(answer.expires_in) ?? 3600;
    const refresh = str(answer.refresh_token);
    this.token = { access, expiresAt: this.http.now() + expiresIn * 1000, ...(refresh ? { refresh } : {}) };
    return access;
  }
}

export class DatacrunchAdapter implements ProviderAdapter {
  readonly id = "datacrunch" as const;
  private readonly http: ProviderHttp;
  private readonly settings: DatacrunchSettings;
  private readonly prices: RuntimeConfig["prices"];
  private readonly osVolumeGb: number;
  private readonly defaultPort: number;
  private readonly ports = new Map<string, number>();
  /** provider id → the OS volume to verify gone once the instance is gone. */
  private readonly watched = new Map<string, VolumeWatch>();

  constructor(options: DatacrunchAdapterOptions) {
    this.settings = options.settings;
    this.prices = options.prices ?? [];
    this.osVolumeGb = options.osVolumeGb ?? 100;
    this.defaultPort = options.defaultPort ?? 8000;
    let auth: VerdaAuth | undefined;
    this.http = new ProviderHttp({
      ...options,
      provider: "datacrunch",
      baseUrl: apiBaseOf(options.settings.apiBase, PROVIDERS.datacrunch.apiBase, "datacrunch"),
      auth: {
        headers: () => (auth as VerdaAuth).headers(),
        invalidate: () => auth?.invalidate(),
      },
      secrets: () => auth?.secrets() ?? [options.clientId, options.clientSecret],
    });
    if (!options.clientId || !options.clientSecret)
      throw this.http.error(
        "configure",
        "auth",
        "no client credentials (DATACRUNCH_CLIENT_ID / DATACRUNCH_CLIENT_SECRET empty)",
      );
    auth = new VerdaAuth(this.http, options.clientId, options.clientSecret, options.tokenSkewMs ?? 60_000);
  }

  /**
   * Instance types of a requested GPU's model (the catalog's `providerGpuId`, e.g. "A100", is the model in the
   * type id: `1A100.22V`, `2A100.44V`, `1A100.40S.22V`) whose memory per GPU fits the catalog GPU
   * (`fitsGpuMemory`), with the requested GPU count, available at the configured location. Types of those models
   * that fail are reported in `skipped`, with why.
   */
  async offers(model: OfferRequest): Promise<OfferSearch> {
    const wanted = new Map<string, GpuId[]>();
    for (const gpu of model.gpu) {
      const family = PROVIDERS.datacrunch.gpus[gpu]?.providerGpuId.toUpperCase();
      if (family) wanted.set(family, [...(wanted.get(family) ?? []), gpu]);
    }
    if (wanted.size === 0) return { offers: [], skipped: [] };
    const location = this.settings.location;
    // No spot flag: py sends `isSpot`, go `is_spot`; both leave it out for on-demand (contracts/verda.ts).
    const typesQuery: InstanceTypesQuery = { currency: "usd" };
    const availabilityQuery: InstanceAvailabilityQuery = { location_code: location };
    const [types, availability] = await Promise.all([
      this.http.json({ operation: "offers", method: "GET", path: "/instance-types", query: typesQuery }),
      this.http.json({
        operation: "offers",
        method: "GET",
        path: "/instance-availability",
        query: availabilityQuery,
      }),
    ]);
    if (!Array.isArray(types)) throw this.http.unexpected("offers", "instance types are not a list", types);
    if (!Array.isArray(availability))
      throw this.http.unexpected("offers", "availability is not a list", availability);
    const available = new Set<string>();
    for (const item of availability) {
      if (!isRecord(item)) continue;
      const entry = item as Partial<LocationAvailability>;
      if (str(entry.location_code) !== location || !Array.isArray(entry.availabilities)) continue;
      for (const t of entry.availabilities) if (typeof t === "string") available.add(t);
    }

    const offers: Offer[] = [];
    const skipped: SkippedOffer[] = [];
    for (const item of types) {
      if (!isRecord(item)) continue;
      const raw = item as Partial<VerdaInstanceType>;
      const type = str(raw.instance_type);
      if (!type) continue;
      const gpus = wanted.get(gpuFamily(type));
      if (!gpus) continue; // another GPU model: not a candidate, not worth a line in the log
      const count = num(raw.gpu?.number_of_gpus) ?? leadingCount(type);
      const totalGb = num(raw.gpu_memory?.size_in_gigabytes);
      const perGpuGb =
        count !== undefined && count > 0 && totalGb !== undefined ? totalGb / count : undefined;
      const listed = num(raw.price_per_hour); // the whole instance's price
      const configured = (gpu: GpuId) =>
        this.prices.find((p) => p.provider === "datacrunch" && p.gpu === gpu)?.usdPerHour;
      const fitting = perGpuGb === undefined ? undefined : gpus.find((g) => fitsGpuMemory(g, perGpuGb));
      let reason: string | undefined;
      let usdPerHour: number | undefined;
      if (perGpuGb === undefined)
        reason = "no GPU memory or GPU count published: cannot tell which card it has";
      else if (!fitting) {
        const g = gpus[0] as GpuId;
        reason = `${gb(perGpuGb)} GB per GPU, ${g} needs ${GPUS[g].vramGb} GB`;
      } else if (count !== model.gpuCount)
        reason = `${plural(count ?? 0, "GPU")}, the model asks for ${model.gpuCount}`;
      else if (!available.has(type)) reason = `not available at ${location}`;
      else {
        const perGpu = configured(fitting);
        usdPerHour =
          listed !== undefined && listed > 0 ? listed : perGpu !== undefined ? perGpu * count : undefined;
        if (usdPerHour === undefined || usdPerHour <= 0) reason = "no price listed and none configured";
      }
      if (reason === undefined && fitting && usdPerHour !== undefined) {
        offers.push({
          provider: "datacrunch",
          gpu: fitting,
          ...(perGpuGb !== undefined ? { gpuMemoryGb: perGpuGb } : {}),
          usdPerHour,
          offerId: type,
          region: location,
        });
        continue;
      }
      const gpuName = str(raw.gpu?.description);
      skipped.push({
        provider: "datacrunch",
        offerId: type,
        ...(gpuName ? { gpuName } : {}),
        ...(perGpuGb !== undefined ? { gpuMemoryGb: perGpuGb } : {}),
        ...(listed !== undefined && listed > 0 ? { usdPerHour: listed } : {}),
        reason: reason ?? "no price listed and none configured",
      });
    }
    offers.sort((a, b) => a.usdPerHour - b.usdPerHour);
    return { offers, skipped };
  }

  async provision(spec: WorkerSpec, offer: Offer): Promise<InstanceInfo> {
    if (offer.provider !== "datacrunch" || !offer.offerId)
      throw this.http.error(
        "provision",
        "fatal",
        "the offer is not a DataCrunch instance type (offerId missing)",
      );
    let tag: string;
    try {
      tag = instanceTag(spec.ownerLabel, spec.workerId);
    } catch (err) {
      throw this.http.error("provision", "fatal", (err as Error).message);
    }
    const secrets = specSecrets(spec);
    this.http.rememberSecrets(secrets);
    const hostname = hostnameOf(spec.ownerLabel, spec.workerId);
    const script = startupScript(spec, tag);
    const instanceType = offer.offerId;

    // One script for all attempts: a retried create must not leave a script (holding the token) per attempt.
    let scriptId: string | undefined;
    let adopted = false;
    try {
      return await this.http.retrying("provision", async () => {
        const existing = await this.findWorker(tag, spec.port);
        if (existing) {
          adopted = true;
          return existing;
        }
        scriptId ??= await this.createScript(`aiorch-${hostname}`, script, secrets);
        // core/contracts/verda.ts `CreateInstanceRequest` (py `_instances.py` `create`, go `CreateInstanceRequest`).
        const body: CreateInstanceRequest = {
          instance_type: instanceType,
          image: this.settings.osImage,
          hostname,
          description: tag,
          ssh_key_ids: [],
          location_code: this.settings.location,
          os_volume: { name: osVolumeName(hostname), size: this.osVolumeGb },
          startup_script_id: scriptId,
          is_spot: false,
          contract: "PAY_AS_YOU_GO",
        };
        let id: string;
        try {
          id = await this.createInstance(body, secrets);
        } catch (err) {
          if (err instanceof ProviderError && err.retryable) {
            const found = await this.findWorker(tag, spec.port).catch(() => undefined);
            if (found) {
              adopted = true;
              return found;
            }
          }
          throw err;
        }
        adopted = true;
        this.ports.set(id, spec.port);
        this.watch(id, {
          volumeName: osVolumeName(hostname),
          workerId: spec.workerId,
          ownerLabel: spec.ownerLabel,
        });
        const info = await this.describe(id).catch(() => undefined);
        if (info?.detail === "status=no_capacity") {
          // Verda failed it for lack of capacity: clean it up and let the caller fail over.
          await this.terminate(id).catch(() => undefined);
          throw this.http.error(
            "provision",
            "capacity",
            `instance type ${instanceType} has no capacity at ${this.settings.location}`,
            { code: "no_capacity" },
          );
        }
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
    } catch (err) {
      // Certainly not created (refused, not merely unanswered): the script has no use.
      const certain = err instanceof ProviderError && !err.retryable;
      if (scriptId && !adopted && certain) await this.deleteScript(scriptId);
      throw err;
    }
  }

  async describe(providerId: string): Promise<InstanceInfo | undefined> {
    if (providerId.startsWith(VOLUME_ID_PREFIX)) {
      const id = providerId.slice(VOLUME_ID_PREFIX.length);
      const left = (await this.listVolumes("describe")).filter((v) => v.id === id);
      return left.length > 0 ? this.leftoverInfo(providerId, left) : undefined;
    }
    const raw = await this.getRaw(providerId, "describe");
    if (raw !== undefined) this.learn(providerId, raw);
    const info = raw === undefined ? undefined : this.toInfo(raw);
    if (raw !== undefined && !info) throw this.http.unexpected("describe", "instance without id", raw);
    if (info && !isGone(str(raw?.status)?.toLowerCase())) return info;
    // The instance is gone (or discontinued): it is terminated only once no volume made for it remains.
    const left = this.leftoversOf(providerId, await this.listVolumes("describe"));
    if (left.length > 0) return this.leftoverInfo(providerId, left);
    this.watched.delete(providerId);
    return info?.detail === "status=notfound" ? undefined : info;
  }

  async listOwned(ownerLabel: string): Promise<InstanceInfo[]> {
    const listed = await this.listRaw("list");
    const owned = listed.filter(({ info }) => info.ownerLabel === ownerLabel);
    for (const { info, raw } of owned) this.learn(info.providerId, raw);
    let volumes: VolumeView[];
    try {
      volumes = await this.listVolumes("list", false);
    } catch (err) {
      // Volumes are a second look: an outage there must not blind the reconciler to instances.
      if (!(err instanceof ProviderError)) throw err;
      return owned.map(({ info }) => info).filter((i) => i.status !== "terminated");
    }
    const out: InstanceInfo[] = [];
    const accounted = new Set<string>();
    for (const { info } of owned) {
      const left = this.leftoversOf(info.providerId, volumes);
      for (const v of left) accounted.add(v.id);
      if (info.status !== "terminated") out.push(info);
      else if (left.length > 0) out.push(this.leftoverInfo(info.providerId, left));
    }
    // Remembered instances gone from the list whose volume is still there (an orphan the reconciler deleted…).
    const ids = new Set(listed.map(({ info }) => info.providerId));
    for (const [providerId, watch] of [...this.watched]) {
      if (ids.has(providerId) || watch.ownerLabel !== ownerLabel) continue;
      const left = this.leftoversOf(providerId, volumes);
      for (const v of left) accounted.add(v.id);
      if (left.length > 0) out.push(this.leftoverInfo(providerId, left));
      else this.watched.delete(providerId);
    }
    // Nothing remembered (a restarted controller): detached OS volumes with our name that no instance uses.
    // The name is the only mark a volume carries, and `<ownerLabel>-` is also the start of a longer label's
    // names: this may also find a sibling stack's leftover (a volume to delete all the same).
    const inUse = new Set<string>();
    for (const { raw } of listed) {
      const volumeId = str(raw.os_volume_id);
      const hostname = str(raw.hostname);
      if (volumeId) inUse.add(volumeId);
      if (hostname) inUse.add(`name:${osVolumeName(hostname)}`);
    }
    const prefix = `${ownerLabel}-`.slice(0, 60);
    for (const v of volumes) {
      if (accounted.has(v.id) || inUse.has(v.id) || v.isOsVolume !== true || !v.name) continue;
      if (!v.name.startsWith(prefix) || !v.name.endsWith("-os") || inUse.has(`name:${v.name}`)) continue;
      if (v.instanceIds.some((id) => ids.has(id))) continue;
      const providerId = v.instanceIds[0] ?? `${VOLUME_ID_PREFIX}${v.id}`;
      out.push({ ...this.leftoverInfo(providerId, [v]), ownerLabel });
    }
    return out;
  }

  async terminate(providerId: string): Promise<void> {
    if (providerId.startsWith(VOLUME_ID_PREFIX)) {
      const id = providerId.slice(VOLUME_ID_PREFIX.length);
      await this.purge((await this.listVolumes("terminate")).filter((v) => v.id === id));
      return;
    }
    const raw = await this.getRaw(providerId, "terminate");
    if (raw !== undefined) this.learn(providerId, raw);
    this.watch(providerId, { deleteRequested: true });
    const status = raw === undefined ? undefined : str(raw.status)?.toLowerCase();
    if (raw === undefined || isGone(status)) {
      // Gone: delete for good whatever the provider left of it (active or in the trash).
      await this.purge(this.leftoversOf(providerId, await this.listVolumes("terminate")));
      return;
    }
    if (status === "deleting") return;
    const volume = str(raw.os_volume_id);
    // py `_instances.py` `action`, go `InstanceActionRequest`: `delete_permanently` applies to `volume_ids` only.
    const body: InstanceActionRequest = {
      id: [providerId],
      action: "delete",
      ...(volume ? { volume_ids: [volume], delete_permanently: true } : {}),
    };
    let refused: ProviderError | undefined;
    try {
      const res = await this.http.send({
        operation: "terminate",
        method: "PUT",
        path: "/instances",
        json: body,
        expect: "text",
      });
      refused = this.actionRefusal("terminate", res.json, providerId);
    } catch (err) {
      if (!(err instanceof ProviderError)) throw err;
      refused = err;
    }
    if (refused) {
      if (refused.code !== "forbidden_action" && refused.code !== "not_found") throw refused;
      // Already gone or already being deleted: confirm by reading back.
      const still = await this.getRaw(providerId, "terminate");
      const now = still === undefined ? undefined : str(still.status)?.toLowerCase();
      if (still !== undefined && now !== "deleting" && !isGone(now)) throw refused;
    }
    this.ports.delete(providerId);
    const scriptId = str(raw.startup_script_id);
    if (scriptId) await this.deleteScript(scriptId);
  }

  // ── internals ─────────────────────────────────────────────────────────────────────────────────────────

  /**
   * The refusal in an action's answer, if any: go `instances.go` `Action` — 202/207 carry one
   * `{action, instanceId, status, error?, statusCode?}` per instance (207: some failed); py's tests answer a bare
   * 202, and 204 has no body. A failed entry's `statusCode` 403/404 is read as `forbidden_action`/`not_found`.
   */
  private actionRefusal(operation: string, json: unknown, providerId: string): ProviderError | undefined {
    if (!Array.isArray(json)) return undefined;
    const mine = json.find(
      (r): r is Partial<InstanceActionResult> => isRecord(r) && str(r.instanceId) === providerId,
    );
    if (!mine || (str(mine.status)?.toLowerCase() === "success" && mine.error === undefined))
      return undefined;
    const status = num(mine.statusCode);
    const message = str(mine.error) ?? `status ${str(mine.status) ?? "?"}`;
    const code = status === 404 ? "not_found" : status === 403 ? "forbidden_action" : undefined;
    return this.http.error(
      operation,
      classifyFailure({ ...(status !== undefined ? { status } : {}), message }),
      message,
      {
        ...(status !== undefined ? { status } : {}),
        ...(code ? { code } : {}),
      },
    );
  }

  /** Merge what is known of an instance's OS volume. */
  private watch(providerId: string, facts: VolumeWatch): void {
    const known = this.watched.get(providerId);
    this.watched.delete(providerId);
    this.watched.set(providerId, { ...known, ...facts });
    while (this.watched.size > MAX_WATCHED) {
      const oldest = this.watched.keys().next().value;
      if (oldest === undefined) break;
      this.watched.delete(oldest);
    }
  }

  /** Remember the OS volume of an instance read from the API: its id, and its name if the instance is ours. */
  private learn(providerId: string, raw: Partial<VerdaInstance>): void {
    const volumeId = str(raw.os_volume_id);
    const tag = parseInstanceTag(raw.description);
    const hostname = str(raw.hostname);
    if (!volumeId && !(tag && hostname)) return;
    this.watch(providerId, {
      ...(volumeId ? { volumeId } : {}),
      ...(tag && hostname ? { volumeName: osVolumeName(hostname) } : {}),
      ...(tag ? { workerId: tag.workerId, ownerLabel: tag.ownerLabel } : {}),
    });
  }

  /**
   * Volumes made for this instance that still exist: the remembered id; the remembered name (unless attached
   * to another instance); or a volume still naming the instance as its own.
   */
  private leftoversOf(providerId: string, volumes: readonly VolumeView[]): VolumeView[] {
    const w = this.watched.get(providerId);
    return volumes.filter(
      (v) =>
        (w?.volumeId !== undefined && v.id === w.volumeId) ||
        (w?.volumeName !== undefined &&
          v.name === w.volumeName &&
          v.instanceIds.every((id) => id === providerId)) ||
        v.instanceIds.includes(providerId),
    );
  }

  /**
   * Not terminated while a volume remains: "terminating" once this process asked for the delete; otherwise
   * "unknown" while a volume still calls itself attached to the instance (the instance may only be unreadable),
   * and "failed" when the instance vanished by itself and left its volume behind.
   */
  private leftoverInfo(providerId: string, left: readonly VolumeView[]): InstanceInfo {
    const w = this.watched.get(providerId);
    const what = left.map(
      (v) => `os volume ${v.id} still present (${v.inTrash ? "in trash" : (v.status ?? "?")})`,
    );
    const attached = left.some((v) => !v.inTrash && v.instanceIds.includes(providerId));
    const status: InstanceStatus =
      w?.deleteRequested || providerId.startsWith(VOLUME_ID_PREFIX)
        ? "terminating"
        : attached
          ? "unknown"
          : "failed";
    return {
      providerId,
      ...(w?.workerId && w.ownerLabel ? { workerId: w.workerId, ownerLabel: w.ownerLabel } : {}),
      status,
      detail: what.join("; "),
    };
  }

  /** `GET /volumes` and `GET /volumes/trash`, without the trash entries flagged as permanently deleted. */
  private async listVolumes(operation: string, retry = true): Promise<VolumeView[]> {
    const [active, trash] = await Promise.all([
      this.http.json({ operation, method: "GET", path: "/volumes", retry }),
      this.http.json({ operation, method: "GET", path: "/volumes/trash", retry }),
    ]);
    if (!Array.isArray(active)) throw this.http.unexpected(operation, "volumes are not a list", active);
    if (!Array.isArray(trash)) throw this.http.unexpected(operation, "trashed volumes are not a list", trash);
    const out: VolumeView[] = [];
    // py `_volumes.py` `Volume`, go `volumes_types.go` `Volume` / `VolumeInTrash`.
    for (const item of active) {
      if (!isRecord(item)) continue;
      const view = volumeView(item as Partial<VerdaVolume>, false);
      if (view && view.status !== "deleted") out.push(view);
    }
    for (const item of trash) {
      if (!isRecord(item)) continue;
      const raw = item as Partial<VerdaVolumeInTrash>;
      if (raw.is_permanently_deleted === true) continue;
      const view = volumeView(raw, true);
      if (view) out.push(view);
    }
    return out;
  }

  /** Delete volumes for good (from the trash too). Gone already is fine; a refusal is reported after the rest. */
  private async purge(volumes: readonly VolumeView[]): Promise<void> {
    let first: unknown;
    // py `_volumes.py` `delete_by_id`: `{is_permanent: true}` removes it for good, from the trash too (UNVERIFIED).
    const body: DeleteVolumeRequest = { is_permanent: true };
    for (const v of volumes) {
      try {
        await this.http.send({
          operation: "terminate",
          method: "DELETE",
          path: `/volumes/${encodeURIComponent(v.id)}`,
          json: body,
          expect: "none",
        });
      } catch (err) {
        if (err instanceof ProviderError && err.code === "not_found") continue;
        // A volume already being deleted may refuse another delete; describe keeps watching it.
        if (err instanceof ProviderError && err.code === "forbidden_action" && v.status === "deleting")
          continue;
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }

  /** `GET /instances/{id}` (py `_instances.py` `get_by_id`, go `instances.go` `GetByID`); undefined on 404. */
  private async getRaw(providerId: string, operation: string): Promise<Partial<VerdaInstance> | undefined> {
    let res: Awaited<ReturnType<ProviderHttp["send"]>>;
    try {
      res = await this.http.send({
        operation,
        method: "GET",
        path: `/instances/${encodeURIComponent(providerId)}`,
        okStatuses: [404],
      });
    } catch (err) {
      if (err instanceof ProviderError && err.code === "not_found") return undefined;
      throw err;
    }
    if (res.status === 404) return undefined;
    if (!isRecord(res.json)) throw this.http.unexpected(operation, "instance is not an object", res.json);
    return res.json as Partial<VerdaInstance>;
  }

  /** `POST /scripts {name, script}` → the id as plain text (py `_startup_scripts.py`, go `startup_scripts.go`). */
  private async createScript(name: string, script: string, secrets: readonly string[]): Promise<string> {
    const body: CreateScriptRequest = { name, script };
    const res = await this.http.send({
      operation: "provision",
      method: "POST",
      path: "/scripts",
      json: body,
      expect: "text",
      secrets,
      retry: false,
    });
    const id = idFrom(res.text, res.json);
    if (!id) throw this.http.unexpected("provision", "no script id", res.json ?? res.text);
    return id;
  }

  /** `DELETE /scripts {scripts: [id]}` (py `_startup_scripts.py` `delete`, go `DeleteMultipleStartupScripts`). */
  private async deleteScript(id: string): Promise<void> {
    const body: DeleteScriptsRequest = { scripts: [id] };
    // Best effort: a leftover script costs nothing; the worker token in it dies with the worker.
    await this.http
      .send({
        operation: "terminate",
        method: "DELETE",
        path: "/scripts",
        json: body,
        expect: "none",
        retry: false,
      })
      .catch(() => undefined);
  }

  /** `POST /instances` → the id as plain text (py `_instances.py`), or JSON (go `instances.go`). */
  private async createInstance(body: CreateInstanceRequest, secrets: readonly string[]): Promise<string> {
    const res = await this.http.send({
      operation: "provision",
      method: "POST",
      path: "/instances",
      json: body,
      expect: "text",
      secrets,
      retry: false,
    });
    const id = idFrom(res.text, res.json);
    if (!id) throw this.http.unexpected("provision", "no instance id", res.json ?? res.text);
    return id;
  }

  private async findWorker(tag: string, port: number): Promise<InstanceInfo | undefined> {
    const parsed = parseInstanceTag(tag);
    const hit = (await this.listRaw("provision", false)).find(
      ({ info: i }) =>
        i.ownerLabel === parsed?.ownerLabel &&
        i.workerId === parsed?.workerId &&
        !FINAL_STATUSES.includes(i.status),
    );
    if (!hit) return undefined;
    const found = hit.info;
    this.learn(found.providerId, hit.raw);
    if (!this.ports.has(found.providerId)) this.ports.set(found.providerId, port);
    return found;
  }

  /** `GET /instances` (py `_instances.py` `get`, go `instances.go` `Get`): the instances not deleted. */
  private async listRaw(
    operation: string,
    retry = true,
  ): Promise<{ info: InstanceInfo; raw: Partial<VerdaInstance> }[]> {
    const body = await this.http.json({ operation, method: "GET", path: "/instances", retry });
    if (!Array.isArray(body)) throw this.http.unexpected(operation, "instances are not a list", body);
    return body.flatMap((item) => {
      if (!isRecord(item)) return [];
      const raw = item as Partial<VerdaInstance>;
      const info = this.toInfo(raw);
      return info ? [{ info, raw }] : [];
    });
  }

  /**
   * An instance as the controller sees it. Its `price_per_hour` is per GPU (verda-cli `cmd/util/pricing.go`
   * `InstanceTotalHourlyCost`; the CLI contradicts itself elsewhere, see core/contracts/verda.ts `Instance`): the
   * whole instance costs that × `gpu.number_of_gpus` (the type id's leading count when absent).
   */
  private toInfo(raw: Partial<VerdaInstance>): InstanceInfo | undefined {
    const id = str(raw.id);
    if (id === undefined) return undefined;
    const tag = parseInstanceTag(raw.description);
    const word = str(raw.status)?.toLowerCase();
    const status: InstanceStatus = (word !== undefined ? statusOf(word) : undefined) ?? "unknown";
    const ip = str(raw.ip)?.trim();
    const port = this.ports.get(id) ?? this.defaultPort;
    const perGpu = num(raw.price_per_hour);
    const gpus = num(raw.gpu?.number_of_gpus) ?? leadingCount(str(raw.instance_type) ?? "");
    const usdPerHour =
      perGpu !== undefined && gpus !== undefined && gpus > 0
        ? Math.round(perGpu * gpus * 1e6) / 1e6
        : undefined;
    const created = str(raw.created_at);
    const createdAtMs = created !== undefined ? Date.parse(created) : Number.NaN;
    return {
      providerId: id,
      ...(tag ? { workerId: tag.workerId, ownerLabel: tag.ownerLabel } : {}),
      status,
      ...(status === "running" && ip ? { baseUrl: `http://${ip}:${port}` } : {}),
      ...(usdPerHour !== undefined ? { usdPerHour } : {}),
      ...(Number.isFinite(createdAtMs) ? { createdAtMs } : {}),
      detail: `status=${word ?? "none"}`,
    };
  }
}

/** The instance is no more (its volumes may be): `notfound` or `discontinued` (a 404 is handled apart). */
function isGone(status: string | undefined): boolean {
  return status === "notfound" || status === "discontinued";
}

/** The fields of a volume (active or trashed) the adapter reads. */
type VolumeFields = Partial<
  Pick<
    VerdaVolume & VerdaVolumeInTrash,
    "id" | "name" | "status" | "is_os_volume" | "instance_id" | "instances"
  >
>;

function volumeView(raw: VolumeFields, inTrash: boolean): VolumeView | undefined {
  const id = str(raw.id);
  if (!id) return undefined;
  const status = str(raw.status)?.toLowerCase();
  const instanceIds = new Set<string>();
  const single = str(raw.instance_id);
  if (single) instanceIds.add(single);
  if (Array.isArray(raw.instances))
    for (const i of raw.instances) {
      const iid = isRecord(i) ? str(i.id) : undefined;
      if (iid) instanceIds.add(iid);
    }
  const name = str(raw.name);
  return {
    id,
    ...(name !== undefined ? { name } : {}),
    ...(status !== undefined ? { status } : {}),
    ...(typeof raw.is_os_volume === "boolean" ? { isOsVolume: raw.is_os_volume } : {}),
    instanceIds: [...instanceIds],
    inTrash,
  };
}

/** The name the adapter gives an instance's OS volume (≤ 63 characters, always ending in `-os`). */
export function osVolumeName(hostname: string): string {
  return `${hostname.slice(0, 60).replace(/-+$/, "")}-os`;
}

/**
 * The GPU model in an instance type id, upper-cased: "1A100.22V" → "A100", "1A100.40S.22V" → "A100",
 * "1H100.80S.22V" → "H100", "8B300.240V" → "B300" (ids from the SDKs' tests: count, model, variant, vCPUs).
 * The model alone does not tell a 40 GB card from an 80 GB one: `offers` also checks the memory.
 */
function gpuFamily(instanceType: string): string {
  return (instanceType.replace(/^\d+/, "").split(".")[0] ?? instanceType).toUpperCase();
}

function statusOf(word: string): InstanceStatus | undefined {
  return Object.hasOwn(STATUS, word) ? STATUS[word as keyof typeof STATUS] : undefined;
}

function gb(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

function leadingCount(instanceType: string): number | undefined {
  const m = instanceType.match(/^(\d+)/);
  return m?.[1] ? Number(m[1]) : undefined;
}

/** A plain-text id, a JSON string, or `{id}`. */
function idFrom(text: string, json: unknown): string | undefined {
  if (typeof json === "string") return json.trim() || undefined;
  if (isRecord(json)) return str(json.id);
  if (json !== undefined) return undefined;
  const t = text.trim();
  return /^[A-Za-z0-9-]{1,100}$/.test(t) ? t : undefined;
}

/**
 * DNS-safe hostname from owner label and worker id (the tag itself lives in `description`), within the rule of
 * Verda's frontend (core/contracts/verda.ts `HOSTNAME`: letters, digits, hyphens, at least one letter).
 */
export function hostnameOf(ownerLabel: string, workerId: string): string {
  let h = `${ownerLabel}-${workerId}`
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/-+/g, "-")
    .replace(/^-+|-+$/g, "");
  if (!/[a-z]/.test(h)) h = h ? `w-${h}` : "";
  return h.slice(0, 63).replace(/-+$/, "") || "aiorch-worker";
}

/** The startup script: run the engine container on the VM's GPUs, published on spec.port. */
export function startupScript(spec: WorkerSpec, tag: string): string {
  const launch = engineLaunch(spec);
  const env = { ...spec.env, ...launch.env };
  const envFlags = Object.entries(env).flatMap(([k, v]) => ["-e", `${k}=${v}`]);
  const run = [
    "docker",
    "run",
    "-d",
    "--restart",
    "unless-stopped",
    "--name",
    "aiorch-engine",
    "--gpus",
    "all",
    "--ipc=host",
    "-p",
    `${spec.port}:${spec.port}`,
    ...envFlags,
    ...(launch.entrypoint ? ["--entrypoint", launch.entrypoint] : []),
    spec.image,
    ...launch.args,
  ];
  return [
    "#!/bin/bash",
    `# ai-orchestrator worker ${shellQuote(tag)}`,
    "set -eu",
    "docker rm -f aiorch-engine >/dev/null 2>&1 || true",
    shellJoin(run),
    "",
  ].join("\n");
}
