/**
 * Cached reads of what budgets depend on, for the request path: a key's month-to-date spend and the budget blocks
 * the controller sets, a few seconds stale at most and renewed in the background while in use.
 */
import type { Redis } from "ioredis";
import { ledgerMonth } from "../core/protocol";
import type { RedisKeys } from "../core/redis-keys";
import { RefreshAhead } from "../core/refresh-ahead";

/** How long budget blocks read from Redis are used (the controller also announces changes over pub/sub). */
const BUDGET_BLOCKS_MS = 2_000;

export class SpendView {
  private readonly cache = new Map<string, { value: number; at: number }>();
  private blocked: { value: Record<string, string>; at: number } | undefined;
  /** Budget block announcements: a read that started before the latest one is not cached. */
  private blockGeneration = 0;
  private readonly refreshAhead = new RefreshAhead<string>();
  private readonly readKeySpendFn = (field: string) => this.readKeySpend(field);
  private readonly readBudgetBlocksFn = () => this.readBudgetBlocks();

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly now: () => number,
    private readonly ttlMs = 5_000,
  ) {}

  /** Month-to-date spend attributed to an API key, USD. */
  async keySpendUsd(keyId: string): Promise<number> {
    const field = `key:${keyId}`;
    const cached = this.cache.get(field);
    if (cached && this.refreshAhead.serve(field, this.now() - cached.at, this.ttlMs, this.readKeySpendFn))
      return cached.value;
    return this.readKeySpend(field);
  }

  private async readKeySpend(field: string): Promise<number> {
    const micro = Number((await this.redis.hget(this.keys.spendMonth(ledgerMonth(this.now())), field)) ?? 0);
    const value = micro / 1_000_000;
    this.cache.set(field, { value, at: this.now() });
    return value;
  }

  /** Forget cached budget blocks (the controller announced a change). */
  invalidateBudgetBlocks(): void {
    this.blocked = undefined;
    this.blockGeneration += 1;
  }

  /** The budget blocks when read in the last two seconds, without a promise (the hot path); else undefined. */
  cachedBudgetBlocks(): Record<string, string> | undefined {
    const blocked = this.blocked;
    // "" is the blocks' entry; key spend entries are `key:<id>`
    if (
      !blocked ||
      !this.refreshAhead.serve("", this.now() - blocked.at, BUDGET_BLOCKS_MS, this.readBudgetBlocksFn)
    )
      return undefined;
    return blocked.value;
  }

  /** Budget blocks the controller set: `*` for the stack, or a model name → reason. */
  async budgetBlocks(): Promise<Record<string, string>> {
    return this.cachedBudgetBlocks() ?? this.readBudgetBlocks();
  }

  private async readBudgetBlocks(): Promise<Record<string, string>> {
    const generation = this.blockGeneration;
    const value = await this.redis.hgetall(this.keys.budgetBlocked);
    // a block announced while this read was under way: use the answer once, a newer read fills the cache
    if (generation === this.blockGeneration) this.blocked = { value, at: this.now() };
    return value;
  }
}
