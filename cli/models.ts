/**
 * `aiorch models list|set-weight`: the variants of each model and their traffic weights. `set-weight` changes a
 * weight at run time (Redis plus an announcement every gateway follows) and leaves an audit entry. A run-time
 * weight wins over the declared one (what `plan` shows) until `set-weight MODEL VARIANT --reset` removes it; a
 * deploy does not clear it, so finish a rollout by declaring the final weights and resetting.
 */
import { parseArgs } from "node:util";
import type { Redis } from "ioredis";
import { AuditTrail } from "../core/audit-trail";
import type { RuntimeConfig } from "../core/config";
import type { RedisKeys } from "../core/redis-keys";
import { redisKeys } from "../core/redis-keys";
import { renderTable } from "../core/table";
import { effectiveWeights } from "../core/variants";
import type { Io } from "./keys";
import { UsageError } from "./plan/run";
import { runtimeConfigFrom } from "./runtime-source";
import { connectStackRedis } from "./stack-redis";

type ModelConfig = RuntimeConfig["models"][number];

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
    throw new UsageError(`unknown model "${model}"; known: ${config.models.map((m) => m.name).join(", ")}`);
  if (!found.variants)
    throw new UsageError(
      `model "${model}" has no variants; declare them under models[].variants in the stack`,
    );
  if (!found.variants.some((v) => v.name === variant))
    throw new UsageError(
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
    throw new UsageError(`the weight must be a number ≥ 0; got ${change.weight}`);
  const overrides = await overridesOf(redis, keys, model.name);
  const current = effectiveWeights(model.variants!, overrides);
  const before = current.find((w) => w.name === change.variant)!.weight;
  const declared = model.variants!.find((v) => v.name === change.variant)!.weight;
  const after = change.weight ?? declared;
  const next = current.map((w) => (w.name === change.variant ? { ...w, weight: after } : w));
  if (next.every((w) => w.weight === 0))
    throw new UsageError(
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

const percent = (share: number) => `${(share * 100).toFixed(1)}%`;

export async function runModels(
  argv: readonly string[],
  io: Io,
  dir: string,
  env = process.env,
): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: [...rest],
    options: {
      stack: { type: "string" },
      config: { type: "string" },
      json: { type: "boolean" },
      reset: { type: "boolean" },
      actor: { type: "string" },
      reason: { type: "string" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (sub !== "list" && sub !== "set-weight")
    throw new UsageError(`models needs a subcommand: list or set-weight; got "${sub ?? ""}"`);
  if (sub === "set-weight" && positionals.length !== (values.reset ? 2 : 3))
    throw new UsageError("usage: models set-weight MODEL VARIANT WEIGHT   (or MODEL VARIANT --reset)");
  const config = runtimeConfigFrom({ stack: values.stack, config: values.config, dir });
  const redis = await connectStackRedis(env);
  try {
    const keys = redisKeys(config.redis.keyPrefix);
    if (sub === "set-weight") {
      const [model, variant, text] = positionals as [string, string, string | undefined];
      const weight = text === undefined ? undefined : Number(text);
      if (text !== undefined && !(text.trim() !== "" && Number.isFinite(weight) && weight! >= 0))
        throw new UsageError(`WEIGHT must be a number ≥ 0, e.g. 25; got "${text}"`);
      const actor = values.actor ?? env.AIORCH_ACTOR ?? env.USER ?? "cli";
      const result = await setVariantWeight(redis, keys, config, {
        model,
        variant,
        weight,
        actor,
        reason: values.reason,
      });
      const total = result.weights.reduce((sum, w) => sum + w.weight, 0);
      if (values.json) io.out(`${JSON.stringify({ model, variant, ...result })}\n`);
      else
        io.out(
          `${model}@${variant}: weight ${result.before} → ${result.after}; traffic now ${result.weights
            .map((w) => `${w.name} ${percent(w.weight / total)}`)
            .join(", ")}\n`,
        );
      return 0;
    }
    const rows = await readVariantWeights(redis, keys, config);
    if (values.json) {
      io.out(`${JSON.stringify(rows, null, 2)}\n`);
      return 0;
    }
    if (rows.length === 0) {
      io.out("no model has variants (declare models[].variants in the stack to roll out a new version)\n");
      return 0;
    }
    io.out(
      `${renderTable(
        ["model", "variant", "weights", "revision", "declared", "now", "share", "sticky"],
        rows.map((r) => [
          r.model,
          r.variant,
          r.source,
          r.revision ? r.revision.slice(0, 12) : "(unpinned)",
          r.declaredWeight,
          r.weight === r.declaredWeight ? r.weight : `${r.weight} (run-time)`,
          percent(r.share),
          r.sticky ? "per key" : "no",
        ]),
      )}\n`,
    );
    return 0;
  } finally {
    redis.disconnect();
  }
}
