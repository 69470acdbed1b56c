/**
 * Run-time controls: what an operator (or an assistant over MCP, `mcp/`) changes without a deploy, stored in Redis
 * and honoured by the controller (worker bounds, drains, lowered budgets) and the gateway (pauses).
 *
 * Rules:
 * - a control stays within what the stack's config allows: worker bounds within `[0, maxWorkers]` of the
 *   model's config (a warm floor may be raised up to that cap, the budgets still bound it), a budget can only be
 *   lowered, and only for the month it was set in (the next month starts from the config again);
 * - a malformed entry is ignored (the config wins), never a crash of the reader;
 * - the pure functions here take what was read and the time; `readRunTimeControls` is the one read.
 */
import type { Redis } from "ioredis";
import type { RuntimeConfig } from "./config/runtime";
import { ledgerMonth } from "./protocol";
import type { RedisKeys } from "./redis-keys";
import { parseUnitName } from "./variants";

export interface WorkerBounds {
  readonly minWorkers: number;
  readonly maxWorkers: number;
}

/** Who changed a control and why (kept with it, and in the audit trail). */
export interface ControlNote {
  readonly reason: string;
  readonly actor: string;
  readonly atMs: number;
}

export interface BudgetOverride {
  readonly usd: number;
  /** `2026-12`: the month the lowered budget holds for. */
  readonly month: string;
}

export interface RunTimeControls {
  /** Serving unit → bounds. */
  readonly bounds: Readonly<Record<string, WorkerBounds>>;
  /** Model → why it is paused. */
  readonly paused: Readonly<Record<string, ControlNote>>;
  /** `*` or model → lowered budget. */
  readonly budgets: Readonly<Record<string, BudgetOverride>>;
  /** Worker id → why it is to be drained. */
  readonly drains: Readonly<Record<string, ControlNote>>;
}

export const NO_CONTROLS: RunTimeControls = { bounds: {}, paused: {}, budgets: {}, drains: {} };

function parsed<T>(raw: Record<string, string>, valid: (v: unknown) => v is T): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [field, text] of Object.entries(raw)) {
    try {
      const value: unknown = JSON.parse(text);
      if (valid(value)) out[field] = value;
    } catch {
      // a malformed entry is ignored: the config's value holds
    }
  }
  return out;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null;
const isCount = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v) && v >= 0;
const isBounds = (v: unknown): v is WorkerBounds =>
  isObject(v) && isCount(v.minWorkers) && isCount(v.maxWorkers) && v.minWorkers <= v.maxWorkers;
const isNote = (v: unknown): v is ControlNote =>
  isObject(v) && typeof v.reason === "string" && typeof v.actor === "string" && typeof v.atMs === "number";
const isBudget = (v: unknown): v is BudgetOverride =>
  isObject(v) && typeof v.usd === "number" && v.usd >= 0 && typeof v.month === "string";

/** Every control in one round trip. */
export async function readRunTimeControls(redis: Redis, keys: RedisKeys): Promise<RunTimeControls> {
  const [bounds, paused, budgets, drains] = await Promise.all([
    redis.hgetall(keys.workerBounds),
    redis.hgetall(keys.pausedModels),
    redis.hgetall(keys.budgetOverrides),
    redis.hgetall(keys.drainRequests),
  ]);
  return {
    bounds: parsed(bounds, isBounds),
    paused: parsed(paused, isNote),
    budgets: parsed(budgets, isBudget),
    drains: parsed(drains, isNote),
  };
}

/** Forget drain requests the controller has acted on (or found nothing to drain for). */
export async function clearDrainRequests(
  redis: Redis,
  keys: RedisKeys,
  workerIds: readonly string[],
): Promise<void> {
  if (workerIds.length > 0) await redis.hdel(keys.drainRequests, ...workerIds);
}

/**
 * A unit's scaling fields with its run-time bounds applied, clamped to what its config allows (so a control
 * written before a deploy that lowered `maxWorkers` cannot lift it again).
 */
export function boundedModel<
  M extends { readonly name: string; readonly minWorkers: number; readonly maxWorkers: number },
>(model: M, bounds: WorkerBounds | undefined): M {
  if (!bounds) return model;
  const maxWorkers = Math.min(model.maxWorkers, bounds.maxWorkers);
  const minWorkers = Math.min(maxWorkers, bounds.minWorkers);
  return { ...model, minWorkers, maxWorkers };
}

/** Why `bounds` are not allowed for a unit whose config says `[min, max]`, or undefined when they are. */
export function boundsRefusal(
  config: { readonly maxWorkers: number },
  bounds: WorkerBounds,
): string | undefined {
  if (!isCount(bounds.minWorkers) || !isCount(bounds.maxWorkers))
    return "minWorkers and maxWorkers must be whole numbers ≥ 0";
  if (bounds.minWorkers > bounds.maxWorkers) return "minWorkers must not exceed maxWorkers";
  if (bounds.maxWorkers > config.maxWorkers)
    return `maxWorkers ${bounds.maxWorkers} is above the stack's maxWorkers ${config.maxWorkers}; raise it in the stack config`;
  return undefined;
}

/**
 * The config with this month's lowered budgets in force (a budget is only ever lowered; another month's
 * override is ignored). Budget blocks and caps are then decided from it as from the config.
 */
export function withLoweredBudgets(
  config: RuntimeConfig,
  budgets: RunTimeControls["budgets"],
  nowMs: number,
): RuntimeConfig {
  const month = ledgerMonth(nowMs);
  const inForce = (scope: string) => {
    const o = budgets[scope];
    return o && o.month === month ? o.usd : undefined;
  };
  const stack = inForce("*");
  const anyModel = config.models.some((m) => inForce(modelOf(m.name)) !== undefined);
  if (stack === undefined && !anyModel) return config;
  const lower = (current: number | undefined, lowered: number | undefined) =>
    lowered === undefined ? current : current === undefined ? lowered : Math.min(current, lowered);
  return {
    ...config,
    budget:
      stack === undefined
        ? config.budget
        : config.budget
          ? { ...config.budget, monthlyUsd: Math.min(config.budget.monthlyUsd, stack) }
          : { monthlyUsd: stack, alertAtPercent: [50, 80, 100] },
    models: config.models.map((m) => {
      const lowered = inForce(modelOf(m.name));
      return lowered === undefined ? m : { ...m, monthlyBudgetUsd: lower(m.monthlyBudgetUsd, lowered) };
    }),
  };
}

/** A serving unit's model (`m@v` → `m`); budgets and pauses are per model. */
const modelOf = (unit: string) => parseUnitName(unit).model;
