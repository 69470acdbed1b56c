/**
 * Pre-warming from the idle-gap history (the hybrid histogram policy of Shahrad et al., "Serverless in the Wild",
 * USENIX ATC 2020, priced instead of thresholded): when the gaps cluster — a cron, a periodic job — let the worker
 * go as soon as the model falls idle, start one `startAfterSeconds` into the idle spell so it is ready before the
 * next request, and keep it until `keepUntilSeconds`. Pure: no clock, no I/O.
 *
 * Rules. Over the observed gaps g (sorted), with d the lead a pre-warm needs (a high quantile of the cold starts:
 * a boot that runs long makes users wait), C the bill's restart cost, Q the waits a
 * restart on demand causes (waitWeight·d·(q+1)/2, worker-seconds) and ω = waitWeight·(q+1)/2, one gap costs
 * - g < P            C + Q                          (the request comes before the pre-warm: a restart on demand)
 * - P ≤ g < P + d    C + ω·(P + d − g)              (the pre-warmed worker is still booting: a shorter wait)
 * - P + d ≤ g ≤ W    C + (g − P − d)                (ready, idle until the request; idle time where it bills)
 * - g > W            2C + (W − P − d) + Q           (let go at W, a restart on demand after all)
 * The plan is the (P, W) of least total over the gaps (P from 0 and g − d for every 1/32 of the gaps, W each
 * g ≥ P + d: O(32·n) with prefix sums), taken only when it beats the best keep-alive over the same gaps (Σ g ≤ t ? g : t + C + Q) by
 * `PREWARM_MARGIN`: a plan on gaps that do not cluster would buy a restart per gap for nothing.
 */

/** A plan must cost at most this share of the best keep-alive's (noise in the history is not a pattern). */
export const PREWARM_MARGIN = 0.85;

export interface PrewarmPlan {
  /** Seconds into the idle spell at which one worker is started (the others are let go at once). */
  readonly startAfterSeconds: number;
  /** Seconds into the idle spell until which that worker is kept; then the keep-alive lets it go. */
  readonly keepUntilSeconds: number;
  /** Expected worker-seconds per gap with the plan, and with the best keep-alive instead. */
  readonly costPerGapSeconds: number;
  readonly keepAliveCostPerGapSeconds: number;
}

export interface PrewarmInput {
  /** The first `n` entries ascending. */
  readonly sortedGaps: ArrayLike<number>;
  readonly n: number;
  readonly coldStartSeconds: number;
  /** How long before a request a pre-warm starts so its boot is done in time (a high quantile of the cold starts). */
  readonly leadSeconds: number;
  /** The bill's cost of a restart, worker-seconds (`restartCostSeconds`). */
  readonly restartCostSeconds: number;
  /** Idle time of a ready worker bills. */
  readonly billsIdle: boolean;
  /** A waited request-second in worker-seconds. */
  readonly waitWeight: number;
  /** Requests that queue behind a restart (`RestartQueue`), at least 1. */
  readonly queuedPerRestart: number;
}

/**
 * Worker-seconds the waits of a restart cost per second of its boot: the first of the q queued requests waits the
 * whole boot, the others half of it on average, so (q + 1)/2 request-seconds, each weighed `waitWeight`.
 */
export function waitsPerBootSecond(waitWeight: number, queuedPerRestart: number): number {
  return (Math.max(0, waitWeight) * (Math.max(1, queuedPerRestart) + 1)) / 2;
}

/** The plan of least cost, or undefined when keeping workers warm is as cheap (see the rules). */
export function bestPrewarm(input: PrewarmInput): PrewarmPlan | undefined {
  const { sortedGaps: g, n } = input;
  if (n === 0) return undefined;
  // timing with the lead (a boot that may run long); the bill's restart cost `c` is the mean's
  const d = Math.max(0, input.leadSeconds, input.coldStartSeconds);
  const c = Math.max(0, input.restartCostSeconds);
  const omega = waitsPerBootSecond(input.waitWeight, input.queuedPerRestart);
  const q = omega * Math.max(0, input.coldStartSeconds);
  const idle = input.billsIdle ? 1 : 0;
  const prefix = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) prefix[i + 1] = prefix[i]! + g[i]!;
  const below = (x: number): number => {
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (g[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };

  // the best keep-alive over the same gaps (a restart costs its bill and its waits)
  let keepBest = n * (c + q); // t = 0
  for (let i = 0; i < n; i++) {
    const t = g[i]!;
    const kept = prefix[i + 1]!;
    keepBest = Math.min(keepBest, kept + (n - i - 1) * (t + c + q));
  }

  let best: { cost: number; p: number; w: number } | undefined;
  // starts a lead before every 1/32 of the gaps (and the shortest): O(32·n) a plan, not O(n²)
  const starts = new Set<number>([0]);
  const stride = Math.max(1, Math.floor(n / 32));
  for (let i = 0; i < n; i += stride) if (g[i]! - d > 0) starts.add(g[i]! - d);
  for (const p of starts) {
    const a = below(p);
    const b = below(p + d);
    const early = a * (c + q) + (b - a) * (c + omega * (p + d)) - omega * (prefix[b]! - prefix[a]!);
    for (let j = Math.max(b, 0); j < n; j++) {
      const w = g[j]!;
      if (w < p + d) continue;
      // gaps b..j are served warm; the ones after j are let go at W
      const warm = (j + 1 - b) * c + idle * (prefix[j + 1]! - prefix[b]! - (j + 1 - b) * (p + d));
      const late = (n - j - 1) * (2 * c + idle * (w - p - d) + q);
      const cost = early + warm + late;
      if (!best || cost < best.cost) best = { cost, p, w };
    }
  }
  if (!best || best.cost > PREWARM_MARGIN * keepBest) return undefined;
  return {
    startAfterSeconds: best.p,
    keepUntilSeconds: best.w,
    costPerGapSeconds: best.cost / n,
    keepAliveCostPerGapSeconds: keepBest / n,
  };
}
