/**
 * Steering of managed backends (RunPod serverless, `ManagedBackend`): the provider queues and scales its own
 * workers; the controller finds each unit's endpoint, routes the gateway through it, keeps its worker bounds
 * where the config and the budget say (the provider lowers bounds on idle endpoints), drops its queue at a
 * budget cap, and has the spend book book the workers it reports.
 *
 * Rules: steered every `steerEveryMs`, and at once when a budget block changes — the provider's API is
 * rate-limited per account; only units the trust rules allow on the provider are steered; a failure steering
 * one endpoint is counted and logged, never fails the tick (a fenced-out write does).
 */
import type { ConfigurableProviderId } from "../core/catalog";
import type { RuntimeConfig } from "../core/config/runtime";
import { decideProvision } from "../core/trust";
import type { ControllerJournal } from "./journal";
import { FencedOut } from "./leader";
import type { ModelConfig } from "./model-types";
import type { ManagedBackend, ManagedEndpoint, ManagedHealth } from "./providers/types";
import type { WorkerRecord, WorkerRegistry } from "./registry";

/** What steering needs of the spend book. */
export interface ManagedSpend {
  overBudget(unit: string): boolean;
  blocksSignature(): string;
  bookManaged(
    model: ModelConfig,
    provider: ConfigurableProviderId,
    endpoint: ManagedEndpoint,
    health: ManagedHealth,
  ): Promise<void>;
}

export interface ManagedSteeringDeps {
  readonly config: RuntimeConfig;
  readonly backends: Partial<Record<ConfigurableProviderId, ManagedBackend>>;
  readonly registry: Pick<WorkerRegistry, "publishRoute">;
  readonly spend: ManagedSpend;
  readonly journal: Pick<ControllerJournal, "log" | "note" | "providerError">;
  readonly now: () => number;
  /** @default 15000 */
  readonly steerEveryMs?: number;
}

export class ManagedBackendSteering {
  /** Units routed through a managed endpoint → its endpoint id. */
  private readonly endpoints = new Map<string, string>();
  /** When managed endpoints were last steered, and under which budget blocks. */
  private lastSteer = { atMs: Number.NEGATIVE_INFINITY, blocks: "" };
  /** Models whose managed queue purge at a budget cap is already in the decision list (once per block). */
  private readonly purgeNoted = new Set<string>();

  constructor(private readonly deps: ManagedSteeringDeps) {}

  /** Whether a unit is served by a managed endpoint (the provider scales it; the loop leaves it alone). */
  isManaged(unit: string): boolean {
    return this.endpoints.has(unit);
  }

  /**
   * Route through managed endpoints, keep their bounds, drop their queue at a budget cap, book their workers.
   * Every `steerEveryMs`, and at once when a budget block changes.
   */
  async steer(): Promise<void> {
    const backends = Object.entries(this.deps.backends) as [ConfigurableProviderId, ManagedBackend][];
    if (backends.length === 0) return;
    const now = this.deps.now();
    const blocks = this.deps.spend.blocksSignature();
    if (now - this.lastSteer.atMs < (this.deps.steerEveryMs ?? 15_000) && blocks === this.lastSteer.blocks)
      return;
    this.lastSteer = { atMs: now, blocks };
    const { config, journal } = this.deps;
    for (const [provider, backend] of backends) {
      const units = config.models.filter(
        (m) => m.providers.includes(provider) && decideProvision(config, m.name, provider).allowed,
      );
      if (units.length === 0) continue;
      let endpoints: Map<string, ManagedEndpoint>;
      try {
        endpoints = await backend.endpoints(units.map((m) => m.name));
      } catch (error) {
        journal.providerError(provider, error, "list managed endpoints");
        continue;
      }
      for (const model of units) {
        try {
          await this.steerEndpoint(model, provider, backend, endpoints.get(model.name));
        } catch (error) {
          if (error instanceof FencedOut) throw error;
          journal.providerError(provider, error, `steer endpoint of ${model.name}`);
        }
      }
    }
  }

  private async steerEndpoint(
    model: ModelConfig,
    provider: ConfigurableProviderId,
    backend: ManagedBackend,
    endpoint: ManagedEndpoint | undefined,
  ): Promise<void> {
    if (!endpoint) {
      this.endpoints.delete(model.name);
      return;
    }
    const { journal, spend, now } = this.deps;
    const blocked = spend.overBudget(model.name);
    const max = blocked ? 0 : model.maxWorkers;
    const min = blocked ? 0 : model.minWorkers;
    if (endpoint.workersMax !== max || endpoint.workersMin !== min) {
      await backend.setBounds(endpoint, min, max);
      journal.log(
        `controller: ${model.name}: ${provider} endpoint bounds ${endpoint.workersMin}..${endpoint.workersMax} → ${min}..${max}`,
      );
    }
    if (!this.endpoints.has(model.name)) {
      const route = backend.route(endpoint.id);
      const record: WorkerRecord = {
        id: `${provider}-${endpoint.id}`,
        model: model.name,
        provider,
        state: "ready",
        baseUrl: route.baseUrl,
        usdPerHour: 0,
        token: "",
        createdAtMs: now(),
        stateChangedAtMs: now(),
        lastActiveAtMs: now(),
        accruedUntilMs: now(),
      };
      await this.deps.registry.publishRoute(
        record,
        model.targetConcurrency * Math.max(1, model.maxWorkers),
        route.auth,
      );
      this.endpoints.set(model.name, endpoint.id);
    }
    const health = await backend.health(endpoint.id);
    // Max workers 0 stops new workers, but jobs already queued would wait for the cap to lift (or run after it):
    // at the cap they are dropped, and their callers get an error at once. Noted once per block.
    if (!blocked) this.purgeNoted.delete(model.name);
    else if (health.inQueue > 0) {
      const removed = await backend.purgeQueue(endpoint.id);
      journal.log(
        `controller: ${model.name}: budget reached: ${removed} queued job(s) purged from ${provider}`,
      );
      if (!this.purgeNoted.has(model.name)) {
        this.purgeNoted.add(model.name);
        await journal.note({
          model: model.name,
          action: "blocked",
          reason: `budget reached: ${provider} endpoint set to 0 workers and its queue purged (${removed} job(s); later arrivals are purged too)`,
        });
      }
    }
    await spend.bookManaged(model, provider, endpoint, health);
  }
}
