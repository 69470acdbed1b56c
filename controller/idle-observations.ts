/**
 * What the keep-alive observes, in bounded memory: the model's idle gaps (`IdleGapHistory`, with the empirical
 * optimum over them, `bestTimeoutForGaps`, and its pre-warm plan), its idle spells (`IdleSpell`), the cold starts
 * per provider and cache outcome (`ColdStartEstimate`), and the queue each restart from zero builds
 * (`RestartQueue`). Pure: no clock (times are passed in), no I/O. `keep-alive.ts` turns them into a timeout;
 * the controller and the simulator feed them the same way.
 */
import { bestPrewarm, type PrewarmInput, type PrewarmPlan } from "./prewarm";

/**
 * The timeout t that minimises the empirical cost Σ over gaps of (g ≤ t ? g : t + C), C = restart cost.
 * Between two observed gaps the cost only grows with t, so the optimum is 0 or one of the gaps; sorting and
 * a prefix sum make it O(n log n). Ties go to the longer timeout (same cost, fewer cold starts).
 * With no gaps it returns C (break-even).
 */
export function bestTimeoutForGaps(gaps: ArrayLike<number>, restartCost: number): number {
  return bestTimeoutForSortedGaps(Float64Array.from(gaps).sort(), gaps.length, restartCost);
}

/** `bestTimeoutForGaps` for the first n gaps of an ascending array: O(n). */
export function bestTimeoutForSortedGaps(sorted: ArrayLike<number>, n: number, restartCost: number): number {
  if (n === 0) return restartCost;
  let i = 0;
  while (i < n && sorted[i]! <= 0) i++;
  let bestCost = (n - i) * restartCost;
  let bestTimeout = 0;
  let kept = 0; // Σ of gaps ≤ t
  while (i < n) {
    const t = sorted[i]!;
    while (i < n && sorted[i] === t) kept += sorted[i++]!;
    const cost = kept + (n - i) * (t + restartCost);
    if (cost <= bestCost * (1 + 1e-12)) {
      bestCost = cost;
      bestTimeout = t;
    }
  }
  return bestTimeout;
}

export interface IdleGapHistoryOptions {
  /** Most recent gaps kept (ring buffer); older ones are forgotten. Default 256. */
  readonly capacity?: number;
  /** Fewer gaps than this: no adaptive timeout (break-even instead). Default 20. */
  readonly minSamples?: number;
  /** The optimum is recomputed at most once per this many new gaps (a linear scan). Default 1: always. */
  readonly recomputeEvery?: number;
}

/**
 * Recent idle gaps of one model × provider: seconds from the moment the model had nothing waiting or in
 * flight to the next request. Constant memory: a ring buffer in arrival order plus the same gaps kept
 * sorted (insert and evict in O(capacity)), so the optimum is a linear scan; it is also cached.
 */
export class IdleGapHistory {
  private readonly ring: Float64Array;
  private readonly sorted: Float64Array;
  private readonly minSamples: number;
  private readonly recomputeEvery: number;
  private next = 0;
  private count = 0;
  private observed = 0;
  private cachedAt = -1;
  private cachedCost = Number.NaN;
  private cached = 0;
  private prewarmAt = -1;
  private prewarmCached: PrewarmPlan | undefined;

  constructor(options: IdleGapHistoryOptions = {}) {
    this.ring = new Float64Array(Math.max(1, options.capacity ?? 256));
    this.sorted = new Float64Array(this.ring.length);
    this.minSamples = Math.max(1, options.minSamples ?? 20);
    this.recomputeEvery = Math.max(1, options.recomputeEvery ?? 1);
  }

  /** Record one idle gap in seconds (negative or NaN values are ignored). */
  observe(gapSeconds: number): void {
    if (!(gapSeconds >= 0)) return;
    if (this.count === this.ring.length) {
      // Evict the oldest gap from the sorted copy.
      const at = this.lowerBound(this.ring[this.next]!);
      this.sorted.copyWithin(at, at + 1, this.count);
      this.count--;
    }
    const at = this.lowerBound(gapSeconds);
    this.sorted.copyWithin(at + 1, at, this.count);
    this.sorted[at] = gapSeconds;
    this.count++;
    this.ring[this.next] = gapSeconds;
    this.next = (this.next + 1) % this.ring.length;
    this.observed++;
  }

  /** First index in the sorted gaps whose value is ≥ x. */
  private lowerBound(x: number): number {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.sorted[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Gaps currently held (≤ capacity). */
  get size(): number {
    return this.count;
  }

  /** Gaps observed since creation. */
  get total(): number {
    return this.observed;
  }

  /** True once there are enough gaps for `adaptiveTimeout` to answer. */
  get sufficient(): boolean {
    return this.count >= this.minSamples;
  }

  /**
   * The pre-warm plan for these gaps (`bestPrewarm`, O(n²) in the gaps held): recomputed when `PREWARM_EVERY` new
   * gaps came in, not on every gap or estimate change — a plan a few gaps old is as good, and a month simulated
   * for `aiorch plan` sees thousands of gaps.
   */
  prewarmPlan(inputs: () => Omit<PrewarmInput, "sortedGaps" | "n">): PrewarmPlan | undefined {
    if (!this.sufficient) return undefined;
    if (
      this.prewarmAt < 0 ||
      this.observed - this.prewarmAt >= Math.max(this.recomputeEvery, PREWARM_EVERY)
    ) {
      this.prewarmCached = bestPrewarm({ ...inputs(), sortedGaps: this.sorted, n: this.count });
      this.prewarmAt = this.observed;
    }
    return this.prewarmCached;
  }

  /** The gaps held, oldest first (a copy). */
  gaps(): number[] {
    const out: number[] = [];
    const start = this.count < this.ring.length ? 0 : this.next;
    for (let i = 0; i < this.count; i++) out.push(this.ring[(start + i) % this.ring.length]!);
    return out;
  }

  /** The shortest gap held; undefined while none is. */
  shortest(): number | undefined {
    return this.count === 0 ? undefined : this.sorted[0];
  }

  /** The last `k` gaps observed (fewer while fewer are held), in no particular order. */
  recent(k: number): number[] {
    const out: number[] = [];
    const n = Math.min(k, this.count);
    for (let i = 1; i <= n; i++) out.push(this.ring[(this.next - i + this.ring.length) % this.ring.length]!);
    return out;
  }

  /** The empirical-cost-optimal timeout for these gaps, or undefined with too little history. */
  adaptiveTimeout(restartCost: number): number | undefined {
    if (!this.sufficient) return undefined;
    if (restartCost !== this.cachedCost || this.observed - this.cachedAt >= this.recomputeEvery) {
      this.cached = bestTimeoutForSortedGaps(this.sorted, this.count, restartCost);
      this.cachedCost = restartCost;
      this.cachedAt = this.observed;
    }
    return this.cached;
  }
}

/**
 * Observed cold-start seconds of one model × provider: a running mean that starts from a prior (the
 * catalog's typical figure) and becomes an exponentially weighted mean after `window` samples, so it follows
 * a provider that gets slower or faster. The mean, not the median: a restart's cost is linear in its boot.
 */
export class ColdStartEstimate {
  private mean: number;
  private n: number;

  constructor(
    priorSeconds: number,
    private readonly window = 50,
  ) {
    this.mean = Math.max(0, priorSeconds);
    this.n = 1;
  }

  /** The last cold starts, for a quantile (how early a pre-warm must start). */
  private readonly recent = new RecentValues(32);

  observe(seconds: number): void {
    if (!(seconds >= 0)) return;
    if (this.n < this.window) this.n++;
    this.mean += (seconds - this.mean) / this.n;
    this.recent.observe(seconds);
  }

  get seconds(): number {
    return this.mean;
  }

  /** The q-quantile of the recent cold starts; the mean until five are measured. */
  quantile(q: number): number {
    return this.recent.size < 5 ? this.mean : this.recent.quantile(q)!;
  }
}

/** New gaps between two pre-warm plans (see `IdleGapHistory.prewarmPlan`). */
const PREWARM_EVERY = 16;

/**
 * When a model's idle spells start and end, as the controller and the simulator both observe them: a spell starts
 * when nothing waits and nothing is in flight, and ends at the next demand. Every gap is seen, also one that outlived
 * the keep-alive (the worker was let go): a history of only the gaps a warm worker survived is censored at the
 * keep-alive and drags the adaptive optimum down (issue 21). Gaps shorter than `MIN_IDLE_GAP_SECONDS` are the
 * controller's tick, not idleness.
 */
export const MIN_IDLE_GAP_SECONDS = 1;

export class IdleSpell {
  private since: number | undefined;

  /** When the current idle spell began (ms), or undefined while the model has demand. */
  get sinceMs(): number | undefined {
    return this.since;
  }

  /** Seconds into the current idle spell at `nowMs`; undefined while the model has demand. */
  idleSeconds(nowMs: number): number | undefined {
    return this.since === undefined ? undefined : (nowMs - this.since) / 1000;
  }

  /** The model's demand now (waiting + in flight); the idle gap in seconds that just ended, if one did. */
  update(demand: number, nowMs: number): number | undefined {
    if (demand <= 0) {
      this.since ??= nowMs;
      return undefined;
    }
    const since = this.since;
    this.since = undefined;
    if (since === undefined) return undefined;
    const gap = (nowMs - since) / 1000;
    return gap >= MIN_IDLE_GAP_SECONDS ? gap : undefined;
  }
}

/**
 * The queue a restart from zero builds: from the moment a model has no ready worker and requests wait, the most that
 * waited at once, reported when a worker is ready again. Observed the same way by the controller (each tick) and
 * the simulator (at each arrival and each worker ready).
 */
export class RestartQueue {
  private peak: number | undefined;

  /** Ready workers and waiting requests now; the queue of the restart that just ended, if one did. */
  update(readyWorkers: number, waiting: number): number | undefined {
    if (readyWorkers === 0) {
      if (waiting > 0) this.peak = Math.max(this.peak ?? 0, waiting);
      return undefined;
    }
    const peak = this.peak;
    this.peak = undefined;
    return peak;
  }
}

/** The last `capacity` values and their quantiles (sorted once per change, not per question). */
export class RecentValues {
  private readonly values: number[] = [];
  private sorted: number[] | undefined;

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.values.length;
  }

  observe(value: number): void {
    if (!(value >= 0)) return;
    this.values.push(value);
    if (this.values.length > this.capacity) this.values.shift();
    this.sorted = undefined;
  }

  /** The q-quantile (nearest rank: 0.5 is the lower median); undefined while empty. */
  quantile(q: number): number | undefined {
    if (this.values.length === 0) return undefined;
    this.sorted ??= [...this.values].sort((a, b) => a - b);
    const sorted = this.sorted;
    return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
  }
}
