/**
 * What the acting MCP tools do: each checks what it is asked against the stack's config, writes one run-time
 * control (core/run-time-controls.ts) or key change to Redis, announces it where a process listens, and appends
 * one audit-trail entry naming the caller and the reason. The controller and the gateway do the rest (bounds,
 * drains and budgets on the controller's next tick; pauses, weights and revocations in every gateway at once).
 *
 * Rules: a refusal (unknown model, bounds beyond the config, a budget raised instead of lowered) changes nothing
 * and says what to ask instead (`RefusedChange`); scope checks happen before any of these run (server.ts).
 */
import type { Redis } from "ioredis";
import { ApiKeyStore } from "../core/api-keys";
import { AuditTrail } from "../core/audit-trail";
import type { RuntimeConfig } from "../core/config";
import { ledgerMonth } from "../core/protocol";
import type { RedisKeys } from "../core/redis-keys";
import { boundsRefusal, readRunTimeControls, withLoweredBudgets } from "../core/run-time-controls";
import { RefusedChange, setVariantWeight } from "../core/variant-weights";
import { servingUnits } from "../core/variants";

export { RefusedChange };

export interface ActContext {
  readonly redis: Redis;
  readonly keys: RedisKeys;
  readonly config: RuntimeConfig;
  /** Who the audit trail names (`mcp:key_…`, `mcp:local:alice`). */
  readonly actor: string;
  readonly now: number;
}

const audit = (
  ctx: ActContext,
  action: Parameters<AuditTrail["append"]>[0]["action"],
  target: string,
  reason: string,
) => new AuditTrail(ctx.redis, ctx.keys, () => ctx.now).append({ actor: ctx.actor, action, target, reason });

function unitConfig(config: RuntimeConfig, unit: string) {
  const units = servingUnits(config.models);
  const found = units.find((u) => u.name === unit);
  if (!found)
    throw new RefusedChange(
      `unknown model or serving unit "${unit}"; this stack has: ${units.map((u) => u.name).join(", ")}`,
    );
  return found;
}

/** Set (or with `reset`, drop) a serving unit's run-time worker bounds, within its config's. */
export async function setWorkerBounds(
  ctx: ActContext,
  change: { model: string; minWorkers: number; maxWorkers: number; reset: boolean; reason: string },
) {
  const unit = unitConfig(ctx.config, change.model);
  if (change.reset) {
    await ctx.redis.hdel(ctx.keys.workerBounds, unit.name);
    await audit(
      ctx,
      "workers.bounds",
      unit.name,
      `reset to config [${unit.minWorkers}, ${unit.maxWorkers}]: ${change.reason}`,
    );
    return {
      model: unit.name,
      minWorkers: unit.minWorkers,
      maxWorkers: unit.maxWorkers,
      source: "config" as const,
    };
  }
  const bounds = { minWorkers: change.minWorkers, maxWorkers: change.maxWorkers };
  const refusal = boundsRefusal(unit, bounds);
  if (refusal) throw new RefusedChange(`${unit.name}: ${refusal}`);
  await ctx.redis.hset(ctx.keys.workerBounds, unit.name, JSON.stringify(bounds));
  await audit(
    ctx,
    "workers.bounds",
    unit.name,
    `[${bounds.minWorkers}, ${bounds.maxWorkers}] (config [${unit.minWorkers}, ${unit.maxWorkers}]): ${change.reason}`,
  );
  return { model: unit.name, ...bounds, source: "run-time" as const };
}

/** Ask the controller to drain a live worker (stop routing, let in-flight finish, terminate). */
export async function drainWorker(ctx: ActContext, change: { workerId: string; reason: string }) {
  const [state, model] = await ctx.redis.hmget(ctx.keys.worker(change.workerId), "state", "model");
  const live = await ctx.redis.sismember(ctx.keys.liveWorkers, change.workerId);
  if (!state || !live || !["provisioning", "booting", "ready"].includes(state))
    throw new RefusedChange(
      `worker "${change.workerId}" is not a live worker that can be drained${state ? ` (it is ${state})` : ""}; see worker_health for the ids`,
    );
  await ctx.redis.hset(
    ctx.keys.drainRequests,
    change.workerId,
    JSON.stringify({ reason: change.reason, actor: ctx.actor, atMs: ctx.now }),
  );
  await audit(ctx, "worker.drain", change.workerId, `${model}: ${change.reason}`);
  return { workerId: change.workerId, model: model ?? "", state, queued: true };
}

/** Pause or unpause a model: its requests get 503 with the reason while paused. */
export async function setPaused(ctx: ActContext, change: { model: string; paused: boolean; reason: string }) {
  if (!ctx.config.models.some((m) => m.name === change.model))
    throw new RefusedChange(
      `unknown model "${change.model}"; this stack's models: ${ctx.config.models.map((m) => m.name).join(", ")}`,
    );
  if (change.paused)
    await ctx.redis.hset(
      ctx.keys.pausedModels,
      change.model,
      JSON.stringify({ reason: change.reason, actor: ctx.actor, atMs: ctx.now }),
    );
  else await ctx.redis.hdel(ctx.keys.pausedModels, change.model);
  await ctx.redis.publish(ctx.keys.pausesChannel, change.model);
  await audit(ctx, change.paused ? "model.paused" : "model.unpaused", change.model, change.reason);
  return { model: change.model, paused: change.paused };
}

/** Lower the stack's (`scope` "stack") or a model's monthly budget for the rest of this month. */
export async function lowerBudget(ctx: ActContext, change: { scope: string; usd: number; reason: string }) {
  const stack = change.scope === "stack";
  if (!stack && !ctx.config.models.some((m) => m.name === change.scope))
    throw new RefusedChange(
      `scope "${change.scope}" is neither "stack" nor a model of this stack (${ctx.config.models.map((m) => m.name).join(", ")})`,
    );
  if (!(Number.isFinite(change.usd) && change.usd >= 0)) throw new RefusedChange("usd must be an amount ≥ 0");
  const controls = await readRunTimeControls(ctx.redis, ctx.keys);
  const inForce = withLoweredBudgets(ctx.config, controls.budgets, ctx.now);
  const current = stack
    ? inForce.budget?.monthlyUsd
    : inForce.models.find((m) => m.name === change.scope)?.monthlyBudgetUsd;
  if (current !== undefined && change.usd >= current)
    throw new RefusedChange(
      `the ${stack ? "stack's" : `model ${change.scope}'s`} budget this month is $${current}; a run-time change may only lower it (raise it in the stack config)`,
    );
  const month = ledgerMonth(ctx.now);
  await ctx.redis.hset(
    ctx.keys.budgetOverrides,
    stack ? "*" : change.scope,
    JSON.stringify({ usd: change.usd, month }),
  );
  await audit(
    ctx,
    "budget.changed",
    stack ? `stack ${ctx.config.stack}` : `model ${change.scope}`,
    `lowered to $${change.usd} for ${month} (was ${current === undefined ? "no budget" : `$${current}`}): ${change.reason}`,
  );
  return { scope: change.scope, usd: change.usd, month, previousUsd: current ?? null };
}

/** Revoke an API key by id (gateways drop it from their caches at once). */
export async function revokeKey(ctx: ActContext, change: { keyId: string; reason: string }) {
  if (!(await new ApiKeyStore(ctx.redis, ctx.keys).revoke(change.keyId)))
    throw new RefusedChange(`no API key with id "${change.keyId}" (aiorch keys list shows the ids)`);
  await audit(ctx, "key.revoked", change.keyId, change.reason);
  return { keyId: change.keyId, revoked: true };
}

/** Set a variant's traffic weight (core/variant-weights.ts writes its own audit entry). */
export async function setWeight(
  ctx: ActContext,
  change: { model: string; variant: string; weight: number; reason: string },
) {
  const result = await setVariantWeight(ctx.redis, ctx.keys, ctx.config, { ...change, actor: ctx.actor });
  return {
    model: change.model,
    variant: change.variant,
    before: result.before,
    after: result.after,
    weights: result.weights,
  };
}
