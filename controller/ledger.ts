/**
 * The spend ledger: GPU-seconds and USD per worker, model and day, booked from the provider's billing rules
 * every tick (so a crash loses at most one tick of bookkeeping, never the instance), and the budget check that
 * stops provisioning before spend can pass a cap by more than one tick.
 */
import type { Redis } from "ioredis";
import { type BillingModel, PROVIDERS } from "../core/catalog";
import type { RuntimeConfig } from "../core/config";
import { fromMicroUsd, ledgerDay, ledgerMonth, toMicroUsd } from "../core/protocol";
import type { RedisKeys, WorkerState } from "../core/redis-keys";
import { budgetGroupSpend, parseUnitName } from "../core/variants";
import type { WorkerRecord } from "./registry";

/** Whether a worker in this state is billed by its provider. */
export function isBilled(state: WorkerState, billing: BillingModel, hasInstance: boolean): boolean {
  if (!hasInstance) return false;
  switch (state) {
    case "provisioning":
    case "booting":
      return billing.billsBoot;
    case "ready":
    case "draining":
    case "failed": // still exists at the provider until termination is confirmed
      return true;
    default:
      return false;
  }
}

/**
 * What the provider bills for a whole run of `durationMs`: rounded up to its granularity, never below its
 * per-start minimum. The ledger books time as it passes and adds the rest of this at termination.
 */
export function billedSeconds(durationMs: number, billing: BillingModel): number {
  const seconds = Math.max(0, durationMs) / 1000;
  const rounded = Math.ceil(seconds / billing.granularitySeconds - 1e-9) * billing.granularitySeconds;
  return Math.max(rounded, billing.minimumSeconds);
}

export interface MonthSpend {
  readonly totalUsd: number;
  readonly byModel: Readonly<Record<string, number>>;
  readonly requestsByModel: Readonly<Record<string, number>>;
}

export class Ledger {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly now: () => number = Date.now,
  ) {}

  /** Book `usd` and `seconds` of GPU time for a worker of a model at `atMs`. */
  book(
    pipeline: ReturnType<Redis["multi"]>,
    model: string,
    workerId: string,
    provider: string,
    usd: number,
    seconds: number,
    atMs: number,
  ): void {
    const micro = toMicroUsd(usd);
    const gpuMs = Math.round(seconds * 1000);
    for (const key of [this.keys.spendMonth(ledgerMonth(atMs)), this.keys.spendDay(ledgerDay(atMs))]) {
      pipeline.hincrby(key, "total", micro);
      pipeline.hincrby(key, `model:${model}`, micro);
      pipeline.hincrby(key, `worker:${workerId}`, micro);
      pipeline.hincrby(key, `provider:${provider}`, micro);
      pipeline.hincrby(key, `gpu_ms:model:${model}`, gpuMs);
    }
  }

  /**
   * Book every billed worker's time since it was last booked. Returns the workers with their new
   * `accruedUntilMs` (the caller persists it with the registry) and what was booked.
   */
  async accrue(workers: readonly WorkerRecord[]): Promise<{ worker: WorkerRecord; usd: number }[]> {
    const now = this.now();
    const multi = this.redis.multi();
    const booked: { worker: WorkerRecord; usd: number }[] = [];
    for (const worker of workers) {
      const billing = PROVIDERS[worker.provider].billing;
      if (!isBilled(worker.state, billing, worker.providerId !== undefined) || worker.accruedUntilMs >= now)
        continue;
      const seconds = (now - worker.accruedUntilMs) / 1000;
      const usd = (seconds * worker.usdPerHour) / 3600;
      this.book(multi, worker.model, worker.id, worker.provider, usd, seconds, now);
      booked.push({ worker: { ...worker, accruedUntilMs: now }, usd });
    }
    if (booked.length > 0) await multi.exec();
    return booked;
  }

  /**
   * At termination: book what the billing rules add beyond the time already booked (rounding, minimums) for a
   * run from `billedFromMs` to `endedAtMs` (default now).
   */
  async settle(worker: WorkerRecord, billedFromMs: number, endedAtMs = this.now()): Promise<number> {
    const billing = PROVIDERS[worker.provider].billing;
    const total = billedSeconds(endedAtMs - billedFromMs, billing);
    const already = Math.max(0, worker.accruedUntilMs - billedFromMs) / 1000;
    const extra = Math.max(0, total - already);
    if (extra <= 0) return 0;
    const usd = (extra * worker.usdPerHour) / 3600;
    const multi = this.redis.multi();
    this.book(multi, worker.model, worker.id, worker.provider, usd, extra, this.now());
    await multi.exec();
    return usd;
  }

  async monthSpend(): Promise<MonthSpend> {
    const fields = await this.redis.hgetall(this.keys.spendMonth(ledgerMonth(this.now())));
    const byModel: Record<string, number> = {};
    const requestsByModel: Record<string, number> = {};
    for (const [field, value] of Object.entries(fields)) {
      if (field.startsWith("model:")) byModel[field.slice(6)] = fromMicroUsd(Number(value));
      else if (field.startsWith("requests:model:")) requestsByModel[field.slice(15)] = Number(value);
    }
    return { totalUsd: fromMicroUsd(Number(fields.total ?? 0)), byModel, requestsByModel };
  }
}

/**
 * Budget blocks: `*` when the stack's budget would be passed within the next tick at the current burn rate,
 * or a model's name for its own budget. A blocked model gets no new workers; at the cap its workers go.
 */
export function budgetBlocks(
  config: RuntimeConfig,
  spend: MonthSpend,
  burnUsdPerSecond: { total: number; byModel: Readonly<Record<string, number>> },
  tickSeconds: number,
): Record<string, string> {
  const blocks: Record<string, string> = {};
  const cap = config.budget?.monthlyUsd;
  if (cap !== undefined && spend.totalUsd + burnUsdPerSecond.total * tickSeconds >= cap) {
    blocks["*"] = `stack ${config.stack} reached its monthly budget of $${cap}`;
  }
  // A model's variants (serving units `model@variant`) share its budget; the block is keyed by the model.
  const capped = new Map<string, number>();
  for (const model of config.models) {
    if (model.monthlyBudgetUsd !== undefined)
      capped.set(parseUnitName(model.name).model, model.monthlyBudgetUsd);
  }
  for (const [model, modelCap] of capped) {
    const spent = budgetGroupSpend(spend.byModel, model);
    if (spent + budgetGroupSpend(burnUsdPerSecond.byModel, model) * tickSeconds >= modelCap) {
      // no live figures in the reason: an unchanged block is not rewritten and re-announced every tick
      blocks[model] = `model ${model} reached its monthly budget of $${modelCap}`;
    }
  }
  return blocks;
}
