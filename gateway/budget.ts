/**
 * A key's monthly budget against requests in flight. Spend is booked when a request ends (its service time ×
 * the worker's price), so a burst of concurrent requests all saw the same month-to-date spend and all got in: 30
 * requests on a $0.01 key booked $0.20. Each admitted request now holds the cost it is expected to have until it
 * ends, as tokens are reserved against tpm.
 *
 * Rules (per gateway replica; replicas share the booked spend through Redis):
 * - A key is admitted while `spent + held + expected ≤ budget`; the first request in flight of a key below its
 *   budget is always admitted (there is nothing else to wait for).
 * - `expected` is what a request of the model cost lately (an exponentially weighted average of served requests
 *   on this replica). Before any is known, a request may cost everything that is left: one at a time until then.
 * - What a request cost counts against the key here at once for `recentMs` (the booked spend reaches Redis within
 *   a flush and is read back a few seconds stale); counted twice meanwhile at worst, so never admitted past it.
 */
export interface BudgetHold {
  readonly keyId: string;
  readonly model: string;
  readonly usd: number;
}

export class KeyBudgetGuard {
  private readonly held = new Map<string, { count: number; usd: number }>();
  private readonly expected = new Map<string, number>();
  /** Costs booked on this replica lately, per key, with when (the Redis view may not hold them yet). */
  private readonly recent = new Map<string, { atMs: number; usd: number }[]>();

  /**
   * @param recentMs how long a booked cost counts here: the spend view's staleness plus a counter flush
   * @param weight share of the newest request in the average cost per request
   */
  constructor(
    private readonly recentMs = 6_000,
    private readonly weight = 0.3,
  ) {}

  private recentSpend(keyId: string, nowMs: number): number {
    const list = this.recent.get(keyId);
    if (!list) return 0;
    const kept = list.filter((c) => nowMs - c.atMs < this.recentMs);
    if (kept.length === 0) this.recent.delete(keyId);
    else this.recent.set(keyId, kept);
    return kept.reduce((sum, c) => sum + c.usd, 0);
  }

  /**
   * Hold the expected cost of one request of `model` for a key with `budgetUsd` that has `spentUsd` booked;
   * undefined when what is left is already held by requests in flight (or spent).
   */
  hold(
    keyId: string,
    model: string,
    budgetUsd: number,
    spentUsd: number,
    nowMs: number,
  ): BudgetHold | undefined {
    const left = budgetUsd - spentUsd - this.recentSpend(keyId, nowMs);
    if (left <= 0) return undefined;
    const current = this.held.get(keyId) ?? { count: 0, usd: 0 };
    const expected = Math.min(left, this.expected.get(model) ?? left);
    if (current.count > 0 && current.usd + expected > left) return undefined;
    this.held.set(keyId, { count: current.count + 1, usd: current.usd + expected });
    return { keyId, model, usd: expected };
  }

  /** The request ended: give its hold back, count what it cost, and learn from it when it was served. */
  release(hold: BudgetHold, costUsd: number, served: boolean, nowMs: number): void {
    const current = this.held.get(hold.keyId);
    if (current) {
      if (current.count <= 1) this.held.delete(hold.keyId);
      else this.held.set(hold.keyId, { count: current.count - 1, usd: Math.max(0, current.usd - hold.usd) });
    }
    if (costUsd > 0) {
      const list = this.recent.get(hold.keyId) ?? [];
      list.push({ atMs: nowMs, usd: costUsd });
      this.recent.set(hold.keyId, list);
    }
    if (served) {
      const before = this.expected.get(hold.model);
      this.expected.set(
        hold.model,
        before === undefined ? costUsd : before + this.weight * (costUsd - before),
      );
    }
  }

  /** Requests of a key in flight on this replica, and the USD they hold (for tests and status). */
  heldBy(keyId: string): { count: number; usd: number } {
    return this.held.get(keyId) ?? { count: 0, usd: 0 };
  }
}
