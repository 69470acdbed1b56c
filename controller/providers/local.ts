/**
 * Local adapter: a static OpenAI-compatible server the team runs itself (Ollama on a workstation, a vLLM box).
 * Nothing is rented: one zero-cost offer, "provision" hands back the configured URL as running, terminate is a
 * no-op, and there is never anything to reconcile. The worker token is not applied (the server has its own
 * auth, if any); reaching it is the team's network's business.
 */
import type { RuntimeConfig } from "../../core/config/runtime";
import {
  type InstanceInfo,
  type Offer,
  type OfferRequest,
  type OfferSearch,
  type ProviderAdapter,
  ProviderError,
  type WorkerSpec,
} from "./types";

export type LocalSettings = NonNullable<RuntimeConfig["providers"]["local"]>;

export interface LocalAdapterOptions {
  /** `providers.local` from the runtime config. */
  readonly settings: LocalSettings;
}

const ID_PREFIX = "local:";

export class LocalAdapter implements ProviderAdapter {
  readonly id = "local" as const;
  /** The server's base URL without a trailing `/v1`, like every adapter's `baseUrl`. */
  readonly baseUrl: string;

  constructor(options: LocalAdapterOptions) {
    this.baseUrl = options.settings.url.replace(/\/+$/, "").replace(/\/v1$/, "");
  }

  async offers(model: OfferRequest): Promise<OfferSearch> {
    const gpu = model.gpu[0];
    if (gpu === undefined) return { offers: [], skipped: [] };
    return { offers: [{ provider: "local", gpu, usdPerHour: 0, offerId: "static" }], skipped: [] };
  }

  async provision(spec: WorkerSpec, offer: Offer): Promise<InstanceInfo> {
    if (offer.provider !== "local")
      throw new ProviderError({
        kind: "fatal",
        provider: "local",
        operation: "provision",
        detail: `the offer is for ${offer.provider}, not local`,
      });
    return this.info(`${ID_PREFIX}${spec.workerId}`, spec.workerId, spec.ownerLabel);
  }

  async describe(providerId: string): Promise<InstanceInfo | undefined> {
    if (!providerId.startsWith(ID_PREFIX)) return undefined;
    return this.info(providerId, providerId.slice(ID_PREFIX.length));
  }

  async listOwned(_ownerLabel: string): Promise<InstanceInfo[]> {
    return [];
  }

  async terminate(_providerId: string): Promise<void> {}

  private info(providerId: string, workerId: string, ownerLabel?: string): InstanceInfo {
    return {
      providerId,
      workerId,
      ...(ownerLabel ? { ownerLabel } : {}),
      status: "running",
      baseUrl: this.baseUrl,
      usdPerHour: 0,
      detail: "static server",
    };
  }
}
