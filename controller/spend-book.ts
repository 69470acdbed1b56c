/**
 * The spend book: books what every worker costs (the ledger), decides the budget blocks, stops workers at a cap,
 * publishes spend and budget gauges, and books the workers managed backends report.
 *
 * Rules (DESIGN.md §4): a block is decided only from the burn of every live worker together (`book`), never
 * from a few of them; at a block no new workers start, and at the cap running workers go at once, so spend never
 * passes a cap by more than one billing tick. Time is passed in (`now`).
 */
import type { Redis } from "ioredis";
import type { ConfigurableProviderId } from "../core/catalog";
import type { RuntimeConfig } from "../core/config/runtime";
import type { RedisKeys } from "../core/redis-keys";
import { type RunTimeControls, withLoweredBudgets } from "../core/run-time-controls";
import { budgetGroupSpend, parseUnitName } from "../core/variants";
import type { ControllerJournal } from "./journal";
import { budgetBlocks, Ledger } from "./ledger";
import type { ControllerMetrics } from "./metrics";
import type { ModelConfig } from "./model-types";
import type { ManagedEndpoint, ManagedHealth } from "./providers/types";
import type { WorkerRecord, WorkerRegistry } from "./registry";

export interface SpendBookDeps {
  readonly config: RuntimeConfig;
  readonly redis: Redis;
  readonly keys: RedisKeys;
  readonly registry: Pick<WorkerRegistry, "update" | "transition" | "removeRoute">;
  readonly journal: Pick<ControllerJournal, "log" | "audit">;
  readonly metrics: Pick<
    ControllerMetrics,
    "spendTotal" | "budgetTotal" | "spendModel" | "budgetModel" | "costPerInference"
  >;
  readonly now: () => number;
  /** The decision interval: a block looks this far ahead at the current burn. */
  readonly tickSeconds: number;
}

export class SpendBook {
  private readonly ledger: Ledger;
  /** Budget blocks by scope (`*` for the stack, else a model), as last published. */
  private blocks: Record<string, string> = {};
  /** Per model, the last budget refusal written to the decision list (written again only when it changes). */
  private readonly blockedNoted = new Map<string, string>();
  /** Per managed unit, up to when its workers are booked. */
  private readonly managedBookedAt = new Map<string, number>();

  constructor(private readonly deps: SpendBookDeps) {
    this.ledger = new Ledger(deps.redis, deps.keys, deps.now);
  }

  /** Why the stack's budget or the unit's model budget blocks new workers, or undefined. */
  blockOf(unit: string): string | undefined {
    return this.blocks[parseUnitName(unit).model] ?? this.blocks["*"];
  }

  /** Whether the stack's budget or the unit's model budget is blocked (its spend reaches the cap within a tick). */
  overBudget(unit: string): boolean {
    return this.blocks["*"] !== undefined || this.blocks[parseUnitName(unit).model] !== undefined;
  }

  /** The current blocks as one comparable string: managed endpoints are steered again when it changes. */
  blocksSignature(): string {
    return JSON.stringify(this.blocks);
  }

  /**
   * Whether a unit's refused scale-up under `block` is news for the decision list: once per block and unit;
   * forgotten when the unit is no longer blocked.
   */
  blockNoticeDue(unit: string, block: string | undefined, refused: boolean): boolean {
    if (block === undefined) {
      this.blockedNoted.delete(unit);
      return false;
    }
    if (!refused || this.blockedNoted.get(unit) === block) return false;
    this.blockedNoted.set(unit, block);
    return true;
  }

  /**
   * Book what these workers cost up to now, without judging budgets: a budget block weighs the burn of every live
   * worker, so it is decided only in `book`, with all of them (a block computed from one terminating worker's
   * burn lifted the other models' blocks for a tick).
   */
  async accrue(workers: readonly WorkerRecord[]): Promise<void> {
    const booked = await this.ledger.accrue(workers);
    for (const { worker } of booked)
      await this.deps.registry.update(worker, { accruedUntilMs: worker.accruedUntilMs });
  }

  /** At termination: book what the billing rules add beyond the time already booked (rounding, minimums). */
  settle(worker: WorkerRecord, billedFromMs: number, endedAtMs: number): Promise<number> {
    return this.ledger.settle(worker, billedFromMs, endedAtMs);
  }

  /**
   * Book every live worker, then set budget blocks and stop workers at a cap; `lowered` budgets (MCP
   * `lower_budget`) count as the config's for the month they were set in.
   */
  async book(workers: readonly WorkerRecord[], lowered: RunTimeControls["budgets"] = {}): Promise<void> {
    const { redis, keys, registry, journal, metrics } = this.deps;
    const config = withLoweredBudgets(this.deps.config, lowered, this.deps.now());
    await this.accrue(workers);
    const spend = await this.ledger.monthSpend();
    const burn = { total: 0, byModel: {} as Record<string, number> };
    for (const w of workers) {
      if (w.state === "terminated" || !w.providerId) continue;
      const perSecond = w.usdPerHour / 3600;
      burn.total += perSecond;
      burn.byModel[w.model] = (burn.byModel[w.model] ?? 0) + perSecond;
    }
    const blocks = budgetBlocks(config, spend, burn, this.deps.tickSeconds);
    if (JSON.stringify(blocks) !== JSON.stringify(this.blocks)) {
      const multi = redis.multi().del(keys.budgetBlocked);
      if (Object.keys(blocks).length > 0) multi.hset(keys.budgetBlocked, blocks);
      await multi.publish(keys.budgetChannel, "changed").exec();
      for (const reason of Object.values(blocks)) journal.log(`controller: budget: ${reason}`);
      for (const scope of new Set([...Object.keys(blocks), ...Object.keys(this.blocks)])) {
        if (blocks[scope] === this.blocks[scope]) continue;
        const target = scope === "*" ? `stack ${config.stack}` : `model ${scope}`;
        journal.audit("budget.changed", target, blocks[scope] ? `blocked: ${blocks[scope]}` : "unblocked");
      }
      this.blocks = blocks;
    }
    // At the cap, running workers go too, in-flight requests or not (the draining step gives them no grace over
    // budget): spend may not pass the cap by more than a tick. New workers were blocked a tick earlier.
    const stackCap = config.budget?.monthlyUsd;
    const atCap = (unit: string) => {
      const model = parseUnitName(unit).model;
      return (
        (stackCap !== undefined && spend.totalUsd >= stackCap) ||
        (config.models.find((m) => m.name === unit)?.monthlyBudgetUsd ?? Number.POSITIVE_INFINITY) <=
          budgetGroupSpend(spend.byModel, model)
      );
    };
    for (const w of workers) {
      if (["ready", "booting", "provisioning"].includes(w.state) && atCap(w.model)) {
        await registry.removeRoute(w.model, w.id);
        await registry.transition(w, "draining", { detail: "budget reached: stopped at once" });
      }
    }
    metrics.spendTotal.set(spend.totalUsd);
    if (config.budget) metrics.budgetTotal.set(config.budget.monthlyUsd);
    const perModel = new Map<string, { spent: number; requests: number; budget?: number }>();
    for (const unit of config.models) {
      const { model, variant } = parseUnitName(unit.name);
      const spent = spend.byModel[unit.name] ?? 0;
      metrics.spendModel.set({ model, variant: variant ?? "" }, spent);
      const sum = perModel.get(model) ?? { spent: 0, requests: 0, budget: unit.monthlyBudgetUsd };
      sum.spent += spent;
      sum.requests += spend.requestsByModel[unit.name] ?? 0;
      perModel.set(model, sum);
    }
    for (const [model, sum] of perModel) {
      if (sum.budget !== undefined) metrics.budgetModel.set({ model }, sum.budget);
      if (sum.requests > 0) metrics.costPerInference.set({ model }, sum.spent / sum.requests);
    }
  }

  /** Managed workers bill per second while running (idle timeout included): book what the provider reports. */
  async bookManaged(
    model: ModelConfig,
    provider: ConfigurableProviderId,
    endpoint: ManagedEndpoint,
    health: ManagedHealth,
  ): Promise<void> {
    const now = this.deps.now();
    const { redis, keys } = this.deps;
    // Up to when this unit is booked, from Redis: after a restore that is the backup's booking, so the time
    // between the backup and now is booked again (at the worker count /health reports now). The memory is the
    // fallback when Redis has none (the first booking, or a restored backup from before this key).
    const stored = Number(await redis.hget(keys.managedBookedUntil, model.name));
    const since = stored > 0 && stored <= now ? stored : (this.managedBookedAt.get(model.name) ?? now);
    this.managedBookedAt.set(model.name, now);
    const price = this.deps.config.prices
      .filter((p) => p.provider === provider && model.gpu.includes(p.gpu))
      .sort((a, b) => a.usdPerHour - b.usdPerHour)[0];
    // the booking and how far it reaches in one transaction: a crash between them books nothing twice
    const multi = redis.multi().hset(keys.managedBookedUntil, model.name, String(now));
    if (price && health.running > 0 && now > since) {
      const seconds = ((now - since) / 1000) * health.running;
      // per GPU-hour × the GPUs per worker the provider says it runs
      this.ledger.book(
        multi,
        model.name,
        `${provider}-${endpoint.id}`,
        provider,
        (seconds * price.usdPerHour * endpoint.gpuCount) / 3600,
        seconds,
        now,
      );
    }
    await multi.exec();
  }
}
