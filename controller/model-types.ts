/**
 * The types and lookups the controller's collaborators share: a serving unit's config, the entries of the
 * decision list, and where a provider's settings say a worker's image and weights come from.
 *
 * Rules: types, constants and pure functions only — no I/O, no clock, no state. Every collaborator may import
 * this module; it imports nothing of the controller's, so it can never close an import cycle.
 */
import type { ConfigurableProviderId } from "../core/catalog";
import type { RuntimeConfig } from "../core/config/runtime";
import { ENGINE_IMAGES } from "../core/config/schema";

/** One serving unit: a model, or one variant of a model in a rollout (`servingUnits`). */
export type ModelConfig = RuntimeConfig["models"][number];

/** One entry of the capped decision list (`RedisKeys.scaleDecisions`), newest first. */
export interface ScaleDecisionEntry {
  readonly atMs: number;
  readonly model: string;
  /** provision, offer (which offer a worker was created on, and what was skipped), drain, blocked, fail, no-offer, adopt, orphan */
  readonly action: string;
  /** Workers the decision is about (started, drained), when it counts any. */
  readonly workers?: number;
  readonly worker?: string;
  readonly reason: string;
}

/** An intent record older than this with no instance behind it was a create that never happened. */
export const STALE_INTENT_MS = 120_000;

/** The settings of an instance provider that the controller reads itself (the adapters read the rest). */
export interface ControllerProviderSettings {
  readonly image?: string;
  readonly weightCache?: { readonly mirrorUrl: string };
}

export function providerSettings(
  config: Pick<RuntimeConfig, "providers">,
  provider: ConfigurableProviderId,
): ControllerProviderSettings | undefined {
  return config.providers[provider] as ControllerProviderSettings | undefined;
}

/** The image a worker of this model runs at this provider: the provider's `image` setting, else the engine's. */
export function imageFor(
  config: Pick<RuntimeConfig, "providers">,
  model: Pick<ModelConfig, "engine">,
  provider: ConfigurableProviderId,
): string {
  return providerSettings(config, provider)?.image ?? ENGINE_IMAGES[model.engine];
}

/** The provider's weight cache as it holds this model's pinned weights, or undefined without a cache. */
export function weightCacheEntry(
  config: Pick<RuntimeConfig, "providers">,
  model: Pick<ModelConfig, "source" | "revision">,
  provider: ConfigurableProviderId,
): string | undefined {
  const mirror = providerSettings(config, provider)?.weightCache?.mirrorUrl;
  return mirror ? `${mirror}|${model.source}@${model.revision ?? "main"}` : undefined;
}
