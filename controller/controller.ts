/**
 * The controller: one leader reads demand from Redis, runs the pure scaling policy per model, and carries out
 * its decisions — provision on the cheapest allowed offer (failing over on errors), boot until the worker's
 * OpenAI endpoint answers, route, drain, terminate until the provider confirms — while booking spend,
 * enforcing budgets and reconciling against what the providers actually run.
 */
import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import { Agent, request } from "undici";
import { type AuditAction, AuditTrail } from "../core/audit-trail";
import { type ConfigurableProviderId, PROVIDERS } from "../core/catalog";
import type { RuntimeConfig } from "../core/config/runtime";
import { ENGINE_IMAGES } from "../core/config/schema";
import { inflightCountOfMember, workerOfInflightMember } from "../core/protocol";
import { type RedisKeys, redisKeys } from "../core/redis-keys";
import { decideProvision, refusalText } from "../core/trust";
import { budgetGroupSpend, parseUnitName, servingUnits } from "../core/variants";
import {
  type CertificatePin,
  createWorkerCertificate,
  pinnedTlsOptions,
  type WorkerCertificate,
} from "../core/x509";
import { ColdStartEstimate, IdleGapHistory, keepAliveFor } from "./keep-alive";
import { FencedOut, LeaderElection } from "./leader";
import { budgetBlocks, Ledger } from "./ledger";
import type { ControllerMetrics } from "./metrics";
import { decideScale, type WorkerPhase, type WorkerView } from "./policy";
import {
  engineServesTls,
  isProviderError,
  type ManagedBackend,
  type ManagedEndpoint,
  type ManagedHealth,
  type Offer,
  type OfferSearch,
  PLACEMENT_REFUSED,
  type ProviderAdapter,
  parseInstanceTag,
  type SkippedOffer,
  type WorkerSpec,
} from "./providers/types";
import { pinOf, type WorkerRecord, WorkerRegistry } from "./registry";

type ModelConfig = RuntimeConfig["models"][number];

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

/**
 * A worker is ready when its OpenAI endpoint answers /v1/models with its token. With a pin, only over https and
 * only to a server presenting exactly that certificate — the token is never sent to anything else.
 */
export async function probeOpenAi(baseUrl: string, token: string, pin?: CertificatePin): Promise<boolean> {
  if (pin && !/^https:\/\//i.test(baseUrl)) return false;
  const dispatcher = pin ? new Agent({ connect: { ...pinnedTlsOptions(pin), timeout: 3_000 } }) : undefined;
  try {
    const response = await request(`${baseUrl}/models`, {
      headers: { authorization: `Bearer ${token}` },
      headersTimeout: 3_000,
      bodyTimeout: 3_000,
      ...(dispatcher ? { dispatcher } : {}),
    });
    await response.body.dump();
    return response.statusCode === 200;
  } catch {
    return false;
  } finally {
    await dispatcher?.destroy().catch(() => undefined);
  }
}

const PHASES: readonly string[] = ["requested", "provisioning", "booting", "ready", "draining"];
/** Workers are replaced this long after creation, before their 30-day certificate runs out. */
const CERT_RENEW_AFTER_MS = 28 * 86_400_000;
/** An intent record older than this with no instance behind it was a create that never happened. */
const STALE_INTENT_MS = 120_000;
/** Failed health checks in a row after which the provider is asked (once per failure) whether it still runs. */
const HEALTH_FAILURES_ASK_PROVIDER = 1;
/** Failed health checks in a row after which a worker is replaced even though its provider reports it running. */
const HEALTH_FAILURES_REPLACE = 5;
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
/**
 * A worker its provider reports running but without an address for the engine port (a host that publishes no
 * public port) is failed over after this long, instead of billing until the boot timeout.
 */
const ADDRESS_GRACE_MS = 60_000;
/** How many scale decisions `aiorch status` can show (a capped list in Redis). */
const DECISIONS_KEPT = 200;

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

export class Controller {
  private readonly config: RuntimeConfig;
  private readonly keys: RedisKeys;
  private readonly leader: LeaderElection;
  private readonly registry: WorkerRegistry;
  private readonly ledger: Ledger;
  private readonly now: () => number;
  private readonly log: (line: string) => void;
  private readonly probe: (baseUrl: string, token: string, pin?: CertificatePin) => Promise<boolean>;
  private readonly issueCertificate: (workerId: string) => WorkerCertificate;
  private readonly coldStarts = new Map<string, ColdStartEstimate>();
  /** Weight-cache entries (`weightCacheEntry`) some worker has loaded: the next cold start from them is a hit. */
  private readonly cachesLoaded = new Set<string>();
  private readonly idleGaps = new Map<string, IdleGapHistory>();
  /** Provisions under way in this process (worker ids), so a tick does not start one twice. */
  private readonly provisioning = new Set<string>();
  /**
   * Intents whose write failed in this process (Redis went away before answering), by id → when. The write may
   * have landed anyway, but no create was started for it: such a record is closed as soon as it is seen instead
   * of being counted as a worker on its way for `staleIntentMs`.
   */
  private readonly unstartedIntents = new Map<string, number>();
  private readonly offersCache = new Map<string, { search: OfferSearch; at: number }>();
  private readonly demandSeenAt = new Map<string, number>();
  private blocks: Record<string, string> = {};
  private lastReconcile = 0;
  private timer: NodeJS.Timeout | undefined;
  private subscriber: Redis | undefined;
  private running = false;
  private ticking: Promise<void> | undefined;
  private wakeRequested = false;
  private readonly managedEndpoints = new Map<string, string>();
  /** `model|provider|worker` of the per-worker gauges set in the last tick. */
  private readyLabels = new Set<string>();
  /** Health checks of ready workers: last probe, failures in a row, the probe under way. */
  private readonly health = new Map<
    string,
    { at: number; failures: number; asked?: number; running?: Promise<void> }
  >();
  /** `model|provider` → the last refusal written to the audit trail. */
  private readonly refusalsAudited = new Map<string, string>();
  private readonly auditTrail: AuditTrail;
  /** Per model, the last budget refusal written to the decision list (written again only when it changes). */
  private readonly blockedNoted = new Map<string, string>();
  /** `model|provider` → when the provider refused a create as invalid, and why (see REJECTED_RETRY_MS). */
  private readonly rejected = new Map<string, { atMs: number; holdMs: number; reason: string }>();
  /** Models told (once) that no provider can start a worker for them, with the reasons told. */
  private readonly noProviderLogged = new Map<string, string>();
  /** Worker id → when its provider first reported it running without an address (see ADDRESS_GRACE_MS). */
  private readonly addressless = new Map<string, number>();
  /** When managed endpoints were last steered, and under which budget blocks. */
  private lastSteer = { atMs: Number.NEGATIVE_INFINITY, blocks: "" };
  /** Models whose managed queue purge at a budget cap is already in the decision list (once per block). */
  private readonly purgeNoted = new Set<string>();

  constructor(private readonly deps: ControllerDeps) {
    // Scaling, routes, queues and spend are per serving unit: a model in a rollout is one unit per variant.
    this.config = { ...deps.config, models: servingUnits(deps.config.models) };
    this.keys = redisKeys(deps.config.redis.keyPrefix);
    this.now = deps.now ?? Date.now;
    this.log = deps.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.probe = deps.probe ?? probeOpenAi;
    this.issueCertificate = deps.issueCertificate ?? ((workerId) => createWorkerCertificate(workerId));
    this.leader = new LeaderElection(
      deps.redis,
      this.keys,
      deps.holder ?? `controller-${randomBytes(4).toString("hex")}`,
    );
    this.registry = new WorkerRegistry(deps.redis, this.keys, () => this.leader.fence, this.now);
    this.ledger = new Ledger(deps.redis, this.keys, this.now);
    this.auditTrail = new AuditTrail(deps.redis, this.keys, this.now);
  }

  get isLeader(): boolean {
    return this.leader.isLeader;
  }

  /** Start: subscribe to demand (a waiting request wakes the loop at once) and tick. */
  async start(): Promise<void> {
    this.running = true;
    this.zeroMetrics();
    try {
      for (const entry of await this.deps.redis.hkeys(this.keys.weightCacheLoaded))
        this.cachesLoaded.add(entry);
    } catch {
      // unknown until the next worker is ready: keep-alive assumes a miss meanwhile, the costlier restart
    }
    this.subscriber = this.deps.redis.duplicate();
    this.subscriber.on("error", () => undefined);
    this.subscriber.on("message", (_channel: string, message: string) => {
      try {
        const { model } = JSON.parse(message) as { model?: string };
        if (model && !this.demandSeenAt.has(model)) this.demandSeenAt.set(model, this.now());
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
        if (this.weightCacheEntry(model, provider))
          m.coldStart.zero({ model: model.name, provider, cache: "hit" });
      }
  }

  /**
   * A provider refused for a model: counted and logged every time, and written to the audit trail once per
   * model, provider and reason (a refusal repeats every tick while demand lasts).
   */
  private refuse(model: string, provider: string, reason: string): void {
    this.deps.metrics.decisions.inc({ model, action: "refuse" });
    this.log(`controller: refusing ${provider} for ${model}: ${reason}`);
    const key = `${model}|${provider}`;
    if (this.refusalsAudited.get(key) === reason) return;
    this.refusalsAudited.set(key, reason);
    this.audit("provider.refused", `${model}@${provider}`, reason);
  }

  /** An audit trail entry by this controller; best effort (the action itself already happened or was refused). */
  private audit(action: AuditAction, target: string, reason: string): void {
    this.auditTrail
      .append({ actor: `controller:${this.leader.holder}`, action, target, reason })
      .catch((error: Error) => this.log(`controller: audit trail: ${error.message}`));
  }

  /** Append to the capped decision list `aiorch status` shows; best effort, never fails a tick. */
  private async noteDecision(entry: Omit<ScaleDecisionEntry, "atMs">): Promise<void> {
    const key = this.keys.scaleDecisions;
    await this.deps.redis
      .multi()
      .lpush(key, JSON.stringify({ atMs: this.now(), ...entry }))
      .ltrim(key, 0, DECISIONS_KEPT - 1)
      .exec()
      .catch(() => undefined);
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
        if (error instanceof FencedOut) this.log(`controller: ${error.message}`);
        else this.log(`controller: tick failed: ${(error as Error).stack ?? error}`);
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
    const now = this.now();
    if (now - this.lastReconcile >= (this.deps.reconcileMs ?? 60_000)) {
      this.lastReconcile = now;
      await this.reconcile();
    }
    let workers = await this.registry.live();
    workers = await this.advanceLifecycles(workers);
    for (const id of this.health.keys())
      if (!workers.some((w) => w.id === id && w.state === "ready")) this.health.delete(id);
    await this.book(workers);
    for (const key of this.rejected.keys()) {
      const [model, provider] = key.split("|") as [string, ConfigurableProviderId];
      this.isRejected(model, provider); // clears an expired hold-back and its alert, demand or not
    }
    await this.steerManaged();
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

  // ── demand and scaling ───────────────────────────────────────────────────────────────────────────────────

  private async demand(model: ModelConfig): Promise<{ waiting: number; inflight: Map<string, number> }> {
    const now = this.now();
    const waitingKey = this.keys.waiting(model.name);
    const inflightKey = this.keys.inflight(model.name);
    const [, waiting, jobs, , leases] = (await this.deps.redis
      .multi()
      .zremrangebyscore(waitingKey, "-inf", now) // a crashed gateway's waiters fall out by their deadline
      .zcard(waitingKey)
      .xlen(this.keys.jobs(model.name))
      .zremrangebyscore(inflightKey, "-inf", now)
      .zrange(inflightKey, 0, -1)
      .exec()) as [unknown, [null, number], [null, number], unknown, [null, string[]]];
    const inflight = new Map<string, number>();
    for (const member of leases[1]) {
      // one member per gateway replica and worker, carrying that replica's count (or a legacy per-request lease)
      const worker = workerOfInflightMember(member);
      inflight.set(worker, (inflight.get(worker) ?? 0) + inflightCountOfMember(member));
    }
    return { waiting: waiting[1] + jobs[1], inflight };
  }

  private keepAlive(model: ModelConfig, provider: ConfigurableProviderId) {
    const key = `${model.name}/${provider}`;
    const history = this.idleGaps.get(key) ?? new IdleGapHistory();
    this.idleGaps.set(key, history);
    // the restart a scale-down risks is a cache hit once some worker has filled the cache
    const entry = this.weightCacheEntry(model, provider);
    const cache = entry && this.cachesLoaded.has(entry) ? "hit" : "miss";
    return keepAliveFor(model, {
      coldStartSeconds: this.coldStartOf(model.name, provider, cache).seconds,
      billing: PROVIDERS[provider].billing,
      history,
    });
  }

  private coldStartOf(
    model: string,
    provider: ConfigurableProviderId,
    cache: "hit" | "miss",
  ): ColdStartEstimate {
    const key = `${model}/${provider}/${cache}`;
    const estimate =
      this.coldStarts.get(key) ?? new ColdStartEstimate(PROVIDERS[provider].coldStart.p50Seconds);
    this.coldStarts.set(key, estimate);
    return estimate;
  }

  private async scaleModel(model: ModelConfig, workers: WorkerRecord[]): Promise<void> {
    const now = this.now();
    const { waiting, inflight } = await this.demand(model);
    this.deps.metrics.queueDepth.set({ model: model.name }, waiting);
    if (this.managedEndpoints.has(model.name)) return; // RunPod queues and scales a managed endpoint itself

    const views: WorkerView[] = [];
    for (const w of workers) {
      if (!PHASES.includes(w.state)) continue;
      const busy = inflight.get(w.id) ?? 0;
      let lastActive = w.lastActiveAtMs;
      if (busy > 0) lastActive = now;
      else if (w.state === "ready" && lastActive < (w.readyAtMs ?? 0)) lastActive = w.readyAtMs ?? lastActive;
      if (busy > 0 && w.state === "ready") {
        // an idle gap ended: learn from it for the adaptive keep-alive
        const gap = (now - w.lastActiveAtMs) / 1000;
        if (w.lastActiveAtMs > (w.readyAtMs ?? 0) && gap > 1)
          this.keepAliveHistory(model, w.provider).observe(gap);
        if (now - w.lastActiveAtMs > 1_000) await this.registry.update(w, { lastActiveAtMs: now });
      }
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
        this.readyLabels.add(`${model.name}|${w.provider}|${w.id}`);
        this.deps.metrics.gpuIdle.set(
          { model: model.name, provider: w.provider, worker: w.id },
          busy > 0 ? 0 : (now - lastActive) / 1000,
        );
        this.deps.metrics.gpuUtilization.set(
          { model: model.name, provider: w.provider, worker: w.id },
          Math.min(100, (100 * busy) / model.targetConcurrency),
        );
      }
    }
    const primary = model.providers.find((p) => this.deps.adapters[p]) ?? model.providers[0]!;
    const keepAlive = this.keepAlive(model, primary);
    const blocked = this.blocks[parseUnitName(model.name).model] ?? this.blocks["*"];
    const decision = decideScale({
      nowMs: now,
      model,
      waiting,
      workers: views,
      keepAliveSeconds: keepAlive.seconds,
      budgetExhausted: blocked !== undefined,
    });
    if (decision.provision > 0 || decision.drain.length > 0) {
      this.log(`controller: ${model.name}: ${decision.reason}; keep-alive ${keepAlive.reason}`);
    }
    if (decision.provision > 0)
      await this.noteDecision({
        model: model.name,
        action: "provision",
        workers: decision.provision,
        reason: decision.reason,
      });
    if (decision.drain.length > 0)
      await this.noteDecision({
        model: model.name,
        action: "drain",
        workers: decision.drain.length,
        reason: `${decision.reason}; keep-alive ${keepAlive.reason}`,
      });
    const capacity = views.filter((v) => v.phase !== "draining").length;
    if (blocked !== undefined && decision.desired > capacity) {
      if (this.blockedNoted.get(model.name) !== blocked) {
        this.blockedNoted.set(model.name, blocked);
        await this.noteDecision({
          model: model.name,
          action: "blocked",
          reason: `${blocked}; ${decision.reason}`,
        });
      }
    } else if (blocked === undefined) this.blockedNoted.delete(model.name);
    for (let i = 0; i < decision.provision; i++) await this.startProvision(model);
    for (const order of decision.drain) {
      const worker = workers.find((w) => w.id === order.workerId);
      if (!worker) continue;
      this.deps.metrics.decisions.inc({ model: model.name, action: "drain" });
      await this.registry.removeRoute(model.name, worker.id);
      await this.registry.transition(worker, "draining", { detail: order.reason });
    }
  }

  private keepAliveHistory(model: ModelConfig, provider: ConfigurableProviderId): IdleGapHistory {
    this.keepAlive(model, provider);
    return this.idleGaps.get(`${model.name}/${provider}`)!;
  }

  // ── provisioning ─────────────────────────────────────────────────────────────────────────────────────────

  /** Write the intent record, then create at the provider in the background (the next tick sees it loading). */
  private async startProvision(model: ModelConfig): Promise<void> {
    const candidates = model.providers.filter((p) => {
      if (!this.deps.adapters[p] || this.isRejected(model.name, p)) return false;
      const decision = decideProvision(this.config, model.name, p);
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
            `${p}: ${this.rejected.get(`${model.name}|${p}`)?.reason ?? (this.deps.adapters[p] ? "refused" : "not available")}`,
        )
        .join("; ");
      // once per change of reasons: demand repeats this every tick
      if (this.noProviderLogged.get(model.name) !== why) {
        this.noProviderLogged.set(model.name, why);
        this.log(`controller: ${model.name} needs a worker but no allowed provider can start one (${why})`);
      }
      return;
    }
    this.noProviderLogged.delete(model.name);
    const id = `w${randomBytes(6).toString("hex")}`;
    const now = this.now();
    // The certificate is in the intent record before any create, so a worker adopted after a crash is pinned
    // too; the key stays in this process's memory and goes only to the provider with the worker's start-up.
    const certificate = candidates.some((p) => p !== "local") ? this.issueCertificate(id) : undefined;
    let intent: WorkerRecord;
    try {
      intent = await this.registry.create({
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
    this.deps.metrics.decisions.inc({ model: model.name, action: "provision" });
    this.provisioning.add(id);
    void this.provision(model, intent, candidates, certificate?.keyPem)
      .catch((error: unknown) =>
        // Redis gone for longer than the registry retries, or fenced out: the intent record stays, and the
        // reconciler adopts whatever was created (by its tag) or the stale intent is dropped.
        this.log(`controller: provisioning of ${id} interrupted: ${(error as Error).message}`),
      )
      .finally(() => this.provisioning.delete(id));
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
    if (cached && this.now() - cached.at < 60_000) return cached.search;
    const search = await this.deps.adapters[provider]!.offers({
      gpu: model.gpu,
      gpuCount: model.gpuCount,
      image: this.imageFor(model, provider),
    });
    this.offersCache.set(key, { search, at: this.now() });
    return search;
  }

  /** The provider's weight cache as it holds this model's pinned weights, or undefined without a cache. */
  private weightCacheEntry(model: ModelConfig, provider: ConfigurableProviderId): string | undefined {
    const mirror = this.settingsOf(provider)?.weightCache?.mirrorUrl;
    return mirror ? `${mirror}|${model.source}@${model.revision ?? "main"}` : undefined;
  }

  /** The settings of an instance provider that the controller reads itself (the adapters read the rest). */
  private settingsOf(
    provider: ConfigurableProviderId,
  ): { image?: string; weightCache?: { mirrorUrl: string } } | undefined {
    return this.config.providers[provider] as
      | { image?: string; weightCache?: { mirrorUrl: string } }
      | undefined;
  }

  /** The image a worker of this model runs at this provider: the provider's `image` setting, else the engine's. */
  private imageFor(model: ModelConfig, provider: ConfigurableProviderId): string {
    return this.settingsOf(provider)?.image ?? ENGINE_IMAGES[model.engine];
  }

  /**
   * Whether a worker that just became ready found its weights in the cache: a hit when another worker had
   * loaded them before this one was created (two workers booting together both miss). Records the first load.
   */
  private async coldStartCache(
    model: ModelConfig,
    worker: WorkerRecord,
    now: number,
  ): Promise<"hit" | "miss"> {
    const entry = this.weightCacheEntry(model, worker.provider);
    if (!entry) return "miss";
    this.cachesLoaded.add(entry);
    try {
      const key = this.keys.weightCacheLoaded;
      const answers = await this.deps.redis.multi().hsetnx(key, entry, String(now)).hget(key, entry).exec();
      const loadedAt = Number(answers?.[1]?.[1]);
      return Number.isFinite(loadedAt) && loadedAt < worker.createdAtMs ? "hit" : "miss";
    } catch {
      return "miss"; // Redis unreachable for a moment: counted as the costlier case, the worker serves anyway
    }
  }

  private spec(
    model: ModelConfig,
    worker: WorkerRecord,
    provider: ConfigurableProviderId,
    tlsKeyPem: string | undefined,
  ): WorkerSpec {
    const settings = this.settingsOf(provider);
    const pin = pinOf({ ...worker, provider });
    return {
      workerId: worker.id,
      ownerLabel: this.config.ownerLabel,
      // every variant answers under the model's public name
      model: parseUnitName(model.name).model,
      source: model.source,
      revision: model.revision,
      engine: model.engine,
      image: this.imageFor(model, provider),
      gpuCount: model.gpuCount,
      maxModelLen: model.maxModelLen,
      engineArgs: model.engineArgs,
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
    const offers: Offer[] = [];
    const skipped: SkippedOffer[] = [];
    for (const provider of candidates) {
      try {
        const search = await this.offersFor(model, provider);
        offers.push(...search.offers);
        skipped.push(...search.skipped);
      } catch (error) {
        this.providerError(provider, error, `offers for ${model.name}`);
      }
    }
    offers.sort(
      (a, b) =>
        a.usdPerHour - b.usdPerHour || candidates.indexOf(a.provider) - candidates.indexOf(b.provider),
    );
    const skip = new Set<ConfigurableProviderId>();
    /** Per provider: offers tried, and those refused with an ambiguous placement refusal (PLACEMENT_REFUSED). */
    const refusals = new Map<ConfigurableProviderId, { tried: number; refused: number; last?: string }>();
    let failedFirst = 0;
    let worker = intent;
    const demandAt = this.demandSeenAt.get(model.name);
    for (const offer of offers) {
      if (skip.has(offer.provider)) continue;
      if (worker.provider !== offer.provider || worker.usdPerHour !== offer.usdPerHour) {
        const current = worker;
        worker = await this.registryWrite(() =>
          this.registry.update(current, {
            provider: offer.provider,
            usdPerHour: offer.usdPerHour,
            gpu: offer.gpu,
          }),
        );
      }
      if (demandAt !== undefined) {
        this.deps.metrics.reaction.observe({ model: model.name }, (this.now() - demandAt) / 1000);
        this.demandSeenAt.delete(model.name);
      }
      let info: Awaited<ReturnType<ProviderAdapter["provision"]>>;
      try {
        const spec = this.spec(model, worker, offer.provider, tlsKeyPem);
        if (offer.provider !== "local" && !spec.tls)
          throw new Error(`worker ${worker.id} has no certificate to serve TLS with at ${offer.provider}`);
        info = await this.deps.adapters[offer.provider]!.provision(spec, offer);
      } catch (error) {
        if (error instanceof FencedOut) throw error;
        failedFirst += 1;
        this.providerError(offer.provider, error, `provision ${worker.id}`);
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
        this.registry.transition(created, "provisioning", {
          providerId: info.providerId,
          usdPerHour: info.usdPerHour ?? offer.usdPerHour,
          accruedUntilMs: this.now(),
          detail: `created at ${offer.provider} (${offer.gpu}, $${offer.usdPerHour}/h)`,
        }),
      );
      this.log(
        `controller: ${model.name}: worker ${worker.id} created at ${offer.provider} as ${info.providerId}`,
      );
      await this.noteDecision({
        model: model.name,
        action: "offer",
        worker: worker.id,
        reason: explainOfferChoice(offer, failedFirst, skipped),
      });
      await this.readRefusals(model, refusals);
      return;
    }
    await this.readRefusals(model, refusals);
    this.log(
      `controller: ${model.name}: no offer could be provisioned for ${worker.id}; will retry on the next decision`,
    );
    await this.noteDecision({
      model: model.name,
      action: "no-offer",
      worker: worker.id,
      reason: `no offer of ${candidates.join(", ")} could be provisioned (${offers.length} offer(s) tried); retried on the next decision`,
    });
    const gaveUp = worker;
    await this.registryWrite(() =>
      this.registry.transition(gaveUp, "terminated", { detail: "no provider could create it" }),
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
    this.rejected.set(key, { atMs: this.now(), holdMs, reason: `refused as invalid: ${error.detail}` });
    this.deps.metrics.requestRejected.set({ model: model.name, provider }, 1);
    if (!first) return;
    const reason = `${provider} refused the create as invalid (a configuration error, not capacity): ${error.detail}; no more creates there for this model for ${holdMs / 60_000} minutes`;
    this.log(`controller: ${model.name}: ${reason}`);
    this.audit("provider.refused", `${model.name}@${provider}`, reason);
    await this.noteDecision({ model: model.name, action: "config-error", reason });
  }

  /**
   * A provider whose every offer tried (two or more) was refused with an ambiguous placement refusal: the request
   * is the problem, not capacity (RunPod's own reading of its 400s), so it is handled as an invalid refusal.
   */
  private async readRefusals(
    model: ModelConfig,
    refusals: ReadonlyMap<ConfigurableProviderId, { tried: number; refused: number; last?: string }>,
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

  /** Whether creates for this model are held back from this provider after an invalid refusal. */
  private isRejected(model: string, provider: ConfigurableProviderId): boolean {
    const key = `${model}|${provider}`;
    const rejected = this.rejected.get(key);
    if (!rejected) return false;
    if (this.now() - rejected.atMs < rejected.holdMs) return true;
    this.rejected.delete(key);
    this.deps.metrics.requestRejected.set({ model, provider }, 0);
    return false;
  }

  private providerError(provider: ConfigurableProviderId, error: unknown, what: string): void {
    const kind = isProviderError(error) ? error.kind : "transient";
    this.deps.metrics.providerErrors.inc({ provider, kind });
    this.log(`controller: ${what} on ${provider} failed: ${(error as Error).message}`);
  }

  // ── lifecycle: boot, drain, terminate ──────────────────────────────────────────────────────────────────────

  private async advanceLifecycles(workers: WorkerRecord[]): Promise<WorkerRecord[]> {
    const out: WorkerRecord[] = [];
    for (const worker of workers) {
      try {
        out.push(await this.advance(worker));
      } catch (error) {
        if (error instanceof FencedOut) throw error;
        this.log(`controller: worker ${worker.id}: ${(error as Error).message}`);
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
    return out;
  }

  private async advance(worker: WorkerRecord): Promise<WorkerRecord> {
    const now = this.now();
    const adapter = this.deps.adapters[worker.provider];
    const model = this.config.models.find((m) => m.name === worker.model);
    switch (worker.state) {
      case "requested": {
        if (this.unstartedIntents.has(worker.id)) {
          const closed = await this.registry.transition(worker, "terminated", {
            detail: "intent written, but its create never started (Redis failed to answer the write)",
          });
          this.unstartedIntents.delete(worker.id);
          return closed;
        }
        if (
          this.provisioning.has(worker.id) ||
          now - worker.createdAtMs < (this.deps.staleIntentMs ?? STALE_INTENT_MS)
        )
          return worker;
        // A create that never returned: the reconciler adopts the instance if one was made; otherwise nothing exists.
        return this.registry.transition(worker, "terminated", {
          detail: "intent without an instance (controller restarted)",
        });
      }
      case "provisioning":
      case "booting": {
        if (!adapter || !worker.providerId || !model) return this.fail(worker, "no adapter or instance id");
        if (now - worker.createdAtMs > (this.deps.bootTimeoutMs ?? 1_200_000))
          return this.fail(worker, "boot timed out");
        const info = await adapter.describe(worker.providerId);
        if (!info || info.status === "terminated")
          return this.fail(worker, "instance disappeared while booting");
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
            return this.registry.transition(worker, "booting", { detail: said });
          return said && said !== worker.detail ? this.registry.update(worker, { detail: said }) : worker;
        }
        // A worker with a certificate serves https (the adapters report the plain address of the port).
        const pin = pinOf(worker);
        const address = info.baseUrl.replace(/\/+$/, "");
        const baseUrl = `${pin ? address.replace(/^http:\/\//i, "https://") : address}/v1`;
        if (!(await this.probe(baseUrl, worker.token, pin))) {
          return worker.state === "provisioning"
            ? this.registry.transition(worker, "booting", { baseUrl })
            : worker;
        }
        const booted =
          worker.state === "provisioning"
            ? await this.registry.transition(worker, "booting", { baseUrl })
            : worker;
        const ready = await this.registry.transition(booted, "ready", {
          baseUrl,
          readyAtMs: now,
          lastActiveAtMs: now,
          detail: "serving",
        });
        await this.registry.publishRoute(ready, model.targetConcurrency);
        const coldStart = (now - worker.createdAtMs) / 1000;
        const cache = await this.coldStartCache(model, worker, now);
        this.coldStartOf(model.name, worker.provider, cache).observe(coldStart);
        this.deps.metrics.coldStart.observe(
          { model: model.name, provider: worker.provider, cache },
          coldStart,
        );
        this.log(
          `controller: ${model.name}: worker ${worker.id} ready after ${coldStart.toFixed(1)}s (weight cache ${cache})`,
        );
        return ready;
      }
      case "ready": {
        // Certificates live 30 days; a worker kept that long is replaced before clients would refuse it.
        if (
          worker.tlsCertPem &&
          worker.readyAtMs !== undefined &&
          now - worker.createdAtMs > CERT_RENEW_AFTER_MS
        ) {
          await this.registry.removeRoute(worker.model, worker.id);
          return this.registry.transition(worker, "draining", {
            detail: "certificate renewal: replaced by a new worker",
          });
        }
        return this.checkHealth(worker, adapter);
      }
      case "draining": {
        const { inflight } = await this.demand(model ?? { ...this.config.models[0]!, name: worker.model });
        const busy = inflight.get(worker.id) ?? 0;
        // over budget there is no grace: in-flight requests would keep billing past the cap
        const grace = this.overBudget(worker.model) ? 0 : (this.deps.drainGraceMs ?? 120_000);
        if (busy > 0 && now - worker.stateChangedAtMs < grace) return worker;
        return this.terminate(worker);
      }
      case "failed":
        return this.terminate(worker);
      default:
        return worker;
    }
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
    const now = this.now();
    let check = this.health.get(worker.id);
    if (!check) {
      check = { at: now, failures: 0 };
      this.health.set(worker.id, check);
    }
    const state = check;
    if (!state.running && now - state.at >= (this.deps.healthCheckMs ?? 3_000)) {
      state.at = now;
      state.running = this.probe(worker.baseUrl, worker.token, pinOf(worker))
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

  private async fail(worker: WorkerRecord, why: string): Promise<WorkerRecord> {
    this.log(`controller: worker ${worker.id} failed: ${why}`);
    await this.noteDecision({ model: worker.model, action: "fail", worker: worker.id, reason: why });
    await this.registry.removeRoute(worker.model, worker.id);
    const failed = await this.registry.transition(worker, "failed", { detail: why });
    return this.terminate(failed);
  }

  /** Ask the provider to terminate; mark terminated only when it confirms. Retried every tick until then. */
  private async terminate(worker: WorkerRecord): Promise<WorkerRecord> {
    const now = this.now();
    const adapter = this.deps.adapters[worker.provider];
    let current = worker.terminateRequestedAtMs
      ? worker
      : await this.registry.update(worker, { terminateRequestedAtMs: now });
    if (!worker.providerId || !adapter) {
      this.deps.metrics.terminationPending.remove({ provider: worker.provider, worker: worker.id });
      return this.registry.transition(current, "terminated", { detail: current.detail });
    }
    try {
      // Accepted on an earlier pass (this one may run after a controller restart): the provider has not billed
      // since, beyond what ticks booked while it still reported the instance.
      const acceptedBefore = current.terminateAcceptedAtMs;
      await adapter.terminate(worker.providerId);
      if (acceptedBefore === undefined)
        current = await this.registry.update(current, { terminateAcceptedAtMs: this.now() });
      const after = await adapter.describe(worker.providerId);
      if (after && after.status !== "terminated") {
        this.deps.metrics.terminationPending.set(
          { provider: worker.provider, worker: worker.id },
          (now - current.terminateRequestedAtMs!) / 1000,
        );
        return current;
      }
      let endedAtMs: number;
      if (acceptedBefore === undefined) {
        await this.accrue([current]);
        endedAtMs = this.now();
      } else endedAtMs = Math.max(current.accruedUntilMs, acceptedBefore);
      const settled = await this.ledger
        .settle({ ...current, accruedUntilMs: endedAtMs }, current.createdAtMs, endedAtMs)
        .catch(() => 0);
      this.deps.metrics.terminationPending.remove({ provider: worker.provider, worker: worker.id });
      this.log(
        `controller: worker ${worker.id} terminated at ${worker.provider}${settled > 0 ? ` (+$${settled.toFixed(4)} billing minimum)` : ""}`,
      );
      return this.registry.transition(current, "terminated", { accruedUntilMs: endedAtMs });
    } catch (error) {
      if (error instanceof FencedOut) throw error;
      this.providerError(worker.provider, error, `terminate ${worker.id}`);
      current = { ...current };
      this.deps.metrics.terminationPending.set(
        { provider: worker.provider, worker: worker.id },
        (now - (current.terminateRequestedAtMs ?? now)) / 1000,
      );
      return current;
    }
  }

  // ── reconciliation ─────────────────────────────────────────────────────────────────────────────────────────

  /** Compare what each provider runs under our owner label with the registry: adopt, or terminate orphans. */
  async reconcile(): Promise<void> {
    const live = await this.registry.live();
    const byId = new Map(live.map((w) => [w.id, w]));
    for (const [provider, adapter] of Object.entries(this.deps.adapters) as [
      ConfigurableProviderId,
      ProviderAdapter,
    ][]) {
      if (provider === "local") continue;
      let instances: Awaited<ReturnType<ProviderAdapter["listOwned"]>>;
      try {
        instances = await adapter.listOwned(this.config.ownerLabel);
      } catch (error) {
        this.providerError(provider, error, "reconcile list");
        continue;
      }
      // Workers the provider no longer runs (a lost spot instance, a failed host) are failed and replaced.
      const seen = new Set(instances.filter((i) => i.status !== "terminated").map((i) => i.providerId));
      for (const worker of live) {
        if (worker.provider !== provider || !worker.providerId || seen.has(worker.providerId)) continue;
        if (
          !["booting", "ready", "draining"].includes(worker.state) ||
          this.now() - worker.createdAtMs < STALE_INTENT_MS
        )
          continue;
        await this.fail(worker, "the provider no longer runs this instance");
      }
      for (const instance of instances) {
        if (instance.status === "terminated") continue;
        const workerId = instance.workerId ?? parseInstanceTag(instance.ownerLabel ?? "")?.workerId;
        const known = workerId ? byId.get(workerId) : undefined;
        if (known && !known.providerId && known.state === "requested") {
          // the create succeeded but the controller died before writing it down: adopt
          await this.registry.transition(known, "provisioning", {
            provider,
            providerId: instance.providerId,
            usdPerHour: instance.usdPerHour ?? known.usdPerHour,
            accruedUntilMs: instance.createdAtMs ?? this.now(),
            detail: "adopted by the reconciler",
          });
          this.log(
            `controller: reconcile adopted ${instance.providerId} at ${provider} as worker ${known.id}`,
          );
          await this.noteDecision({
            model: known.model,
            action: "adopt",
            worker: known.id,
            reason: `instance ${instance.providerId} at ${provider} was created before a controller restart; adopted`,
          });
          continue;
        }
        if (known && known.providerId === instance.providerId) continue;
        this.deps.metrics.orphans.inc({ provider });
        this.log(
          `controller: reconcile found orphan ${instance.providerId} at ${provider} (worker ${workerId ?? "?"}); terminating`,
        );
        await this.noteDecision({
          model: known?.model ?? "?",
          action: "orphan",
          ...(workerId ? { worker: workerId } : {}),
          reason: `instance ${instance.providerId} at ${provider} carries the owner label but no live worker owns it; terminated`,
        });
        try {
          await adapter.terminate(instance.providerId);
        } catch (error) {
          this.providerError(provider, error, `terminate orphan ${instance.providerId}`);
        }
      }
    }
  }

  // ── money ──────────────────────────────────────────────────────────────────────────────────────────────────

  /** Whether the stack's budget or the unit's model budget is blocked (its spend reaches the cap within a tick). */
  private overBudget(unit: string): boolean {
    return this.blocks["*"] !== undefined || this.blocks[parseUnitName(unit).model] !== undefined;
  }

  /**
   * Book what these workers cost up to now, without judging budgets: a budget block weighs the burn of every live
   * worker, so it is decided only in `book`, with all of them (a block computed from one terminating worker's
   * burn lifted the other models' blocks for a tick).
   */
  private async accrue(workers: readonly WorkerRecord[]): Promise<void> {
    const booked = await this.ledger.accrue(workers);
    for (const { worker } of booked)
      await this.registry.update(worker, { accruedUntilMs: worker.accruedUntilMs });
  }

  /** Book every live worker, then set budget blocks and stop workers at a cap. */
  private async book(workers: readonly WorkerRecord[]): Promise<void> {
    await this.accrue(workers);
    const spend = await this.ledger.monthSpend();
    const burn = { total: 0, byModel: {} as Record<string, number> };
    for (const w of workers) {
      if (w.state === "terminated" || !w.providerId) continue;
      const perSecond = w.usdPerHour / 3600;
      burn.total += perSecond;
      burn.byModel[w.model] = (burn.byModel[w.model] ?? 0) + perSecond;
    }
    const blocks = budgetBlocks(this.config, spend, burn, (this.deps.tickMs ?? 1_000) / 1000);
    if (JSON.stringify(blocks) !== JSON.stringify(this.blocks)) {
      const multi = this.deps.redis.multi().del(this.keys.budgetBlocked);
      if (Object.keys(blocks).length > 0) multi.hset(this.keys.budgetBlocked, blocks);
      await multi.publish(this.keys.budgetChannel, "changed").exec();
      for (const reason of Object.values(blocks)) this.log(`controller: budget: ${reason}`);
      for (const scope of new Set([...Object.keys(blocks), ...Object.keys(this.blocks)])) {
        if (blocks[scope] === this.blocks[scope]) continue;
        const target = scope === "*" ? `stack ${this.config.stack}` : `model ${scope}`;
        this.audit("budget.changed", target, blocks[scope] ? `blocked: ${blocks[scope]}` : "unblocked");
      }
      this.blocks = blocks;
    }
    // At the cap, running workers go too, in-flight requests or not (the draining step gives them no grace over
    // budget): spend may not pass the cap by more than a tick. New workers were blocked a tick earlier.
    const stackCap = this.config.budget?.monthlyUsd;
    const atCap = (unit: string) => {
      const model = parseUnitName(unit).model;
      return (
        (stackCap !== undefined && spend.totalUsd >= stackCap) ||
        (this.config.models.find((m) => m.name === unit)?.monthlyBudgetUsd ?? Number.POSITIVE_INFINITY) <=
          budgetGroupSpend(spend.byModel, model)
      );
    };
    for (const w of workers) {
      if (["ready", "booting", "provisioning"].includes(w.state) && atCap(w.model)) {
        await this.registry.removeRoute(w.model, w.id);
        await this.registry.transition(w, "draining", { detail: "budget reached: stopped at once" });
      }
    }
    this.deps.metrics.spendTotal.set(spend.totalUsd);
    if (this.config.budget) this.deps.metrics.budgetTotal.set(this.config.budget.monthlyUsd);
    const perModel = new Map<string, { spent: number; requests: number; budget?: number }>();
    for (const unit of this.config.models) {
      const { model, variant } = parseUnitName(unit.name);
      const spent = spend.byModel[unit.name] ?? 0;
      this.deps.metrics.spendModel.set({ model, variant: variant ?? "" }, spent);
      const sum = perModel.get(model) ?? { spent: 0, requests: 0, budget: unit.monthlyBudgetUsd };
      sum.spent += spent;
      sum.requests += spend.requestsByModel[unit.name] ?? 0;
      perModel.set(model, sum);
    }
    for (const [model, sum] of perModel) {
      if (sum.budget !== undefined) this.deps.metrics.budgetModel.set({ model }, sum.budget);
      if (sum.requests > 0) this.deps.metrics.costPerInference.set({ model }, sum.spent / sum.requests);
    }
  }

  /**
   * Managed endpoints (RunPod serverless): route through them, keep their bounds where the config and the budget
   * say (the provider lowers bounds on idle endpoints), drop their queue at a budget cap, book their workers.
   * Every `managedSteerMs`, and at once when a budget block changes.
   */
  private async steerManaged(): Promise<void> {
    const backends = Object.entries(this.deps.managed ?? {}) as [ConfigurableProviderId, ManagedBackend][];
    if (backends.length === 0) return;
    const now = this.now();
    const blocks = JSON.stringify(this.blocks);
    if (now - this.lastSteer.atMs < (this.deps.managedSteerMs ?? 15_000) && blocks === this.lastSteer.blocks)
      return;
    this.lastSteer = { atMs: now, blocks };
    for (const [provider, backend] of backends) {
      const units = this.config.models.filter(
        (m) => m.providers.includes(provider) && decideProvision(this.config, m.name, provider).allowed,
      );
      if (units.length === 0) continue;
      let endpoints: Map<string, ManagedEndpoint>;
      try {
        endpoints = await backend.endpoints(units.map((m) => m.name));
      } catch (error) {
        this.providerError(provider, error, "list managed endpoints");
        continue;
      }
      for (const model of units) {
        try {
          await this.steerEndpoint(model, provider, backend, endpoints.get(model.name));
        } catch (error) {
          if (error instanceof FencedOut) throw error;
          this.providerError(provider, error, `steer endpoint of ${model.name}`);
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
      this.managedEndpoints.delete(model.name);
      return;
    }
    const blocked = this.overBudget(model.name);
    const max = blocked ? 0 : model.maxWorkers;
    const min = blocked ? 0 : model.minWorkers;
    if (endpoint.workersMax !== max || endpoint.workersMin !== min) {
      await backend.setBounds(endpoint, min, max);
      this.log(
        `controller: ${model.name}: ${provider} endpoint bounds ${endpoint.workersMin}..${endpoint.workersMax} → ${min}..${max}`,
      );
    }
    if (!this.managedEndpoints.has(model.name)) {
      const route = backend.route(endpoint.id);
      const record: WorkerRecord = {
        id: `${provider}-${endpoint.id}`,
        model: model.name,
        provider,
        state: "ready",
        baseUrl: route.baseUrl,
        usdPerHour: 0,
        token: "",
        createdAtMs: this.now(),
        stateChangedAtMs: this.now(),
        lastActiveAtMs: this.now(),
        accruedUntilMs: this.now(),
      };
      await this.registry.publishRoute(
        record,
        model.targetConcurrency * Math.max(1, model.maxWorkers),
        route.auth,
      );
      this.managedEndpoints.set(model.name, endpoint.id);
    }
    const health = await backend.health(endpoint.id);
    // Max workers 0 stops new workers, but jobs already queued would wait for the cap to lift (or run after it):
    // at the cap they are dropped, and their callers get an error at once. Noted once per block.
    if (!blocked) this.purgeNoted.delete(model.name);
    else if (health.inQueue > 0) {
      const removed = await backend.purgeQueue(endpoint.id);
      this.log(`controller: ${model.name}: budget reached: ${removed} queued job(s) purged from ${provider}`);
      if (!this.purgeNoted.has(model.name)) {
        this.purgeNoted.add(model.name);
        await this.noteDecision({
          model: model.name,
          action: "blocked",
          reason: `budget reached: ${provider} endpoint set to 0 workers and its queue purged (${removed} job(s); later arrivals are purged too)`,
        });
      }
    }
    await this.bookManaged(model, provider, endpoint, health);
  }

  private readonly managedBookedAt = new Map<string, number>();

  /** Managed workers bill per second while running (idle timeout included): book what the provider reports. */
  private async bookManaged(
    model: ModelConfig,
    provider: ConfigurableProviderId,
    endpoint: ManagedEndpoint,
    health: ManagedHealth,
  ): Promise<void> {
    const now = this.now();
    const since = this.managedBookedAt.get(model.name) ?? now;
    this.managedBookedAt.set(model.name, now);
    const price = this.config.prices
      .filter((p) => p.provider === provider && model.gpu.includes(p.gpu))
      .sort((a, b) => a.usdPerHour - b.usdPerHour)[0];
    if (!price || health.running <= 0 || now <= since) return;
    const seconds = ((now - since) / 1000) * health.running;
    const multi = this.deps.redis.multi();
    // per GPU-hour × the GPUs per worker the provider says it runs
    this.ledger.book(
      multi,
      model.name,
      `${provider}-${endpoint.id}`,
      provider,
      (seconds * price.usdPerHour * endpoint.gpuCount) / 3600,
      seconds,
      now,
    );
    await multi.exec();
  }
}

/** How many skipped offers a decision entry names (the rest are counted). */
const SKIPPED_NAMED = 6;

/**
 * The offer a worker was created on, and what else was on the table: how many cheaper offers failed before it, and the
 * offers the adapters left out, with why (no direct ports, too little GPU memory, no stock) — one line for
 * `aiorch status --decisions`.
 */
export function explainOfferChoice(
  chosen: Offer,
  failedFirst: number,
  skipped: readonly SkippedOffer[],
): string {
  const describe = (o: {
    provider: string;
    offerId?: string;
    gpuName?: string;
    gpuMemoryGb?: number;
    usdPerHour?: number;
  }) =>
    [
      `${o.provider}${o.offerId ? ` ${o.offerId}` : ""}`,
      o.gpuName,
      o.gpuMemoryGb !== undefined ? `${o.gpuMemoryGb} GB/GPU` : undefined,
      o.usdPerHour !== undefined ? `$${o.usdPerHour}/h` : undefined,
    ]
      .filter((part) => part !== undefined)
      .join(", ");
  const parts = [`chose ${describe({ ...chosen, gpuName: chosen.gpu })} (cheapest that could be created)`];
  if (failedFirst > 0) parts.push(`${failedFirst} cheaper offer(s) failed first`);
  if (skipped.length > 0) {
    const named = skipped.slice(0, SKIPPED_NAMED).map((s) => `${describe(s)}: ${s.reason}`);
    const more = skipped.length > SKIPPED_NAMED ? `; and ${skipped.length - SKIPPED_NAMED} more` : "";
    parts.push(`skipped ${named.join("; ")}${more}`);
  }
  return parts.join("; ");
}
