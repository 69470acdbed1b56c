/**
 * The forecast: every model × provider × usage pattern (or trace) × policy of a stack, simulated through the
 * real scaling policy, with cost, waits and the overhead beyond the active hours' price made explicit.
 */

import { type GpuId, isProviderId, type ProviderId } from "../core/catalog";
import { type RuntimeConfig, weightCacheDataCenter } from "../core/config";
import type { ModelKind } from "../core/engine-routes";
import type { UsagePatternId } from "../core/usage-patterns";
import { cents } from "./billing";
import { cheapestProfile, describeColdStart, type SimProfile, type WeightCacheOptions } from "./profiles";
import { hashLabel } from "./random";
import { POLICY_IDS, type PolicyId, type RunResult, type SimModel, simulateRun } from "./simulate";
import type { TraceFile } from "./trace";
import {
  type ArrivalProcess,
  burstyArrivals,
  PATTERN_IDS,
  patternWorkload,
  REQUEST_SHAPES,
  type Workload,
} from "./workloads";

export type PatternOrTrace = UsagePatternId | "trace";

/** One row of the forecast: a model on a provider's cheapest fitting GPU, a workload and a policy. */
export interface SimResult {
  readonly model: string;
  readonly provider: ProviderId;
  readonly gpu: GpuId;
  readonly pattern: PatternOrTrace;
  readonly policy: PolicyId;
  /** The pattern's active hours (a trace: hours with a request in flight). */
  readonly activeHours: number;
  readonly billedHours: number;
  readonly costUsd: number;
  /** (always-on cost − this cost) / always-on cost, in percent. */
  readonly savingsVsAlwaysOnPct: number;
  /**
   * totalUsd / the lower bound's (sim/bound.ts): waiting and dropped requests priced, so a policy cannot look
   * cheaper than the bound by making users wait; null when the bound costs nothing.
   */
  readonly costRatioToBound: number | null;
  /** The bill plus the priced waiting (`waitUsdPerSecond`) and dropped requests: what the ratio compares. */
  readonly totalUsd: number;
  /** What waiting cost at the run's wait price. */
  readonly waitUsd: number;
  readonly coldStarts: number;
  /** Cold starts that loaded the weights from the stack's weight cache (0 without one). */
  readonly coldStartHits: number;
  /** Cold starts that downloaded the weights: the first of the run with a cache, every one without. */
  readonly coldStartMisses: number;
  /** Whether the provider's workers load weights from a cache (RunPod serverless with `weightCache`). */
  readonly weightCache: boolean;
  readonly waitP50Seconds: number;
  readonly waitP95Seconds: number;
  readonly waitP99Seconds: number;
  readonly costPer1000Requests: number | null;
  readonly requests: number;
  /** Requests that waited past queueTimeoutSeconds (503). */
  readonly timedOut: number;
  /** Hours with at least one request in flight. */
  readonly busyHours: number;
  readonly usdPerHour: number;
  /** What core/usage-patterns forecasts: the active hours at the hourly price. */
  readonly activeCostUsd: number;
  /** costUsd − activeCostUsd: cold starts, keep-alive and rounding beyond the active hours (negative when
   *  the policy let workers go inside the active periods). */
  readonly overheadUsd: number;
  /** Keep-alive at the end of the run; null for always-on (never released) and the lower bound. */
  readonly keepAliveSeconds: number | null;
  readonly horizonHours: number;
  /** Billed worker-hours by cause, and fees. */
  readonly breakdown: {
    readonly bootHours: number;
    readonly busyHours: number;
    readonly idleHours: number;
    readonly roundingHours: number;
    readonly setupUsd: number;
    readonly storageUsd: number;
  };
}

export interface Forecast {
  readonly seed: number;
  readonly results: SimResult[];
  /** Model × provider pairs that could not be simulated, with why. */
  readonly unpriced: string[];
  /** What the numbers assume, one line each. */
  readonly assumptions: string[];
}

export interface ForecastOptions {
  /** Usage patterns to simulate; default all four. Ignored with `trace`. */
  readonly patterns?: readonly UsagePatternId[];
  /** Policies to report; default all six (always-on and bound always run: savings and ratios need them). */
  readonly policies?: readonly PolicyId[];
  /** Default 1. */
  readonly seed?: number;
  /** Mean requests per second during active hours; default 0.1. */
  readonly ratePerSecond?: number;
  /** Default "bursty" (1-minute bursts, 4-minute quiet spells). */
  readonly arrivals?: "poisson" | "bursty";
  /** Replay this trace instead of the usage patterns. */
  readonly trace?: TraceFile;
  /** Simulate these providers instead of each model's own list (catalog prices fill the gaps). */
  readonly providers?: readonly ProviderId[];
  /** Only these models. */
  readonly models?: readonly string[];
  /** Length of a pattern run; default one month (730 h). */
  readonly horizonSeconds?: number;
  /** Progress, 0..1, with what is being simulated. */
  readonly onProgress?: (fraction: number, label: string) => void;
  /** USD per request-second waited, for the totals the ratio to the bound compares. @default the worker's price per second */
  readonly waitUsdPerSecond?: number;
}

export const DEFAULT_RATE_PER_SECOND = 0.1;

const round = (x: number, digits: number): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

interface Job {
  readonly model: RuntimeConfig["models"][number];
  readonly simModel: SimModel;
  readonly profile: SimProfile;
  readonly workload: Workload;
  readonly weight: number;
}

/** Simulate a stack's models; synchronous (CPU-bound), deterministic for a seed. */
export function forecastForStack(runtime: RuntimeConfig, options: ForecastOptions = {}): Forecast {
  const seed = options.seed ?? 1;
  // a kind may have its own usual rate (images are occasional: REQUEST_SHAPES); an asked rate applies to all
  const rateOf = (kind: ModelKind): number =>
    options.ratePerSecond ?? REQUEST_SHAPES[kind].defaultRatePerSecond ?? DEFAULT_RATE_PER_SECOND;
  const processOf = (rate: number): ArrivalProcess =>
    options.arrivals === "poisson" ? { kind: "poisson", ratePerSecond: rate } : burstyArrivals(rate);
  const rates = new Set<string>();
  const wanted = options.policies ?? POLICY_IDS;
  const policies = POLICY_IDS.filter((p) => wanted.includes(p) || p === "always-on" || p === "bound");
  const patterns: readonly PatternOrTrace[] = options.trace ? ["trace"] : (options.patterns ?? PATTERN_IDS);
  const unpriced: string[] = [];
  const assumptions: string[] = [];
  const jobs: Job[] = [];
  const coldStartNotes = new Map<string, string>();
  const runpod = runtime.providers["runpod-serverless"];
  const cacheDataCenter = runpod ? weightCacheDataCenter(runpod) : undefined;
  // The stack's weight cache reaches the RunPod serverless profile the way FlashBoot does.
  const weightCache: WeightCacheOptions | undefined = runpod?.weightCache
    ? { ...(cacheDataCenter ? { dataCenter: cacheDataCenter } : {}) }
    : undefined;

  const models = runtime.models.filter((m) => !options.models || options.models.includes(m.name));
  for (const model of models) {
    const providers = options.providers ?? model.providers;
    for (const provider of providers) {
      if (!isProviderId(provider)) continue;
      if (provider === "local") {
        unpriced.push(`${model.name} on local: the team's own hardware has no per-hour price`);
        continue;
      }
      const profile = cheapestProfile(provider, model.gpu, {
        prices: runtime.prices.filter((p): p is typeof p & { provider: ProviderId } =>
          isProviderId(p.provider),
        ),
        gpuCount: model.gpuCount,
        flashboot: runpod?.flashboot ?? true,
        weightCache,
      });
      if (!profile) {
        unpriced.push(`${model.name} on ${provider}: no price for ${model.gpu.join(", ")}`);
        continue;
      }
      coldStartNotes.set(
        provider,
        profile.weightCache
          ? `${provider}: ${profile.weightCache.source}; miss ${describeColdStart(profile.weightCache.miss)}, hit ${describeColdStart(profile.coldStart)}; the cache starts empty each run, its storage is not priced`
          : `${provider}: cold start ${describeColdStart(profile.coldStart)} (${profile.coldStartSource})`,
      );
      const simModel: SimModel = {
        name: model.name,
        minWorkers: model.minWorkers,
        maxWorkers: model.maxWorkers,
        targetConcurrency: model.targetConcurrency,
        alwaysOn: model.alwaysOn,
        queueTimeoutSeconds: model.queueTimeoutSeconds,
      };
      const shape = REQUEST_SHAPES[model.kind];
      const rate = rateOf(model.kind);
      const process = processOf(rate);
      rates.add(
        options.ratePerSecond === undefined && shape.defaultRatePerSecond !== undefined
          ? `${rate} for ${model.kind} models`
          : `${rate}`,
      );
      for (const pattern of patterns) {
        const workload =
          pattern === "trace"
            ? options.trace!.workload(model.name, shape)
            : patternWorkload({
                pattern,
                arrivals: process,
                shape,
                seed,
                label: model.name,
                horizonSeconds: options.horizonSeconds,
              });
        jobs.push({ model, simModel, profile, workload, weight: 1000 + workload.expectedRequests });
      }
    }
  }

  const totalWeight = jobs.reduce((s, j) => s + j.weight * policies.length, 0) || 1;
  let doneWeight = 0;
  const results: SimResult[] = [];
  for (const job of jobs) {
    const runs = new Map<PolicyId, RunResult>();
    for (const policy of policies) {
      const label = `${job.model.name} on ${job.profile.provider}, ${job.workload.id}, ${policy}`;
      const run = simulateRun({
        model: job.simModel,
        profile: job.profile,
        policy,
        workload: job.workload,
        seed: (seed ^ hashLabel(`${job.model.name}:${job.workload.id}`)) >>> 0,
        // --wait-price, else the model's own price of a waited second (what the controller weighs)
        waitUsdPerSecond: options.waitUsdPerSecond ?? job.model.waitUsdPerSecond,
        onProgress: options.onProgress
          ? (f) => options.onProgress!((doneWeight + f * job.weight) / totalWeight, label)
          : undefined,
      });
      doneWeight += job.weight;
      runs.set(policy, run);
    }
    const alwaysOnCost = runs.get("always-on")!.bill.usd;
    const boundCost = runs.get("bound")!.totalUsd;
    for (const policy of policies) {
      if (!wanted.includes(policy)) continue;
      results.push(toResult(job, runs.get(policy)!, alwaysOnCost, boundCost));
    }
  }

  assumptions.push(
    options.trace
      ? `arrivals: replayed from ${options.trace.path} (${[...options.trace.models.values()].reduce((a, b) => a + b, 0)} requests)`
      : `arrivals: ${options.arrivals === "poisson" ? "Poisson" : "bursty (1-min bursts, 4-min quiet spells)"}, mean ${[...rates].sort().join(", ") || rateOf("chat")} requests/s during active hours; seed ${seed}`,
    "service time per request: chat/completion 0.3 s + ~250 tokens (lognormal) at 50 tokens/s; embedding ~30 ms; image ~4.5 s; up to targetConcurrency per worker at full speed",
    ...coldStartNotes.values(),
    ...(jobs.some((j) => j.profile.billing.billsStorageWhenStopped)
      ? ["disk storage (Vast.ai, dedicated servers) has no catalog price and is counted as $0"]
      : []),
    "budgets are not applied; a request waiting longer than queueTimeoutSeconds counts as timed out (503)",
    `policy: the deployed one is auto (break-even refined by the idle-gap history: 'adaptive' here); ratios are to the lower bound of sim/bound.ts (nobody waits, the same cold-start draws, the cheapest choice of idle gaps to bridge), with a request's waiting second priced at ${options.waitUsdPerSecond ? `$${options.waitUsdPerSecond}` : "the model's waitUsdPerSecond where it has one, else the worker's price per second"} (never less than the worker's) and a dropped request at its wait plus what serving it alone would have cost`,
    "overhead = cost − active hours × price: cold starts, keep-alive and rounding (negative when workers are let go inside active hours)",
  );
  return { seed, results, unpriced, assumptions };
}

function toResult(job: Job, run: RunResult, alwaysOnCost: number, boundCost: number): SimResult {
  const cost = run.bill.usd;
  const activeHours = run.activeSeconds / 3600;
  const activeCost = activeHours * job.profile.usdPerHour;
  return {
    model: job.model.name,
    provider: job.profile.provider,
    gpu: job.profile.gpu,
    pattern: job.workload.id,
    policy: run.policy,
    activeHours: round(activeHours, 2),
    billedHours: round(run.bill.billedSeconds / 3600, 2),
    costUsd: cents(cost),
    savingsVsAlwaysOnPct: alwaysOnCost > 0 ? round(((alwaysOnCost - cost) / alwaysOnCost) * 100, 1) : 0,
    costRatioToBound: boundCost > 0 ? round(run.totalUsd / boundCost, 3) : run.totalUsd > 0 ? null : 1,
    totalUsd: cents(run.totalUsd),
    waitUsd: cents(run.waitUsd),
    coldStarts: run.coldStarts,
    coldStartHits: run.coldStartHits,
    coldStartMisses: run.coldStartMisses,
    weightCache: job.profile.weightCache !== undefined,
    waitP50Seconds: round(run.wait.quantile(0.5), 3),
    waitP95Seconds: round(run.wait.quantile(0.95), 3),
    waitP99Seconds: round(run.wait.quantile(0.99), 3),
    costPer1000Requests: run.requests > 0 ? round((cost / run.requests) * 1000, 4) : null,
    requests: run.requests,
    timedOut: run.timedOut,
    busyHours: round(run.busySeconds / 3600, 2),
    usdPerHour: job.profile.usdPerHour,
    activeCostUsd: cents(activeCost),
    overheadUsd: cents(cost - activeCost),
    keepAliveSeconds: Number.isFinite(run.keepAliveSeconds) ? round(run.keepAliveSeconds, 1) : null,
    horizonHours: round(run.horizonSeconds / 3600, 2),
    breakdown: {
      bootHours: round(run.bill.bootSeconds / 3600, 2),
      busyHours: round(run.bill.busySeconds / 3600, 2),
      idleHours: round(run.bill.idleSeconds / 3600, 2),
      roundingHours: round(run.bill.roundingSeconds / 3600, 2),
      setupUsd: cents(run.bill.setupUsd),
      storageUsd: cents(run.bill.storageUsd),
    },
  };
}
