/**
 * The worker lifecycle: moves each live worker along `requested → provisioning → booting → ready → draining →
 * terminated` (+ `failed`) — boot until its OpenAI endpoint answers and publish its route, health-check it while
 * ready, drain it, and terminate it until the provider confirms.
 *
 * Owns: the health checks of ready workers and when a running worker was first seen without an address.
 *
 * Rules (DESIGN.md §4):
 * - a worker is ready only when its endpoint answers with its token (over the pinned certificate when it has one);
 * - a loading worker that outlives the boot timeout, or runs without an address past ADDRESS_GRACE_MS, is failed
 *   and replaced; a ready worker that stops answering is replaced once its provider no longer runs it (or after
 *   HEALTH_FAILURES_REPLACE failed checks);
 * - drain before terminate: in-flight requests get `drainGraceMs` — none over budget;
 * - a worker is marked terminated only when its provider confirms; the termination is retried every tick until
 *   then, with the pending time as a gauge an alert reads; spend is settled at the confirmation.
 * The collaborators it needs (intents under way, spend, keep-alive observations, demand) come in as narrow
 * interfaces; it reaches into none of their state.
 */
import type { ConfigurableProviderId } from "../core/catalog";
import type { RuntimeConfig } from "../core/config/runtime";
import type { CertificatePin } from "../core/x509";
import type { UnitDemand } from "./demand";
import type { ControllerJournal } from "./journal";
import { FencedOut } from "./leader";
import type { ControllerMetrics } from "./metrics";
import { type ModelConfig, STALE_INTENT_MS } from "./model-types";
import type { ProviderAdapter } from "./providers/types";
import { pinOf, type WorkerRecord, type WorkerRegistry } from "./registry";

/** Workers are replaced this long after creation, before their 30-day certificate runs out. */
const CERT_RENEW_AFTER_MS = 28 * 86_400_000;
/** Failed health checks in a row after which the provider is asked (once per failure) whether it still runs. */
const HEALTH_FAILURES_ASK_PROVIDER = 1;
/** Failed health checks in a row after which a worker is replaced even though its provider reports it running. */
const HEALTH_FAILURES_REPLACE = 5;
/**
 * A worker its provider reports running but without an address for the engine port (a host that publishes no
 * public port) is failed over after this long, instead of billing until the boot timeout.
 */
const ADDRESS_GRACE_MS = 60_000;

/** What the lifecycle needs to know of the provisions this process has under way. */
export interface IntentTracker {
  /** The create is running in this process: the intent is not stale however old. */
  isStarting(workerId: string): boolean;
  /** The intent's write failed here, so no create was started for it. */
  wasNeverStarted(workerId: string): boolean;
  forgetUnstarted(workerId: string): void;
}

/** What the lifecycle needs of the spend book. */
export interface LifecycleSpend {
  accrue(workers: readonly WorkerRecord[]): Promise<void>;
  settle(worker: WorkerRecord, billedFromMs: number, endedAtMs: number): Promise<number>;
  overBudget(unit: string): boolean;
}

/** What the lifecycle tells the keep-alive state. */
export interface ColdStartObserver {
  observeColdStart(
    model: ModelConfig,
    worker: WorkerRecord,
    nowMs: number,
    coldStartSeconds: number,
  ): Promise<"hit" | "miss">;
}

export type Probe = (baseUrl: string, token: string, pin?: CertificatePin) => Promise<boolean>;

export interface WorkerLifecycleDeps {
  readonly config: RuntimeConfig;
  readonly adapters: Partial<Record<ConfigurableProviderId, ProviderAdapter>>;
  readonly registry: Pick<WorkerRegistry, "update" | "transition" | "removeRoute" | "publishRoute">;
  readonly journal: Pick<ControllerJournal, "log" | "note" | "providerError">;
  readonly metrics: Pick<ControllerMetrics, "workers" | "coldStart" | "terminationPending" | "decisions">;
  readonly intents: IntentTracker;
  readonly spend: LifecycleSpend;
  readonly coldStarts: ColdStartObserver;
  /** The unit's demand now (the draining step waits for its in-flight requests). */
  readonly demand: (unit: string) => Promise<UnitDemand>;
  readonly probe: Probe;
  readonly now: () => number;
  /** @default 1200000 */
  readonly bootTimeoutMs?: number;
  /** @default STALE_INTENT_MS */
  readonly staleIntentMs?: number;
  /** @default 120000 */
  readonly drainGraceMs?: number;
  /** @default 3000 */
  readonly healthCheckMs?: number;
}

interface HealthCheck {
  at: number;
  failures: number;
  asked?: number;
  running?: Promise<void>;
}

export class WorkerLifecycle {
  /** Health checks of ready workers: last probe, failures in a row, the probe under way. */
  private readonly health = new Map<string, HealthCheck>();
  /** Worker id → when its provider first reported it running without an address (see ADDRESS_GRACE_MS). */
  private readonly addressless = new Map<string, number>();

  constructor(private readonly deps: WorkerLifecycleDeps) {}

  /**
   * Drain the workers an operator asked to (MCP `drain_worker`, `RunTimeControls.drains`): stop routing, then the
   * usual drain; the policy starts a replacement when demand or minWorkers still want one. Answers the requests
   * handled — all of them: one for a worker that is gone or already leaving is simply dropped.
   */
  async drainAsked(
    workers: readonly WorkerRecord[],
    drains: Readonly<Record<string, { readonly actor: string; readonly reason: string }>>,
  ): Promise<string[]> {
    const handled: string[] = [];
    for (const [workerId, note] of Object.entries(drains)) {
      const worker = workers.find((w) => w.id === workerId);
      if (worker && ["provisioning", "booting", "ready"].includes(worker.state)) {
        const reason = `asked by ${note.actor}: ${note.reason}`;
        await this.deps.registry.removeRoute(worker.model, worker.id);
        await this.deps.registry.transition(worker, "draining", { detail: reason });
        await this.deps.journal.note({ model: worker.model, action: "drain", worker: worker.id, reason });
        this.deps.metrics.decisions.inc({ model: worker.model, action: "drain" });
      }
      handled.push(workerId);
    }
    return handled;
  }

  /** Advance every worker one step; publish the workers-by-state gauge; forget checks of workers not ready. */
  async advanceAll(workers: readonly WorkerRecord[]): Promise<WorkerRecord[]> {
    const out: WorkerRecord[] = [];
    for (const worker of workers) {
      try {
        out.push(await this.advance(worker));
      } catch (error) {
        if (error instanceof FencedOut) throw error;
        this.deps.journal.log(`controller: worker ${worker.id}: ${(error as Error).message}`);
        out.push(worker);
      }
    }
    const counts = new Map<string, number>();
    for (const w of out) {
      const key = `${w.model}|${w.provider}|${w.state}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    this.deps.metrics.workers.reset();
    for (const [key, n] of counts) {
      const [model, provider, state] = key.split("|") as [string, string, string];
      this.deps.metrics.workers.set({ model, provider, state }, n);
    }
    for (const id of this.health.keys())
      if (!out.some((w) => w.id === id && w.state === "ready")) this.health.delete(id);
    return out;
  }

  private async advance(worker: WorkerRecord): Promise<WorkerRecord> {
    const { config, registry, intents } = this.deps;
    const now = this.deps.now();
    const adapter = this.deps.adapters[worker.provider];
    const model = config.models.find((m) => m.name === worker.model);
    switch (worker.state) {
      case "requested": {
        if (intents.wasNeverStarted(worker.id)) {
          const closed = await registry.transition(worker, "terminated", {
            detail: "intent written, but its create never started (Redis failed to answer the write)",
          });
          intents.forgetUnstarted(worker.id);
          return closed;
        }
        if (
          intents.isStarting(worker.id) ||
          now - worker.createdAtMs < (this.deps.staleIntentMs ?? STALE_INTENT_MS)
        )
          return worker;
        // A create that never returned: the reconciler adopts the instance if one was made; otherwise nothing exists.
        return registry.transition(worker, "terminated", {
          detail: "intent without an instance (controller restarted)",
        });
      }
      case "provisioning":
      case "booting": {
        if (!adapter || !worker.providerId || !model) return this.fail(worker, "no adapter or instance id");
        if (now - worker.createdAtMs > (this.deps.bootTimeoutMs ?? 1_200_000))
          return this.fail(worker, "boot timed out");
        return this.boot(worker, worker.providerId, adapter, model, now);
      }
      case "ready": {
        // Certificates live 30 days; a worker kept that long is replaced before clients would refuse it.
        if (
          worker.tlsCertPem &&
          worker.readyAtMs !== undefined &&
          now - worker.createdAtMs > CERT_RENEW_AFTER_MS
        ) {
          await registry.removeRoute(worker.model, worker.id);
          return registry.transition(worker, "draining", {
            detail: "certificate renewal: replaced by a new worker",
          });
        }
        return this.checkHealth(worker, adapter);
      }
      case "draining": {
        const { inflight } = await this.deps.demand(worker.model);
        const busy = inflight.get(worker.id) ?? 0;
        // over budget there is no grace: in-flight requests would keep billing past the cap
        const grace = this.deps.spend.overBudget(worker.model) ? 0 : (this.deps.drainGraceMs ?? 120_000);
        if (busy > 0 && now - worker.stateChangedAtMs < grace) return worker;
        return this.terminate(worker);
      }
      case "failed":
        return this.terminate(worker);
      default:
        return worker;
    }
  }

  /** A provisioning or booting worker: follow what its provider says until its endpoint answers, then route it. */
  private async boot(
    worker: WorkerRecord,
    providerId: string,
    adapter: ProviderAdapter,
    model: ModelConfig,
    now: number,
  ): Promise<WorkerRecord> {
    const { registry } = this.deps;
    const info = await adapter.describe(providerId);
    if (!info || info.status === "terminated") return this.fail(worker, "instance disappeared while booting");
    if (info.status === "failed" || info.status === "stopped")
      return this.fail(worker, `instance ${info.status}: ${info.detail ?? ""}`);
    // what the provider last said, for `aiorch status` (written when it changes)
    const said = info.detail ? `${worker.provider}: ${info.detail}` : undefined;
    if (info.status === "running" && !info.baseUrl) {
      const since = this.addressless.get(worker.id) ?? now;
      this.addressless.set(worker.id, since);
      if (now - since >= ADDRESS_GRACE_MS) {
        this.addressless.delete(worker.id);
        return this.fail(
          worker,
          `${worker.provider} reports the instance running but gives no address for its engine port (${info.detail ?? "no detail"}); failing over`,
        );
      }
    } else this.addressless.delete(worker.id);
    if (info.status !== "running" || !info.baseUrl) {
      if (worker.state === "provisioning" && info.status === "booting")
        return registry.transition(worker, "booting", { detail: said });
      return said && said !== worker.detail ? registry.update(worker, { detail: said }) : worker;
    }
    // A worker with a certificate serves https (the adapters report the plain address of the port).
    const pin = pinOf(worker);
    const address = info.baseUrl.replace(/\/+$/, "");
    const baseUrl = `${pin ? address.replace(/^http:\/\//i, "https://") : address}/v1`;
    if (!(await this.deps.probe(baseUrl, worker.token, pin))) {
      return worker.state === "provisioning" ? registry.transition(worker, "booting", { baseUrl }) : worker;
    }
    const booted =
      worker.state === "provisioning" ? await registry.transition(worker, "booting", { baseUrl }) : worker;
    const ready = await registry.transition(booted, "ready", {
      baseUrl,
      readyAtMs: now,
      lastActiveAtMs: now,
      detail: "serving",
    });
    await registry.publishRoute(ready, model.targetConcurrency);
    const coldStart = (now - worker.createdAtMs) / 1000;
    const cache = await this.deps.coldStarts.observeColdStart(model, worker, now, coldStart);
    this.deps.metrics.coldStart.observe({ model: model.name, provider: worker.provider, cache }, coldStart);
    this.deps.journal.log(
      `controller: ${model.name}: worker ${worker.id} ready after ${coldStart.toFixed(1)}s (weight cache ${cache})`,
    );
    return ready;
  }

  /**
   * A ready worker whose engine stops answering (the container exited, the host went away) would take requests
   * until its keep-alive ran out. Probe it in the background every `healthCheckMs`; after a few failures in a row
   * ask the provider, and replace the worker when the provider no longer runs it — or when it keeps failing.
   */
  private async checkHealth(
    worker: WorkerRecord,
    adapter: ProviderAdapter | undefined,
  ): Promise<WorkerRecord> {
    if (!worker.baseUrl || worker.provider === "local") return worker;
    const now = this.deps.now();
    let check = this.health.get(worker.id);
    if (!check) {
      check = { at: now, failures: 0 };
      this.health.set(worker.id, check);
    }
    const state = check;
    if (!state.running && now - state.at >= (this.deps.healthCheckMs ?? 3_000)) {
      state.at = now;
      state.running = this.deps
        .probe(worker.baseUrl, worker.token, pinOf(worker))
        .then(
          (ok) => {
            state.failures = ok ? 0 : state.failures + 1;
          },
          () => {
            state.failures += 1;
          },
        )
        .finally(() => {
          state.running = undefined;
        });
    }
    if (state.failures < HEALTH_FAILURES_ASK_PROVIDER) return worker;
    if (state.failures >= HEALTH_FAILURES_REPLACE)
      return this.fail(worker, `the engine did not answer ${state.failures} health checks in a row`);
    if (!adapter || !worker.providerId || state.asked === state.failures) return worker;
    state.asked = state.failures; // once per failed check, not on every tick
    const info = await adapter.describe(worker.providerId);
    if (info && info.status === "running") return worker;
    return this.fail(
      worker,
      `the engine stopped answering and ${worker.provider} reports the instance ${info ? `${info.status}${info.detail ? ` (${info.detail})` : ""}` : "gone"}`,
    );
  }

  /** Fail a worker: note why, stop routing to it, and terminate it. */
  async fail(worker: WorkerRecord, why: string): Promise<WorkerRecord> {
    const { registry, journal } = this.deps;
    journal.log(`controller: worker ${worker.id} failed: ${why}`);
    await journal.note({ model: worker.model, action: "fail", worker: worker.id, reason: why });
    await registry.removeRoute(worker.model, worker.id);
    const failed = await registry.transition(worker, "failed", { detail: why });
    return this.terminate(failed);
  }

  /** Ask the provider to terminate; mark terminated only when it confirms. Retried every tick until then. */
  private async terminate(worker: WorkerRecord): Promise<WorkerRecord> {
    const { registry, journal, metrics, spend } = this.deps;
    const now = this.deps.now();
    const adapter = this.deps.adapters[worker.provider];
    let current = worker.terminateRequestedAtMs
      ? worker
      : await registry.update(worker, { terminateRequestedAtMs: now });
    if (!worker.providerId || !adapter) {
      metrics.terminationPending.remove({ provider: worker.provider, worker: worker.id });
      return registry.transition(current, "terminated", { detail: current.detail });
    }
    try {
      // Accepted on an earlier pass (this one may run after a controller restart): the provider has not billed
      // since, beyond what ticks booked while it still reported the instance.
      const acceptedBefore = current.terminateAcceptedAtMs;
      await adapter.terminate(worker.providerId);
      if (acceptedBefore === undefined)
        current = await registry.update(current, { terminateAcceptedAtMs: this.deps.now() });
      const after = await adapter.describe(worker.providerId);
      if (after && after.status !== "terminated") {
        metrics.terminationPending.set(
          { provider: worker.provider, worker: worker.id },
          (now - current.terminateRequestedAtMs!) / 1000,
        );
        return current;
      }
      let endedAtMs: number;
      if (acceptedBefore === undefined) {
        await spend.accrue([current]);
        endedAtMs = this.deps.now();
      } else endedAtMs = Math.max(current.accruedUntilMs, acceptedBefore);
      const settled = await spend
        .settle({ ...current, accruedUntilMs: endedAtMs }, current.createdAtMs, endedAtMs)
        .catch(() => 0);
      metrics.terminationPending.remove({ provider: worker.provider, worker: worker.id });
      journal.log(
        `controller: worker ${worker.id} terminated at ${worker.provider}${settled > 0 ? ` (+$${settled.toFixed(4)} billing minimum)` : ""}`,
      );
      return registry.transition(current, "terminated", { accruedUntilMs: endedAtMs });
    } catch (error) {
      if (error instanceof FencedOut) throw error;
      journal.providerError(worker.provider, error, `terminate ${worker.id}`);
      current = { ...current };
      metrics.terminationPending.set(
        { provider: worker.provider, worker: worker.id },
        (now - (current.terminateRequestedAtMs ?? now)) / 1000,
      );
      return current;
    }
  }
}
