/**
 * Contract fake of the DataCrunch / Verda public API (https://api.verda.com/v1) as a real HTTP server on
 * 127.0.0.1, from reference/providers.md §3 and its fake checklist:
 * - `POST /v1/oauth2/token` (client_credentials, refresh_token) with a short `expires_in`; an expired or
 *   unknown access token gets 401 `unauthorized_request`; refresh can be made to fail (→ re-authenticate);
 * - `GET /v1/instance-types?currency=usd` and `GET /v1/instance-availability?location_code=` from seeds;
 * - `POST /v1/scripts` and `POST /v1/instances` answer a **plain-text id**; status walk ordered → provisioning
 *   → running (`ip` null until then), with no_capacity / stuck / error injectable;
 * - `PUT /v1/instances {id, action}`: delete → deleting → gone (404); a repeat delete answers 403
 *   `forbidden_action`; `insufficient_funds` when the account is empty;
 * - volumes (§3 "Volumes"; shapes from verda-cloud/sdk-python `verda/volumes/_volumes.py` and
 *   verdacloud-sdk-go `pkg/verda/volumes.go`, `volumes_types.go`): every instance gets an OS volume from its
 *   `os_volume {name, size}` (id shown on the instance as `os_volume_id`), attached while the instance exists.
 *   An instance delete honours `volume_ids` + `delete_permanently`: listed volumes deleted permanently go
 *   when the instance goes; volumes not listed, or deleted without `delete_permanently`, land in the trash
 *   (the brief's model of Verda; UNVERIFIED). `GET /v1/volumes` lists volumes not deleted, `GET
 *   /v1/volumes/trash` the trashed ones (`status: "deleted"`, `deleted_at`, `is_permanently_deleted`),
 *   `DELETE /v1/volumes/{id} {is_permanent}` trashes or purges (also from the trash); deleting a volume still
 *   attached to an instance answers 403 `forbidden_action` (assumed: the SDKs say the instance must be off);
 * - volume faults: an instance delete that forgets its OS volume (kept, detached) or trashes it although
 *   `delete_permanently` was asked (`volumeDeleteFaults`), a permanent volume delete answered but not done
 *   (`ignoredVolumeDeletes`);
 * - per-second cost while provisioning or running.
 * Errors are `{code, message}`. Fault injection, request log and manual clock come from ./vastai-api.
 */
import { FakeApiServer, perSecondUsd, type RecordedRequest, type Reply, Timeline } from "./fake-api-server";

export interface VerdaTypeSeed {
  instance_type: string;
  price_per_hour: number;
  gpus: number;
  gpuMemoryGb?: number;
}

export type VerdaFate = "normal" | "no_capacity" | "stuck_provisioning" | "error";
type VerdaStatus =
  | "ordered"
  | "provisioning"
  | "running"
  | "offline"
  | "no_capacity"
  | "error"
  | "deleting"
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

interface VerdaInstance {
  id: string;
  body: Record<string, unknown>;
  type: VerdaTypeSeed;
  location: string;
  createdAt: number;
  timeline: Timeline<VerdaStatus>;
  ip: string;
  osVolumeId: string;
  /** What the delete request asked for (volumes, permanence). */
  deleteRequest?: Record<string, unknown>;
}

export interface VerdaFakeOptions {
  clientId: string;
  clientSecret: string;
  types?: VerdaTypeSeed[];
  /** location code → instance types available there. */
  availability?: Record<string, string[]>;
  now?: () => number;
  /** Access token lifetime in seconds. @default 3600 */
  tokenTtlSeconds?: number;
  walk?: { orderedMs?: number; provisioningMs?: number; deletingMs?: number };
}

export class VerdaFake extends FakeApiServer {
  readonly types = new Map<string, VerdaTypeSeed>();
  readonly availability: Record<string, string[]>;
  readonly instances = new Map<string, VerdaInstance>();
  readonly scripts = new Map<string, { name: string; script: string }>();
  readonly volumes = new Map<string, VerdaVolume>();
  readonly fates: VerdaFate[] = [];
  /** Consumed one per instance delete: what the delete does to the OS volume instead of what was asked. */
  readonly volumeDeleteFaults: VerdaVolumeFault[] = [];
  /** This many permanent `DELETE /volumes/{id}` are answered 202 but not done. */
  ignoredVolumeDeletes = 0;
  /** When true, the trash list keeps volumes purged from it, flagged `is_permanently_deleted: true`. */
  listPurged = false;
  /** Token requests by grant type. */
  readonly grants: string[] = [];
  /** When true, refresh_token grants are refused with 400 (clients must re-authenticate). */
  refuseRefresh = false;
  /** When true, creates answer 402-ish `insufficient_funds`. */
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
    for (const t of options.types ?? []) this.types.set(t.instance_type, t);
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

  costOf(id: string): { billedSeconds: number; usd: number } {
    const inst = this.instances.get(id);
    if (!inst) throw new Error(`no instance ${id}`);
    const ms = inst.timeline.msIn(["provisioning", "running"], this.now());
    return { billedSeconds: Math.ceil(ms / 1000), usd: perSecondUsd(ms, inst.type.price_per_hour) };
  }

  /** Revoke every access token (as if the server restarted its token store). */
  revokeTokens(): void {
    this.tokens.clear();
  }

  protected handle(req: RecordedRequest): Reply | Promise<Reply> {
    const p = req.path;
    if (req.method === "POST" && p === "/v1/oauth2/token") return this.token(req.body);
    const bearer = req.headers.authorization?.match(/^Bearer (.+)$/)?.[1];
    const expiry = bearer ? this.tokens.get(bearer) : undefined;
    if (expiry === undefined || expiry <= this.now())
      return err(401, "unauthorized_request", "Invalid or expired access token");

    if (req.method === "GET" && p === "/v1/instance-types") return this.instanceTypes();
    if (req.method === "GET" && p === "/v1/instance-availability") return this.availabilityList(req.query);
    if (req.method === "POST" && p === "/v1/scripts") return this.createScript(req.body);
    if (req.method === "GET" && p === "/v1/scripts")
      return { status: 200, json: [...this.scripts].map(([id, s]) => ({ id, name: s.name })) };
    if (req.method === "DELETE" && p === "/v1/scripts") {
      const ids = isObj(req.body) && Array.isArray(req.body.scripts) ? req.body.scripts : [];
      for (const id of ids) this.scripts.delete(String(id));
      return { status: 200, text: "" };
    }
    if (req.method === "POST" && p === "/v1/instances") return this.createInstance(req.body);
    if (req.method === "GET" && p === "/v1/instances") {
      const status = req.query.status;
      const list = this.live().filter((i) => !status || this.statusOf(i) === status);
      return { status: 200, json: list.map((i) => this.view(i)) };
    }
    if (req.method === "PUT" && p === "/v1/instances") return this.action(req.body);
    if (req.method === "GET" && p === "/v1/volumes") {
      const status = req.query.status;
      const list = this.volumesIn("active").map((v) => this.volumeView(v));
      return { status: 200, json: status ? list.filter((v) => v.status === status) : list };
    }
    if (req.method === "GET" && p === "/v1/volumes/trash") {
      const trash = [...this.volumes.values()].filter(
        (v) => this.volumeState(v.id) === "trash" || (this.listPurged && v.purgedFromTrash),
      );
      return { status: 200, json: trash.map((v) => this.volumeView(v)) };
    }
    const vm = p.match(/^\/v1\/volumes\/([^/]+)$/);
    if (vm) {
      const id = decodeURIComponent(vm[1] ?? "");
      if (req.method === "GET") {
        const v = this.volumes.get(id);
        if (!v || this.volumeState(id) !== "active") return err(404, "not_found", "Volume not found");
        return { status: 200, json: this.volumeView(v) };
      }
      if (req.method === "DELETE") return this.deleteVolume(id, req.body);
    }
    const m = p.match(/^\/v1\/instances\/([^/]+)$/);
    if (req.method === "GET" && m) {
      const inst = this.instances.get(decodeURIComponent(m[1] ?? ""));
      if (!inst || this.statusOf(inst) === "gone") return err(404, "not_found", "Instance not found");
      return { status: 200, json: this.view(inst) };
    }
    return err(404, "not_found", `no route ${req.method} ${p}`);
  }

  private token(body: unknown): Reply {
    if (!isObj(body)) return err(400, "invalid_request", "body must be JSON");
    if (body.grant_type === "client_credentials") {
      this.grants.push("client_credentials");
      if (body.client_id !== this.clientId || body.client_secret !== this.clientSecret)
        return err(401, "unauthorized_request", "Invalid client credentials");
      return this.issue();
    }
    if (body.grant_type === "refresh_token") {
      this.grants.push("refresh_token");
      const rt = typeof body.refresh_token === "string" ? body.refresh_token : "";
      if (this.refuseRefresh || !this.refreshTokens.has(rt))
        return err(400, "invalid_request", "Invalid refresh token");
      this.refreshTokens.delete(rt);
      return this.issue();
    }
    return err(400, "invalid_request", "unsupported grant_type");
  }

  private issue(): Reply {
    const n = ++this.seq;
    const access = `at-${n}-${Math.random().toString(36).slice(2)}`;
    const refresh = `rt-${n}-${Math.random().toString(36).slice(2)}`;
    this.tokens.set(access, this.now() + this.tokenTtlSeconds * 1000);
    this.refreshTokens.add(refresh);
    return {
      status: 200,
      json: {
        access_token: access,
        refresh_token: refresh,
        scope: "cloud-api-v1",
        token_type: "Bearer",
        expires_in: this.tokenTtlSeconds,
      },
    };
  }

  private instanceTypes(): Reply {
    return {
      status: 200,
      json: [...this.types.values()].map((t) => ({
        id: `type-${t.instance_type}`,
        instance_type: t.instance_type,
        price_per_hour: String(t.price_per_hour),
        spot_price: String(Math.round(t.price_per_hour * 0.4 * 1000) / 1000),
        dynamic_price: String(t.price_per_hour),
        currency: "usd",
        gpu: { description: `${t.gpus}x GPU`, number_of_gpus: t.gpus },
        gpu_memory: { description: "", size_in_gigabytes: (t.gpuMemoryGb ?? 80) * t.gpus },
      })),
    };
  }

  private availabilityList(query: Record<string, string>): Reply {
    const locations = query.location_code ? [query.location_code] : Object.keys(this.availability);
    return {
      status: 200,
      json: locations.map((code) => ({ location_code: code, availabilities: this.availability[code] ?? [] })),
    };
  }

  private createScript(body: unknown): Reply {
    if (!isObj(body) || typeof body.name !== "string" || typeof body.script !== "string")
      return err(400, "invalid_request", "name and script are required");
    const id = `scr-${++this.seq}`;
    this.scripts.set(id, { name: body.name, script: body.script });
    return { status: 201, text: id, headers: { "content-type": "text/plain" } };
  }

  private createInstance(body: unknown): Reply {
    if (!isObj(body)) return err(400, "invalid_request", "body must be JSON");
    for (const field of ["instance_type", "image", "hostname", "location_code"])
      if (typeof body[field] !== "string") return err(400, "invalid_request", `${field} is required`);
    if (typeof body.hostname === "string" && !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i.test(body.hostname))
      return err(400, "invalid_request", "hostname must be a valid host name");
    const type = this.types.get(String(body.instance_type));
    if (!type) return err(400, "invalid_request", `Unknown instance type ${String(body.instance_type)}`);
    const location = String(body.location_code);
    if (!(this.availability[location] ?? []).includes(type.instance_type))
      return err(
        400,
        "invalid_request",
        `Instance type ${type.instance_type} is not available at ${location}`,
      );
    if (this.outOfFunds) return err(402, "insufficient_funds", "Not enough balance to deploy this instance");
    if (body.startup_script_id !== undefined && !this.scripts.has(String(body.startup_script_id)))
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
    const osVolume = isObj(body.os_volume) ? body.os_volume : {};
    const osVolumeId = `${(0x70000000 + n).toString(16)}-0f0f-4a0a-8b0b-${String(n).padStart(12, "0")}`;
    this.volumes.set(osVolumeId, {
      id: osVolumeId,
      // The name Verda gives an OS volume created without one is not documented; this one is made up.
      name: typeof osVolume.name === "string" ? osVolume.name : `os-${String(body.hostname)}`,
      size: typeof osVolume.size === "number" ? osVolume.size : 50,
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
    return { status: 202, text: id, headers: { "content-type": "text/plain" } };
  }

  private statusOf(inst: VerdaInstance): VerdaStatus {
    return inst.timeline.statusAt(this.now()) ?? "ordered";
  }

  private action(body: unknown): Reply {
    if (!isObj(body) || typeof body.action !== "string")
      return err(400, "invalid_request", "action is required");
    const ids = Array.isArray(body.id) ? body.id.map(String) : typeof body.id === "string" ? [body.id] : [];
    if (ids.length === 0) return err(400, "invalid_request", "id is required");
    for (const id of ids) {
      const inst = this.instances.get(id);
      const status = inst ? this.statusOf(inst) : "gone";
      if (!inst || status === "gone" || status === "deleting")
        return err(
          403,
          "forbidden_action",
          `Action ${body.action} is not allowed for instance ${id} in status ${status === "gone" ? "deleted" : status}`,
        );
    }
    for (const id of ids) {
      const inst = this.instances.get(id) as VerdaInstance;
      if (body.action === "delete") {
        inst.deleteRequest = body;
        const listed = Array.isArray(body.volume_ids) ? body.volume_ids.map(String) : [];
        const permanent = body.delete_permanently === true;
        const fault = this.volumeDeleteFaults.shift();
        for (const v of this.volumes.values()) {
          if (v.instanceId !== id) continue;
          v.onInstanceGone = fault ?? (listed.includes(v.id) && permanent ? "purge" : "trash");
        }
        inst.timeline.walkFrom(this.now(), [
          { status: "deleting", afterMs: 0 },
          { status: "gone", afterMs: this.walk.deletingMs },
        ]);
      } else if (body.action === "shutdown") inst.timeline.set("offline", this.now());
      else if (body.action === "start")
        inst.timeline.walkFrom(this.now(), [{ status: "running", afterMs: 5_000 }]);
      else return err(400, "invalid_request", `unknown action ${body.action}`);
    }
    return { status: 202, text: "" };
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

  private deleteVolume(id: string, body: unknown): Reply {
    const v = this.volumes.get(id);
    const state = this.volumeState(id);
    if (!v || state === "gone") return err(404, "not_found", "Volume not found");
    if (v.instanceId)
      return err(
        403,
        "forbidden_action",
        `Volume ${id} is attached to instance ${v.instanceId}; shut the instance down first`,
      );
    const permanent = isObj(body) && body.is_permanent === true;
    if (!permanent) {
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

  private volumeView(v: VerdaVolume): Record<string, unknown> {
    const state = this.volumeState(v.id);
    const inst = v.instanceId ? this.instances.get(v.instanceId) : undefined;
    const inTrash = state === "trash" || (state === "gone" && v.purgedFromTrash);
    return {
      id: v.id,
      name: v.name,
      size: v.size,
      type: v.type,
      status: inTrash ? "deleted" : inst ? "attached" : "detached",
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
      currency: "usd",
      ...(inTrash
        ? {
            deleted_at: new Date(v.trashedAt ?? v.purgedAt ?? this.now()).toISOString(),
            is_permanently_deleted: state === "gone",
          }
        : {}),
    };
  }

  private view(inst: VerdaInstance): Record<string, unknown> {
    const status = this.statusOf(inst);
    const b = inst.body;
    return {
      id: inst.id,
      instance_type: inst.type.instance_type,
      image: b.image,
      hostname: b.hostname,
      description: b.description ?? "",
      status,
      ip: status === "running" ? inst.ip : null,
      price_per_hour: inst.type.price_per_hour,
      location: inst.location,
      is_spot: b.is_spot === true,
      contract: b.contract ?? "PAY_AS_YOU_GO",
      created_at: new Date(inst.createdAt).toISOString(),
      os_volume_id: inst.osVolumeId,
      startup_script_id: b.startup_script_id ?? null,
      gpu: { description: `${inst.type.gpus}x GPU`, number_of_gpus: inst.type.gpus },
    };
  }
}

function err(status: number, code: string, message: string): Reply {
  return { status, json: { code, message } };
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
