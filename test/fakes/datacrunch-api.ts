/**
 * Contract fake of the Verda (formerly DataCrunch) public API (https://api.verda.com/v1) as a real HTTP server on
 * 127.0.0.1, rebuilt from what Verda publishes (`core/contracts/verda.ts`, which names the SDK file behind each
 * shape), not from our adapter. Every JSON reply is checked against the published schema of its route
 * (`responseSchema`; a mismatch becomes a 500 `fake_contract_violation`), and every request body and query is
 * validated with the published request schemas: a field the schema lacks is refused with 400 `invalid_request`
 * — stricter than known, since neither SDK says what Verda does with an unknown field.
 *
 * - `POST /v1/oauth2/token`, a JSON body (client_credentials, refresh_token) with a short `expires_in`; an expired
 *   or unknown access token gets 401 `unauthorized_request`; refresh can be made to fail (→ re-authenticate);
 * - `GET /v1/instance-types?currency=` from seeds: `price_per_hour` is the whole instance's price (a numeric
 *   string, as in sdk-python's tests), `gpu_memory.size_in_gigabytes` the total over its GPUs;
 *   `GET /v1/instance-availability?location_code=` (on-demand; the spot flag, `isSpot` or `is_spot`, is
 *   accepted and the fake has no spot capacity);
 * - `POST /v1/scripts` and `POST /v1/instances` answer a plain-text id (201 and 200, as sdk-python's tests);
 *   status walk ordered → provisioning → running (`ip` null until then), with no_capacity / stuck / error
 *   injectable; an instance's own `price_per_hour` is per GPU (verda-cli `cmd/util/pricing.go`);
 * - `PUT /v1/instances {id, action}` → 202 with one `{action, instanceId, status}` per instance (verdacloud-sdk-go
 *   `instances.go`), or a bare 202 (sdk-python's tests) with `actionReply = "empty"`; several ids where some fail
 *   → 207 with per-instance errors; a single id that is already deleting or gone → 403 `forbidden_action`
 *   (dstackai/dstack #3031); `insufficient_funds` when the account is empty. Only delete, discontinue, shutdown
 *   and start are modelled; any other published action is refused (a limit of the fake);
 * - volumes (sdk-python `verda/volumes/_volumes.py`, verdacloud-sdk-go `volumes_types.go`): every instance gets an
 *   OS volume from its `os_volume {name, size}` (`os_volume_id` on the instance), attached while the instance
 *   exists. An instance delete follows go's `InstanceActionRequest` comment: `volume_ids` omitted → the OS volume is
 *   deleted (into the trash: UNVERIFIED), `[]` → none, listed ids → those (for good with `delete_permanently`,
 *   else into the trash); volumes not listed stay, detached. `GET /v1/volumes` lists volumes not deleted,
 *   `GET /v1/volumes/trash` the trashed ones (`status: "deleted"`, `deleted_at`, `is_permanently_deleted`),
 *   `DELETE /v1/volumes/{id} {is_permanent}` trashes or purges (also from the trash; 202); deleting a volume
 *   still attached to an instance answers 403 `forbidden_action` (assumed: the SDKs say the instance must be off);
 * - volume faults: an instance delete that forgets its OS volume (kept, detached) or trashes it although
 *   `delete_permanently` was asked (`volumeDeleteFaults`), a permanent volume delete answered but not done
 *   (`ignoredVolumeDeletes`);
 * - per-second cost at the instance type's price while provisioning or running.
 * Errors are `{code, message}` (sdk-python `http_client/_http_client.py`).
 */
import { z } from "zod";
import {
  CreateInstanceRequest,
  CreateScriptRequest,
  DeleteScriptsRequest,
  DeleteVolumeRequest,
  type Instance,
  InstanceActionRequest,
  type InstanceActionResult,
  InstanceActionResultList,
  InstanceAvailabilityQuery,
  InstanceList,
  Instance as InstanceSchema,
  type InstanceStatus,
  InstancesQuery,
  type InstanceType,
  InstanceTypeList,
  InstanceTypesQuery,
  LocationAvailabilityList,
  StartupScriptList,
  TokenRequest,
  TokenResponse,
  VerdaError,
  type Volume,
  type VolumeInTrash,
  VolumeInTrashList,
  VolumeList,
  Volume as VolumeSchema,
  VolumesQuery,
} from "../../core/contracts/verda";
import {
  FakeApiServer,
  perSecondUsd,
  type RecordedRequest,
  type Reply,
  schemaViolations,
  Timeline,
} from "./fake-api-server";

/** An instance type the fake offers. */
export interface VerdaTypeSeed {
  /** Verda's id, e.g. `1A100.22V` (count, GPU model, variant, vCPUs). */
  instance_type: string;
  /** USD per hour for the whole instance, as `GET /instance-types` quotes it. */
  price_per_hour: number;
  gpus: number;
  /** Memory per GPU in GB (the API publishes the total, `gpus` × this). @default 80 */
  gpuMemoryGb?: number;
  /** The card's name in `gpu.description`, e.g. "A100 SXM4 40GB". @default the model and memory */
  gpuName?: string;
}

export type VerdaFate = "normal" | "no_capacity" | "stuck_provisioning" | "error";
/** Published statuses the fake walks through, plus "gone" (the instance no longer exists: 404). */
type VerdaStatus =
  | Extract<
      InstanceStatus,
      "ordered" | "provisioning" | "running" | "offline" | "no_capacity" | "error" | "deleting"
    >
  | "gone";

/** What an instance delete does to the OS volume against what was asked: "keep" forgets it (it stays, detached),
 *  "trash" moves it to the trash although `delete_permanently` was asked. */
export type VerdaVolumeFault = "keep" | "trash";

export interface VerdaVolume {
  id: string;
  name: string;
  size: number;
  type: string;
  location: string;
  isOsVolume: boolean;
  createdAt: number;
  /** The instance the volume is attached to (an OS volume: its instance, until that is gone). */
  instanceId?: string;
  /** What happens to it once its instance is gone (set by the instance delete). */
  onInstanceGone?: "purge" | "trash" | "keep";
  trashedAt?: number;
  purgedAt?: number;
  /** Purged from the trash: the trash list still shows it with `is_permanently_deleted` (see listPurged). */
  purgedFromTrash?: boolean;
}

export type VerdaVolumeState = "active" | "trash" | "gone";

type CreateBody = z.output<typeof CreateInstanceRequest>;

interface VerdaInstance {
  id: string;
  /** The create request as the API took it. */
  body: CreateBody;
  type: VerdaTypeSeed;
  location: string;
  createdAt: number;
  timeline: Timeline<VerdaStatus>;
  ip: string;
  osVolumeId: string;
  /** What the delete request asked for (volumes, permanence). */
  deleteRequest?: z.output<typeof InstanceActionRequest>;
}

export interface VerdaFakeOptions {
  clientId: string;
  clientSecret: string;
  types?: VerdaTypeSeed[];
  /** location code → instance types available there (on demand). */
  availability?: Record<string, string[]>;
  now?: () => number;
  /** Access token lifetime in seconds. @default 3600 */
  tokenTtlSeconds?: number;
  walk?: { orderedMs?: number; provisioningMs?: number; deletingMs?: number };
}

/** Real-looking instance types (ids as in the SDKs' tests and Verda's naming; prices illustrative). */
export const VERDA_SEED_TYPES: readonly VerdaTypeSeed[] = [
  {
    instance_type: "1A100.40S.22V",
    price_per_hour: 0.99,
    gpus: 1,
    gpuMemoryGb: 40,
    gpuName: "A100 SXM4 40GB",
  },
  { instance_type: "1A100.22V", price_per_hour: 1.29, gpus: 1, gpuMemoryGb: 80, gpuName: "A100 SXM4 80GB" },
  { instance_type: "2A100.44V", price_per_hour: 2.58, gpus: 2, gpuMemoryGb: 80, gpuName: "A100 SXM4 80GB" },
  { instance_type: "4A100.88V", price_per_hour: 5.16, gpus: 4, gpuMemoryGb: 80, gpuName: "A100 SXM4 80GB" },
  {
    instance_type: "1H100.80S.22V",
    price_per_hour: 2.19,
    gpus: 1,
    gpuMemoryGb: 80,
    gpuName: "H100 SXM5 80GB",
  },
  { instance_type: "1L40S.20V", price_per_hour: 0.91, gpus: 1, gpuMemoryGb: 48, gpuName: "L40S 48GB" },
  { instance_type: "1A6000.10V", price_per_hour: 0.49, gpus: 1, gpuMemoryGb: 48, gpuName: "RTX A6000 48GB" },
];

export class VerdaFake extends FakeApiServer {
  readonly types = new Map<string, VerdaTypeSeed>();
  readonly availability: Record<string, string[]>;
  readonly instances = new Map<string, VerdaInstance>();
  readonly scripts = new Map<string, { name: string; script: string; createdAt: number }>();
  readonly volumes = new Map<string, VerdaVolume>();
  readonly fates: VerdaFate[] = [];
  /** Consumed one per instance delete: what the delete does to the OS volume instead of what was asked. */
  readonly volumeDeleteFaults: VerdaVolumeFault[] = [];
  /** This many permanent `DELETE /volumes/{id}` are answered 202 but not done. */
  ignoredVolumeDeletes = 0;
  /** When true, the trash list keeps volumes purged from it, flagged `is_permanently_deleted: true`. */
  listPurged = false;
  /** How `PUT /instances` answers a success: go's result list, or py's bare 202. */
  actionReply: "results" | "empty" = "results";
  /** Token requests by grant type. */
  readonly grants: string[] = [];
  /** When true, refresh_token grants are refused with 400 (clients must re-authenticate). */
  refuseRefresh = false;
  /** When true, creates answer 402 `insufficient_funds`. */
  outOfFunds = false;
  tokenTtlSeconds: number;
  private readonly clientId: string;
  private readonly clientSecret: string;
  private readonly tokens = new Map<string, number>(); // access token → expiry
  private readonly refreshTokens = new Set<string>();
  private seq = 0;
  /** Status walk delays; tests may change them between creates. */
  readonly walk: { orderedMs: number; provisioningMs: number; deletingMs: number };

  constructor(options: VerdaFakeOptions) {
    super(options.now);
    this.clientId = options.clientId;
    this.clientSecret = options.clientSecret;
    for (const t of options.types ?? VERDA_SEED_TYPES) this.types.set(t.instance_type, t);
    this.availability = options.availability ?? {};
    this.tokenTtlSeconds = options.tokenTtlSeconds ?? 3600;
    this.walk = {
      orderedMs: options.walk?.orderedMs ?? 3_000,
      provisioningMs: options.walk?.provisioningMs ?? 30_000,
      deletingMs: options.walk?.deletingMs ?? 10_000,
    };
  }

  get apiBase(): string {
    return `${this.url}/v1`;
  }

  /** Instances that exist (not yet gone). */
  live(): VerdaInstance[] {
    return [...this.instances.values()].filter((i) => i.timeline.statusAt(this.now()) !== "gone");
  }

  /** Where a volume is now: active (attached or detached), in the trash, or gone for good. */
  volumeState(id: string): VerdaVolumeState {
    const v = this.volumes.get(id);
    if (!v) return "gone";
    this.settle(v);
    return v.purgedAt !== undefined ? "gone" : v.trashedAt !== undefined ? "trash" : "active";
  }

  /** Volumes that still exist, active or in the trash (what a leak looks like). */
  leftoverVolumes(): VerdaVolume[] {
    return [...this.volumes.values()].filter((v) => this.volumeState(v.id) !== "gone");
  }

  /** What the instance cost so far: per second at its type's (whole-instance) price while provisioning or running. */
  costOf(id: string): { billedSeconds: number; usd: number } {
    const inst = this.instances.get(id);
    if (!inst) throw new Error(`no instance ${id}`);
    const ms = inst.timeline.msIn(["provisioning", "running"], this.now());
    return { billedSeconds: Math.ceil(ms / 1000), usd: perSecondUsd(ms, inst.type.price_per_hour) };
  }

  /** The instance as `GET /instances/{id}` answers it, or undefined once it is gone. */
  instanceJson(id: string): Instance | undefined {
    const inst = this.instances.get(id);
    return inst && this.statusOf(inst) !== "gone" ? this.view(inst) : undefined;
  }

  /** Revoke every access token (as if the server restarted its token store). */
  revokeTokens(): void {
    this.tokens.clear();
  }

  /** The published shape of each reply (core/contracts/verda.ts); a JSON reply on no known route fails. */
  protected override responseSchema(req: RecordedRequest, reply: Reply): z.ZodType | undefined {
    const p = req.path;
    if (!p.startsWith("/v1/")) return undefined; // not Verda's API (a subclass's control routes)
    if (reply.json === undefined) return undefined; // plain-text ids, empty bodies
    if (reply.status >= 400) return VerdaError;
    const m = req.method;
    if (m === "POST" && p === "/v1/oauth2/token") return TokenResponse;
    if (m === "GET" && p === "/v1/instance-types") return InstanceTypeList;
    if (m === "GET" && p === "/v1/instance-availability") return LocationAvailabilityList;
    if (m === "GET" && p === "/v1/scripts") return StartupScriptList;
    if (m === "GET" && p === "/v1/instances") return InstanceList;
    if (m === "GET" && /^\/v1\/instances\/[^/]+$/.test(p)) return InstanceSchema;
    if (m === "PUT" && p === "/v1/instances") return InstanceActionResultList;
    if (m === "GET" && p === "/v1/volumes") return VolumeList;
    if (m === "GET" && p === "/v1/volumes/trash") return VolumeInTrashList;
    if (m === "GET" && /^\/v1\/volumes\/[^/]+$/.test(p)) return VolumeSchema;
    return NO_PUBLISHED_SHAPE;
  }

  protected handle(req: RecordedRequest): Reply | Promise<Reply> {
    const p = req.path;
    if (req.method === "POST" && p === "/v1/oauth2/token") return this.token(req.body);
    const bearer = req.headers.authorization?.match(/^Bearer (.+)$/)?.[1];
    const expiry = bearer ? this.tokens.get(bearer) : undefined;
    if (expiry === undefined || expiry <= this.now())
      return err(401, "unauthorized_request", "Invalid or expired access token");

    if (req.method === "GET" && p === "/v1/instance-types") return this.instanceTypes(req.query);
    if (req.method === "GET" && p === "/v1/instance-availability") return this.availabilityList(req.query);
    if (req.method === "POST" && p === "/v1/scripts") return this.createScript(req.body);
    if (req.method === "GET" && p === "/v1/scripts")
      return {
        status: 200,
        json: [...this.scripts].map(([id, s]) => ({
          id,
          name: s.name,
          script: s.script,
          created_at: new Date(s.createdAt).toISOString(),
        })),
      };
    if (req.method === "DELETE" && p === "/v1/scripts") {
      const body = DeleteScriptsRequest.safeParse(req.body);
      if (!body.success) return invalid(DeleteScriptsRequest, req.body);
      for (const id of body.data.scripts) this.scripts.delete(id);
      return { status: 200, text: "" };
    }
    if (req.method === "POST" && p === "/v1/instances") return this.createInstance(req.body);
    if (req.method === "GET" && p === "/v1/instances") {
      const query = InstancesQuery.safeParse(req.query);
      if (!query.success) return invalid(InstancesQuery, req.query);
      const status = query.data.status;
      const list = this.live().filter((i) => !status || this.statusOf(i) === status);
      return { status: 200, json: list.map((i) => this.view(i)) };
    }
    if (req.method === "PUT" && p === "/v1/instances") return this.action(req.body);
    if (req.method === "GET" && p === "/v1/volumes") {
      const query = VolumesQuery.safeParse(req.query);
      if (!query.success) return invalid(VolumesQuery, req.query);
      const status = query.data.status;
      const list = this.volumesIn("active").map((v) => this.volumeView(v));
      return { status: 200, json: status ? list.filter((v) => v.status === status) : list };
    }
    if (req.method === "GET" && p === "/v1/volumes/trash") {
      const trash = [...this.volumes.values()].filter(
        (v) => this.volumeState(v.id) === "trash" || (this.listPurged && v.purgedFromTrash),
      );
      return { status: 200, json: trash.map((v) => this.trashView(v)) };
    }
    const vm = p.match(/^\/v1\/volumes\/([^/]+)$/);
    if (vm) {
      const id = decodeURIComponent(vm[1] ?? "");
      if (req.method === "GET") {
        const v = this.volumes.get(id);
        if (!v || this.volumeState(id) !== "active") return err(404, "not_found", "Volume not found");
        return { status: 200, json: this.volumeView(v) };
      }
      if (req.method === "DELETE") return this.deleteVolume(id, req);
    }
    const m = p.match(/^\/v1\/instances\/([^/]+)$/);
    if (req.method === "GET" && m) {
      const inst = this.instances.get(decodeURIComponent(m[1] ?? ""));
      if (!inst || this.statusOf(inst) === "gone") return err(404, "not_found", "Instance not found");
      return { status: 200, json: this.view(inst) };
    }
    return err(404, "not_found", `no route ${req.method} ${p}`);
  }

  private token(raw: unknown): Reply {
    const parsed = TokenRequest.safeParse(raw);
    if (!parsed.success) return invalid(TokenRequest, raw);
    const body = parsed.data;
    this.grants.push(body.grant_type);
    if (body.grant_type === "client_credentials") {
      if (body.client_id !== this.clientId || body.client_secret !== this.clientSecret)
        return err(401, "unauthorized_request", "Invalid client credentials");
      return this.issue();
    }
    if (this.refuseRefresh || !this.refreshTokens.has(body.refresh_token))
      return err(400, "invalid_request", "Invalid refresh token");
    this.refreshTokens.delete(body.refresh_token);
    return this.issue();
  }

  private issue(): Reply {
    const n = ++this.seq;
    const access = `at-${n}-${Math.random().toString(36).slice(2)}`;
    const refresh = `rt-${n}-${Math.random().toString(36).slice(2)}`;
    this.tokens.set(access, this.now() + this.tokenTtlSeconds * 1000);
    this.refreshTokens.add(refresh);
    const json: z.infer<typeof TokenResponse> = {
      access_token: access,
      refresh_token: refresh,
      scope: "cloud-api-v1",
      token_type: "Bearer",
      expires_in: this.tokenTtlSeconds,
    };
    return { status: 200, json };
  }

  private instanceTypes(rawQuery: Record<string, string>): Reply {
    const query = InstanceTypesQuery.safeParse(rawQuery);
    if (!query.success) return invalid(InstanceTypesQuery, rawQuery);
    const currency = query.data.currency ?? "usd";
    return { status: 200, json: [...this.types.values()].map((t) => typeView(t, currency)) };
  }

  private availabilityList(rawQuery: Record<string, string>): Reply {
    const query = InstanceAvailabilityQuery.safeParse(rawQuery);
    if (!query.success) return invalid(InstanceAvailabilityQuery, rawQuery);
    const spot = query.data.isSpot === "true" || query.data.is_spot === "true";
    const code = query.data.location_code;
    const locations = code ? [code] : Object.keys(this.availability);
    return {
      status: 200,
      json: locations.map((c) => ({
        location_code: c,
        availabilities: spot ? [] : [...(this.availability[c] ?? [])],
      })),
    };
  }

  private createScript(raw: unknown): Reply {
    const body = CreateScriptRequest.safeParse(raw);
    if (!body.success) return invalid(CreateScriptRequest, raw);
    const n = ++this.seq;
    const id = `5c${n.toString(16).padStart(6, "0")}-a5d2-4972-ae4e-d429115d055b`;
    this.scripts.set(id, { name: body.data.name, script: body.data.script, createdAt: this.now() });
    return { status: 201, text: id, headers: { "content-type": "text/plain" } };
  }

  private createInstance(raw: unknown): Reply {
    const parsed = CreateInstanceRequest.safeParse(raw);
    if (!parsed.success) return invalid(CreateInstanceRequest, raw);
    const body = parsed.data;
    const type = this.types.get(body.instance_type);
    if (!type) return err(400, "invalid_request", `Unknown instance type ${body.instance_type}`);
    // Both SDKs default the location to FIN-03 (py `Locations.FIN_03`, go `LocationFIN03`).
    const location = body.location_code ?? "FIN-03";
    if (!(this.availability[location] ?? []).includes(type.instance_type))
      return err(
        400,
        "invalid_request",
        `Instance type ${type.instance_type} is not available at ${location}`,
      );
    if (this.outOfFunds) return err(402, "insufficient_funds", "Not enough balance to deploy this instance");
    if (body.startup_script_id != null && !this.scripts.has(body.startup_script_id))
      return err(400, "invalid_request", "Unknown startup script");

    const n = ++this.seq;
    const id = `${n.toString(16).padStart(8, "0")}-4e2a-4c1b-9d7e-5f00aa00bb${String(n).padStart(2, "0")}`;
    const fate = this.fates.shift() ?? "normal";
    const walk: { status: VerdaStatus; afterMs: number }[] = [{ status: "ordered", afterMs: 0 }];
    if (fate === "no_capacity") walk.push({ status: "no_capacity", afterMs: this.walk.orderedMs });
    else {
      walk.push({ status: "provisioning", afterMs: this.walk.orderedMs });
      if (fate === "normal") walk.push({ status: "running", afterMs: this.walk.provisioningMs });
      if (fate === "error") walk.push({ status: "error", afterMs: this.walk.provisioningMs });
    }
    const osVolumeId = `${(0x70000000 + n).toString(16)}-0f0f-4a0a-8b0b-${String(n).padStart(12, "0")}`;
    this.volumes.set(osVolumeId, {
      id: osVolumeId,
      // The name Verda gives an OS volume created without one is not documented; this one is made up.
      name: body.os_volume?.name ?? `os-${body.hostname}`,
      size: body.os_volume?.size ?? 50,
      type: "NVMe",
      location,
      isOsVolume: true,
      createdAt: this.now(),
      instanceId: id,
    });
    this.instances.set(id, {
      id,
      body,
      type,
      location,
      createdAt: this.now(),
      timeline: new Timeline(this.now(), walk),
      ip: `192.0.2.${n % 250}`,
      osVolumeId,
    });
    return { status: 200, text: id, headers: { "content-type": "text/plain" } };
  }

  private statusOf(inst: VerdaInstance): VerdaStatus {
    return inst.timeline.statusAt(this.now()) ?? "ordered";
  }

  private action(raw: unknown): Reply {
    const parsed = InstanceActionRequest.safeParse(raw);
    if (!parsed.success) return invalid(InstanceActionRequest, raw);
    const body = parsed.data;
    const ids = typeof body.id === "string" ? [body.id] : body.id;
    if (!["delete", "discontinue", "shutdown", "start"].includes(body.action))
      return err(400, "invalid_request", `the fake does not model action ${body.action}`);
    const results: InstanceActionResult[] = [];
    for (const id of ids) {
      const inst = this.instances.get(id);
      const status = inst ? this.statusOf(inst) : "gone";
      if (!inst || status === "gone" || status === "deleting") {
        const message = `Action ${body.action} is not allowed for instance ${id} in status ${status === "gone" ? "deleted" : status}`;
        if (ids.length === 1) return err(403, "forbidden_action", message);
        results.push({
          action: body.action,
          instanceId: id,
          status: "error",
          error: message,
          statusCode: 403,
        });
        continue;
      }
      if (body.action === "delete" || body.action === "discontinue") {
        inst.deleteRequest = body;
        const fault = this.volumeDeleteFaults.shift();
        const listed = body.volume_ids;
        for (const v of this.volumes.values()) {
          if (v.instanceId !== id) continue;
          // go `InstanceActionRequest`: omitted → the OS volume is deleted, the rest detached; listed → those.
          const deleted = listed == null ? v.isOsVolume : listed.includes(v.id);
          v.onInstanceGone =
            fault ?? (!deleted ? "keep" : listed != null && body.delete_permanently ? "purge" : "trash");
        }
        inst.timeline.walkFrom(this.now(), [
          { status: "deleting", afterMs: 0 },
          { status: "gone", afterMs: this.walk.deletingMs },
        ]);
      } else if (body.action === "shutdown") inst.timeline.set("offline", this.now());
      else inst.timeline.walkFrom(this.now(), [{ status: "running", afterMs: 5_000 }]);
      results.push({ action: body.action, instanceId: id, status: "success" });
    }
    const partial = results.some((r) => r.status !== "success");
    if (!partial && this.actionReply === "empty") return { status: 202, text: "" };
    return { status: partial ? 207 : 202, json: results };
  }

  private volumesIn(state: VerdaVolumeState): VerdaVolume[] {
    return [...this.volumes.values()].filter((v) => this.volumeState(v.id) === state);
  }

  /** Apply what the instance delete decided once the instance is gone (lazily: the clock is a test's). */
  private settle(v: VerdaVolume): void {
    if (!v.instanceId) return;
    const inst = this.instances.get(v.instanceId);
    if (inst && this.statusOf(inst) !== "gone") return;
    const fate = v.onInstanceGone ?? "keep";
    v.instanceId = undefined;
    if (fate === "purge") v.purgedAt = this.now();
    else if (fate === "trash") v.trashedAt = this.now();
  }

  private deleteVolume(id: string, req: RecordedRequest): Reply {
    // py `delete_by_id` sends `{is_permanent}`; go `DeleteVolume` sends no body and `?force=true` (meaning
    // undocumented: the fake accepts it and ignores it).
    const query = req.query.force === undefined || /^(true|false)$/.test(req.query.force);
    if (!query || Object.keys(req.query).some((k) => k !== "force"))
      return err(400, "invalid_request", "unknown query parameter");
    const parsed = DeleteVolumeRequest.safeParse(req.body ?? {});
    if (!parsed.success) return invalid(DeleteVolumeRequest, req.body);
    const v = this.volumes.get(id);
    const state = this.volumeState(id);
    if (!v || state === "gone") return err(404, "not_found", "Volume not found");
    if (v.instanceId)
      return err(
        403,
        "forbidden_action",
        `Volume ${id} is attached to instance ${v.instanceId}; shut the instance down first`,
      );
    if (parsed.data.is_permanent !== true) {
      v.trashedAt ??= this.now();
      return { status: 202, text: "" };
    }
    if (this.ignoredVolumeDeletes > 0) {
      this.ignoredVolumeDeletes--;
      return { status: 202, text: "" };
    }
    v.purgedFromTrash = state === "trash";
    v.purgedAt = this.now();
    return { status: 202, text: "" };
  }

  private attachedInstance(v: VerdaVolume): VerdaInstance | undefined {
    return v.instanceId ? this.instances.get(v.instanceId) : undefined;
  }

  private volumeCommon(v: VerdaVolume) {
    const inst = this.attachedInstance(v);
    return {
      id: v.id,
      name: v.name,
      size: v.size,
      type: v.type,
      created_at: new Date(v.createdAt).toISOString(),
      instance_id: inst ? inst.id : null,
      instances: inst
        ? [
            {
              id: inst.id,
              ip: this.statusOf(inst) === "running" ? inst.ip : null,
              instance_type: inst.type.instance_type,
              status: this.statusOf(inst),
              os_volume_id: inst.osVolumeId,
              hostname: inst.body.hostname,
            },
          ]
        : [],
      location: v.location,
      contract: "PAY_AS_YOU_GO",
      is_os_volume: v.isOsVolume,
      target: inst ? "vda" : null,
      ssh_key_ids: [],
      base_hourly_cost: Math.round(((v.size * 0.2) / 730) * 1e6) / 1e6,
      monthly_price: Math.round(v.size * 0.2 * 100) / 100,
      currency: "usd",
    };
  }

  private volumeView(v: VerdaVolume): Volume {
    return { ...this.volumeCommon(v), status: this.attachedInstance(v) ? "attached" : "detached" };
  }

  private trashView(v: VerdaVolume): VolumeInTrash {
    return {
      ...this.volumeCommon(v),
      status: "deleted",
      deleted_at: new Date(v.trashedAt ?? v.purgedAt ?? this.now()).toISOString(),
      is_permanently_deleted: this.volumeState(v.id) === "gone",
    };
  }

  private view(inst: VerdaInstance): Instance {
    const status = this.statusOf(inst);
    if (status === "gone") throw new Error(`instance ${inst.id} is gone`);
    const b = inst.body;
    const t = typeView(inst.type, "usd");
    return {
      id: inst.id,
      instance_type: inst.type.instance_type,
      // Per GPU (verda-cli `cmd/util/pricing.go`): the whole instance costs this × gpu.number_of_gpus.
      price_per_hour: Math.round((inst.type.price_per_hour / inst.type.gpus) * 1e6) / 1e6,
      hostname: b.hostname,
      description: b.description,
      status,
      created_at: new Date(inst.createdAt).toISOString(),
      ssh_key_ids: b.ssh_key_ids ?? [],
      cpu: t.cpu,
      gpu: t.gpu,
      memory: t.memory,
      storage: t.storage,
      gpu_memory: t.gpu_memory,
      ip: status === "running" ? inst.ip : null,
      os_volume_id: inst.osVolumeId,
      location: inst.location,
      image: b.image,
      startup_script_id: b.startup_script_id ?? null,
      is_spot: b.is_spot === true,
      contract: b.contract ?? "PAY_AS_YOU_GO",
      pricing: b.pricing ?? "FIXED_PRICE",
    };
  }
}

/** A schema no value matches: a JSON reply on a route with no published shape is a contract violation. */
const NO_PUBLISHED_SHAPE = z.never();

/** An instance type as `GET /instance-types` lists it (py `_instance_types.py`, go `InstanceTypeInfo`). */
function typeView(t: VerdaTypeSeed, currency: "usd" | "eur"): InstanceType {
  const model = t.instance_type.replace(/^\d+/, "").split(".")[0] ?? t.instance_type;
  const perGpu = t.gpuMemoryGb ?? 80;
  const card = t.gpuName ?? `${model} ${perGpu}GB`;
  const vcpus = Number(t.instance_type.match(/\.(\d+)V$/)?.[1] ?? 8 * t.gpus);
  const ram = vcpus * 5;
  const money = (usd: number) => String(Math.round(usd * 1000) / 1000);
  return {
    id: `${[...t.instance_type]
      .reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7)
      .toString(16)
      .padStart(8, "0")}-a5d2-4972-ae4e-d429115d055b`,
    instance_type: t.instance_type,
    price_per_hour: money(t.price_per_hour),
    spot_price: money(t.price_per_hour * 0.4),
    dynamic_price: money(t.price_per_hour * 0.9),
    description: "Dedicated GPU instance",
    cpu: { description: `${vcpus} CPU`, number_of_cores: vcpus },
    gpu: { description: `${t.gpus}x ${card}`, number_of_gpus: t.gpus },
    memory: { description: `${ram}GB RAM`, size_in_gigabytes: ram },
    gpu_memory: { description: `${perGpu * t.gpus}GB VRAM`, size_in_gigabytes: perGpu * t.gpus },
    storage: { description: "Dynamic" },
    best_for: ["Large model inference"],
    model,
    name: card,
    p2p: t.gpus > 1 ? "600 GB/s" : "",
    currency,
    manufacturer: "NVIDIA",
    display_name: `NVIDIA ${card}`,
    supported_os: ["ubuntu-24.04-cuda-12.8-open-docker"],
  };
}

function err(status: number, code: z.infer<typeof VerdaError>["code"], message: string): Reply {
  return { status, json: { code, message } };
}

/** 400 `invalid_request` naming what the published request schema refuses. */
function invalid(schema: z.ZodType, value: unknown): Reply {
  return err(400, "invalid_request", schemaViolations(schema, value).join("; "));
}
