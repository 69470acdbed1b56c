/**
 * DataCrunch / Verda adapter (https://api.verda.com/v1): OAuth2 client credentials with a cached token that is
 * refreshed before expiry and re-obtained on a 401; offers from `/instance-types` filtered by
 * `/instance-availability` at the configured location; `POST /instances` (answers a plain-text id) with a
 * startup script that runs the engine container (`--entrypoint` set when the engine writes its TLS files
 * first); read, list, and `PUT /instances {action:"delete"}`.
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
 * Sources: reference/providers.md §3 "Volumes"; response fields (id, name, status, is_os_volume, instance_id,
 * instances, deleted_at, is_permanently_deleted) from verda-cloud/sdk-python `verda/volumes/_volumes.py` and
 * verdacloud-sdk-go `pkg/verda/volumes_types.go`. UNVERIFIED: that a DELETE with `is_permanent` also purges a
 * trashed volume, whether a volume left behind keeps its `instance_id`, and whether the trash list shows
 * purged volumes (handled either way).
 */
import { type GpuId, PROVIDERS } from "../../core/catalog";
import type { RuntimeConfig } from "../../core/config/runtime";
import {
  type AuthSource,
  apiBaseOf,
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

const STATUS: Readonly<Record<string, InstanceStatus>> = {
  ordered: "provisioning",
  validating: "provisioning",
  pending: "provisioning",
  new: "provisioning",
  provisioning: "provisioning",
  running: "running",
  offline: "stopped",
  hibernating: "stopped",
  hibernated: "stopped",
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

  private async grant(body: Record<string, string>): Promise<string> {
    const json = await this.http.json({
      operation: "auth",
      method: "POST",
      path: "/oauth2/token",
      json: body,
      auth: false,
      retry: false,
    });
    const access = isRecord(json) ? str(json.access_token) : undefined;
    if (!isRecord(json) || !access) throw this.http.unexpected("auth", "no access_token", json);
    const expiresIn = num(json.expires_in) ?? 3600;
    const refresh = str(json.refresh_token);
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

  async offers(model: OfferRequest): Promise<OfferSearch> {
    const wanted = new Map<string, GpuId>();
    for (const gpu of model.gpu) {
      const type = PROVIDERS.datacrunch.gpus[gpu]?.providerGpuId;
      if (type) wanted.set(gpuKey(type), gpu);
    }
    if (wanted.size === 0) return { offers: [], skipped: [] };
    const location = this.settings.location;
    const [types, availability] = await Promise.all([
      this.http.json({
        operation: "offers",
        method: "GET",
        path: "/instance-types",
        query: { currency: "usd" },
      }),
      this.http.json({
        operation: "offers",
        method: "GET",
        path: "/instance-availability",
        query: { isSpot: false, location_code: location },
      }),
    ]);
    if (!Array.isArray(types)) throw this.http.unexpected("offers", "instance types are not a list", types);
    if (!Array.isArray(availability))
      throw this.http.unexpected("offers", "availability is not a list", availability);
    const available = new Set<string>();
    for (const entry of availability) {
      if (!isRecord(entry) || str(entry.location_code) !== location || !Array.isArray(entry.availabilities))
        continue;
      for (const t of entry.availabilities) if (typeof t === "string") available.add(t);
    }

    const offers: Offer[] = [];
    for (const raw of types) {
      if (!isRecord(raw)) continue;
      const type = str(raw.instance_type);
      if (!type || !available.has(type)) continue;
      const gpu = wanted.get(gpuKey(type));
      if (!gpu) continue;
      const count = (isRecord(raw.gpu) ? num(raw.gpu.number_of_gpus) : undefined) ?? leadingCount(type);
      if (count !== model.gpuCount) continue;
      const listed = num(raw.price_per_hour);
      const configured = this.prices.find((p) => p.provider === "datacrunch" && p.gpu === gpu)?.usdPerHour;
      const usdPerHour = listed ?? (configured !== undefined ? configured * model.gpuCount : undefined);
      if (usdPerHour === undefined || usdPerHour <= 0) continue;
      offers.push({ provider: "datacrunch", gpu, usdPerHour, offerId: type, region: location });
    }
    offers.sort((a, b) => a.usdPerHour - b.usdPerHour);
    return { offers, skipped: [] };
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
        let id: string;
        try {
          id = await this.createInstance(
            {
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
            },
            secrets,
          );
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
    try {
      await this.http.send({
        operation: "terminate",
        method: "PUT",
        path: "/instances",
        json: {
          id: [providerId],
          action: "delete",
          ...(volume ? { volume_ids: [volume] } : {}),
          delete_permanently: true,
        },
        expect: "none",
      });
    } catch (err) {
      if (!(err instanceof ProviderError) || (err.code !== "forbidden_action" && err.code !== "not_found"))
        throw err;
      // Already gone or already being deleted: confirm by reading back.
      const still = await this.getRaw(providerId, "terminate");
      const now = still === undefined ? undefined : str(still.status)?.toLowerCase();
      if (still !== undefined && now !== "deleting" && !isGone(now)) throw err;
    }
    this.ports.delete(providerId);
    const scriptId = str(raw.startup_script_id);
    if (scriptId) await this.deleteScript(scriptId);
  }

  // ── internals ─────────────────────────────────────────────────────────────────────────────────────────

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
  private learn(providerId: string, raw: Record<string, unknown>): void {
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
    for (const [list, inTrash] of [
      [active, false],
      [trash, true],
    ] as const) {
      for (const raw of list) {
        if (!isRecord(raw)) continue;
        const id = str(raw.id);
        if (!id || raw.is_permanently_deleted === true) continue;
        const status = str(raw.status)?.toLowerCase();
        if (!inTrash && status === "deleted") continue;
        const instanceIds = new Set<string>();
        const single = str(raw.instance_id);
        if (single) instanceIds.add(single);
        if (Array.isArray(raw.instances))
          for (const i of raw.instances) {
            const iid = isRecord(i) ? str(i.id) : undefined;
            if (iid) instanceIds.add(iid);
          }
        const name = str(raw.name);
        out.push({
          id,
          ...(name !== undefined ? { name } : {}),
          ...(status !== undefined ? { status } : {}),
          ...(typeof raw.is_os_volume === "boolean" ? { isOsVolume: raw.is_os_volume } : {}),
          instanceIds: [...instanceIds],
          inTrash,
        });
      }
    }
    return out;
  }

  /** Delete volumes for good (from the trash too). Gone already is fine; a refusal is reported after the rest. */
  private async purge(volumes: readonly VolumeView[]): Promise<void> {
    let first: unknown;
    for (const v of volumes) {
      try {
        await this.http.send({
          operation: "terminate",
          method: "DELETE",
          path: `/volumes/${encodeURIComponent(v.id)}`,
          json: { is_permanent: true },
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

  private async getRaw(providerId: string, operation: string): Promise<Record<string, unknown> | undefined> {
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
    return res.json;
  }

  private async createScript(name: string, script: string, secrets: readonly string[]): Promise<string> {
    const res = await this.http.send({
      operation: "provision",
      method: "POST",
      path: "/scripts",
      json: { name, script },
      expect: "text",
      secrets,
      retry: false,
    });
    const id = idFrom(res.text, res.json);
    if (!id) throw this.http.unexpected("provision", "no script id", res.json ?? res.text);
    return id;
  }

  private async deleteScript(id: string): Promise<void> {
    // Best effort: a leftover script costs nothing; the worker token in it dies with the worker.
    await this.http
      .send({
        operation: "terminate",
        method: "DELETE",
        path: "/scripts",
        json: { scripts: [id] },
        expect: "none",
        retry: false,
      })
      .catch(() => undefined);
  }

  private async createInstance(body: Record<string, unknown>, secrets: readonly string[]): Promise<string> {
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

  private async listRaw(
    operation: string,
    retry = true,
  ): Promise<{ info: InstanceInfo; raw: Record<string, unknown> }[]> {
    const body = await this.http.json({ operation, method: "GET", path: "/instances", retry });
    if (!Array.isArray(body)) throw this.http.unexpected(operation, "instances are not a list", body);
    return body.flatMap((raw) => {
      const info = isRecord(raw) ? this.toInfo(raw) : undefined;
      return info ? [{ info, raw: raw as Record<string, unknown> }] : [];
    });
  }

  private toInfo(raw: Record<string, unknown>): InstanceInfo | undefined {
    const id = str(raw.id);
    if (id === undefined) return undefined;
    const tag = parseInstanceTag(raw.description);
    const word = str(raw.status)?.toLowerCase();
    const status: InstanceStatus = word === undefined ? "unknown" : (STATUS[word] ?? "unknown");
    const ip = str(raw.ip)?.trim();
    const port = this.ports.get(id) ?? this.defaultPort;
    const usdPerHour = num(raw.price_per_hour);
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

/** The name the adapter gives an instance's OS volume (≤ 63 characters, always ending in `-os`). */
export function osVolumeName(hostname: string): string {
  return `${hostname.slice(0, 60).replace(/-+$/, "")}-os`;
}

/** "1A100.22V" → "A100", "8H100.80S.176V" → "H100": the GPU model whatever the count. */
function gpuKey(instanceType: string): string {
  return instanceType.replace(/^\d+/, "").split(".")[0] ?? instanceType;
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

/** DNS-safe hostname from owner label and worker id (the tag itself lives in `description`). */
export function hostnameOf(ownerLabel: string, workerId: string): string {
  const h = `${ownerLabel}-${workerId}`
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/-+/g, "-")
    .replace(/^-+|-+$/g, "");
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
