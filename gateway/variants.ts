/**
 * Weighted rollout in the gateway: which serving unit (model variant) answers a request. Declared weights come
 * from the runtime config; `aiorch models set-weight` overrides them in Redis and announces the change, so every
 * replica follows within a round trip and without a redeploy.
 */
import type { Redis } from "ioredis";
import type { RuntimeConfig } from "../core/config";
import type { RedisKeys } from "../core/redis-keys";
import {
  effectiveWeights,
  pickVariant,
  type ServingUnit,
  servingUnits,
  stickyPoint,
  unitName,
} from "../core/variants";

export type ModelConfig = RuntimeConfig["models"][number];
export type UnitConfig = ServingUnit<ModelConfig>;

/** Weights are re-read this often even without an announcement (a missed message heals). */
const REFRESH_MS = 30_000;

export class VariantRouter {
  /** Every serving unit by its name (`model@variant`, or the model's own name). */
  readonly units: ReadonlyMap<string, UnitConfig>;
  private readonly overrides = new Map<string, Record<string, number>>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly config: RuntimeConfig,
    private readonly random: () => number = Math.random,
  ) {
    this.units = new Map(servingUnits(config.models).map((u) => [u.name, u]));
  }

  /** Load run-time weights of every model with variants, and keep them fresh. */
  async start(): Promise<void> {
    await this.refresh();
    this.timer = setInterval(() => void this.refresh().catch(() => undefined), REFRESH_MS);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Re-read the weights of one model (an announcement named it) or of all of them. */
  async refresh(model?: string): Promise<void> {
    const models = this.config.models.filter((m) => m.variants && (model === undefined || m.name === model));
    await Promise.all(
      models.map(async (m) => {
        const raw = await this.redis.hgetall(this.keys.variantWeights(m.name));
        const parsed: Record<string, number> = {};
        for (const [variant, value] of Object.entries(raw)) {
          const weight = Number(value);
          if (Number.isFinite(weight) && weight >= 0) parsed[variant] = weight;
        }
        this.overrides.set(m.name, parsed);
      }),
    );
  }

  /** The weights in force for a model: declared, overlaid with run-time changes. */
  weights(model: ModelConfig): { name: string; weight: number }[] {
    return effectiveWeights(model.variants ?? [], this.overrides.get(model.name) ?? {});
  }

  /**
   * The serving unit that answers this request: by weight, or by the API key's fixed point when the model keeps
   * keys sticky. Undefined when every weight is 0 (the model is switched off).
   */
  choose(model: ModelConfig, keyId: string): UnitConfig | undefined {
    if (!model.variants) return this.units.get(model.name);
    const point = model.stickyVariants ? stickyPoint(keyId, model.name) : this.random();
    const variant = pickVariant(this.weights(model), point);
    return variant === undefined ? undefined : this.units.get(unitName(model.name, variant));
  }
}
