/**
 * Trust rules: which provider offerings may see which data class, and where (GDPR). The policy pack judges a
 * planned stack with these functions and the controller calls the same ones before every provision, so a
 * provider the pack forbids is refused at run time too — with the same reason text.
 */
import {
  type ConfigurableProviderId,
  PROVIDER_IDS,
  PROVIDERS,
  type ProviderId,
  type Region,
  type TrustTier,
} from "./catalog";
import type { RuntimeConfig } from "./config/runtime";
import type { DataClass } from "./config/schema";
import { parseUnitName } from "./variants";

/** One provider in one cloud variant: `runpod-serverless:secure`, `vastai`. */
export interface Offering {
  readonly id: string;
  readonly provider: ProviderId;
  readonly cloud: string;
  readonly tier: TrustTier;
  readonly certifications: readonly string[];
  readonly regions: readonly Region[];
}

export const OFFERINGS: readonly Offering[] = PROVIDER_IDS.flatMap((provider) => {
  const clouds = Object.entries(PROVIDERS[provider].clouds);
  return clouds.map(([cloud, variant]) => ({
    id: clouds.length > 1 ? `${provider}:${cloud}` : provider,
    provider,
    cloud,
    tier: variant.tier,
    certifications: variant.certifications,
    regions: variant.regions,
  }));
});
export const OFFERING_IDS = OFFERINGS.map((o) => o.id) as [string, ...string[]];

/** The offering a configured provider uses: its `cloud` setting, or the provider's default cloud. */
export function offeringFor(provider: ProviderId, cloud?: string): Offering {
  const chosen = cloud ?? PROVIDERS[provider].defaultCloud;
  const offering = OFFERINGS.find((o) => o.provider === provider && o.cloud === chosen);
  if (!offering) throw new Error(`provider ${provider} has no cloud "${chosen}"`);
  return offering;
}

/**
 * Default tiers per data class. confidential: certified only. internal: certified, plus the team's own hardware.
 * public: marketplace hosts too (dev and test).
 */
export const TIERS_BY_DATA_CLASS: Readonly<Record<DataClass, readonly TrustTier[]>> = {
  confidential: ["certified"],
  internal: ["certified", "self-hosted"],
  public: ["certified", "marketplace", "self-hosted"],
};

export function defaultApprovedOfferings(dataClass: DataClass): string[] {
  return OFFERINGS.filter((o) => TIERS_BY_DATA_CLASS[dataClass].includes(o.tier)).map((o) => o.id);
}

/** A deliberate, named decision to let one model use one offering its data class would refuse. */
export interface TrustException {
  readonly name: string;
  readonly model: string;
  readonly provider: string;
  readonly reason: string;
}

/** Trust settings of a stack (`ai-orchestrator:trust`): lists may only tighten; loosening takes an exception. */
export interface TrustConfig {
  readonly approved: Readonly<Partial<Record<DataClass, readonly string[]>>>;
  readonly exceptions: readonly TrustException[];
}

export const NO_TRUST_OVERRIDES: TrustConfig = { approved: {}, exceptions: [] };

export interface TrustDecision {
  readonly allowed: boolean;
  /** Why — the same sentence the policy pack reports and the controller logs. */
  readonly reason: string;
  /** How to change the config so the decision changes; present when refused. */
  readonly fix?: string;
  /** The exception that allowed it, if one did. */
  readonly exception?: string;
}

export interface ProviderUse {
  readonly model: string;
  readonly dataClass: DataClass;
  readonly provider: ConfigurableProviderId;
  /** RunPod `cloud` setting; absent = the provider's default. */
  readonly cloud?: string;
}

/** An organisation's extra tightening (the policy pack's config), applied on top of the stack's lists. */
export interface TrustTightening {
  readonly approved?: Readonly<Partial<Record<DataClass, readonly string[]>>>;
  /** Whether named exceptions in stack config are honoured. @default true */
  readonly allowExceptions?: boolean;
}

/** The offerings a data class may use under a stack's settings and an organisation's tightening. */
export function approvedOfferings(
  dataClass: DataClass,
  trust: TrustConfig,
  tightening: TrustTightening = {},
): string[] {
  let list = [...(trust.approved[dataClass] ?? defaultApprovedOfferings(dataClass))];
  // A stack cannot widen confidential by listing more: only the defaults count there.
  if (dataClass === "confidential")
    list = list.filter((id) => defaultApprovedOfferings("confidential").includes(id));
  const org = tightening.approved?.[dataClass];
  if (org) list = list.filter((id) => org.includes(id));
  return list;
}

/** May this model's data go to this provider? */
export function decideProviderUse(
  use: ProviderUse,
  trust: TrustConfig,
  tightening: TrustTightening = {},
): TrustDecision {
  const offering = offeringFor(use.provider, use.cloud);
  const approved = approvedOfferings(use.dataClass, trust, tightening);
  if (approved.includes(offering.id)) {
    return {
      allowed: true,
      reason: `${offering.id} (${offering.tier}) is approved for ${use.dataClass} data`,
    };
  }
  const exception = trust.exceptions.find((e) => e.model === use.model && e.provider === offering.id);
  if (exception && tightening.allowExceptions !== false) {
    return {
      allowed: true,
      exception: exception.name,
      reason: `${offering.id} is allowed for model "${use.model}" by exception "${exception.name}": ${exception.reason}`,
    };
  }
  const cloudHint =
    offering.cloud === "community" ? `set ai-orchestrator:providers.${use.provider}.cloud to secure, ` : "";
  return {
    allowed: false,
    reason:
      `model "${use.model}" holds ${use.dataClass} data but ${offering.id} is a ${offering.tier} provider; ` +
      `${use.dataClass} data may only go to ${approved.length > 0 ? approved.join(", ") : "no provider"}`,
    fix:
      `${cloudHint}remove ${use.provider} from the model's providers or replace it with an approved one` +
      (exception ? " (the exception that names it is not honoured by this organisation's policy)" : "") +
      `; if the data is not ${use.dataClass}, set the model's dataClass` +
      (use.dataClass === "confidential"
        ? "; a deliberate exception goes under ai-orchestrator:trust.exceptions"
        : ""),
  };
}

/** Where a provider would run a model's workers, as far as its settings pin it. */
export interface ProviderPlacement {
  readonly provider: ConfigurableProviderId;
  readonly cloud?: string;
  /** RunPod data centres (empty = any). */
  readonly dataCenters?: readonly string[];
  /** DataCrunch location. */
  readonly location?: string;
}

/**
 * GDPR: a stack that requires it keeps confidential data in EU/EEA data centres — pinned, not merely likely.
 * Public and internal data, and stacks without the requirement, pass.
 */
export function decideRegion(
  use: Pick<ProviderUse, "model" | "dataClass">,
  placement: ProviderPlacement,
  gdprRequired: boolean,
): TrustDecision {
  const subject = `model "${use.model}" on ${placement.provider}`;
  if (!gdprRequired || use.dataClass !== "confidential") {
    return { allowed: true, reason: `${subject}: no GDPR region requirement applies` };
  }
  const offering = offeringFor(placement.provider, placement.cloud);
  if (offering.tier === "self-hosted") {
    return { allowed: true, reason: `${subject}: self-hosted, located by the team itself` };
  }
  let pinned: string[];
  if (placement.provider === "datacrunch") pinned = placement.location ? [placement.location] : [];
  else pinned = [...(placement.dataCenters ?? [])];
  const eu = offering.regions.filter((r) => r.euEea).map((r) => r.id);
  if (pinned.length === 0) {
    return {
      allowed: false,
      reason: `${subject}: the stack requires GDPR but ${offering.id} is not pinned to EU/EEA data centres`,
      fix:
        eu.length > 0
          ? `set ai-orchestrator:providers.${placement.provider}.${placement.provider === "datacrunch" ? "location" : "dataCenters"} to EU/EEA ones: ${eu.join(", ")}`
          : `${offering.id} publishes no EU/EEA data centres; use a provider that does for confidential models`,
    };
  }
  const outside = pinned.filter((dc) => !eu.includes(dc));
  if (outside.length > 0) {
    return {
      allowed: false,
      reason: `${subject}: the stack requires GDPR but data centre${outside.length > 1 ? "s" : ""} ${outside.join(", ")} ${outside.length > 1 ? "are" : "is"} outside the EU/EEA`,
      fix: `remove ${outside.join(", ")} from ai-orchestrator:providers.${placement.provider}; EU/EEA choices: ${eu.join(", ")}`,
    };
  }
  return { allowed: true, reason: `${subject}: pinned to EU/EEA data centres ${pinned.join(", ")}` };
}

/** The one-line form of a refusal: the reason, then the fix. */
export const refusalText = (decision: TrustDecision): string =>
  decision.fix ? `${decision.reason}. Fix: ${decision.fix}` : decision.reason;

export class ProviderRefusedError extends Error {
  constructor(readonly decision: TrustDecision) {
    super(refusalText(decision));
    this.name = "ProviderRefusedError";
  }
}

/** Where a provider's settings in the runtime config pin it. */
export function placementOf(runtime: RuntimeConfig, provider: ConfigurableProviderId): ProviderPlacement {
  const settings = runtime.providers[provider] as
    | { cloud?: string; dataCenters?: readonly string[]; location?: string }
    | undefined;
  return {
    provider,
    cloud: settings?.cloud,
    dataCenters: settings?.dataCenters,
    location: settings?.location,
  };
}

/**
 * The controller's gate before every provision: the provider must be approved for the model's data class and,
 * where the stack requires GDPR, pinned to EU/EEA data centres. Returns the first refusal, else an approval.
 */
export function decideProvision(
  runtime: RuntimeConfig,
  modelName: string,
  provider: ConfigurableProviderId,
): TrustDecision {
  const model = runtime.models.find((m) => m.name === modelName);
  if (!model)
    return {
      allowed: false,
      reason: `model "${modelName}" is not in the runtime config`,
      fix: "redeploy the stack",
    };
  if (!model.providers.includes(provider)) {
    return {
      allowed: false,
      reason: `model "${modelName}" does not list ${provider} among its providers`,
      fix: `add ${provider} to the model's providers in the stack config`,
    };
  }
  const placement = placementOf(runtime, provider);
  // a variant (`model@variant`) is judged as its model: exceptions name models, not variants
  const use = {
    model: parseUnitName(model.name).model,
    dataClass: model.dataClass,
    provider,
    cloud: placement.cloud,
  };
  const trust = decideProviderUse(use, runtime.trust);
  if (!trust.allowed) return trust;
  const region = decideRegion(use, placement, runtime.gdpr);
  return region.allowed ? trust : region;
}

/** Throwing form of `decideProvision`, for code paths that must not go on. */
export function assertProvisionAllowed(
  runtime: RuntimeConfig,
  modelName: string,
  provider: ConfigurableProviderId,
): void {
  const decision = decideProvision(runtime, modelName, provider);
  if (!decision.allowed) throw new ProviderRefusedError(decision);
}
