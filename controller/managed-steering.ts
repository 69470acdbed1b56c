/**
 * Steering of managed backends (RunPod serverless, `ManagedBackend`): the provider queues and scales its own
 * workers; the controller finds each unit's endpoint, routes the gateway through it, keeps its worker bounds
 * where the config and the budget say (the provider lowers bounds on idle endpoints), drops its queue at a
 * budget cap, and has the spend book book the workers it reports.
 *
 * Rules: steered every `steerEveryMs`, and at once when a budget block changes — the provider's API is
 * rate-limited per account; only units the trust rules allow on the provider are steered; a failure steering
 * one endpoint is counted and logged, never fails the tick (a fenced-out write does).
 *
 * A direct endpoint (RunPod load-balancing; `ManagedEndpoint.routing`) holds nothing while no worker is ready, so:
 * the gateway is routed to it only while a worker is ready (otherwise the gateway holds the requests, as for a model
 * at zero on instance providers); while the gateway holds requests for it, its lower bound is at least 1, so the
 * provider starts a worker (it scales on requests in flight, and none are); once they flow, the bound goes back to
 * the config's and the provider's own scaler and idle timeout take over. Such an endpoint is steered every
 * `coldSteerEveryMs` while requests wait for it, so its first worker is routed as soon as it is ready.
 */
import type { ConfigurableProviderId } from "../core/catalog";
import type { RuntimeConfig } from "../core/config/runtime";
import { decideProvision } from "../core/trust";
import type { ControllerJournal } from "./journal";
import { FencedOut } from "./leader";
import type { ModelConfig } from "./model-types";
import type { ManagedBackend, ManagedEndpoint, ManagedHealth, ManagedRoute } from "./providers/types";
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
  readonly registry: Pick<WorkerRegistry, "publishRoute" | "removeRoute">;
  readonly spend: ManagedSpend;
  readonly journal: Pick<ControllerJournal, "log" | "note" | "providerError">;
  readonly now: () => number;
  /** Requests the gateway holds for a unit, waiting for a worker. */
  readonly waitingFor: (unit: string) => Promise<number>;
  /** @default 15000 */
  readonly steerEveryMs?: number;
  /** How often a direct endpoint with requests waiting and no worker ready is steered. @default 2000 */
  readonly coldSteerEveryMs?: number;
}

/** A unit's endpoint as steering last saw it. */
interface SteeredEndpoint {
  readonly id: string;
  readonly direct: boolean;
  /** Whether the gateway is routed to it now. */
  routed: boolean;
}

export class ManagedBackendSteering {
  /** Units served by a managed endpoint → that endpoint. */
  private readonly endpoints = new Map<string, SteeredEndpoint>();
  /** When managed endpoints were last steered, and under which budget blocks. */
  private lastSteer = { atMs: Number.NEGATIVE_INFINITY, blocks: "" };
  /** When a direct endpoint waiting for its first worker was last steered out of turn. */
  private lastColdSteerMs = Number.NEGATIVE_INFINITY;
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
    if (now - this.lastSteer.atMs >= (this.deps.steerEveryMs ?? 15_000) || blocks !== this.lastSteer.blocks)
      this.lastSteer = { atMs: now, blocks };
    else if (
      now - this.lastColdSteerMs < (this.deps.coldSteerEveryMs ?? 2_000) ||
      !(await this.coldWaiting())
    )
      return;
    this.lastColdSteerMs = now;
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

  /** Whether requests wait for a direct endpoint the gateway is not routed to (no worker was ready). */
  private async coldWaiting(): Promise<boolean> {
    for (const [unit, endpoint] of this.endpoints)
      if (endpoint.direct && !endpoint.routed && (await this.deps.waitingFor(unit)) > 0) return true;
    return false;
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
    const { journal, spend } = this.deps;
    const blocked = spend.overBudget(model.name);
    const direct = endpoint.routing === "direct";
    const waiting = direct && !blocked ? await this.deps.waitingFor(model.name) : 0;
    const max = blocked ? 0 : model.maxWorkers;
    // a direct endpoint starts no worker for requests the gateway holds: ask for one while any wait
    const min = blocked ? 0 : Math.min(max, Math.max(model.minWorkers, waiting > 0 ? 1 : 0));
    if (endpoint.workersMax !== max || endpoint.workersMin !== min) {
      await backend.setBounds(endpoint, min, max);
      journal.log(
        `controller: ${model.name}: ${provider} endpoint bounds ${endpoint.workersMin}..${endpoint.workersMax} → ${min}..${max}` +
          (waiting > 0 && min > model.minWorkers ? ` (${waiting} request(s) wait for a worker)` : ""),
      );
    }
    const health = await backend.health(endpoint);
    const known = this.endpoints.get(model.name);
    const steered: SteeredEndpoint =
      known && known.id === endpoint.id ? known : { id: endpoint.id, direct, routed: false };
    this.endpoints.set(model.name, steered);
    // a queue holds requests while workers start: routed at once; a direct endpoint only while a worker is ready
    const routable = !direct || health.running > 0;
    if (routable && !steered.routed) {
      await this.publishRoute(model, provider, endpoint.id, backend.route(endpoint));
      steered.routed = true;
    } else if (!routable && steered.routed) {
      await this.deps.registry.removeRoute(model.name, routeIdOf(provider, endpoint.id));
      steered.routed = false;
    }
    // Max workers 0 stops new workers, but jobs already queued would wait for the cap to lift (or run after it):
    // at the cap they are dropped, and their callers get an error at once. Noted once per block.
    if (!blocked) this.purgeNoted.delete(model.name);
    else if (health.inQueue > 0) {
      const removed = await backend.purgeQueue(endpoint);
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

  /** Route the gateway to the endpoint, as one worker of the unit that takes every worker's share of requests. */
  private async publishRoute(
    model: ModelConfig,
    provider: ConfigurableProviderId,
    endpointId: string,
    route: ManagedRoute,
  ): Promise<void> {
    const now = this.deps.now();
    const record: WorkerRecord = {
      id: routeIdOf(provider, endpointId),
      model: model.name,
      provider,
      state: "ready",
      baseUrl: route.baseUrl,
      usdPerHour: 0,
      token: "",
      createdAtMs: now,
      stateChangedAtMs: now,
      lastActiveAtMs: now,
      accruedUntilMs: now,
    };
    await this.deps.registry.publishRoute(
      record,
      model.targetConcurrency * Math.max(1, model.maxWorkers),
      route.auth,
    );
  }
}

/** The gateway's route id for a managed endpoint (one route per endpoint). */
const routeIdOf = (provider: ConfigurableProviderId, endpointId: string): string =>
  `${provider}-${endpointId}`;
