/**
 * The controller loop: one leader reads demand from Redis, runs the pure scaling policy per model, and hands its
 * decisions to the collaborators that own the rest — the provisioner (intents, offers, failover), the worker
 * lifecycle (boot, health, drain, terminate), the orphan reconciler, the spend book (ledger, budgets), managed
 * backend steering (RunPod serverless) and the keep-alive state.
 *
 * Owns: the loop itself (start, stop, wake, schedule, tick), the demand subscription, and the per-worker gauges
 * of the last tick. Rules: every collaborator owns its own state behind a small interface and is wired here;
 * none reaches into another's, and none imports this module (the import graph has no cycle). Time comes from
 * `deps.now`. A tick: reconcile when due → advance lifecycles → book spend and budgets → steer managed
 * endpoints → scale each serving unit.
 */
import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import type { ConfigurableProviderId } from "../core/catalog";
import type { RuntimeConfig } from "../core/config/runtime";
import { type RedisKeys, redisKeys } from "../core/redis-keys";
import { servingUnits } from "../core/variants";
import { type CertificatePin, createWorkerCertificate, type WorkerCertificate } from "../core/x509";
import { readDemand } from "./demand";
import { ControllerJournal } from "./journal";
import { withPrewarmFloor } from "./keep-alive";
import { KeepAliveState } from "./keep-alive-state";
import { FencedOut, LeaderElection } from "./leader";
import { WorkerLifecycle } from "./lifecycle";
import { ManagedBackendSteering } from "./managed-steering";
import type { ControllerMetrics } from "./metrics";
import { type ModelConfig, weightCacheEntry } from "./model-types";
import { decideScale, type WorkerPhase, type WorkerView } from "./policy";
import { probeOpenAi } from "./probe";
import type { ManagedBackend, ProviderAdapter } from "./providers/types";
import { Provisioner } from "./provisioner";
import { OrphanReconciler } from "./reconciler";
import { type WorkerRecord, WorkerRegistry } from "./registry";
import { SpendBook } from "./spend-book";

export type { ScaleDecisionEntry } from "./model-types";
export { explainOfferChoice } from "./offer-choice";
export { probeOpenAi } from "./probe";

export interface ControllerDeps {
  readonly config: RuntimeConfig;
  readonly redis: Redis;
  /** Instance providers by id (the caller builds them from settings and credentials). */
  readonly adapters: Partial<Record<ConfigurableProviderId, ProviderAdapter>>;
  /** Managed backends by id (RunPod serverless): providers that queue and scale their own workers. */
  readonly managed?: Partial<Record<ConfigurableProviderId, ManagedBackend>>;
  readonly metrics: ControllerMetrics;
  /** Engine environment for workers (HF_TOKEN); values are secrets. */
  readonly workerEnv?: Readonly<Record<string, string>>;
  readonly log?: (line: string) => void;
  readonly now?: () => number;
  /** Decision interval; demand signals wake the loop at once in between. @default 1000 */
  readonly tickMs?: number;
  /** Reconciliation interval. @default 60000 */
  readonly reconcileMs?: number;
  /** A worker that is not ready this long after its request is failed and replaced. @default 1200000 */
  readonly bootTimeoutMs?: number;
  /** An intent record older than this without an instance is dropped (the create never happened). @default 120000 */
  readonly staleIntentMs?: number;
  /** Draining workers get this long for in-flight requests to finish. @default 120000 */
  readonly drainGraceMs?: number;
  /**
   * Ready workers' OpenAI endpoints are probed this often; a worker that stops answering is failed and replaced
   * (at once when its provider no longer reports it running). @default 3000
   */
  readonly healthCheckMs?: number;
  /**
   * Asks a worker's OpenAI endpoint whether it serves (its token as bearer), trusting only `pin` when the worker
   * has a certificate. @default probeOpenAi
   */
  readonly probe?: (baseUrl: string, token: string, pin?: CertificatePin) => Promise<boolean>;
  /**
   * Issues the certificate and key of a worker outside the cluster (tests may hand out a fixed one).
   * @default createWorkerCertificate
   */
  readonly issueCertificate?: (workerId: string) => WorkerCertificate;
  /** Holder id for the leader lock. @default random */
  readonly holder?: string;
  /**
   * Managed endpoints are steered (listed, bounds checked, health read, workers booked) this often, and at once
   * when a budget block changes: their provider's API is rate-limited per account (RunPod: 60 a minute in the
   * spec's example). @default 15000
   */
  readonly managedSteerMs?: number;
}

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
    this.keepAlive = new KeepAliveState({ redis, keys, config });
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
      steerEveryMs: deps.managedSteerMs,
    });
  }

  get isLeader(): boolean {
    return this.leader.isLeader;
  }

  /** Start: subscribe to demand (a waiting request wakes the loop at once) and tick. */
  async start(): Promise<void> {
    this.running = true;
    this.zeroMetrics();
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

  /**
   * Create the labelled series of the counters and histograms the alert rules read with rate()/increase(), at 0:
   * Prometheus sees no increase in a series whose first sample already counts an event, so without this the
   * first orphan or slow cold start after a controller start would never raise its alert.
   */
  private zeroMetrics(): void {
    const m = this.deps.metrics;
    const kinds = ["auth", "capacity", "rate_limit", "transient", "invalid", "fatal"];
    for (const provider of [...Object.keys(this.deps.adapters), ...Object.keys(this.deps.managed ?? {})]) {
      m.orphans.inc({ provider }, 0);
      for (const kind of kinds) m.providerErrors.inc({ provider, kind }, 0);
    }
    for (const model of this.config.models)
      for (const provider of model.providers) {
        if (!this.deps.adapters[provider]) continue;
        m.coldStart.zero({ model: model.name, provider, cache: "miss" });
        if (weightCacheEntry(this.config, model, provider))
          m.coldStart.zero({ model: model.name, provider, cache: "hit" });
      }
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
    await this.reconciler.reconcileIfDue(this.now());
    const workers = await this.lifecycle.advanceAll(await this.registry.live());
    await this.spend.book(workers);
    this.provisioner.expireHoldBacks(); // clears an expired hold-back and its alert, demand or not
    await this.managed.steer();
    const previous = this.readyLabels;
    this.readyLabels = new Set();
    for (const model of this.config.models) {
      await this.scaleModel(
        model,
        workers.filter((w) => w.model === model.name),
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

  private async scaleModel(model: ModelConfig, workers: WorkerRecord[]): Promise<void> {
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
