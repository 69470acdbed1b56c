/**
 * Variant weights at run time: read the declared and current weight of every variant, and change one (Redis, an
 * announcement every gateway follows, an audit entry). `aiorch models` and the MCP `set_variant_weight` tool both
 * call these.
 */
import type { Redis } from "ioredis";
import { AuditTrail } from "./audit-trail";
import type { RuntimeConfig } from "./config";
import type { RedisKeys } from "./redis-keys";
import { effectiveWeights } from "./variants";

type ModelConfig = RuntimeConfig["models"][number];

/**
 * A change refused because of what was asked (unknown model or variant, a bad weight): the message says what
 * to ask instead. Named "UsageError" so the CLI reports it as one (exit 2).
 */
export class RefusedChange extends Error {
  override name = "UsageError";
}

export interface VariantWeightRow {
  readonly model: string;
  readonly variant: string;
  readonly source: string;
  readonly revision: string | null;
  readonly declaredWeight: number;
  /** The weight in force (a run-time change, else the declared one). */
  readonly weight: number;
  /** Share of the model's traffic, 0..1. */
  readonly share: number;
  readonly sticky: boolean;
}

async function overridesOf(redis: Redis, keys: RedisKeys, model: string): Promise<Record<string, number>> {
  const raw = await redis.hgetall(keys.variantWeights(model));
  return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, Number(v)]));
}

/** Every variant of every model with its declared and current weight. */
export async function readVariantWeights(
  redis: Redis,
  keys: RedisKeys,
  config: RuntimeConfig,
): Promise<VariantWeightRow[]> {
  const rows: VariantWeightRow[] = [];
  for (const model of config.models) {
    if (!model.variants) continue;
    const weights = effectiveWeights(model.variants, await overridesOf(redis, keys, model.name));
    const total = weights.reduce((sum, w) => sum + w.weight, 0);
    model.variants.forEach((v, i) => {
      const source = v.source ?? model.source;
      rows.push({
        model: model.name,
        variant: v.name,
        source,
        revision: v.revision ?? (source === model.source ? (model.revision ?? null) : null),
        declaredWeight: v.weight,
        weight: weights[i]!.weight,
        share: total > 0 ? weights[i]!.weight / total : 0,
        sticky: model.stickyVariants,
      });
    });
  }
  return rows;
}

function variantModel(config: RuntimeConfig, model: string, variant: string): ModelConfig {
  const found = config.models.find((m) => m.name === model);
  if (!found)
    throw new RefusedChange(
      `unknown model "${model}"; known: ${config.models.map((m) => m.name).join(", ")}`,
    );
  if (!found.variants)
    throw new RefusedChange(
      `model "${model}" has no variants; declare them under models[].variants in the stack`,
    );
  if (!found.variants.some((v) => v.name === variant))
    throw new RefusedChange(
      `model "${model}" has no variant "${variant}"; its variants: ${found.variants.map((v) => v.name).join(", ")}`,
    );
  return found;
}

/**
 * Set one variant's weight at run time (or drop the change with `weight: undefined`), announce it, and record it
 * in the audit trail. Refuses a change that would leave every variant at 0: that switches the model off, which
 * is a deploy decision, not a rollout step.
 */
export async function setVariantWeight(
  redis: Redis,
  keys: RedisKeys,
  config: RuntimeConfig,
  change: { model: string; variant: string; weight: number | undefined; actor: string; reason?: string },
): Promise<{ before: number; after: number; weights: { name: string; weight: number }[] }> {
  const model = variantModel(config, change.model, change.variant);
  if (change.weight !== undefined && !(Number.isFinite(change.weight) && change.weight >= 0))
    throw new RefusedChange(`the weight must be a number ≥ 0; got ${change.weight}`);
  const overrides = await overridesOf(redis, keys, model.name);
  const current = effectiveWeights(model.variants!, overrides);
  const before = current.find((w) => w.name === change.variant)!.weight;
  const declared = model.variants!.find((v) => v.name === change.variant)!.weight;
  const after = change.weight ?? declared;
  const next = current.map((w) => (w.name === change.variant ? { ...w, weight: after } : w));
  if (next.every((w) => w.weight === 0))
    throw new RefusedChange(
      `that would give every variant of "${model.name}" weight 0 and switch the model off; raise another variant first`,
    );
  const key = keys.variantWeights(model.name);
  if (change.weight === undefined) await redis.hdel(key, change.variant);
  else await redis.hset(key, change.variant, String(change.weight));
  await redis.publish(keys.variantWeightsChannel, model.name);
  await new AuditTrail(redis, keys).append({
    actor: change.actor,
    action: "weights.changed",
    target: `${model.name}@${change.variant}`,
    reason: `${before} → ${after}${change.weight === undefined ? " (declared)" : ""}${change.reason ? `: ${change.reason}` : ""}`,
  });
  return { before, after, weights: next };
}
