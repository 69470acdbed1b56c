/**
 * Contract fake of the Vast.ai REST API as a real HTTP server on 127.0.0.1, built from Vast.ai's published contract
 * (core/contracts/vastai.ts names the sources), not from our adapter:
 * - auth by `Authorization: Bearer KEY` (or the `?api_key=` query parameter destroy_instance.yaml documents); a bad
 *   key is 401 `{success:false, error:"auth_error", msg:"Invalid user key"}` (show_instance.yaml), except on the
 *   offer search, which search_offers.yaml documents as 404 "Invalid user key";
 * - `POST /api/v0/bundles/`: the body is checked against `SearchOffersRequest` (an unknown field is a 400
 *   `invalid_request` — stricter than known: Vast does not publish what it does with one); filters, `order` and
 *   `limit` are evaluated over seeded offers, which carry `gpu_ram` (MB per GPU; "A100 SXM4" exists as 40 and 80 GB
 *   cards) and `direct_port_count` (0: a host without direct ports); a rented offer leaves the search;
 * - `PUT /api/v0/asks/{id}/`: the body is checked against `CreateInstanceRequest` with its documented input limits
 *   (env entries ≤ 256 characters, args + onstart ≤ 4096 …) → 400 `invalid_args`; a gone offer is 404 `invalid_args`
 *   "…no_such_ask… is not available." (create_instance.yaml); else `{success:true, new_contract}`. A `-p P:P` env key
 *   maps the port only on a host with direct ports;
 * - instances walk `actual_status` null → loading → running (exited / offline / stuck loading injectable); `ports`
 *   only once running; destroyed instances stay visible for `destroyedVisibleMs` with `cur_state: "unloaded"`
 *   ("released on destroy"; what `actual_status` reads then is not published: the fake says `exited`), then
 *   `GET /api/v0/instances/{id}/` answers `{instances: null}`;
 * - `GET /api/v1/instances/`: keyset pages of at most 25 with an opaque `next_token` (`after_token`; a bad token is
 *   400 `invalid_token`); the deprecated v0 list `GET /api/v0/instances/` is not in the published spec and is 404;
 * - `DELETE /api/v0/instances/{id}/`: `{success:true, msg}`, 404 `not_found` for an unknown or destroyed instance;
 * - a plain-text 429 without Retry-After (via `rateLimitNext`);
 * - a cost ledger per instance (guides/reference/billing.mdx): GPU while running, storage every second the instance
 *   exists except while its host is offline.
 * Every reply is checked against the response schema of its route (`responseSchema`).
 */

import type { z } from "zod";
import {
  CreateInstanceError,
  CreateInstanceRequest,
  CreateInstanceResponse,
  DestroyInstanceResponse,
  ErrorResponse,
  ListInstancesError,
  ListInstancesQuery,
  ListInstancesResponse,
  ManageInstanceRequest,
  ManageInstanceResponse,
  SearchOffersRequest,
  SearchOffersResponse,
  ShowInstanceResponse,
  VAST_LIST_PAGE_MAX,
  type VastInstance as VastInstanceRow,
  type VastOffer,
} from "../../core/contracts/vastai";
import {
  FakeApiServer,
  type FaultMatch,
  perSecondUsd,
  type RecordedRequest,
  type Reply,
  Timeline,
} from "./fake-api-server";

// ── Vast.ai ───────────────────────────────────────────────────────────────────────────────────────────────

export interface VastOfferSeed {
  id: number;
  gpu_name: string;
  num_gpus: number;
  /** Whole machine, GPU part, per hour. */
  dph_base: number;
  /** Storage per hour at the requested disk size (part of dph_total). */
  storage_dph?: number;
  reliability: number;
  verified?: boolean;
  datacenter?: boolean;
  rentable?: boolean;
  /** MB per GPU as Vast reports it (24576 for a 24 GB card); default by `gpu_name` (`DEFAULT_GPU_RAM_MB`). */
  gpu_ram?: number;
  disk_space?: number;
  geolocation?: string;
  /** Direct ports the host offers; 0 = none, so no port request is ever mapped. @default 20 */
  direct_port_count?: number;
}

/** Typical `gpu_ram` (MB per GPU) by Vast GPU name, for seeds that do not say. "A100 SXM4" also exists as 40960. */
export const DEFAULT_GPU_RAM_MB: Readonly<Record<string, number>> = {
  "RTX 3090": 24_576,
  "RTX 4090": 24_564,
  L4: 23_034,
  "RTX A6000": 49_140,
  "RTX 6000Ada": 49_140,
  L40S: 46_068,
  "A100 SXM4": 81_920,
  "H100 SXM": 81_559,
};

export type VastFate = "normal" | "stuck_loading" | "exited" | "offline";
type VastStatus = "created" | "loading" | "running" | "stopped" | "exited" | "offline" | "destroyed";

interface VastInstance {
  id: number;
  askId: number;
  label?: string;
  image: string;
  env: Record<string, string>;
  args?: unknown;
  onstart?: unknown;
  runtype?: unknown;
  disk: number;
  interruptible: boolean;
  dphGpu: number;
  dphStorage: number;
  createdAt: number;
  timeline: Timeline<VastStatus>;
  publicIp: string;
  portMap: Record<string, number>;
  gpuName: string;
  numGpus: number;
  gpuRamMb: number;
  directPorts: number;
}

export interface VastFakeOptions {
  apiKey: string;
  offers?: VastOfferSeed[];
  now?: () => number;
  /** ms from create to `loading`, and from `loading` to `running`. */
  walk?: { createdMs?: number; loadingMs?: number };
  /** Where instances' engines "run": e.g. a local fake vLLM, so the controller's readiness probe is real. */
  engineAddress?: { ip: string; port: number };
  /** How long a destroyed instance is still shown (`cur_state: "unloaded"`). @default 600 000 */
  destroyedVisibleMs?: number;
}

/**
 * The value of an environment variable that `engineLaunch` may have split into numbered parts (`NAME_0`, `NAME_1`
 * …, for Vast.ai's 256-character limit per entry), joined as the start-up script joins them.
 */
export function joinedEnvValue(env: Readonly<Record<string, string>>, name: string): string | undefined {
  if (env[name] !== undefined) return env[name];
  const parts: string[] = [];
  for (let i = 0; env[`${name}_${i}`] !== undefined; i++) parts.push(env[`${name}_${i}`] as string);
  return parts.length > 0 ? parts.join("") : undefined;
}

type Route = "search" | "create" | "list" | "show" | "destroy" | "manage";

export class VastAiFake extends FakeApiServer {
  readonly apiKey: string;
  readonly offers = new Map<number, VastOfferSeed & { rented: boolean }>();
  readonly instances = new Map<number, VastInstance>();
  /** Fate of the next instances created, in order (then "normal"). */
  readonly fates: VastFate[] = [];
  private nextId = 7_000_001;
  private readonly walk: { createdMs: number; loadingMs: number };
  private readonly engineAddress: { ip: string; port: number } | undefined;
  private readonly destroyedVisibleMs: number;

  constructor(options: VastFakeOptions) {
    super(options.now);
    this.apiKey = options.apiKey;
    this.engineAddress = options.engineAddress;
    this.destroyedVisibleMs = options.destroyedVisibleMs ?? 600_000;
    for (const o of options.offers ?? []) this.offers.set(o.id, { ...o, rented: false });
    this.walk = { createdMs: options.walk?.createdMs ?? 2_000, loadingMs: options.walk?.loadingMs ?? 30_000 };
  }

  /** The adapter's apiBase for this fake (the catalog's form: the server root plus /api/v0). */
  get apiBase(): string {
    return `${this.url}/api/v0`;
  }

  /** A plain-text 429 without Retry-After, as Vast.ai sends (rate-limits-and-errors.mdx). */
  rateLimitNext(times = 1, match: FaultMatch = {}): this {
    return this.inject(
      { type: "status", status: 429, body: "API requests too frequent" },
      { times, ...match },
    );
  }

  /** Instances not yet destroyed. */
  live(): VastInstance[] {
    return [...this.instances.values()].filter((i) => i.timeline.statusAt(this.now()) !== "destroyed");
  }

  /**
   * What one instance has cost so far (guides/reference/billing.mdx): GPU while running; storage "for every single
   * second your instance exists and is online (for all states other than offline)", until destroyed.
   */
  costOf(id: number): { gpuSeconds: number; storageSeconds: number; usd: number } {
    const inst = this.instances.get(id);
    if (!inst) throw new Error(`no instance ${id}`);
    const t = this.now();
    const gpuMs = inst.timeline.msIn(["running"], t);
    const storageMs = inst.timeline.msIn(["created", "loading", "running", "stopped", "exited"], t);
    return {
      gpuSeconds: Math.ceil(gpuMs / 1000),
      storageSeconds: Math.ceil(storageMs / 1000),
      usd: perSecondUsd(gpuMs, inst.dphGpu) + perSecondUsd(storageMs, inst.dphStorage),
    };
  }

  /** Rent directly, bypassing HTTP (e.g. another stack's instance). */
  seedInstance(askId: number, label: string): number {
    const reply = this.rent(askId, { image: "x/y:1", label, disk: 10, env: {} });
    const json = reply.json as { new_contract?: number };
    if (!json.new_contract) throw new Error(`cannot seed instance on ask ${askId}`);
    return json.new_contract;
  }

  protected handle(req: RecordedRequest): Reply | Promise<Reply> {
    const route = routeOf(req);
    if (!this.authorized(req)) {
      // search_offers.yaml documents a bad key there as 404 "Invalid user key"; elsewhere 401 auth_error
      if (route?.route === "search")
        return { status: 404, json: { error: "auth_error", msg: "Invalid user key" } };
      return { status: 401, json: { success: false, error: "auth_error", msg: "Invalid user key" } };
    }
    switch (route?.route) {
      case "search":
        return this.search(req.body);
      case "create":
        return this.rent(route.id, req.body);
      case "list":
        return this.listV1(req.query);
      case "show":
        return this.show(route.id);
      case "destroy":
        return this.destroy(route.id);
      case "manage":
        return this.changeState(route.id, req.body);
      default:
        return {
          status: 404,
          json: { success: false, error: "not_found", msg: `no route ${req.method} ${req.path}` },
        };
    }
  }

  /** The published response schema of each reply (checked by FakeApiServer; a violation becomes a 500). */
  protected override responseSchema(req: RecordedRequest, reply: Reply): z.ZodType | undefined {
    if (!req.path.startsWith("/api/") || reply.json === undefined) return undefined;
    const ok = reply.status >= 200 && reply.status < 300;
    if (reply.status === 429) return undefined; // plain text, or `{detail}` (RateLimitResponse)
    switch (routeOf(req)?.route) {
      case "search":
        return ok ? SearchOffersResponse : ErrorResponse;
      case "create":
        return ok ? CreateInstanceResponse : CreateInstanceError;
      case "list":
        return ok ? ListInstancesResponse : reply.status === 400 ? ListInstancesError : ErrorResponse;
      case "show":
        return ok ? ShowInstanceResponse : ErrorResponse;
      case "destroy":
        return ok ? DestroyInstanceResponse : ErrorResponse;
      case "manage":
        return ok ? ManageInstanceResponse : ErrorResponse;
      default:
        return ErrorResponse;
    }
  }

  private authorized(req: RecordedRequest): boolean {
    return req.headers.authorization === `Bearer ${this.apiKey}` || req.query.api_key === this.apiKey;
  }

  // ── search ────────────────────────────────────────────────────────────────────────────────────────────

  private search(body: unknown): Reply {
    const parsed = SearchOffersRequest.safeParse(body);
    if (!parsed.success)
      return {
        status: 400,
        json: { error: "invalid_request", msg: `Invalid json body: ${issues(parsed.error)}` },
      };
    // the request's defaults (search_offers.yaml): verified {eq: true}, rentable {eq: true}, rented {eq: false}
    const q = {
      verified: { eq: true },
      rentable: { eq: true },
      rented: { eq: false },
      ...parsed.data,
    };
    const storageGb = q.allocated_storage ?? 8; // "Default is 8GB" (search_offers.yaml)
    const skip = new Set(["order", "type", "limit", "allocated_storage"]);
    let result = [...this.offers.values()]
      .filter((o) => !o.rented)
      .filter((o) =>
        Object.entries(q).every(([field, cond]) => {
          if (skip.has(field) || cond === undefined || !isObj(cond)) return true;
          const value = this.fieldOf(o, field, storageGb);
          return Object.entries(cond).every(([op, want]) => want === undefined || compare(value, op, want));
        }),
      );
    for (const [field, dir] of [...(q.order ?? [])].reverse()) {
      const sign = dir === "desc" ? -1 : 1;
      result = [...result].sort(
        (a, b) =>
          sign *
          ((num(this.fieldOf(a, field, storageGb)) ?? 0) - (num(this.fieldOf(b, field, storageGb)) ?? 0)),
      );
    }
    const limit = q.limit ?? 64;
    return { status: 200, json: { offers: result.slice(0, limit).map((o) => this.offerRow(o, storageGb)) } };
  }

  /** A searchable field: what the offer row shows, plus the filter-only `verified` and `datacenter`. */
  private fieldOf(o: VastOfferSeed, field: string, storageGb: number): unknown {
    if (field === "verified") return o.verified ?? true;
    if (field === "datacenter") return o.datacenter ?? false;
    return (this.offerRow(o, storageGb) as Record<string, unknown>)[field];
  }

  private offerRow(o: VastOfferSeed, storageGb: number): VastOffer {
    const storage = (o.storage_dph ?? 0.01) * (storageGb / 10);
    const gpuRam = o.gpu_ram ?? DEFAULT_GPU_RAM_MB[o.gpu_name] ?? 24_576;
    const total = round6(o.dph_base + storage);
    return {
      id: o.id,
      ask_contract_id: o.id,
      machine_id: 10_000 + o.id,
      host_id: 500 + (o.id % 7),
      gpu_name: o.gpu_name,
      num_gpus: o.num_gpus,
      gpu_ram: gpuRam,
      gpu_total_ram: gpuRam * o.num_gpus,
      dph_base: o.dph_base,
      dph_total: total,
      storage_total_cost: round6(storage),
      min_bid: round6(o.dph_base * 0.6),
      reliability: o.reliability,
      reliability2: o.reliability,
      verification: (o.verified ?? true) ? "verified" : "unverified",
      rentable: o.rentable ?? true,
      rented: false,
      is_bid: false,
      disk_space: o.disk_space ?? 200,
      geolocation: o.geolocation ?? "Sweden, SE",
      direct_port_count: o.direct_port_count ?? 20,
      inet_down_cost: 0.002,
      inet_up_cost: 0.002,
      search: {
        gpuCostPerHour: o.dph_base,
        diskHour: round6(storage),
        totalHour: total,
        discountTotalHour: 0,
        discountedTotalPerHour: total,
      },
    };
  }

  // ── create ────────────────────────────────────────────────────────────────────────────────────────────

  private rent(askId: number, body: unknown): Reply {
    const offer = this.offers.get(askId);
    if (!offer || offer.rented || offer.rentable === false)
      return {
        status: 404,
        json: {
          success: false,
          error: "invalid_args",
          msg: `error 404/3603: no_such_ask Instance type by id ${askId} is not available.`,
          ask_id: askId,
        },
      };
    const parsed = CreateInstanceRequest.safeParse(body);
    if (!parsed.success)
      return {
        status: 400,
        json: {
          success: false,
          error: "invalid_args",
          msg: `error 400/3467: Invalid args: ${issues(parsed.error)}`,
          ask_id: askId,
        },
      };
    const b = parsed.data;
    const env = b.env ?? {};
    const id = this.nextId++;
    const disk = b.disk ?? 8; // "default: 8" (creating-instances-with-api.mdx)
    const directPorts = offer.direct_port_count ?? 20;
    const portMap: Record<string, number> = {};
    for (const key of Object.keys(env)) {
      const pm = key.match(/^-p (\d+):(\d+)(?:\/tcp)?$/);
      // a port request is mapped only while the host has direct ports left
      if (pm?.[2] && Object.keys(portMap).length < directPorts) {
        portMap[`${pm[2]}/tcp`] =
          this.engineAddress?.port ?? 40_000 + (id % 1000) * 10 + Object.keys(portMap).length;
      }
    }
    const fate = this.fates.shift() ?? "normal";
    // actual_status null ("created") at once, "loading" after createdMs, then the fate after loadingMs.
    const walk: { status: VastStatus; afterMs: number }[] = [
      { status: "created", afterMs: 0 },
      { status: "loading", afterMs: this.walk.createdMs },
    ];
    if (fate === "normal") walk.push({ status: "running", afterMs: this.walk.loadingMs });
    if (fate === "exited") walk.push({ status: "exited", afterMs: this.walk.loadingMs });
    if (fate === "offline") walk.push({ status: "offline", afterMs: this.walk.loadingMs });
    offer.rented = true;
    this.instances.set(id, {
      id,
      askId,
      ...(b.label !== undefined ? { label: b.label } : {}),
      image: b.image,
      env,
      args: b.args,
      onstart: b.onstart,
      runtype: b.runtype,
      disk,
      interruptible: b.price !== undefined,
      dphGpu: offer.dph_base,
      dphStorage: (offer.storage_dph ?? 0.01) * (disk / 10),
      createdAt: this.now(),
      timeline: new Timeline(this.now(), walk),
      publicIp: this.engineAddress?.ip ?? `203.0.113.${id % 250}`,
      portMap,
      gpuName: offer.gpu_name,
      numGpus: offer.num_gpus,
      gpuRamMb: offer.gpu_ram ?? DEFAULT_GPU_RAM_MB[offer.gpu_name] ?? 24_576,
      directPorts,
    });
    return { status: 200, json: { success: true, new_contract: id } };
  }

  // ── instances ─────────────────────────────────────────────────────────────────────────────────────────

  /** Shown at all: not destroyed, or destroyed less than `destroyedVisibleMs` ago. */
  private visible(inst: VastInstance): boolean {
    const t = this.now();
    if (inst.timeline.statusAt(t) !== "destroyed") return true;
    const gone = inst.timeline.enteredAt("destroyed", t);
    return gone !== undefined && t - gone < this.destroyedVisibleMs;
  }

  private view(inst: VastInstance): VastInstanceRow {
    const status = inst.timeline.statusAt(this.now()) ?? "created";
    const actual = status === "created" ? null : status === "destroyed" ? "exited" : status;
    const running = status === "running";
    const stopped = status === "stopped";
    return {
      id: inst.id,
      label: inst.label ?? null,
      image_uuid: inst.image,
      image_args: Array.isArray(inst.args) ? inst.args.map(String) : [],
      image_runtype: typeof inst.runtype === "string" ? inst.runtype : "ssh",
      extra_env: Object.entries(inst.env),
      onstart: typeof inst.onstart === "string" ? inst.onstart : null,
      actual_status: actual,
      intended_status: stopped ? "stopped" : "running",
      cur_state: status === "destroyed" ? "unloaded" : stopped ? "stopped" : "running",
      next_state: status === "destroyed" ? "unloaded" : stopped ? "stopped" : "running",
      status_msg: status === "exited" ? "container exited with code 1" : null,
      machine_id: 10_000 + inst.askId,
      gpu_name: inst.gpuName,
      num_gpus: inst.numGpus,
      gpu_ram: inst.gpuRamMb,
      gpu_totalram: inst.gpuRamMb,
      dph_base: inst.dphGpu,
      dph_total: round6(inst.dphGpu + inst.dphStorage),
      storage_total_cost: round6(inst.dphStorage),
      disk_space: inst.disk,
      is_bid: inst.interruptible,
      start_date: inst.createdAt / 1000,
      public_ipaddr: inst.publicIp,
      direct_port_count: inst.directPorts,
      ...(running
        ? {
            ports: Object.fromEntries(
              Object.entries(inst.portMap).map(([k, v]) => [k, [{ HostIp: "0.0.0.0", HostPort: String(v) }]]),
            ),
            ssh_host: `ssh${inst.id % 9}.vast.ai`,
            ssh_port: 20_000 + (inst.id % 1000),
          }
        : { ports: null }),
    };
  }

  private show(id: number): Reply {
    const inst = this.instances.get(id);
    if (!inst || !this.visible(inst)) return { status: 200, json: { instances: null } };
    return { status: 200, json: { instances: this.view(inst) } };
  }

  private listV1(rawQuery: Record<string, string>): Reply {
    const parsed = ListInstancesQuery.safeParse(rawQuery);
    if (!parsed.success)
      return {
        status: 400,
        json: { error: "invalid_request", msg: `Error in query parameters: ${issues(parsed.error)}` },
      };
    const q = parsed.data;
    // "Default 25, max 25. Values ≤ 0 are treated as 5."
    const asked = q.limit !== undefined ? Number(q.limit) : VAST_LIST_PAGE_MAX;
    const limit = asked <= 0 ? 5 : Math.min(asked, VAST_LIST_PAGE_MAX);
    let after = 0;
    if (q.after_token !== undefined) {
      const decoded = decodeToken(q.after_token);
      if (decoded === undefined)
        return { status: 400, json: { error: "invalid_token", msg: "invalid pagination token" } };
      after = decoded;
    }
    if (q.order_by !== undefined) {
      const cols = parseJson(q.order_by);
      if (
        !Array.isArray(cols) ||
        !cols.every((c) => isObj(c) && typeof c.col === "string" && ORDER_COLUMNS.has(c.col))
      )
        return {
          status: 400,
          json: { error: "invalid_request", msg: "Error in query parameters: order_by" },
        };
    }
    let rows = [...this.instances.values()].filter((i) => this.visible(i)).sort((a, b) => a.id - b.id);
    if (q.select_filters !== undefined) {
      const filters = parseJson(q.select_filters);
      if (!isObj(filters))
        return {
          status: 400,
          json: { error: "invalid_request", msg: "Error in query parameters: select_filters" },
        };
      for (const [col, cond] of Object.entries(filters)) {
        if (!FILTER_COLUMNS.has(col) || !isObj(cond))
          return {
            status: 400,
            json: {
              error: "invalid_request",
              msg: `Error in query parameters: ${col} is not a valid search key`,
            },
          };
        rows = rows.filter((i) => {
          const row = this.view(i) as Record<string, unknown>;
          return Object.entries(cond).every(([op, want]) => compare(row[col], op, want));
        });
      }
    }
    const total = rows.length;
    const page = rows.filter((i) => i.id > after).slice(0, limit);
    const last = page.at(-1);
    const more = last !== undefined && rows.some((i) => i.id > last.id);
    const views = page.map((i) => this.view(i));
    const labelCounts: Record<string, number> = {};
    for (const i of rows) labelCounts[i.label ?? ""] = (labelCounts[i.label ?? ""] ?? 0) + 1;
    return {
      status: 200,
      json: {
        success: true,
        instances_found: views.length,
        total_instances: total,
        label_counts: labelCounts,
        next_token: more ? encodeToken(last.id) : null,
        instances: views,
      },
    };
  }

  private destroy(id: number): Reply {
    const inst = this.instances.get(id);
    if (!inst || inst.timeline.statusAt(this.now()) === "destroyed")
      return { status: 404, json: { success: false, error: "not_found", msg: "Instance not found" } };
    inst.timeline.set("destroyed", this.now());
    const offer = this.offers.get(inst.askId);
    if (offer) offer.rented = false;
    return { status: 200, json: { success: true, msg: "Instance destroyed successfully" } };
  }

  private changeState(id: number, body: unknown): Reply {
    const inst = this.instances.get(id);
    if (!inst || inst.timeline.statusAt(this.now()) === "destroyed")
      return { status: 404, json: { success: false, error: "not_found", msg: "Instance not found" } };
    const parsed = ManageInstanceRequest.safeParse(body);
    if (!parsed.success)
      return { status: 400, json: { success: false, error: "invalid_args", msg: issues(parsed.error) } };
    const { state, label } = parsed.data;
    if (label !== undefined) inst.label = label;
    if (state === "stopped") inst.timeline.set("stopped", this.now());
    else if (state === "running")
      inst.timeline.walkFrom(this.now(), [
        { status: "loading", afterMs: 0 },
        { status: "running", afterMs: this.walk.loadingMs },
      ]);
    return { status: 200, json: { success: true } };
  }
}

/** Columns the v1 list sorts and filters by in the fake (show_instances.yaml names these among others). */
const ORDER_COLUMNS: ReadonlySet<string> = new Set(["id", "start_date", "label", "actual_status"]);
const FILTER_COLUMNS: ReadonlySet<string> = new Set([
  "actual_status",
  "gpu_name",
  "verification",
  "id",
  "label",
]);

function routeOf(req: RecordedRequest): { route: Route; id: number } | undefined {
  const p = req.path;
  const m = req.method;
  if (m === "POST" && p === "/api/v0/bundles/") return { route: "search", id: 0 };
  const ask = p.match(/^\/api\/v0\/asks\/(\d+)\/$/);
  if (m === "PUT" && ask) return { route: "create", id: Number(ask[1]) };
  if (m === "GET" && p === "/api/v1/instances/") return { route: "list", id: 0 };
  const one = p.match(/^\/api\/v0\/instances\/(\d+)\/$/);
  if (one) {
    const id = Number(one[1]);
    if (m === "GET") return { route: "show", id };
    if (m === "DELETE") return { route: "destroy", id };
    if (m === "PUT") return { route: "manage", id };
  }
  return undefined;
}

/** An opaque keyset cursor like the spec's example (`eyJ2YWx1ZXMiOiB7ImlkIjogMTIzfX0=`: `{"values": {"id": 123}}`). */
function encodeToken(lastId: number): string {
  return Buffer.from(JSON.stringify({ values: { id: lastId } })).toString("base64");
}

function decodeToken(token: string): number | undefined {
  const parsed = parseJson(Buffer.from(token, "base64").toString("utf8"));
  const id = isObj(parsed) && isObj(parsed.values) ? parsed.values.id : undefined;
  return typeof id === "number" && Number.isInteger(id) ? id : undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** zod issues as one line, naming paths (env keys), never values. */
function issues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.map(String).join(".") || "(body)"}: ${i.message}`).join("; ");
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

function round6(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}

function compare(value: unknown, op: string, want: unknown): boolean {
  switch (op) {
    case "eq":
      return value === want;
    case "neq":
      return value !== want;
    case "gt":
      return typeof value === "number" && typeof want === "number" && value > want;
    case "gte":
      return typeof value === "number" && typeof want === "number" && value >= want;
    case "lt":
      return typeof value === "number" && typeof want === "number" && value < want;
    case "lte":
      return typeof value === "number" && typeof want === "number" && value <= want;
    case "in":
      return Array.isArray(want) && want.includes(value);
    case "notin":
      return Array.isArray(want) && !want.includes(value);
    default:
      return false;
  }
}
