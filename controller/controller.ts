/**
 * The controller loop: one leader reads demand from Redis, runs the pure scaling policy per model, and hands its
 * decisions to the collaborators that own the rest — the provisioner (intents, offers, failover), the worker
 * lifecycle (boot, health, drain, terminate), the orphan reconciler, the spend book (ledger, budgets), managed
 * backend steering (RunPod serverless) and the keep-alive state.
 *
 * Owns: the loop itself (start, stop, wake, schedule, tick), the demand subscription, and the per-worker gauges
 * of the last tick. Rules: every collaborator owns its own state behind a small interface and is wired here;
 * none reaches into another's, and none imports this module (the import graph has no cycle). Time comes from
 * `deps.now`. A tick: reconcile when due → advance lifecycles → read the run-time controls (core/run-time-controls.ts)
 * → drain the workers an operator asked to → book spend and budgets (lowered budgets in force) → self-heal within
 * the stack's guard rails (self-healing.ts) → steer managed endpoints → scale each serving unit (within its run-time
 * worker bounds).
 */
import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import { PROVIDERS } from "../core/catalog";
import type { RuntimeConfig } from "../core/config/runtime";
import { type RedisKeys, redisKeys } from "../core/redis-keys";
import {
  boundedModel,
  clearDrainRequests,
  NO_CONTROLS,
  readRunTimeControls,
  type WorkerBounds,
} from "../core/run-time-controls";
import { servingUnits } from "../core/variants";
import { createWorkerCertificate } from "../core/x509";
import type { ControllerDeps } from "./controller-deps";
import { readDemand } from "./demand";
import { ControllerJournal } from "./journal";
import { withPrewarmFloor } from "./keep-alive";
import { KeepAliveState } from "./keep-alive-state";
import { FencedOut, LeaderElection } from "./leader";
import { WorkerLifecycle } from "./lifecycle";
import { ManagedBackendSteering } from "./managed-steering";
import { zeroAlertSeries } from "./metrics";
import type { ModelConfig } from "./model-types";
import { decideScale, paidUnitOf, type WorkerPhase, type WorkerView } from "./policy";
import { probeOpenAi } from "./probe";
import { Provisioner } from "./provisioner";
import { OrphanReconciler } from "./reconciler";
import { StateLossWatch } from "./redis-loss";
import { type WorkerRecord, WorkerRegistry } from "./registry";
import { SelfHealing } from "./self-healing";
import { SpendBook } from "./spend-book";

export type { ControllerDeps } from "./controller-deps";
export type { ScaleDecisionEntry } from "./model-types";
export { explainOfferChoice } from "./offer-choice";
export { probeOpenAi } from "./probe";

const PHASES: readonly string[] = ["requested", "provisioning", "booting", "ready", "draining"];

export class Controller {
  private readonly config: RuntimeConfig;
  private readonly keys: RedisKeys;
  private readonly leader: LeaderElection;
  /** The worker registry every collaborator writes through (one instance: tests replace its methods). */
  private readonly registry: WorkerRegistry;
  private readonly now: () => number;
  private readonly journal: ControllerJournal;
  private readonly keepAlive: KeepAliveState;
  private readonly spend: SpendBook;
  private readonly provisioner: Provisioner;
  private readonly lifecycle: WorkerLifecycle;
  private readonly reconciler: OrphanReconciler;
  private readonly managed: ManagedBackendSteering;
  private readonly selfHealing: SelfHealing;
  /** Holds the loop still after Redis lost the stack's state under it, until a restore (redis-loss.ts). */
  private readonly stateLoss: StateLossWatch;
  private timer: NodeJS.Timeout | undefined;
  private subscriber: Redis | undefined;
  private running = false;
  private ticking: Promise<void> | undefined;
  private wakeRequested = false;
  /** `model|provider|worker` of the per-worker gauges set in the last tick. */
  private readyLabels = new Set<string>();

  constructor(private readonly deps: ControllerDeps) {
    // Scaling, routes, queues and spend are per serving unit: a model in a rollout is one unit per variant.
    const config = { ...deps.config, models: servingUnits(deps.config.models) };
    const { redis, metrics, adapters } = deps;
    const keys = redisKeys(deps.config.redis.keyPrefix);
    const now = deps.now ?? Date.now;
    this.config = config;
    this.keys = keys;
    this.now = now;
    this.leader = new LeaderElection(
      redis,
      keys,
      deps.holder ?? `controller-${randomBytes(4).toString("hex")}`,
    );
    const registry = new WorkerRegistry(redis, keys, () => this.leader.fence, now);
    this.registry = registry;
    const journal = new ControllerJournal({
      redis,
      keys,
      metrics,
      now,
      log: deps.log ?? ((line) => process.stderr.write(`${line}\n`)),
      actor: `controller:${this.leader.holder}`,
    });
    this.journal = journal;
    this.keepAlive = new KeepAliveState({ redis, keys, config, drawSeed: deps.keepAliveDrawSeed });
    const spend = new SpendBook({
      config,
      redis,
      keys,
      registry,
      journal,
      metrics,
      now,
      tickSeconds: (deps.tickMs ?? 1_000) / 1000,
    });
    this.spend = spend;
    const { workerEnv, staleIntentMs } = deps;
    const issueCertificate = deps.issueCertificate ?? ((workerId) => createWorkerCertificate(workerId));
    this.provisioner = new Provisioner({
      config,
      adapters,
      registry,
      journal,
      metrics,
      now,
      issueCertificate,
      workerEnv,
      staleIntentMs,
    });
    this.lifecycle = new WorkerLifecycle({
      config,
      adapters,
      registry,
      journal,
      metrics,
      now,
      spend,
      staleIntentMs,
      intents: this.provisioner,
      coldStarts: this.keepAlive,
      demand: (unit) => readDemand(redis, keys, unit, now()),
      probe: deps.probe ?? probeOpenAi,
      bootTimeoutMs: deps.bootTimeoutMs,
      drainGraceMs: deps.drainGraceMs,
      healthCheckMs: deps.healthCheckMs,
    });
    this.reconciler = new OrphanReconciler({
      adapters,
      registry,
      journal,
      metrics,
      now,
      reconcileMs: deps.reconcileMs,
      ownerLabel: config.ownerLabel,
      lifecycle: this.lifecycle,
    });
    this.managed = new ManagedBackendSteering({
      config,
      registry,
      journal,
      now,
      spend,
      backends: deps.managed ?? {},
      waitingFor: async (unit) => (await readDemand(redis, keys, unit, now())).waiting,
      steerEveryMs: deps.managedSteerMs,
    });
    this.stateLoss = new StateLossWatch({ redis, keys, journal, now });
    this.selfHealing = new SelfHealing({
      config,
      redis,
      keys,
      journal,
      now,
      adapters,
      lifecycle: this.lifecycle,
      provisioner: this.provisioner,
      blockOf: (unit) => spend.blockOf(unit),
      actor: `controller:${this.leader.holder}`,
    });
  }

  get isLeader(): boolean {
    return this.leader.isLeader;
  }

  /** Start: subscribe to demand (a waiting request wakes the loop at once) and tick. */
  async start(): Promise<void> {
    this.running = true;
    zeroAlertSeries(this.deps.metrics, this.config, [
      ...Object.keys(this.deps.adapters),
      ...Object.keys(this.deps.managed ?? {}),
    ]);
    await this.keepAlive.load();
    this.subscriber = this.deps.redis.duplicate();
    this.subscriber.on("error", () => undefined);
    this.subscriber.on("message", (_channel: string, message: string) => {
      try {
        const { model } = JSON.parse(message) as { model?: string };
        if (model) this.provisioner.noteDemandSignal(model, this.now());
      } catch {
        // malformed signals only lose their wake-up; the next tick sees the queue anyway
      }
      this.wake();
    });
    await this.subscriber.subscribe(this.keys.demandChannel);
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    await this.ticking;
    this.subscriber?.disconnect();
    await this.leader.release().catch(() => undefined);
  }

  private schedule(ms: number): void {
    if (!this.running) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.runTick(), ms);
  }

  /** Run a tick as soon as the current one ends (demand arrived). */
  wake(): void {
    if (this.ticking) this.wakeRequested = true;
    else this.schedule(0);
  }

  private async runTick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = this.tick()
      .catch((error: unknown) => {
        if (error instanceof FencedOut) this.journal.log(`controller: ${error.message}`);
        else this.journal.log(`controller: tick failed: ${(error as Error).stack ?? error}`);
      })
      .finally(() => {
        this.ticking = undefined;
        const again = this.wakeRequested;
        this.wakeRequested = false;
        this.schedule(again ? 0 : (this.deps.tickMs ?? 1_000));
      });
    await this.ticking;
  }

  /** One decision round (public for tests and the benchmark). */
  async tick(): Promise<void> {
    if (!(await this.leader.tick())) return;
    if (await this.stateLoss.holds(this.leader.fence, this.now())) return;
    await this.reconciler.reconcileIfDue(this.now());
    const workers = await this.lifecycle.advanceAll(await this.registry.live());
    // a failed read keeps the config's values for this tick: a control only ever narrows them
    const controls = await readRunTimeControls(this.deps.redis, this.keys).catch(() => NO_CONTROLS);
    await clearDrainRequests(
      this.deps.redis,
      this.keys,
      await this.lifecycle.drainAsked(workers, controls.drains),
    );
    await this.spend.book(workers, controls.budgets);
    // after the booking, so a budget that blocks now also holds self-healing back (self-healing-policy.ts)
    await this.selfHealing.heal(workers);
    this.provisioner.expireHoldBacks(); // clears an expired hold-back and its alert, demand or not
    await this.managed.steer();
    const previous = this.readyLabels;
    this.readyLabels = new Set();
    for (const model of this.config.models) {
      await this.scaleModel(
        model,
        workers.filter((w) => w.model === model.name),
        controls.bounds[model.name],
      );
    }
    // Per-worker series of workers that are gone would otherwise pile up for the life of the process.
    for (const key of previous) {
      if (this.readyLabels.has(key)) continue;
      const [model, provider, worker] = key.split("|") as [string, string, string];
      this.deps.metrics.gpuIdle.remove({ model, provider, worker });
      this.deps.metrics.gpuUtilization.remove({ model, provider, worker });
    }
  }

  /** Compare what each provider runs under our owner label with the registry: adopt, or terminate orphans. */
  reconcile(): Promise<void> {
    return this.reconciler.reconcile();
  }

  // ── demand and scaling ───────────────────────────────────────────────────────────────────────────────────

  private async scaleModel(
    configured: ModelConfig,
    workers: WorkerRecord[],
    bounds: WorkerBounds | undefined,
  ): Promise<void> {
    // run-time bounds (MCP `set_worker_bounds`) narrow the config's, never widen them
    const model = boundedModel(configured, bounds);
    const now = this.now();
    const { metrics } = this.deps;
    const { waiting, inflight } = await readDemand(this.deps.redis, this.keys, model.name, now);
    metrics.queueDepth.set({ model: model.name }, waiting);
    // every idle gap of the model, also one no worker outlived, and the queue each restart from zero built: the
    // keep-alive learns from both (keep-alive.ts)
    let inFlight = 0;
    for (const n of inflight.values()) inFlight += n;
    const readyWorkers = workers.filter((w) => w.state === "ready").length;
    this.keepAlive.observeDemand(model.name, { waiting, inFlight, readyWorkers }, now);
    if (this.managed.isManaged(model.name)) return; // RunPod queues and scales a managed endpoint itself

    const views: WorkerView[] = [];
    for (const w of workers) {
      if (!PHASES.includes(w.state)) continue;
      const busy = inflight.get(w.id) ?? 0;
      let lastActive = w.lastActiveAtMs;
      if (busy > 0) lastActive = now;
      else if (w.state === "ready" && lastActive < (w.readyAtMs ?? 0)) lastActive = w.readyAtMs ?? lastActive;
      if (busy > 0 && w.state === "ready" && now - w.lastActiveAtMs > 1_000)
        await this.registry.update(w, { lastActiveAtMs: now });
      views.push({
        id: w.id,
        provider: w.provider,
        phase: w.state as WorkerPhase,
        inFlight: busy,
        createdAtMs: w.createdAtMs,
        readyAtMs: w.readyAtMs,
        lastActiveAtMs: lastActive,
        usdPerHour: w.usdPerHour,
        paidUnit: paidUnitOf(PROVIDERS[w.provider].billing, w.createdAtMs, w.readyAtMs),
      });
      if (w.state === "ready") {
        const labels = { model: model.name, provider: w.provider, worker: w.id };
        this.readyLabels.add(`${model.name}|${w.provider}|${w.id}`);
        metrics.gpuIdle.set(labels, busy > 0 ? 0 : (now - lastActive) / 1000);
        metrics.gpuUtilization.set(labels, Math.min(100, (100 * busy) / model.targetConcurrency));
      }
    }
    const primary = model.providers.find((p) => this.deps.adapters[p]) ?? model.providers[0]!;
    const keepAlive = this.keepAlive.keepAlive(model, primary);
    const blocked = this.spend.blockOf(model.name);
    const decision = decideScale({
      nowMs: now,
      // a pre-warm plan holds one worker inside its window of the idle spell (keep-alive.ts, prewarm.ts)
      model: withPrewarmFloor(model, keepAlive, this.keepAlive.idleSeconds(model.name, now)),
      waiting,
      workers: views,
      keepAliveSeconds: keepAlive.seconds,
      budgetExhausted: blocked !== undefined,
    });
    const { journal } = this;
    if (decision.provision > 0 || decision.drain.length > 0) {
      journal.log(`controller: ${model.name}: ${decision.reason}; keep-alive ${keepAlive.reason}`);
    }
    if (decision.provision > 0)
      await journal.note({
        model: model.name,
        action: "provision",
        workers: decision.provision,
        reason: decision.reason,
      });
    if (decision.drain.length > 0)
      await journal.note({
        model: model.name,
        action: "drain",
        workers: decision.drain.length,
        reason: `${decision.reason}; keep-alive ${keepAlive.reason}`,
      });
    const capacity = views.filter((v) => v.phase !== "draining").length;
    if (this.spend.blockNoticeDue(model.name, blocked, decision.desired > capacity))
      await journal.note({ model: model.name, action: "blocked", reason: `${blocked}; ${decision.reason}` });
    for (let i = 0; i < decision.provision; i++) await this.provisioner.start(model);
    for (const order of decision.drain) {
      const worker = workers.find((w) => w.id === order.workerId);
      if (!worker) continue;
      metrics.decisions.inc({ model: model.name, action: "drain" });
      await this.registry.removeRoute(model.name, worker.id);
      await this.registry.transition(worker, "draining", { detail: order.reason });
    }
  }
}
