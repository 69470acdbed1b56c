/**
 * Provider and GPU catalog: the published facts the config schema, the trust rules, the controller and the
 * simulator all read. Prices are data (a stack overrides them with `ai-orchestrator:prices`), never logic.
 * Figures carry their source; re-check them before relying on a forecast.
 */

export const GPU_IDS = [
  "RTX_3090",
  "RTX_4090",
  "RTX_4000_SFF_ADA",
  "L4",
  "RTX_A6000",
  "RTX_6000_ADA",
  "L40S",
  "A100_80GB",
  "H100_80GB",
  "H200",
] as const;
export type GpuId = (typeof GPU_IDS)[number];

export interface GpuSpec {
  /** Human-readable name. */
  readonly displayName: string;
  /** Memory per GPU in GiB; decides which models fit. */
  readonly vramGb: number;
}

export const GPUS: Readonly<Record<GpuId, GpuSpec>> = {
  RTX_3090: { displayName: "NVIDIA GeForce RTX 3090", vramGb: 24 },
  RTX_4090: { displayName: "NVIDIA GeForce RTX 4090", vramGb: 24 },
  RTX_4000_SFF_ADA: { displayName: "NVIDIA RTX 4000 SFF Ada", vramGb: 20 },
  L4: { displayName: "NVIDIA L4", vramGb: 24 },
  RTX_A6000: { displayName: "NVIDIA RTX A6000", vramGb: 48 },
  RTX_6000_ADA: { displayName: "NVIDIA RTX 6000 Ada", vramGb: 48 },
  L40S: { displayName: "NVIDIA L40S", vramGb: 48 },
  A100_80GB: { displayName: "NVIDIA A100 80GB", vramGb: 80 },
  H100_80GB: { displayName: "NVIDIA H100 80GB", vramGb: 80 },
  H200: { displayName: "NVIDIA H200", vramGb: 141 },
};

/**
 * Providers report usable memory, a little under the nominal figure (GiB rather than GB, the driver's reserve):
 * a card counts as the catalog's type when it reports at least this share of the type's memory. Far from the
 * cases that matter: a 40 GB A100 against the 80 GB one, a 20 GB RTX 4000 against a 24 GB card.
 */
export const GPU_MEMORY_TOLERANCE = 0.9;

/**
 * Whether a card reporting `reportedGb` of memory per GPU is the catalog's `gpu` by memory. Providers use one
 * name for cards of different memory ("A100 SXM4" for 40 and 80 GB on Vast.ai), so a name match alone is not
 * enough.
 */
export function fitsGpuMemory(gpu: GpuId, reportedGb: number): boolean {
  return reportedGb >= GPUS[gpu].vramGb * GPU_MEMORY_TOLERANCE;
}

/** Providers the controller has adapters for; these are the keys of `ai-orchestrator:providers`. */
export const CONFIGURABLE_PROVIDER_IDS = [
  "runpod-serverless",
  "runpod-pod",
  "vastai",
  "datacrunch",
  "local",
] as const;
export type ConfigurableProviderId = (typeof CONFIGURABLE_PROVIDER_IDS)[number];

/** Every provider the catalog knows, including those only the simulator and the policy pack reason about. */
export const PROVIDER_IDS = [
  ...CONFIGURABLE_PROVIDER_IDS,
  "coreweave",
  "tensordock",
  "hetzner-dedicated",
] as const;
export type ProviderId = (typeof PROVIDER_IDS)[number];

/**
 * certified: audited data-centre operator (SOC 2 / ISO 27001) — may see confidential data.
 * marketplace: third-party hosts vetted only by the marketplace — public data, dev and test.
 * self-hosted: hardware the team runs itself (a `local` URL); trust is the team's own.
 */
export type TrustTier = "certified" | "marketplace" | "self-hosted";

export interface Region {
  /** Provider's own data-centre or location code. */
  readonly id: string;
  /** ISO 3166-1 alpha-2 country code. */
  readonly country: string;
  /** Inside the EU/EEA, so GDPR applies without a transfer mechanism. */
  readonly euEea: boolean;
}

export interface BillingModel {
  /** Billing is rounded up to this many seconds (1 = per second, 3600 = per hour). */
  readonly granularitySeconds: number;
  /** A worker is billed at least this long each time it starts. */
  readonly minimumSeconds: number;
  /** Boot (image pull, weight load) is billed. */
  readonly billsBoot: boolean;
  /** Idle time while the worker is kept warm is billed. */
  readonly billsIdle: boolean;
  /** Storage keeps billing while an instance is stopped but not destroyed. */
  readonly billsStorageWhenStopped: boolean;
  /** Rented by the month whether used or not (dedicated servers). */
  readonly monthlyRental: boolean;
}

export interface ColdStart {
  /** Typical median seconds from "create" to serving the first token. */
  readonly p50Seconds: number;
  /** Typical 95th percentile. */
  readonly p95Seconds: number;
  /** Where the figure comes from. */
  readonly source: string;
}

/** A cloud variant of one provider (RunPod secure vs community) with its own trust tier. */
export interface CloudVariant {
  readonly tier: TrustTier;
  readonly certifications: readonly string[];
  readonly regions: readonly Region[];
}

export interface ProviderProfile {
  readonly id: ProviderId;
  readonly displayName: string;
  /** serverless: the provider queues and scales workers itself; instance: we rent machines one by one. */
  readonly kind: "serverless" | "instance" | "static" | "dedicated";
  /** The controller can provision on it (there is an adapter). */
  readonly hasAdapter: boolean;
  /** Trust by cloud variant; providers without variants have just `default`. */
  readonly clouds: Readonly<Record<string, CloudVariant>>;
  /** Cloud variant used when the stack does not choose one. */
  readonly defaultCloud: string;
  readonly billing: BillingModel;
  readonly coldStart: ColdStart;
  /** GPUs this provider can serve, with the provider's own id for each. */
  readonly gpus: Readonly<Partial<Record<GpuId, ProviderGpu>>>;
  /** Default API base URL; `apiBase` in stack config overrides it (e.g. for a contract fake). */
  readonly apiBase?: string;
  /** Secret config keys (without namespace) the controller needs to talk to it. */
  readonly credentialKeys: readonly string[];
}

export interface ProviderGpu {
  /** The provider's identifier for this GPU (RunPod type id, Vast.ai gpu_name, Verda instance type …). */
  readonly providerGpuId: string;
  /** RunPod serverless pool id (`ADA_24`), where the provider groups GPUs into pools. */
  readonly pool?: string;
}

const PER_SECOND: BillingModel = {
  granularitySeconds: 1,
  minimumSeconds: 0,
  billsBoot: true,
  billsIdle: true,
  billsStorageWhenStopped: false,
  monthlyRental: false,
};

const RUNPOD_SECURE_REGIONS: readonly Region[] = [
  { id: "EU-RO-1", country: "RO", euEea: true },
  { id: "EU-SE-1", country: "SE", euEea: true },
  { id: "EU-NL-1", country: "NL", euEea: true },
  { id: "EU-CZ-1", country: "CZ", euEea: true },
  { id: "US-TX-3", country: "US", euEea: false },
  { id: "US-GA-1", country: "US", euEea: false },
  { id: "US-CA-2", country: "US", euEea: false },
  { id: "CA-MTL-1", country: "CA", euEea: false },
];

const RUNPOD_GPUS: Partial<Record<GpuId, ProviderGpu>> = {
  RTX_3090: { providerGpuId: "NVIDIA GeForce RTX 3090", pool: "AMPERE_24" },
  RTX_4090: { providerGpuId: "NVIDIA GeForce RTX 4090", pool: "ADA_24" },
  L4: { providerGpuId: "NVIDIA L4", pool: "AMPERE_24" },
  RTX_A6000: { providerGpuId: "NVIDIA RTX A6000", pool: "AMPERE_48" },
  RTX_6000_ADA: { providerGpuId: "NVIDIA RTX 6000 Ada Generation", pool: "ADA_48_PRO" },
  L40S: { providerGpuId: "NVIDIA L40S", pool: "ADA_48_PRO" },
  A100_80GB: { providerGpuId: "NVIDIA A100 80GB PCIe", pool: "AMPERE_80" },
  H100_80GB: { providerGpuId: "NVIDIA H100 80GB HBM3", pool: "ADA_80_PRO" },
  H200: { providerGpuId: "NVIDIA H200", pool: "HOPPER_141" },
};

const RUNPOD_CLOUDS: Record<string, CloudVariant> = {
  secure: { tier: "certified", certifications: ["SOC 2 Type II"], regions: RUNPOD_SECURE_REGIONS },
  // Community Cloud runs on vetted third-party hosts; RunPod publishes no per-host location list.
  community: { tier: "marketplace", certifications: [], regions: [] },
};

export const PROVIDERS: Readonly<Record<ProviderId, ProviderProfile>> = {
  "runpod-serverless": {
    id: "runpod-serverless",
    displayName: "RunPod Serverless",
    kind: "serverless",
    hasAdapter: true,
    clouds: RUNPOD_CLOUDS,
    defaultCloud: "secure",
    billing: PER_SECOND,
    coldStart: {
      p50Seconds: 1,
      p95Seconds: 2.3,
      source:
        "RunPod FlashBoot: p95 under 2.3 s (blog.runpod.io/introducing-flashboot); ~80 s first vLLM boot",
    },
    gpus: RUNPOD_GPUS,
    apiBase: "https://api.runpod.io",
    credentialKeys: ["runpodApiKey"],
  },
  "runpod-pod": {
    id: "runpod-pod",
    displayName: "RunPod Pods",
    kind: "instance",
    hasAdapter: true,
    clouds: RUNPOD_CLOUDS,
    defaultCloud: "secure",
    billing: PER_SECOND,
    coldStart: { p50Seconds: 90, p95Seconds: 300, source: "pod start + vLLM weight load, field reports" },
    gpus: RUNPOD_GPUS,
    apiBase: "https://api.runpod.io",
    credentialKeys: ["runpodApiKey"],
  },
  vastai: {
    id: "vastai",
    displayName: "Vast.ai",
    kind: "instance",
    hasAdapter: true,
    clouds: { default: { tier: "marketplace", certifications: [], regions: [] } },
    defaultCloud: "default",
    // GPU bills only while running, storage from creation until destroyed.
    billing: { ...PER_SECOND, billsStorageWhenStopped: true },
    coldStart: {
      p50Seconds: 240,
      p95Seconds: 900,
      source: "marketplace hosts: image pull of minutes, variable",
    },
    gpus: {
      RTX_3090: { providerGpuId: "RTX 3090" },
      RTX_4090: { providerGpuId: "RTX 4090" },
      L4: { providerGpuId: "L4" },
      RTX_A6000: { providerGpuId: "RTX A6000" },
      RTX_6000_ADA: { providerGpuId: "RTX 6000Ada" },
      L40S: { providerGpuId: "L40S" },
      A100_80GB: { providerGpuId: "A100 SXM4" },
      H100_80GB: { providerGpuId: "H100 SXM" },
    },
    apiBase: "https://console.vast.ai/api/v0",
    credentialKeys: ["vastaiApiKey"],
  },
  datacrunch: {
    id: "datacrunch",
    displayName: "DataCrunch (Verda)",
    kind: "instance",
    hasAdapter: true,
    clouds: {
      default: {
        tier: "certified",
        certifications: ["ISO 27001", "GDPR"],
        regions: [
          { id: "FIN-01", country: "FI", euEea: true },
          { id: "FIN-02", country: "FI", euEea: true },
          { id: "FIN-03", country: "FI", euEea: true },
          { id: "ICE-01", country: "IS", euEea: true },
        ],
      },
    },
    defaultCloud: "default",
    billing: PER_SECOND,
    coldStart: { p50Seconds: 30, p95Seconds: 60, source: "DataCrunch instance start ~30 s (published)" },
    // The GPU model as it appears in Verda's instance type ids (after the GPU count: `1A100.22V`, `2A100.44V`,
    // `1A100.40S.22V`, `1H100.80S.22V`, `1A6000.10V`). A model covers cards of different memory (A100 40/80 GB):
    // the adapter also checks each type's `gpu_memory` per GPU against the GPU's vramGb (`fitsGpuMemory`).
    gpus: {
      A100_80GB: { providerGpuId: "A100" },
      H100_80GB: { providerGpuId: "H100" },
      L40S: { providerGpuId: "L40S" },
      RTX_6000_ADA: { providerGpuId: "RTX6000ADA" },
      RTX_A6000: { providerGpuId: "A6000" },
    },
    apiBase: "https://api.verda.com/v1",
    credentialKeys: ["datacrunchClientId", "datacrunchClientSecret"],
  },
  local: {
    id: "local",
    displayName: "Local OpenAI-compatible server",
    kind: "static",
    hasAdapter: true,
    clouds: { default: { tier: "self-hosted", certifications: [], regions: [] } },
    defaultCloud: "default",
    billing: { ...PER_SECOND, billsBoot: false, billsIdle: false },
    coldStart: { p50Seconds: 0, p95Seconds: 0, source: "always running" },
    // A local server runs whatever GPU the team owns; the GPU list only documents intent.
    gpus: Object.fromEntries(GPU_IDS.map((g) => [g, { providerGpuId: g }])),
    credentialKeys: [],
  },
  coreweave: {
    id: "coreweave",
    displayName: "CoreWeave",
    kind: "instance",
    hasAdapter: false,
    clouds: { default: { tier: "certified", certifications: ["SOC 2 Type II"], regions: [] } },
    defaultCloud: "default",
    billing: { ...PER_SECOND, granularitySeconds: 3600 },
    coldStart: { p50Seconds: 45, p95Seconds: 60, source: "CoreWeave legacy Knative: under 60 s" },
    gpus: {
      A100_80GB: { providerGpuId: "A100_NVLINK_80GB" },
      H100_80GB: { providerGpuId: "H100_NVLINK_80GB" },
    },
    apiBase: "https://api.coreweave.com",
    credentialKeys: [],
  },
  tensordock: {
    id: "tensordock",
    displayName: "TensorDock",
    kind: "instance",
    hasAdapter: false,
    clouds: { default: { tier: "marketplace", certifications: [], regions: [] } },
    defaultCloud: "default",
    billing: PER_SECOND,
    coldStart: { p50Seconds: 120, p95Seconds: 300, source: "VM boot + image pull, unverified" },
    gpus: { RTX_4090: { providerGpuId: "geforcertx4090-pcie-24gb" } },
    apiBase: "https://dashboard.tensordock.com/api/v2",
    credentialKeys: [],
  },
  "hetzner-dedicated": {
    id: "hetzner-dedicated",
    displayName: "Hetzner dedicated GPU server (GEX44)",
    kind: "dedicated",
    hasAdapter: false,
    clouds: {
      default: {
        tier: "certified",
        certifications: ["ISO 27001", "GDPR"],
        regions: [
          { id: "FSN1", country: "DE", euEea: true },
          { id: "NBG1", country: "DE", euEea: true },
        ],
      },
    },
    defaultCloud: "default",
    billing: {
      granularitySeconds: 3600,
      minimumSeconds: 30 * 24 * 3600,
      billsBoot: true,
      billsIdle: true,
      billsStorageWhenStopped: true,
      monthlyRental: true,
    },
    coldStart: { p50Seconds: 540, p95Seconds: 900, source: "Hetzner Robot provisioning 3–15 min" },
    gpus: { RTX_4000_SFF_ADA: { providerGpuId: "GEX44" } },
    credentialKeys: [],
  },
};

/** A published price for one GPU on one provider (and cloud variant). */
export interface PriceEntry {
  readonly provider: ProviderId;
  readonly gpu: GpuId;
  /** USD per GPU-hour while billed. For monthly rentals, the monthly price / 730. */
  readonly usdPerHour: number;
  /** Cloud variant the price is for; absent = the provider's default cloud. */
  readonly cloud?: string;
  /** Marketplace prices move; the range seen. */
  readonly usdPerHourRange?: readonly [number, number];
  /** One-time fee per rental (dedicated servers). */
  readonly setupFeeUsd?: number;
  readonly source: string;
}

/** Hours in the average month, the unit every monthly figure uses (8760 / 12). */
export const HOURS_PER_MONTH = 730;

/** EUR → USD used to express euro list prices; a stack overrides it through `ai-orchestrator:prices`. */
export const EUR_TO_USD = 1.08;

const perSecondToHourly = (usdPerSecond: number): number => Math.round(usdPerSecond * 3600 * 1e6) / 1e6;

export const PRICES: readonly PriceEntry[] = [
  { provider: "runpod-pod", gpu: "RTX_4090", usdPerHour: 0.34, source: "RunPod secure cloud list price" },
  { provider: "runpod-pod", gpu: "A100_80GB", usdPerHour: 1.74, source: "RunPod secure cloud list price" },
  ...(
    [
      ["RTX_3090", 0.00019],
      ["L4", 0.00019],
      ["RTX_4090", 0.00031],
      ["RTX_A6000", 0.00034],
      ["L40S", 0.00053],
      ["RTX_6000_ADA", 0.00053],
      ["A100_80GB", 0.00076],
      ["H100_80GB", 0.00116],
      ["H200", 0.00155],
    ] as const
  ).map(
    ([gpu, perSecond]): PriceEntry => ({
      provider: "runpod-serverless",
      gpu,
      usdPerHour: perSecondToHourly(perSecond),
      source: `RunPod serverless flex $${perSecond}/s (docs serverless pricing table)`,
    }),
  ),
  { provider: "datacrunch", gpu: "A100_80GB", usdPerHour: 0.75, source: "DataCrunch published price" },
  { provider: "coreweave", gpu: "A100_80GB", usdPerHour: 1.1, source: "CoreWeave published price" },
  { provider: "tensordock", gpu: "RTX_4090", usdPerHour: 0.35, source: "TensorDock published price" },
  {
    provider: "vastai",
    gpu: "RTX_3090",
    usdPerHour: 0.2,
    usdPerHourRange: [0.1, 0.3],
    source: "Vast.ai marketplace asks $0.10–0.30/h",
  },
  {
    provider: "hetzner-dedicated",
    gpu: "RTX_4000_SFF_ADA",
    usdPerHour: Math.round(((184 * EUR_TO_USD) / HOURS_PER_MONTH) * 1e6) / 1e6,
    setupFeeUsd: Math.round(41.5 * EUR_TO_USD * 100) / 100,
    source: "Hetzner GEX44 €184/month + €41.50 setup",
  },
];

/** Stack-level price overrides: provider → GPU → USD per hour. */
export type PriceOverrides = Partial<Record<ProviderId, Partial<Record<GpuId, number>>>>;

/** The price table with a stack's overrides applied; overrides win and may add prices the catalog lacks. */
export function resolvePrices(overrides: PriceOverrides = {}): PriceEntry[] {
  const table = new Map<string, PriceEntry>();
  for (const entry of PRICES) table.set(`${entry.provider}/${entry.gpu}`, entry);
  for (const [provider, byGpu] of Object.entries(overrides) as [
    ProviderId,
    Partial<Record<GpuId, number>>,
  ][]) {
    for (const [gpu, usdPerHour] of Object.entries(byGpu) as [GpuId, number][]) {
      const base = table.get(`${provider}/${gpu}`);
      table.set(`${provider}/${gpu}`, {
        ...base,
        provider,
        gpu,
        usdPerHour,
        usdPerHourRange: undefined,
        source: "stack override (ai-orchestrator:prices)",
      });
    }
  }
  return [...table.values()];
}

/** The hourly price of `gpu` on `provider`, or undefined when neither catalog nor stack knows it. */
export function priceOf(
  prices: readonly PriceEntry[],
  provider: ProviderId,
  gpu: GpuId,
): PriceEntry | undefined {
  return prices.find((p) => p.provider === provider && p.gpu === gpu);
}

export function isGpuId(value: string): value is GpuId {
  return (GPU_IDS as readonly string[]).includes(value);
}

export function isProviderId(value: string): value is ProviderId {
  return (PROVIDER_IDS as readonly string[]).includes(value);
}

export function isConfigurableProviderId(value: string): value is ConfigurableProviderId {
  return (CONFIGURABLE_PROVIDER_IDS as readonly string[]).includes(value);
}
