/**
 * Which backends serve a model right now: `local` providers from the runtime config (always ready), and the
 * routes the controller publishes in Redis. Routes are cached per model and refreshed when the controller
 * announces a change (pub/sub) or, as a safety net, every `refreshMs` (in the background once half of it has passed,
 * see `RefreshAhead`, so a model with traffic never waits for it). A refresh that no longer finds a backend
 * emits `backend-removed` with its id (the upstream client closes the backend's pinned connections).
 */
import { EventEmitter } from "node:events";
import type { Redis } from "ioredis";
import type { RuntimeConfig } from "../core/config";
import { decodeRoute, type Route } from "../core/protocol";
import type { RedisKeys } from "../core/redis-keys";
import { RefreshAhead } from "../core/refresh-ahead";
import type { AbortLike } from "./abort";

export interface Backend extends Route {
  /** Stable id for load accounting: worker id, or `local:<model>`. */
  readonly id: string;
}

export class BackendRegistry extends EventEmitter {
  private readonly cache = new Map<string, { backends: Backend[]; at: number }>();
  private readonly staticBackends = new Map<string, Backend[]>();
  private readonly inflight = new Map<string, number>();
  private readonly cooldownUntil = new Map<string, number>();
  /** Backend ids of each model's last refresh, to tell which ones disappeared. */
  private readonly known = new Map<string, Set<string>>();
  /** Route changes announced per model: a read that started before the latest one is not cached. */
  private readonly generation = new Map<string, number>();
  private readonly refreshAhead = new RefreshAhead<string>();
  private readonly reread = (model: string) => this.read(model);

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    config: RuntimeConfig,
    private readonly options: { refreshMs?: number; now?: () => number } = {},
  ) {
    super();
    this.setMaxListeners(0);
    const localUrl = config.providers.local?.url;
    for (const model of config.models) {
      if (localUrl && model.providers.includes("local")) {
        this.staticBackends.set(model.name, [
          {
            id: `local:${model.name}`,
            workerId: `local:${model.name}`,
            provider: "local",
            baseUrl: localUrl.replace(/\/+$/, ""),
            auth: { kind: "none" },
            capacity: model.targetConcurrency,
            usdPerSecond: 0,
          },
        ]);
      }
    }
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  /** Called when the controller announces that a model's routes changed. */
  routesChanged(model: string): void {
    this.generation.set(model, (this.generation.get(model) ?? 0) + 1);
    this.cache.delete(model);
    this.emit(`changed:${model}`);
    // A backend may be gone: re-read now, so its connections close without waiting for the next request.
    if ((this.known.get(model)?.size ?? 0) > 0) this.backends(model).catch(() => undefined);
  }

  /** Ready backends of a model if the cache is fresh, without a promise (the hot path); else undefined. */
  cachedBackends(model: string): readonly Backend[] | undefined {
    const cached = this.cache.get(model);
    if (!cached || !this.fresh(model, cached.at)) return undefined;
    const statics = this.staticBackends.get(model);
    if (!statics || statics.length === 0) return cached.backends;
    return cached.backends.length === 0 ? statics : [...statics, ...cached.backends];
  }

  /** Ready backends of a model (cached; at most one Redis read per model per refresh period). */
  async backends(model: string): Promise<Backend[]> {
    const statics = this.staticBackends.get(model) ?? [];
    const cached = this.cache.get(model);
    if (cached && this.fresh(model, cached.at)) return [...statics, ...cached.backends];
    return [...statics, ...(await this.read(model))];
  }

  /** Whether routes read at `at` may be used; past half their time, a background read renews them. */
  private fresh(model: string, at: number): boolean {
    return this.refreshAhead.serve(model, this.now() - at, this.options.refreshMs ?? 2_000, this.reread);
  }

  /** Read a model's routes from Redis and cache them (unless they changed meanwhile). */
  private async read(model: string): Promise<Backend[]> {
    const generation = this.generation.get(model) ?? 0;
    const fields = await this.redis.hgetall(this.keys.routes(model));
    const backends: Backend[] = [];
    for (const [workerId, text] of Object.entries(fields)) {
      const route = decodeRoute(text);
      if (route && route.workerId === workerId) backends.push({ ...route, id: workerId });
    }
    // Routes changed while this read was under way: use it once, but let a newer read fill the cache.
    if ((this.generation.get(model) ?? 0) !== generation) return backends;
    this.cache.set(model, { backends, at: this.now() });
    const ids = new Set(backends.map((b) => b.id));
    for (const id of this.known.get(model) ?? []) {
      if (!ids.has(id)) this.emit("backend-removed", id);
    }
    this.known.set(model, ids);
    return backends;
  }

  /**
   * The least-loaded backend not cooling down (load = in flight on this replica ÷ capacity); ties go to a
   * random one so replicas spread out.
   */
  pick(
    backends: readonly Backend[],
    exclude: ReadonlySet<string> = new Set(),
    options: { ignoreCooldown?: boolean } = {},
  ): Backend | undefined {
    // Cooling-down backends are skipped unless nothing else is left (then a second try beats a certain failure).
    const now = options.ignoreCooldown ? Number.POSITIVE_INFINITY : this.now();
    let best: Backend | undefined;
    let bestLoad = Number.POSITIVE_INFINITY;
    let ties = 0;
    for (const b of backends) {
      if (exclude.has(b.id) || (this.cooldownUntil.get(b.id) ?? 0) > now) continue;
      const load = (this.inflight.get(b.id) ?? 0) / b.capacity;
      if (load < bestLoad) {
        best = b;
        bestLoad = load;
        ties = 1;
      } else if (load === bestLoad) {
        ties += 1;
        if (Math.random() * ties < 1) best = b;
      }
    }
    return best;
  }

  acquire(backend: Backend): number {
    const n = (this.inflight.get(backend.id) ?? 0) + 1;
    this.inflight.set(backend.id, n);
    return n;
  }

  release(backend: Backend): void {
    const n = (this.inflight.get(backend.id) ?? 1) - 1;
    if (n <= 0) this.inflight.delete(backend.id);
    else this.inflight.set(backend.id, n);
  }

  inflightOf(backendId: string): number {
    return this.inflight.get(backendId) ?? 0;
  }

  /** Keep traffic off a backend that just failed, for a short while. */
  coolDown(backend: Backend, ms = 5_000): void {
    this.cooldownUntil.set(backend.id, this.now() + ms);
  }

  /** Resolve when the model's routes change (or the signal aborts / the timeout passes). */
  waitForChange(model: string, timeoutMs: number, signal: AbortLike): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.off(`changed:${model}`, done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, timeoutMs));
      this.on(`changed:${model}`, done);
      signal.addEventListener("abort", done, { once: true });
    });
  }
}
