/**
 * Provider profiles for the simulator, built from the catalog in `core/`: the hourly price (a stack's
 * `prices` override wins), the billing rules (granularity, per-start minimum, whether boot, idle and storage
 * bill, monthly rental), one-time setup fees, and a cold-start distribution fitted to the catalog's p50/p95.
 *
 * A RunPod serverless stack with a weight cache (`providers.runpod-serverless.weightCache`, a network volume
 * the endpoints load weights from) has two cold-start distributions: the first cold start of a model misses
 * the cache (image start + download from the Hub + load), every later one hits it (image start + load from
 * the volume). Without a cache every cold start is a miss. With FlashBoot on, hits are FlashBoot revives; the
 * profile without a cache draws every cold start from the FlashBoot figures (its first full boot is not
 * modelled), so there the cache's one miss per run is that first boot made visible, not a cost of the cache.
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

/** The cold starts of a profile with a weight cache: the first of a run misses, the later ones hit. */
export interface WeightCacheProfile {
  /** The first cold start of the model: the cache holds no weights yet (image + Hub download + load). */
  readonly miss: ColdStartDistribution;
  /** Data centre of the volume, when known (the stack's `weightCacheDataCenter`). */
  readonly dataCenter?: string;
  readonly source: string;
}

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
  /** Every cold start without a weight cache (each a miss); with one, every cold start after the first (hits). */
  readonly coldStart: ColdStartDistribution;
  readonly coldStartSource: string;
  /** Set when cold starts can load weights from a cache: the first cold start of a run draws `miss`. */
  readonly weightCache?: WeightCacheProfile;
}

/** The stack's weight cache as the simulator sees it; `miss`/`hit` replace the derived distributions. */
export interface WeightCacheOptions {
  readonly dataCenter?: string;
  readonly miss?: ColdStartDistribution;
  readonly hit?: ColdStartDistribution;
}

export interface ProfileOptions {
  /** Price override, USD per GPU-hour. */
  readonly usdPerHour?: number;
  /** The stack's price table (runtime config `prices`); falls back to the catalog. */
  readonly prices?: readonly Pick<PriceEntry, "provider" | "gpu" | "usdPerHour" | "source">[];
  readonly gpuCount?: number;
  /** RunPod serverless FlashBoot (default on, as in the stack schema). */
  readonly flashboot?: boolean;
  /** Replace the cold-start distribution (tests, what-if runs); with a weight cache, the hits' unless `hit`. */
  readonly coldStart?: ColdStartDistribution;
  readonly storageUsdPerHour?: number;
  /**
   * The stack's weight cache (`providers.runpod-serverless.weightCache`). Applies to RunPod serverless, with
   * distributions derived below; elsewhere only when `miss` and `hit` are both given (what-if runs, tests),
   * else it is ignored like `flashboot`.
   */
  readonly weightCache?: WeightCacheOptions;
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

/**
 * Weight cache miss on RunPod serverless: the first cold start of a model, image start + weight download
 * from the Hub + load, with or without FlashBoot (FlashBoot revives a worker that has booted before, so it
 * cannot help the first one). The same ~80 s p50 / 180 s p95 as RUNPOD_NO_FLASHBOOT, from the field report
 * "about 80 s on first boot" of a vLLM worker (knowledgestack/docling-vlm PR #2, reference providers.md §1.8);
 * the p95 is the assumption the simulator already used.
 */
const RUNPOD_CACHE_MISS: ColdStartDistribution = RUNPOD_NO_FLASHBOOT;

/**
 * Weight cache hit on RunPod serverless without FlashBoot: the miss without its download share (image
 * start + load from the network volume). Assumption, derived from a published breakdown of a 7B model's cold
 * start (io.net/p/faq-how-do-i-reduce-gpu-cold-start-times-for-inference): container 5–15 s, CUDA init
 * 3–5 s, download 30–120 s, load to GPU 15–30 s, engine warm-up 5–10 s, total 58–180 s — the span of the miss
 * above. Without the download that leaves 28–60 s; p50 35 s sits in it (the 80 s miss minus a ~45 s
 * download). The p95, 90 s, is above the 60 s of a local disk: a network volume reads slower than local NVMe
 * and has a long tail (github.com/runpod-workers/worker-vllm/issues/111: with a volume attached, delays up to
 * ~2 min). Both lie inside the 7 s – 7 min reported for RunPod cold starts (providers.md §1.8).
 */
const RUNPOD_CACHE_HIT: ColdStartDistribution = { kind: "lognormal", p50Seconds: 35, p95Seconds: 90 };

/**
 * The cache's cold starts on RunPod serverless. Hits with FlashBoot stay at the catalog's FlashBoot figures
 * (a revive restores a worker that has booted before; its weights are already loaded). `given` is the
 * profile's `coldStart` option, which stands for the hits unless `hit` is set.
 */
function runpodWeightCache(
  flashboot: boolean,
  cache: WeightCacheOptions,
  given: ColdStartDistribution | undefined,
): { hit: ColdStartDistribution; miss: ColdStartDistribution; source: string } {
  const [hit, hitSource]: [ColdStartDistribution, string] = cache.hit
    ? [cache.hit, "given"]
    : given
      ? [given, "given"]
      : flashboot
        ? [
            catalogColdStart("runpod-serverless", true)[0],
            "FlashBoot revive as without a cache, blog.runpod.io/introducing-flashboot; ~1.4 s in the field",
          ]
        : [
            RUNPOD_CACHE_HIT,
            "image start + load from the volume, ~80 s boot minus the Hub download (assumed)",
          ];
  const [miss, missSource]: [ColdStartDistribution, string] = cache.miss
    ? [cache.miss, "given"]
    : [RUNPOD_CACHE_MISS, "image + Hub download + load, ~80 s first vLLM boot"];
  const where = cache.dataCenter ? ` in ${cache.dataCenter}` : "";
  return {
    hit,
    miss,
    source: `weight cache${where}: first cold start a miss (${missSource}), later ones hits (${hitSource})`,
  };
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
  const flashboot = options.flashboot ?? true;
  let [coldStart, coldStartSource] = options.coldStart
    ? [options.coldStart, "given"]
    : catalogColdStart(provider, flashboot);
  let weightCache: WeightCacheProfile | undefined;
  const cache = options.weightCache;
  if (cache && (provider === "runpod-serverless" || (cache.miss && cache.hit))) {
    const { hit, miss, source } =
      provider === "runpod-serverless"
        ? runpodWeightCache(flashboot, cache, options.coldStart)
        : { hit: cache.hit!, miss: cache.miss!, source: "weight cache: given miss and hit" };
    coldStart = hit;
    coldStartSource = source;
    weightCache = { miss, ...(cache.dataCenter ? { dataCenter: cache.dataCenter } : {}), source };
  }
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
    ...(weightCache ? { weightCache } : {}),
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
