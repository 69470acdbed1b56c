/**
 * Contract fake of the Vast.ai REST API (v0, plus the paginated v1 instance list) as a real HTTP server on
 * 127.0.0.1, built from the "Fake checklist" in reference/providers.md §2:
 * - Bearer auth (or the legacy `?api_key=`); `POST /bundles/` evaluates filter/order/limit over seeded offers,
 *   and an offer disappears once rented;
 * - `PUT /asks/{id}/` returns `new_contract`, or an error JSON when the ask is gone; `price` → interruptible;
 * - status walk null → loading → running (exited / offline / stuck loading injectable); `ports` and
 *   `public_ipaddr` only once running;
 * - `DELETE` answers an error JSON the second time; plain-text 429 without Retry-After (via `inject`);
 * - a cost ledger per instance: GPU while running, storage from creation until destroyed (also while stopped).
 */

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
  gpu_ram?: number;
  disk_space?: number;
  geolocation?: string;
}

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
}

export interface VastFakeOptions {
  apiKey: string;
  offers?: VastOfferSeed[];
  now?: () => number;
  /** ms from create to `loading`, and from `loading` to `running`. */
  walk?: { createdMs?: number; loadingMs?: number };
  /** Where instances' engines "run": e.g. a local fake vLLM, so the controller's readiness probe is real. */
  engineAddress?: { ip: string; port: number };
}

export class VastAiFake extends FakeApiServer {
  readonly apiKey: string;
  readonly offers = new Map<number, VastOfferSeed & { rented: boolean }>();
  readonly instances = new Map<number, VastInstance>();
  /** Fate of the next instances created, in order (then "normal"). */
  readonly fates: VastFate[] = [];
  private nextId = 7_000_001;
  private readonly walk: { createdMs: number; loadingMs: number };
  private readonly engineAddress: { ip: string; port: number } | undefined;

  constructor(options: VastFakeOptions) {
    super(options.now);
    this.apiKey = options.apiKey;
    this.engineAddress = options.engineAddress;
    for (const o of options.offers ?? []) this.offers.set(o.id, { ...o, rented: false });
    this.walk = { createdMs: options.walk?.createdMs ?? 2_000, loadingMs: options.walk?.loadingMs ?? 30_000 };
  }

  /** The adapter's apiBase for this fake. */
  get apiBase(): string {
    return `${this.url}/api/v0`;
  }

  /** A plain-text 429 without Retry-After, as Vast.ai sends. */
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

  /** What one instance has cost so far: GPU while running, storage from creation until destroyed. */
  costOf(id: number): { gpuSeconds: number; storageSeconds: number; usd: number } {
    const inst = this.instances.get(id);
    if (!inst) throw new Error(`no instance ${id}`);
    const t = this.now();
    const gpuMs = inst.timeline.msIn(["running"], t);
    const storageMs = inst.timeline.msIn(
      ["created", "loading", "running", "stopped", "exited", "offline"],
      t,
    );
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
    if (!this.authorized(req))
      return { status: 401, json: { success: false, error: "auth_error", msg: "Invalid user key" } };
    const p = req.path;
    if (req.method === "POST" && p === "/api/v0/bundles/") return this.search(req.body);
    const ask = p.match(/^\/api\/v0\/asks\/(\d+)\/$/);
    if (req.method === "PUT" && ask) return this.rent(Number(ask[1]), req.body);
    if (req.method === "GET" && p === "/api/v0/instances/") return this.listV0();
    if (req.method === "GET" && p === "/api/v1/instances/") return this.listV1(req.query);
    const one = p.match(/^\/api\/v0\/instances\/(\d+)\/$/);
    if (one) {
      const id = Number(one[1]);
      if (req.method === "GET") return this.show(id);
      if (req.method === "DELETE") return this.destroy(id);
      if (req.method === "PUT") return this.changeState(id, req.body);
    }
    return { status: 404, json: { success: false, error: "not_found", msg: `no route ${req.method} ${p}` } };
  }

  private authorized(req: RecordedRequest): boolean {
    return req.headers.authorization === `Bearer ${this.apiKey}` || req.query.api_key === this.apiKey;
  }

  private search(body: unknown): Reply {
    if (!isObj(body))
      return { status: 400, json: { success: false, error: "invalid_args", msg: "body must be JSON" } };
    const ops = ["eq", "neq", "gt", "gte", "lt", "lte", "in", "notin"];
    const rows = [...this.offers.values()]
      .filter((o) => !o.rented)
      .map((o) => this.offerRow(o, num(body.allocated_storage)));
    let result = rows.filter((row) =>
      Object.entries(body).every(([field, cond]) => {
        if (["order", "type", "limit", "allocated_storage"].includes(field)) return true;
        if (!isObj(cond)) return true;
        const value = row[field];
        return Object.entries(cond).every(([op, want]) => {
          if (!ops.includes(op)) return true;
          return compare(value, op, want);
        });
      }),
    );
    const order = Array.isArray(body.order) ? body.order : [];
    for (const spec of [...order].reverse()) {
      if (!Array.isArray(spec) || typeof spec[0] !== "string") continue;
      const [field, dir] = spec as [string, string?];
      const sign = dir === "desc" ? -1 : 1;
      result = [...result].sort((a, b) => sign * ((num(a[field]) ?? 0) - (num(b[field]) ?? 0)));
    }
    const limit = num(body.limit) ?? 64;
    return { status: 200, json: { offers: result.slice(0, limit) } };
  }

  private offerRow(o: VastOfferSeed, storageGb?: number): Record<string, unknown> {
    const storage = (o.storage_dph ?? 0.01) * (storageGb !== undefined ? storageGb / 10 : 1);
    return {
      id: o.id,
      ask_contract_id: o.id,
      gpu_name: o.gpu_name,
      num_gpus: o.num_gpus,
      gpu_ram: o.gpu_ram ?? 24_576,
      dph_base: o.dph_base,
      dph_total: round6(o.dph_base + storage),
      storage_total_cost: round6(storage),
      min_bid: round6(o.dph_base * 0.6),
      reliability: o.reliability,
      reliability2: o.reliability,
      verified: o.verified ?? true,
      verification: (o.verified ?? true) ? "verified" : "unverified",
      datacenter: o.datacenter ?? false,
      rentable: o.rentable ?? true,
      rented: false,
      disk_space: o.disk_space ?? 200,
      geolocation: o.geolocation ?? "Sweden, SE",
      direct_port_count: 20,
    };
  }

  private rent(askId: number, body: unknown): Reply {
    const offer = this.offers.get(askId);
    if (!offer || offer.rented || offer.rentable === false)
      return {
        status: 400,
        json: { success: false, error: "no_such_ask", msg: `Instance type by id ${askId} is not available.` },
      };
    if (!isObj(body) || typeof body.image !== "string")
      return { status: 400, json: { success: false, error: "invalid_args", msg: "image is required" } };
    const env = isObj(body.env) ? (body.env as Record<string, string>) : {};
    const id = this.nextId++;
    const disk = num(body.disk) ?? 10;
    const portMap: Record<string, number> = {};
    for (const key of Object.keys(env)) {
      const pm = key.match(/^-p (\d+):(\d+)$/);
      if (pm?.[2]) {
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
      ...(typeof body.label === "string" ? { label: body.label } : {}),
      image: body.image,
      env,
      args: body.args,
      onstart: body.onstart,
      runtype: body.runtype,
      disk,
      interruptible: body.price !== undefined,
      dphGpu: offer.dph_base,
      dphStorage: (offer.storage_dph ?? 0.01) * (disk / 10),
      createdAt: this.now(),
      timeline: new Timeline(this.now(), walk),
      publicIp: this.engineAddress?.ip ?? `203.0.113.${id % 250}`,
      portMap,
    });
    return { status: 200, json: { success: true, new_contract: id } };
  }

  private view(inst: VastInstance): Record<string, unknown> {
    const status = inst.timeline.statusAt(this.now());
    const actual = status === undefined || status === "created" ? null : status;
    const running = status === "running";
    return {
      id: inst.id,
      label: inst.label ?? null,
      image_uuid: inst.image,
      actual_status: actual,
      intended_status: status === "stopped" ? "stopped" : "running",
      cur_state: status === "stopped" ? "stopped" : "running",
      status_msg: status === "exited" ? "container exited with code 1" : null,
      dph_total: round6(inst.dphGpu + inst.dphStorage),
      disk_space: inst.disk,
      is_bid: inst.interruptible,
      start_date: inst.createdAt / 1000,
      public_ipaddr: running ? inst.publicIp : null,
      ports: running
        ? Object.fromEntries(
            Object.entries(inst.portMap).map(([k, v]) => [k, [{ HostIp: "0.0.0.0", HostPort: String(v) }]]),
          )
        : null,
      ssh_host: running ? `ssh${inst.id % 9}.vast.ai` : null,
      ssh_port: running ? 20_000 + (inst.id % 1000) : null,
    };
  }

  private show(id: number): Reply {
    const inst = this.instances.get(id);
    if (!inst || inst.timeline.statusAt(this.now()) === "destroyed")
      return { status: 200, json: { instances: null } };
    return { status: 200, json: { instances: this.view(inst) } };
  }

  private listV0(): Reply {
    return { status: 200, json: { instances: this.live().map((i) => this.view(i)) } };
  }

  private listV1(query: Record<string, string>): Reply {
    const limit = Number(query.limit ?? 25);
    const after = query.after_token ? Number(query.after_token) : 0;
    const page = this.live()
      .filter((i) => i.id > after)
      .slice(0, limit);
    const last = page.at(-1);
    const more = last !== undefined && this.live().some((i) => i.id > last.id);
    return {
      status: 200,
      json: { instances: page.map((i) => this.view(i)), next_token: more ? String(last.id) : null },
    };
  }

  private destroy(id: number): Reply {
    const inst = this.instances.get(id);
    if (!inst || inst.timeline.statusAt(this.now()) === "destroyed")
      return {
        status: 404,
        json: { success: false, error: "no_such_instance", msg: `Instance ${id} not found.` },
      };
    inst.timeline.set("destroyed", this.now());
    const offer = this.offers.get(inst.askId);
    if (offer) offer.rented = false;
    return { status: 200, json: { success: true, msg: "destroying instance" } };
  }

  private changeState(id: number, body: unknown): Reply {
    const inst = this.instances.get(id);
    if (!inst || inst.timeline.statusAt(this.now()) === "destroyed")
      return {
        status: 404,
        json: { success: false, error: "no_such_instance", msg: `Instance ${id} not found.` },
      };
    const state = isObj(body) ? body.state : undefined;
    if (state === "stopped") inst.timeline.set("stopped", this.now());
    else if (state === "running")
      inst.timeline.walkFrom(this.now(), [
        { status: "loading", afterMs: 0 },
        { status: "running", afterMs: this.walk.loadingMs },
      ]);
    else
      return {
        status: 400,
        json: { success: false, error: "invalid_args", msg: "state must be stopped or running" },
      };
    return { status: 200, json: { success: true } };
  }
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
      return true;
  }
}
