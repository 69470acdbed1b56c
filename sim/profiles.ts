/**
 * Provider profiles for the simulator, built from the catalog in `core/`: the hourly price (a stack's
 * `prices` override wins), the billing rules (granularity, per-start minimum, whether boot, idle and storage
 * bill, monthly rental), one-time setup fees, and a cold-start distribution fitted to the catalog's p50/p95.
 */
import {
  type BillingModel,
  type GpuId,
  PRICES,
  PROVIDERS,
  type PriceEntry,
  type ProviderId,
  priceOf,
} from "../core/catalog";
import type { Random } from "./random";

export type ColdStartDistribution =
  | { readonly kind: "fixed"; readonly seconds: number }
  /** Lognormal through the two quantiles: median p50, 95th percentile p95. */
  | { readonly kind: "lognormal"; readonly p50Seconds: number; readonly p95Seconds: number }
  | { readonly kind: "uniform"; readonly minSeconds: number; readonly maxSeconds: number };

export interface SimProfile {
  readonly provider: ProviderId;
  readonly displayName: string;
  readonly gpu: GpuId;
  readonly gpuCount: number;
  /** USD per hour for the whole worker (all its GPUs) while billed. */
  readonly usdPerHour: number;
  readonly priceSource: string;
  /** One-time fee each time a worker is rented (dedicated servers). */
  readonly setupFeeUsd: number;
  /** USD per hour of disk billed over a worker's whole life where storage bills; 0 when unknown. */
  readonly storageUsdPerHour: number;
  readonly billing: BillingModel;
  readonly coldStart: ColdStartDistribution;
  readonly coldStartSource: string;
}

export interface ProfileOptions {
  /** Price override, USD per GPU-hour. */
  readonly usdPerHour?: number;
  /** The stack's price table (runtime config `prices`); falls back to the catalog. */
  readonly prices?: readonly Pick<PriceEntry, "provider" | "gpu" | "usdPerHour" | "source">[];
  readonly gpuCount?: number;
  /** RunPod serverless FlashBoot (default on, as in the stack schema). */
  readonly flashboot?: boolean;
  /** Replace the cold-start distribution (tests, what-if runs). */
  readonly coldStart?: ColdStartDistribution;
  readonly storageUsdPerHour?: number;
}

/** z of the 95th percentile of a standard normal. */
const Z95 = 1.6448536269514722;

/** RunPod serverless without FlashBoot: a vLLM worker pulls its image and loads weights (assumption). */
const RUNPOD_NO_FLASHBOOT: ColdStartDistribution = { kind: "lognormal", p50Seconds: 80, p95Seconds: 180 };

function catalogColdStart(provider: ProviderId, flashboot: boolean): [ColdStartDistribution, string] {
  const profile = PROVIDERS[provider];
  if (provider === "runpod-serverless" && !flashboot) {
    return [
      RUNPOD_NO_FLASHBOOT,
      "RunPod serverless without FlashBoot: vLLM image + weights, ~80 s (assumed)",
    ];
  }
  if (provider === "hetzner-dedicated") {
    // Robot provisioning of a dedicated server: anywhere between 3 and 15 minutes.
    return [{ kind: "uniform", minSeconds: 180, maxSeconds: 900 }, profile.coldStart.source];
  }
  const { p50Seconds, p95Seconds, source } = profile.coldStart;
  if (p50Seconds <= 0) return [{ kind: "fixed", seconds: 0 }, source];
  return [{ kind: "lognormal", p50Seconds, p95Seconds: Math.max(p50Seconds, p95Seconds) }, source];
}

/** The price entry used for provider × GPU: the stack's table first, then the catalog; undefined if none. */
export function resolvePrice(
  provider: ProviderId,
  gpu: GpuId,
  prices: ProfileOptions["prices"] = [],
): { usdPerHour: number; source: string } | undefined {
  const fromStack = prices.find((p) => p.provider === provider && p.gpu === gpu);
  if (fromStack) return { usdPerHour: fromStack.usdPerHour, source: fromStack.source };
  const fromCatalog = priceOf(PRICES, provider, gpu);
  return fromCatalog ? { usdPerHour: fromCatalog.usdPerHour, source: fromCatalog.source } : undefined;
}

/** The profile of `gpu` on `provider`; throws when no price is known and none is given. */
export function providerProfile(provider: ProviderId, gpu: GpuId, options: ProfileOptions = {}): SimProfile {
  const catalog = PROVIDERS[provider];
  const gpuCount = options.gpuCount ?? 1;
  const price =
    options.usdPerHour !== undefined
      ? { usdPerHour: options.usdPerHour, source: "override" }
      : resolvePrice(provider, gpu, options.prices);
  if (!price) throw new Error(`no price for ${gpu} on ${provider}; set one in ai-orchestrator:prices`);
  const [coldStart, coldStartSource] = options.coldStart
    ? [options.coldStart, "given"]
    : catalogColdStart(provider, options.flashboot ?? true);
  const setupFee = priceOf(PRICES, provider, gpu)?.setupFeeUsd ?? 0;
  return {
    provider,
    displayName: catalog.displayName,
    gpu,
    gpuCount,
    usdPerHour: price.usdPerHour * gpuCount,
    priceSource: price.source,
    setupFeeUsd: setupFee * gpuCount,
    storageUsdPerHour: catalog.billing.billsStorageWhenStopped ? (options.storageUsdPerHour ?? 0) : 0,
    billing: catalog.billing,
    coldStart,
    coldStartSource,
  };
}

/** The cheapest priced GPU of `gpus` on `provider`, or undefined when none has a price. */
export function cheapestProfile(
  provider: ProviderId,
  gpus: readonly GpuId[],
  options: ProfileOptions = {},
): SimProfile | undefined {
  let best: SimProfile | undefined;
  for (const gpu of gpus) {
    if (!PROVIDERS[provider].gpus[gpu] && options.usdPerHour === undefined) continue;
    if (options.usdPerHour === undefined && !resolvePrice(provider, gpu, options.prices)) continue;
    const profile = providerProfile(provider, gpu, options);
    if (!best || profile.usdPerHour < best.usdPerHour) best = profile;
  }
  return best;
}

function lognormalParams(p50: number, p95: number): [number, number] {
  return [Math.log(p50), (Math.log(p95) - Math.log(p50)) / Z95];
}

/** One cold start in seconds. */
export function sampleColdStart(dist: ColdStartDistribution, rng: Random): number {
  switch (dist.kind) {
    case "fixed":
      return dist.seconds;
    case "uniform":
      return rng.uniform(dist.minSeconds, dist.maxSeconds);
    case "lognormal": {
      const [mu, sigma] = lognormalParams(dist.p50Seconds, dist.p95Seconds);
      return sigma > 0 ? rng.lognormal(mu, sigma) : dist.p50Seconds;
    }
  }
}

/** The distribution's mean (what a restart costs on average). */
export function meanColdStartSeconds(dist: ColdStartDistribution): number {
  switch (dist.kind) {
    case "fixed":
      return dist.seconds;
    case "uniform":
      return (dist.minSeconds + dist.maxSeconds) / 2;
    case "lognormal": {
      const [mu, sigma] = lognormalParams(dist.p50Seconds, dist.p95Seconds);
      return Math.exp(mu + (sigma * sigma) / 2);
    }
  }
}

/** The distribution's median (what the catalog calls the typical cold start). */
export function medianColdStartSeconds(dist: ColdStartDistribution): number {
  switch (dist.kind) {
    case "fixed":
      return dist.seconds;
    case "uniform":
      return (dist.minSeconds + dist.maxSeconds) / 2;
    case "lognormal":
      return dist.p50Seconds;
  }
}

/** Short text for reports, e.g. "lognormal p50 30s p95 60s". */
export function describeColdStart(dist: ColdStartDistribution): string {
  switch (dist.kind) {
    case "fixed":
      return `fixed ${dist.seconds}s`;
    case "uniform":
      return `uniform ${dist.minSeconds}–${dist.maxSeconds}s`;
    case "lognormal":
      return `lognormal p50 ${dist.p50Seconds}s p95 ${dist.p95Seconds}s`;
  }
}
