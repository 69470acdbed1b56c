/**
 * The reference every keep-alive policy is compared with: a true lower bound on what serving the same requests
 * costs, under the same cold-start draws, with waiting and dropping priced.
 *
 * Why the old clairvoyant run was not a bound (issue 21): online policies queue requests during a boot and serve
 * them together, so they bill less busy time; dropped requests cost nothing; and the reference drew its cold starts
 * differently from the policies. Here:
 *
 * - Common random numbers: every run draws its k-th provision's cold start from the k-th value of one stream per
 *   seed and provider (`coldStartDraws`, the first a weight-cache miss where the profile has a cache), so the bound
 *   and every policy see the same boots in the same order.
 * - Prices: a waited second costs `waitUsdPerSecond` per request, never less than a second of the worker (else
 *   making users wait would pay; by default exactly that); a dropped request (its 503 at the queue timeout) costs
 *   that wait plus what serving it alone would have (`dropPenaltyUsd`), so giving up on users is never "cheaper".
 * - The bound: the requests' busy periods without any waiting (intervals [arrival, arrival + service], merged),
 *   and the idle gaps g₁…gₘ between them. A schedule with n worker lives pays at least the n first boots, the
 *   busy time, and every gap but the n − 1 longest (at most n − 1 gaps can have no worker up); each life is billed
 *   at least the provider's minimum and one whole billing unit, and pays its setup fee. Delaying a request by d shortens busy and kept time
 *   by at most d, which its wait pays for. So for every n ≥ 1
 *     LB(n) = rate·max(n·max(minimum, unit), Σₖ≤ₙ boot·Dₖ + busy + Σgaps − top(n−1) gaps)
 *             + storage·(Σₖ≤ₙ Dₖ + busy + kept gaps) + n·fee
 *   and the bound is min over n (and serving no one: every request dropped). Rounding beyond one unit per life is
 *   left out; the bound may be below what any policy can reach, never above.
 * A property test checks it against every runnable policy over thousands of random traces.
 */
import {
  type ColdStartDistribution,
  medianColdStartSeconds,
  type SimProfile,
  sampleColdStart,
} from "./profiles";
import { Random } from "./random";
import type { Arrival } from "./workloads";

/**
 * What a request's waiting second is worth unless configured: nothing beyond the least the bound needs — the
 * worker's own price per second (`effectiveWaitUsdPerSecond` raises any lower figure to it). Set
 * `--wait-price` to what a waiting user costs you.
 */
export const DEFAULT_WAIT_USD_PER_SECOND = 0;

/** The k-th provision's cold start, the same in every run of a seed and provider (common random numbers). */
export class ColdStartDraws {
  private readonly rng: Random;
  private readonly drawn: number[] = [];

  constructor(
    seed: number,
    private readonly profile: Pick<SimProfile, "provider" | "coldStart" | "weightCache">,
  ) {
    this.rng = Random.stream(seed, `cold:${profile.provider}`);
  }

  /** Seconds of the k-th cold start (0-based): a weight-cache miss first where the profile has a cache. */
  at(k: number): number {
    while (this.drawn.length <= k)
      this.drawn.push(sampleColdStart(this.distribution(this.drawn.length), this.rng));
    return this.drawn[k]!;
  }

  private distribution(k: number): ColdStartDistribution {
    const cache = this.profile.weightCache;
    return cache && k === 0 ? cache.miss : this.profile.coldStart;
  }
}

/** What waiting and dropping cost, per second of the worker's price at least (see the header). */
export interface WaitPricing {
  /** USD per request-second waited (effective: at least the worker's own price per second). */
  readonly waitUsdPerSecond: number;
}

/**
 * What a dropped request costs beyond its wait until the 503: what serving it alone would have — its service, one
 * cold start at the median where boots bill, and at least one billing unit or minimum — at the worker's price.
 * (The bound needs at least its service; less would make giving up on users look cheap.)
 */
export function dropPenaltyUsd(profile: SimProfile, serviceSeconds: number): number {
  const { billing } = profile;
  const restart = Math.max(
    billing.granularitySeconds > 1 ? billing.granularitySeconds : 0,
    billing.minimumSeconds,
    billing.billsBoot ? medianColdStartSeconds(profile.coldStart) : 0,
  );
  return (serviceSeconds + restart) * workerUsdPerSecond(profile) + profile.setupFeeUsd;
}

/** The worker's price per second while it is up (compute while idle time bills, plus storage). */
export function workerUsdPerSecond(profile: SimProfile): number {
  return (profile.usdPerHour + profile.storageUsdPerHour) / 3600;
}

/** The wait price a run uses: the configured one, raised to the worker's price per second (see the header). */
export function effectiveWaitUsdPerSecond(
  profile: SimProfile,
  configured = DEFAULT_WAIT_USD_PER_SECOND,
): number {
  return Math.max(configured, workerUsdPerSecond(profile));
}

export interface LowerBound {
  readonly usd: number;
  /** The cheapest schedule's bill by cause (no rounding: the bound leaves it out). */
  readonly billedSeconds: number;
  readonly bootSeconds: number;
  readonly idleSeconds: number;
  readonly computeUsd: number;
  readonly storageUsd: number;
  readonly setupUsd: number;
  /** Worker lives of the cheapest schedule (0: every request dropped was cheapest). */
  readonly lives: number;
  /** Seconds with a request in flight when no one waits. */
  readonly busySeconds: number;
  readonly requests: number;
  /** Idle gaps between busy periods, and those the cheapest schedule bridges with a warm worker. */
  readonly gaps: number;
  readonly gapsKept: number;
}

/**
 * The bound for a sequence of arrivals in time order (see the header). Memory: one number per idle gap.
 * `queueTimeoutSeconds` prices the all-dropped schedule.
 */
export function lowerBound(
  arrivals: Iterable<Arrival>,
  profile: SimProfile,
  draws: ColdStartDraws,
  options: WaitPricing & { readonly queueTimeoutSeconds: number; readonly horizonSeconds: number },
): LowerBound {
  const gaps: number[] = [];
  let busy = 0;
  let periodStart = Number.NaN;
  let periodEnd = Number.NaN;
  let requests = 0;
  let serviceTotal = 0;
  for (const a of arrivals) {
    if (a.time >= options.horizonSeconds) break;
    requests += 1;
    const end = Math.min(options.horizonSeconds, a.time + a.serviceSeconds);
    serviceTotal += a.serviceSeconds;
    if (Number.isNaN(periodStart)) {
      periodStart = a.time;
      periodEnd = end;
    } else if (a.time > periodEnd) {
      busy += periodEnd - periodStart;
      gaps.push(a.time - periodEnd);
      periodStart = a.time;
      periodEnd = end;
    } else if (end > periodEnd) periodEnd = end;
  }
  if (requests === 0) return { ...NOTHING, requests: 0 };
  busy += periodEnd - periodStart;

  const { billing } = profile;
  const rate = profile.usdPerHour / 3600;
  const storage = profile.storageUsdPerHour / 3600;
  const dropAll =
    requests * (options.queueTimeoutSeconds * options.waitUsdPerSecond + dropPenaltyUsd(profile, 0)) +
    serviceTotal * workerUsdPerSecond(profile);

  gaps.sort((x, y) => y - x); // longest first: the ones a schedule with more lives leaves unbridged
  const gapTotal = gaps.reduce((s, g) => s + g, 0);
  const schedule = (n: number, boots: number, released: number) => {
    const kept = gapTotal - released;
    const boot = billing.billsBoot ? boots : 0;
    const idle = billing.billsIdle ? kept : 0;
    // every life is billed at least its minimum and one whole billing unit
    const floor = Math.max(
      billing.minimumSeconds,
      billing.granularitySeconds > 1 ? billing.granularitySeconds : 0,
    );
    const billedSeconds = Math.max(n * floor, boot + busy + idle);
    const computeUsd = rate * billedSeconds;
    const storageUsd = storage * (boots + busy + kept);
    const setupUsd = n * profile.setupFeeUsd;
    return { billedSeconds, bootSeconds: boot, idleSeconds: idle, computeUsd, storageUsd, setupUsd, kept };
  };
  let best: LowerBound = { ...NOTHING, usd: dropAll, busySeconds: busy, requests, gaps: gaps.length };
  let boots = 0; // Σ of the first n draws
  let released = 0; // Σ of the n − 1 longest gaps
  for (let n = 1; n <= gaps.length + 1; n++) {
    boots += draws.at(n - 1);
    if (n >= 2) released += gaps[n - 2]!;
    const s = schedule(n, boots, released);
    const usd = s.computeUsd + s.storageUsd + s.setupUsd;
    if (usd < best.usd) {
      const { kept: _kept, ...bill } = s;
      best = {
        ...bill,
        usd,
        lives: n,
        busySeconds: busy,
        requests,
        gaps: gaps.length,
        gapsKept: gaps.length - (n - 1),
      };
    }
    // with idle time free, another life only adds a boot and a fee
    if (!billing.billsIdle && storage === 0) break;
  }
  return best;
}

const NOTHING: LowerBound = {
  usd: 0,
  billedSeconds: 0,
  bootSeconds: 0,
  idleSeconds: 0,
  computeUsd: 0,
  storageUsd: 0,
  setupUsd: 0,
  lives: 0,
  busySeconds: 0,
  requests: 0,
  gaps: 0,
  gapsKept: 0,
};
