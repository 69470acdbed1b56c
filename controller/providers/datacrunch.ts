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

  async offers(model: { gpu: readonly GpuId[]; gpuCount: number }): Promise<Offer[]> {
    const wanted = new Map<string, GpuId>();
    for (const gpu of model.gpu) {
      const type = PROVIDERS.datacrunch.gpus[gpu]?.providerGpuId;
      if (type) wanted.set(gpuKey(type), gpu);
    }
    if (wanted.size === 0) return [];
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
    return offers.sort((a, b) => a.usdPerHour - b.usdPerHour);
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
              os_volume: { name: `${hostname}-os`.slice(0, 63), size: this.osVolumeGb },
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
    const raw = await this.getRaw(providerId, "describe");
    if (raw === undefined) return undefined;
    const info = this.toInfo(raw);
    if (!info) throw this.http.unexpected("describe", "instance without id", raw);
    return info.detail === "status=notfound" ? undefined : info;
  }

  async listOwned(ownerLabel: string): Promise<InstanceInfo[]> {
    return (await this.list("list")).filter((i) => i.ownerLabel === ownerLabel && i.status !== "terminated");
  }

  async terminate(providerId: string): Promise<void> {
    const raw = await this.getRaw(providerId, "terminate");
    if (raw === undefined) return;
    const status = str(raw.status);
    if (status === "deleting" || status === "discontinued" || status === "notfound") return;
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
      const now = still === undefined ? undefined : str(still.status);
      if (still !== undefined && now !== "deleting" && now !== "discontinued" && now !== "notfound")
        throw err;
    }
    this.ports.delete(providerId);
    const scriptId = str(raw.startup_script_id);
    if (scriptId) await this.deleteScript(scriptId);
  }

  // ── internals ─────────────────────────────────────────────────────────────────────────────────────────

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
    const body = await this.http.json({ operation, method: "GET", path: "/instances", retry });
    if (!Array.isArray(body)) throw this.http.unexpected(operation, "instances are not a list", body);
    return body.flatMap((raw) => {
      const info = isRecord(raw) ? this.toInfo(raw) : undefined;
      return info ? [info] : [];
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
