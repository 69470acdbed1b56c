/**
 * The worker registry: one Redis hash per worker (DESIGN.md §3) and the routes the gateway reads. A worker record
 * in state `requested` is written before any provider call — it is the intent record a restarted controller
 * reconciles against. Writes are fenced with the leader's token.
 */
import type { Redis } from "ioredis";
import type { ConfigurableProviderId, GpuId } from "../core/catalog";
import { type BackendAuth, encodeRoute, type Route, type RouteTls } from "../core/protocol";
import { canTransition, type RedisKeys, type WorkerState } from "../core/redis-keys";
import { FencedOut } from "./leader";

export interface WorkerRecord {
  readonly id: string;
  readonly model: string;
  readonly provider: ConfigurableProviderId;
  readonly state: WorkerState;
  /** The provider's instance id, once the create call returned (or the reconciler adopted it). */
  readonly providerId?: string;
  readonly gpu?: GpuId;
  readonly offerId?: string;
  /** USD per hour while billed. */
  readonly usdPerHour: number;
  /** OpenAI base URL including /v1, once the worker is reachable. */
  readonly baseUrl?: string;
  /** The engine's API key; the gateway sends it as a bearer token. */
  readonly token: string;
  readonly createdAtMs: number;
  readonly stateChangedAtMs: number;
  readonly readyAtMs?: number;
  readonly lastActiveAtMs: number;
  /** Up to when spend has been booked for this worker. */
  readonly accruedUntilMs: number;
  /** When termination was first asked for; a termination is retried until the provider confirms. */
  readonly terminateRequestedAtMs?: number;
  /**
   * When the provider first accepted the termination (its call returned). A termination confirmed on a later
   * pass (after a controller restart, say) bills no further than this or the last booking: the provider stopped
   * billing then, not when a restarted controller got round to looking.
   */
  readonly terminateAcceptedAtMs?: number;
  /** Why the worker is in its state (the last decision or error, never a secret). */
  readonly detail?: string;
  /**
   * The certificate the controller issued for this worker and pins (PEM, public), for a worker outside the
   * cluster. Its private key is never stored: it exists in the controller's memory until the provider has it.
   */
  readonly tlsCertPem?: string;
  /** SHA-256 fingerprint of `tlsCertPem` (`AB:CD:…`). */
  readonly tlsFingerprint256?: string;
}

/**
 * The certificate clients must pin for this worker, when it has one. `local` workers (a static URL the team
 * runs) never do: they stay as configured even when their intent record got a certificate because a rented
 * provider was a candidate too.
 */
export function pinOf(worker: WorkerRecord): RouteTls | undefined {
  if (worker.provider === "local" || !worker.tlsCertPem || !worker.tlsFingerprint256) return undefined;
  return { certPem: worker.tlsCertPem, fingerprint256: worker.tlsFingerprint256 };
}

const NUMBER_FIELDS = [
  "usdPerHour",
  "createdAtMs",
  "stateChangedAtMs",
  "readyAtMs",
  "lastActiveAtMs",
  "accruedUntilMs",
  "terminateRequestedAtMs",
  "terminateAcceptedAtMs",
] as const;

function encode(patch: Partial<WorkerRecord>): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(patch)) if (v !== undefined) out.push(k, String(v));
  return out;
}

function decode(fields: Record<string, string>): WorkerRecord | undefined {
  if (!fields.id || !fields.model || !fields.provider || !fields.state) return undefined;
  const record: Record<string, unknown> = { ...fields };
  for (const f of NUMBER_FIELDS) if (fields[f] !== undefined) record[f] = Number(fields[f]);
  return record as unknown as WorkerRecord;
}

// KEYS: fence, worker hash, live set. ARGV: fence, mode (live|final), field, value, …
// Fencing needs the fence and the worker keys in one script, which Redis Cluster would refuse (different slots);
// the controller's registry therefore assumes a single Redis primary, as deployed.
const FENCED_WRITE = `
if tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[1]) then return redis.error_reply('FENCED') end
local fields = {}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
if #fields > 0 then redis.call('HSET', KEYS[2], unpack(fields)) end
local id = redis.call('HGET', KEYS[2], 'id')
if ARGV[2] == 'final' then
  redis.call('SREM', KEYS[3], id)
  redis.call('EXPIRE', KEYS[2], 604800)
else
  redis.call('SADD', KEYS[3], id)
end
return 1
`;

// KEYS: fence, routes hash. ARGV: fence, op (add|remove), worker id, route, channel, message.
const FENCED_ROUTE = `
if tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[1]) then return redis.error_reply('FENCED') end
if ARGV[2] == 'add' then redis.call('HSET', KEYS[2], ARGV[3], ARGV[4]) else redis.call('HDEL', KEYS[2], ARGV[3]) end
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
`;

type RegistryRedis = Redis & {
  aiorchWorkerWrite(
    fence: string,
    worker: string,
    live: string,
    token: number,
    mode: string,
    ...fields: string[]
  ): Promise<number>;
  aiorchRouteWrite(
    fence: string,
    routes: string,
    token: number,
    op: string,
    id: string,
    route: string,
    channel: string,
    message: string,
  ): Promise<number>;
};

export class WorkerRegistry {
  private readonly redis: RegistryRedis;

  constructor(
    redis: Redis,
    private readonly keys: RedisKeys,
    private readonly fence: () => number,
    private readonly now: () => number = Date.now,
  ) {
    this.redis = redis as RegistryRedis;
    if (typeof this.redis.aiorchWorkerWrite !== "function") {
      redis.defineCommand("aiorchWorkerWrite", { numberOfKeys: 3, lua: FENCED_WRITE });
      redis.defineCommand("aiorchRouteWrite", { numberOfKeys: 2, lua: FENCED_ROUTE });
    }
  }

  private async write(id: string, mode: "live" | "final", patch: Partial<WorkerRecord>): Promise<void> {
    try {
      await this.redis.aiorchWorkerWrite(
        this.keys.leaderFence,
        this.keys.worker(id),
        this.keys.liveWorkers,
        this.fence(),
        mode,
        ...encode(patch),
      );
    } catch (error) {
      if ((error as Error).message.includes("FENCED")) throw new FencedOut();
      throw error;
    }
  }

  /** Write the intent record: the worker exists for us before it exists at the provider. */
  async create(
    record: Omit<WorkerRecord, "state" | "stateChangedAtMs" | "accruedUntilMs">,
  ): Promise<WorkerRecord> {
    const full: WorkerRecord = {
      ...record,
      state: "requested",
      stateChangedAtMs: this.now(),
      accruedUntilMs: record.createdAtMs,
    };
    await this.write(full.id, "live", full);
    return full;
  }

  async get(id: string): Promise<WorkerRecord | undefined> {
    return decode(await this.redis.hgetall(this.keys.worker(id)));
  }

  /** Every worker not yet terminated. */
  async live(): Promise<WorkerRecord[]> {
    const ids = await this.redis.smembers(this.keys.liveWorkers);
    if (ids.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const id of ids) pipeline.hgetall(this.keys.worker(id));
    const results = (await pipeline.exec()) ?? [];
    return results
      .map(([, f]) => decode(f as Record<string, string>))
      .filter((r): r is WorkerRecord => r !== undefined);
  }

  async update(worker: WorkerRecord, patch: Partial<WorkerRecord>): Promise<WorkerRecord> {
    await this.write(worker.id, "live", patch);
    return { ...worker, ...patch };
  }

  /**
   * Move a worker to another state; refuses moves the lifecycle does not allow (a bug, or a second writer).
   * `terminated` is final: the worker leaves the live set and its record expires after a week.
   */
  async transition(
    worker: WorkerRecord,
    to: WorkerState,
    patch: Partial<WorkerRecord> = {},
  ): Promise<WorkerRecord> {
    if (worker.state === to) return this.update(worker, patch);
    if (!canTransition(worker.state, to))
      throw new Error(`worker ${worker.id}: ${worker.state} → ${to} is not a lifecycle step`);
    const next = { ...patch, state: to, stateChangedAtMs: this.now() };
    await this.write(worker.id, to === "terminated" ? "final" : "live", next);
    return { ...worker, ...next };
  }

  /**
   * Make a worker routable: the gateway picks it up at once (pub/sub) and waiting requests proceed. A worker
   * with a certificate is routed over https with the certificate pinned, never otherwise.
   */
  async publishRoute(worker: WorkerRecord, capacity: number, auth?: BackendAuth): Promise<void> {
    if (!worker.baseUrl) throw new Error(`worker ${worker.id} has no address to route to`);
    const tls = pinOf(worker);
    if (tls && !worker.baseUrl.startsWith("https://"))
      throw new Error(`worker ${worker.id} has a pinned certificate but no https address`);
    const route: Route = {
      workerId: worker.id,
      provider: worker.provider,
      baseUrl: worker.baseUrl,
      auth: auth ?? { kind: "bearer", token: worker.token },
      capacity,
      usdPerSecond: worker.usdPerHour / 3600,
      ...(tls ? { tls } : {}),
    };
    await this.routeWrite(worker.model, "add", worker.id, encodeRoute(route));
  }

  /** Stop routing to a worker (draining, failed, terminated). */
  async removeRoute(model: string, workerId: string): Promise<void> {
    await this.routeWrite(model, "remove", workerId, "");
  }

  /** Routes currently published for a model (worker ids). */
  async routedWorkers(model: string): Promise<string[]> {
    return this.redis.hkeys(this.keys.routes(model));
  }

  private async routeWrite(
    model: string,
    op: "add" | "remove",
    workerId: string,
    route: string,
  ): Promise<void> {
    try {
      await this.redis.aiorchRouteWrite(
        this.keys.leaderFence,
        this.keys.routes(model),
        this.fence(),
        op,
        workerId,
        route,
        this.keys.routesChannel,
        JSON.stringify({ model }),
      );
    } catch (error) {
      if ((error as Error).message.includes("FENCED")) throw new FencedOut();
      throw error;
    }
  }
}
