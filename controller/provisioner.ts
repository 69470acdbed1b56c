/**
 * The provisioner: starts workers. For a unit that needs one it picks the providers the trust rules allow,
 * writes the intent record, then — in the background — creates on the cheapest offer, failing over to the next
 * on errors or capacity shortage, and records the instance.
 *
 * Owns: the offers cache, the provisions under way in this process, intents whose write failed, the providers
 * held back after refusing a create as invalid, the refusals and "no provider" notes already told, and when each
 * unit's demand was first signalled (for the reaction metric).
 *
 * Rules (DESIGN.md §4, crash safety):
 * - the intent record (state `requested`, with the worker's certificate) is written before any provider create;
 *   a create that outlives the controller is adopted by the reconciler by its tag, never created twice;
 * - a Redis write after a create is retried, never taken for the provider's failure;
 * - auth, fatal and invalid errors skip the provider for the rest of the attempt; an invalid refusal (or every
 *   offer of a provider refused as a placement) holds the provider back for the unit for a while, surfaced once.
 */
import { randomBytes } from "node:crypto";
import type { ConfigurableProviderId } from "../core/catalog";
import type { RuntimeConfig } from "../core/config/runtime";
import { engineExtrasFor } from "../core/engine-command";
import { decideProvision, refusalText } from "../core/trust";
import { parseUnitName } from "../core/variants";
import type { WorkerCertificate } from "../core/x509";
import type { ControllerJournal } from "./journal";
import { FencedOut } from "./leader";
import type { ControllerMetrics } from "./metrics";
import { imageFor, type ModelConfig, providerSettings, STALE_INTENT_MS } from "./model-types";
import { explainOfferChoice } from "./offer-choice";
import {
  engineServesTls,
  isProviderError,
  type Offer,
  type OfferSearch,
  PLACEMENT_REFUSED,
  type ProviderAdapter,
  type SkippedOffer,
  type WorkerSpec,
} from "./providers/types";
import { pinOf, type WorkerRecord, type WorkerRegistry } from "./registry";

/**
 * A provider that refused a model's create as invalid (RunPod 422: the body breaks its published contract) gets no
 * more creates for that model for this long: the same request fails the same way, and repeating it every tick
 * only floods the provider. Retried after it, in case the provider's side changed.
 */
const REJECTED_RETRY_MS = 3_600_000;
/**
 * The hold-back when the refusal is only inferred (every offer refused with an ambiguous 400, which a stale catalog
 * can also cause): shorter, so a real capacity gap does not keep the provider out for long.
 */
const INFERRED_REJECTED_RETRY_MS = 600_000;
/** Offers are searched again after this long. */
const OFFERS_TTL_MS = 60_000;

type RefusalTally = { tried: number; refused: number; last?: string };

export interface ProvisionerDeps {
  readonly config: RuntimeConfig;
  readonly adapters: Partial<Record<ConfigurableProviderId, ProviderAdapter>>;
  readonly registry: Pick<WorkerRegistry, "create" | "update" | "transition">;
  readonly journal: Pick<ControllerJournal, "log" | "note" | "audit" | "providerError">;
  readonly metrics: Pick<ControllerMetrics, "decisions" | "reaction" | "requestRejected">;
  readonly now: () => number;
  readonly issueCertificate: (workerId: string) => WorkerCertificate;
  /** Engine environment for workers (HF_TOKEN); values are secrets. */
  readonly workerEnv?: Readonly<Record<string, string>>;
  /** @default STALE_INTENT_MS */
  readonly staleIntentMs?: number;
}

export class Provisioner {
  /** Provisions under way in this process (worker ids), so a tick does not start one twice. */
  private readonly provisioning = new Set<string>();
  /**
   * Intents whose write failed in this process (Redis went away before answering), by id → when. The write may
   * have landed anyway, but no create was started for it: such a record is closed as soon as it is seen instead
   * of being counted as a worker on its way for `staleIntentMs`.
   */
  private readonly unstartedIntents = new Map<string, number>();
  private readonly offersCache = new Map<string, { search: OfferSearch; at: number }>();
  /** Per unit, when a demand signal first arrived that no create has answered yet. */
  private readonly demandSeenAt = new Map<string, number>();
  /** `model|provider` → the last refusal written to the audit trail. */
  private readonly refusalsAudited = new Map<string, string>();
  /** `model|provider` → when the provider refused a create as invalid, and why (see REJECTED_RETRY_MS). */
  private readonly rejected = new Map<string, { atMs: number; holdMs: number; reason: string }>();
  /** Models told (once) that no provider can start a worker for them, with the reasons told. */
  private readonly noProviderLogged = new Map<string, string>();
  /** `model|provider` → until when self-healing holds the provider back for the unit, and why (self-healing.ts). */
  private readonly failedOver = new Map<string, { untilMs: number; reason: string }>();

  constructor(private readonly deps: ProvisionerDeps) {}

  /** A waiting request signalled demand for the unit: the reaction metric runs from here to the create call. */
  noteDemandSignal(unit: string, atMs: number): void {
    if (!this.demandSeenAt.has(unit)) this.demandSeenAt.set(unit, atMs);
  }

  /** Whether this process is creating the worker right now. */
  isStarting(workerId: string): boolean {
    return this.provisioning.has(workerId);
  }

  /** Whether the worker's intent write failed here, so no create was ever started for it. */
  wasNeverStarted(workerId: string): boolean {
    return this.unstartedIntents.has(workerId);
  }

  /** The never-started intent was closed. */
  forgetUnstarted(workerId: string): void {
    this.unstartedIntents.delete(workerId);
  }

  /** Clear expired hold-backs and their alerts, whether or not the unit has demand. */
  expireHoldBacks(): void {
    for (const key of this.rejected.keys()) {
      const [model, provider] = key.split("|") as [string, ConfigurableProviderId];
      this.isRejected(model, provider);
    }
  }

  /** Write the intent record, then create at the provider in the background (the next tick sees it loading). */
  async start(model: ModelConfig): Promise<void> {
    const { config, adapters, registry, journal, metrics } = this.deps;
    const candidates = model.providers.filter((p) => {
      if (!adapters[p] || this.isRejected(model.name, p) || this.isFailedOver(model.name, p)) return false;
      const decision = decideProvision(config, model.name, p);
      if (!decision.allowed) {
        this.refuse(model.name, p, refusalText(decision));
        return false;
      }
      // Traffic to a worker outside the cluster is encrypted, with a certificate the controller pins.
      if (p !== "local" && !engineServesTls(model.engine)) {
        this.refuse(
          model.name,
          p,
          `engine ${model.engine} cannot serve TLS, and traffic to a worker outside the cluster must be encrypted`,
        );
        return false;
      }
      return true;
    });
    if (candidates.length === 0) {
      const why = model.providers
        .map(
          (p) =>
            `${p}: ${this.rejected.get(`${model.name}|${p}`)?.reason ?? this.failedOver.get(`${model.name}|${p}`)?.reason ?? (adapters[p] ? "refused" : "not available")}`,
        )
        .join("; ");
      // once per change of reasons: demand repeats this every tick
      if (this.noProviderLogged.get(model.name) !== why) {
        this.noProviderLogged.set(model.name, why);
        journal.log(
          `controller: ${model.name} needs a worker but no allowed provider can start one (${why})`,
        );
      }
      return;
    }
    this.noProviderLogged.delete(model.name);
    const id = `w${randomBytes(6).toString("hex")}`;
    const now = this.deps.now();
    // The certificate is in the intent record before any create, so a worker adopted after a crash is pinned
    // too; the key stays in this process's memory and goes only to the provider with the worker's start-up.
    const certificate = candidates.some((p) => p !== "local") ? this.deps.issueCertificate(id) : undefined;
    let intent: WorkerRecord;
    try {
      intent = await registry.create({
        id,
        model: model.name,
        provider: candidates[0]!,
        usdPerHour: 0,
        // hex: a token starting with "-" (1 in 64 for base64url) would read as an option to the engine's argument
        // parser (`--api-key -x…`) and the worker would never start
        token: randomBytes(24).toString("hex"),
        createdAtMs: now,
        lastActiveAtMs: now,
        detail: "intent written; creating at the provider",
        ...(certificate
          ? { tlsCertPem: certificate.certPem, tlsFingerprint256: certificate.fingerprint256 }
          : {}),
      });
    } catch (error) {
      for (const [old, at] of this.unstartedIntents)
        if (now - at > (this.deps.staleIntentMs ?? STALE_INTENT_MS)) this.unstartedIntents.delete(old);
      this.unstartedIntents.set(id, now);
      throw error;
    }
    metrics.decisions.inc({ model: model.name, action: "provision" });
    this.provisioning.add(id);
    void this.provision(model, intent, candidates, certificate?.keyPem)
      .catch((error: unknown) =>
        // Redis gone for longer than the registry retries, or fenced out: the intent record stays, and the
        // reconciler adopts whatever was created (by its tag) or the stale intent is dropped.
        journal.log(`controller: provisioning of ${id} interrupted: ${(error as Error).message}`),
      )
      .finally(() => this.provisioning.delete(id));
  }

  /**
   * A provider refused for a model: counted and logged every time, and written to the audit trail once per
   * model, provider and reason (a refusal repeats every tick while demand lasts).
   */
  private refuse(model: string, provider: string, reason: string): void {
    this.deps.metrics.decisions.inc({ model, action: "refuse" });
    this.deps.journal.log(`controller: refusing ${provider} for ${model}: ${reason}`);
    const key = `${model}|${provider}`;
    if (this.refusalsAudited.get(key) === reason) return;
    this.refusalsAudited.set(key, reason);
    this.deps.journal.audit("provider.refused", `${model}@${provider}`, reason);
  }

  /**
   * A registry write inside a provisioning, retried while Redis is briefly away (a restart), so that a Redis
   * failure is never taken for the provider's and never starts a second create. FencedOut is not retried.
   */
  private async registryWrite<T>(write: () => Promise<T>, attempts = 6): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await write();
      } catch (error) {
        if (error instanceof FencedOut || attempt >= attempts) throw error;
        await new Promise((resolve) => setTimeout(resolve, Math.min(4_000, 500 * 2 ** (attempt - 1))));
      }
    }
  }

  private async offersFor(model: ModelConfig, provider: ConfigurableProviderId): Promise<OfferSearch> {
    const key = `${model.name}/${provider}`;
    const cached = this.offersCache.get(key);
    if (cached && this.deps.now() - cached.at < OFFERS_TTL_MS) return cached.search;
    const search = await this.deps.adapters[provider]!.offers({
      gpu: model.gpu,
      gpuCount: model.gpuCount,
      image: imageFor(this.deps.config, model, provider),
    });
    this.offersCache.set(key, { search, at: this.deps.now() });
    return search;
  }

  private spec(
    model: ModelConfig,
    worker: WorkerRecord,
    provider: ConfigurableProviderId,
    tlsKeyPem: string | undefined,
  ): WorkerSpec {
    const settings = providerSettings(this.deps.config, provider);
    const pin = pinOf({ ...worker, provider });
    const extras = engineExtrasFor(model.kind, model.engine);
    return {
      workerId: worker.id,
      ownerLabel: this.deps.config.ownerLabel,
      // every variant answers under the model's public name
      model: parseUnitName(model.name).model,
      source: model.source,
      revision: model.revision,
      engine: model.engine,
      image: imageFor(this.deps.config, model, provider),
      gpuCount: model.gpuCount,
      maxModelLen: model.maxModelLen,
      engineArgs: model.engineArgs,
      ...(extras.length > 0 ? { engineExtras: extras } : {}),
      port: 8000,
      workerToken: worker.token,
      env: this.deps.workerEnv ?? {},
      ...(settings?.weightCache ? { weightCache: { mirrorUrl: settings.weightCache.mirrorUrl } } : {}),
      ...(pin && tlsKeyPem ? { tls: { certPem: pin.certPem, keyPem: tlsKeyPem } } : {}),
    };
  }

  /**
   * Cheapest allowed offer first; on failure the next one; a provider that refuses auth is skipped. `tlsKeyPem`
   * is the key of the intent's certificate: passed on to the provider, never stored or logged.
   */
  private async provision(
    model: ModelConfig,
    intent: WorkerRecord,
    candidates: ConfigurableProviderId[],
    tlsKeyPem?: string,
  ): Promise<void> {
    const { adapters, registry, journal, metrics, now } = this.deps;
    const offers: Offer[] = [];
    const skipped: SkippedOffer[] = [];
    for (const provider of candidates) {
      try {
        const search = await this.offersFor(model, provider);
        offers.push(...search.offers);
        skipped.push(...search.skipped);
      } catch (error) {
        journal.providerError(provider, error, `offers for ${model.name}`);
      }
    }
    offers.sort(
      (a, b) =>
        a.usdPerHour - b.usdPerHour || candidates.indexOf(a.provider) - candidates.indexOf(b.provider),
    );
    const skip = new Set<ConfigurableProviderId>();
    /** Per provider: offers tried, and those refused with an ambiguous placement refusal (PLACEMENT_REFUSED). */
    const refusals = new Map<ConfigurableProviderId, RefusalTally>();
    let failedFirst = 0;
    let worker = intent;
    const demandAt = this.demandSeenAt.get(model.name);
    for (const offer of offers) {
      if (skip.has(offer.provider)) continue;
      if (worker.provider !== offer.provider || worker.usdPerHour !== offer.usdPerHour) {
        const current = worker;
        worker = await this.registryWrite(() =>
          registry.update(current, {
            provider: offer.provider,
            usdPerHour: offer.usdPerHour,
            gpu: offer.gpu,
          }),
        );
      }
      if (demandAt !== undefined) {
        metrics.reaction.observe({ model: model.name }, (now() - demandAt) / 1000);
        this.demandSeenAt.delete(model.name);
      }
      let info: Awaited<ReturnType<ProviderAdapter["provision"]>>;
      try {
        const spec = this.spec(model, worker, offer.provider, tlsKeyPem);
        if (offer.provider !== "local" && !spec.tls)
          throw new Error(`worker ${worker.id} has no certificate to serve TLS with at ${offer.provider}`);
        info = await adapters[offer.provider]!.provision(spec, offer);
      } catch (error) {
        if (error instanceof FencedOut) throw error;
        failedFirst += 1;
        journal.providerError(offer.provider, error, `provision ${worker.id}`);
        const tally = refusals.get(offer.provider) ?? { tried: 0, refused: 0 };
        tally.tried += 1;
        if (isProviderError(error) && error.code === PLACEMENT_REFUSED) {
          tally.refused += 1;
          tally.last = error.detail;
        }
        refusals.set(offer.provider, tally);
        if (isProviderError(error) && error.kind === "invalid")
          await this.rejectCreates(model, offer.provider, error);
        if (isProviderError(error) && ["auth", "fatal", "invalid"].includes(error.kind))
          skip.add(offer.provider);
        continue;
      }
      // The instance exists: record it. A Redis outage here is retried; should it outlast the retries, the
      // intent record stays and the reconciler adopts the instance by its tag — never a second create.
      const created = worker;
      worker = await this.registryWrite(() =>
        registry.transition(created, "provisioning", {
          providerId: info.providerId,
          usdPerHour: info.usdPerHour ?? offer.usdPerHour,
          accruedUntilMs: now(),
          detail: `created at ${offer.provider} (${offer.gpu}, $${offer.usdPerHour}/h)`,
        }),
      );
      journal.log(
        `controller: ${model.name}: worker ${worker.id} created at ${offer.provider} as ${info.providerId}`,
      );
      await journal.note({
        model: model.name,
        action: "offer",
        worker: worker.id,
        reason: explainOfferChoice(offer, failedFirst, skipped),
      });
      await this.readRefusals(model, refusals);
      return;
    }
    await this.readRefusals(model, refusals);
    journal.log(
      `controller: ${model.name}: no offer could be provisioned for ${worker.id}; will retry on the next decision`,
    );
    await journal.note({
      model: model.name,
      action: "no-offer",
      worker: worker.id,
      reason: `no offer of ${candidates.join(", ")} could be provisioned (${offers.length} offer(s) tried); retried on the next decision`,
    });
    const gaveUp = worker;
    await this.registryWrite(() =>
      registry.transition(gaveUp, "terminated", { detail: "no provider could create it" }),
    );
  }

  /**
   * A provider refused a create as invalid: a configuration (or adapter) error that repeats on every attempt.
   * Surfaced once — log, decision, audit trail, and a gauge the `ProviderRejectsConfiguration` alert reads — and no
   * more creates go to that provider for the model until REJECTED_RETRY_MS has passed.
   */
  private async rejectCreates(
    model: ModelConfig,
    provider: ConfigurableProviderId,
    error: { detail: string },
    holdMs = REJECTED_RETRY_MS,
  ): Promise<void> {
    const key = `${model.name}|${provider}`;
    const first = !this.rejected.has(key);
    this.rejected.set(key, { atMs: this.deps.now(), holdMs, reason: `refused as invalid: ${error.detail}` });
    this.deps.metrics.requestRejected.set({ model: model.name, provider }, 1);
    if (!first) return;
    const reason = `${provider} refused the create as invalid (a configuration error, not capacity): ${error.detail}; no more creates there for this model for ${holdMs / 60_000} minutes`;
    this.deps.journal.log(`controller: ${model.name}: ${reason}`);
    this.deps.journal.audit("provider.refused", `${model.name}@${provider}`, reason);
    await this.deps.journal.note({ model: model.name, action: "config-error", reason });
  }

  /**
   * A provider whose every offer tried (two or more) was refused with an ambiguous placement refusal: the request
   * is the problem, not capacity (RunPod's own reading of its 400s), so it is handled as an invalid refusal.
   */
  private async readRefusals(
    model: ModelConfig,
    refusals: ReadonlyMap<ConfigurableProviderId, RefusalTally>,
  ): Promise<void> {
    for (const [provider, { tried, refused, last }] of refusals) {
      if (tried < 2 || refused < tried) continue;
      await this.rejectCreates(
        model,
        provider,
        {
          detail: `every one of the ${tried} offers tried was refused without a capacity code, which the provider says to read as a problem with the request; the last: ${last ?? "?"}`,
        },
        INFERRED_REJECTED_RETRY_MS,
      );
    }
  }

  /**
   * Self-healing failed the unit over from an erroring provider: no creates there until `untilMs`, so its next
   * workers start at its other providers (self-healing.ts decides and journals it).
   */
  failOver(unit: string, provider: ConfigurableProviderId, untilMs: number, reason: string): void {
    this.failedOver.set(`${unit}|${provider}`, { untilMs, reason: `failed over: ${reason}` });
  }

  /** Whether self-healing holds creates for this unit back from this provider right now. */
  isFailedOver(unit: string, provider: ConfigurableProviderId): boolean {
    const key = `${unit}|${provider}`;
    const hold = this.failedOver.get(key);
    if (!hold) return false;
    if (this.deps.now() < hold.untilMs) return true;
    this.failedOver.delete(key);
    return false;
  }

  /** Whether creates for this model are held back from this provider after an invalid refusal. */
  private isRejected(model: string, provider: ConfigurableProviderId): boolean {
    const key = `${model}|${provider}`;
    const rejected = this.rejected.get(key);
    if (!rejected) return false;
    if (this.deps.now() - rejected.atMs < rejected.holdMs) return true;
    this.rejected.delete(key);
    this.deps.metrics.requestRejected.set({ model, provider }, 0);
    return false;
  }
}
