/**
 * `aiorch models list|set-weight`: the variants of each model and their traffic weights. `set-weight` changes a
 * weight at run time (Redis plus an announcement every gateway follows) and leaves an audit entry. A run-time
 * weight wins over the declared one (what `plan` shows) until `set-weight MODEL VARIANT --reset` removes it; a
 * deploy does not clear it, so finish a rollout by declaring the final weights and resetting.
 */
import { parseArgs } from "node:util";
import { redisKeys } from "../core/redis-keys";
import { renderTable } from "../core/table";
import { readVariantWeights, setVariantWeight } from "../core/variant-weights";
import type { Io } from "./keys";
import { UsageError } from "./plan/run";
import { runtimeConfigFrom } from "./runtime-source";
import { connectStackRedis } from "./stack-redis";

export { readVariantWeights, setVariantWeight, type VariantWeightRow } from "../core/variant-weights";

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
