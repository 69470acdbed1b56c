/**
 * What the keep-alive policy has learnt: the `KeepAliveLearner` the simulator runs too (cold starts per model ×
 * provider × cache outcome, idle gaps per model observed by `IdleSpell`, the queue restarts build observed by
 * `RestartQueue`), and which weight-cache entries some worker has loaded. `keepAliveFor` (keep-alive.ts, pure) turns them into a timeout.
 *
 * Rules: bounded memory (one estimate per model × provider × cache, one gap history and idle spell per model); the
 * only I/O is the weight-cache record in Redis, and it never fails a tick (a Redis blip counts as a miss, the
 * costlier case).
 */
import { randomInt } from "node:crypto";
import type { Redis } from "ioredis";
import { type ConfigurableProviderId, PROVIDERS } from "../core/catalog";
import type { RuntimeConfig } from "../core/config/runtime";
import type { RedisKeys } from "../core/redis-keys";
import { IdleSpell, RestartQueue } from "./idle-observations";
import { type CacheOutcome, type KeepAliveChoice, KeepAliveLearner } from "./keep-alive";
import { type ModelConfig, weightCacheEntry } from "./model-types";
import type { WorkerRecord } from "./registry";

export type { CacheOutcome } from "./keep-alive";

export interface KeepAliveStateDeps {
  readonly redis: Redis;
  readonly keys: Pick<RedisKeys, "weightCacheLoaded">;
  readonly config: Pick<RuntimeConfig, "providers" | "prices">;
  /**
   * Seeds the randomized break-even's draws (`spellDraw`). @default a random one per controller start, so no
   * pattern of requests can be tuned against the draws.
   */
  readonly drawSeed?: number;
}

export class KeepAliveState {
  private readonly learner: KeepAliveLearner;
  /** Weight-cache entries (`weightCacheEntry`) some worker has loaded: the next cold start from them is a hit. */
  private readonly cachesLoaded = new Set<string>();
  /** Per model: its idle spell and the queue of the restart under way, both fed each tick by `observeDemand`. */
  private readonly watches = new Map<string, { spell: IdleSpell; restart: RestartQueue }>();

  constructor(private readonly deps: KeepAliveStateDeps) {
    // a waited request-second weighs one worker-second: the least that never makes waiting look cheaper than the
    // GPU (the simulator's default wait price, sim/bound.ts)
    this.learner = new KeepAliveLearner(
      (provider) => PROVIDERS[provider as ConfigurableProviderId].coldStart.p50Seconds,
      1,
      deps.drawSeed ?? randomInt(2 ** 31),
    );
  }

  /** At start: which caches earlier controllers saw filled. */
  async load(): Promise<void> {
    try {
      for (const entry of await this.deps.redis.hkeys(this.deps.keys.weightCacheLoaded))
        this.cachesLoaded.add(entry);
    } catch {
      // unknown until the next worker is ready: keep-alive assumes a miss meanwhile, the costlier restart
    }
  }

  /** How long an idle worker of this model at this provider stays up, and why. */
  keepAlive(model: ModelConfig, provider: ConfigurableProviderId): KeepAliveChoice {
    // the restart a scale-down risks is a cache hit once some worker has filled the cache
    const entry = weightCacheEntry(this.deps.config, model, provider);
    const cache = entry && this.cachesLoaded.has(entry) ? "hit" : "miss";
    return this.learner.keepAlive(
      model,
      provider,
      PROVIDERS[provider].billing,
      cache,
      waitWeightOf(model, provider, this.deps.config.prices),
    );
  }

  /** Seconds the model has been idle (nothing waiting or in flight) at `nowMs`; undefined while it has demand. */
  idleSeconds(model: string, nowMs: number): number | undefined {
    return this.watches.get(model)?.spell.idleSeconds(nowMs);
  }

  /**
   * The model this tick: an idle spell that ends, and the queue a restart from zero built once a worker is ready,
   * are learnt from.
   */
  observeDemand(
    model: string,
    now: { readonly waiting: number; readonly inFlight: number; readonly readyWorkers: number },
    nowMs: number,
  ): void {
    let watch = this.watches.get(model);
    if (!watch) {
      watch = { spell: new IdleSpell(), restart: new RestartQueue() };
      this.watches.set(model, watch);
    }
    const { spell, restart } = watch;
    const gap = spell.update(now.waiting + now.inFlight, nowMs);
    if (gap !== undefined) this.learner.observeIdleGap(model, gap);
    const queued = restart.update(now.readyWorkers, now.waiting);
    if (queued !== undefined) this.learner.observeRestartQueue(model, queued);
  }

  /**
   * A worker became ready after `coldStartSeconds`: learn the cold start under whether it found its weights in
   * the cache, and answer which it was.
   */
  async observeColdStart(
    model: ModelConfig,
    worker: WorkerRecord,
    nowMs: number,
    coldStartSeconds: number,
  ): Promise<CacheOutcome> {
    const cache = await this.cacheOutcome(model, worker, nowMs);
    this.learner.observeColdStart(model.name, worker.provider, cache, coldStartSeconds);
    return cache;
  }

  /**
   * Whether a worker that just became ready found its weights in the cache: a hit when another worker had
   * loaded them before this one was created (two workers booting together both miss). Records the first load.
   */
  private async cacheOutcome(model: ModelConfig, worker: WorkerRecord, nowMs: number): Promise<CacheOutcome> {
    const entry = weightCacheEntry(this.deps.config, model, worker.provider);
    if (!entry) return "miss";
    this.cachesLoaded.add(entry);
    try {
      const key = this.deps.keys.weightCacheLoaded;
      const answers = await this.deps.redis.multi().hsetnx(key, entry, String(nowMs)).hget(key, entry).exec();
      const loadedAt = Number(answers?.[1]?.[1]);
      return Number.isFinite(loadedAt) && loadedAt < worker.createdAtMs ? "hit" : "miss";
    } catch {
      return "miss"; // Redis unreachable for a moment: counted as the costlier case, the worker serves anyway
    }
  }
}

/**
 * A model's waited request-second in seconds of its worker (`KeepAliveObservations.waitWeight`): its own
 * `waitUsdPerSecond` over the worker's price per second (the cheapest of its GPUs on that provider, as the
 * provisioner picks), never below 1 — a waited second is never worth less than the GPU's (sim/bound.ts). Without
 * its own price, or a price for the worker, 1.
 */
export function waitWeightOf(
  model: Pick<ModelConfig, "waitUsdPerSecond" | "gpu" | "gpuCount">,
  provider: string,
  prices: RuntimeConfig["prices"],
): number {
  if (model.waitUsdPerSecond === undefined) return 1;
  let usdPerHour = Number.POSITIVE_INFINITY;
  for (const p of prices)
    if (p.provider === provider && model.gpu.includes(p.gpu)) usdPerHour = Math.min(usdPerHour, p.usdPerHour);
  if (!Number.isFinite(usdPerHour)) return 1;
  return Math.max(1, model.waitUsdPerSecond / ((usdPerHour * model.gpuCount) / 3600));
}
