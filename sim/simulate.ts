/**
 * One simulated run: a model on one provider under one workload and one keep-alive policy, through the
 * real scaling policy (`decideScale`) and the real keep-alive (`KeepAliveLearner`, `IdleSpell`) of `controller/`.
 *
 * What is modelled, and how the controller is approximated:
 * - A request that finds a ready worker with fewer than targetConcurrency requests in flight starts at once
 *   (workers are filled oldest first, so extra workers fall idle and can be let go); otherwise it waits in a
 *   FIFO queue and wakes the controller, which calls `decideScale` — the pub/sub wake-up of the real one.
 *   A request that waits longer than the model's queueTimeoutSeconds gets its 503: it counts as timed out,
 *   with the timeout as its wait.
 * - The controller also runs when a worker's keep-alive may have run out (a timer per idle worker), and
 *   re-checks an idle worker it kept every `recheckSeconds` (the real loop's periodic tick).
 * - A provisioned worker is "booting" for a cold start drawn from the provider's distribution, then
 *   "ready". Draining is immediate: the policy drains only workers with nothing in flight.
 * - Weight cache (a profile's `weightCache`): the run starts with an empty cache; its first cold start is a
 *   miss drawn from `weightCache.miss` (the weights land on the volume when that worker is ready), every later
 *   one a hit drawn from `coldStart`. A hit that starts while the miss is still downloading is not ready
 *   before the miss is (it waits for the weights instead of fetching them again). Without a cache every cold
 *   start is a miss drawn from `coldStart`. `coldStarts` = `coldStartHits` + `coldStartMisses`.
 * - The keep-alive is the controller's own: a `KeepAliveLearner` (cold starts per cache outcome, starting from the
 *   profile's median) and, for `adaptive` (what `idleTimeoutSeconds: auto` deploys), the idle gaps the
 *   controller observes (`IdleSpell`: every gap of the model, also one no worker outlived); `auto` here is
 *   break-even without history.
 * - `always-on` keeps at least one worker for the whole period (floor 1); workers above it use break-even.
 * - Cold starts are common random numbers: the k-th provision of every run draws the k-th value of one stream
 *   per seed and provider (`ColdStartDraws`), so runs differ by their decisions, not by their luck.
 * - `bound` is not a runnable policy but the lower bound of `sim/bound.ts`: no request waits, the same draws,
 *   the cheapest choice of which idle gaps to bridge. Every run's `totalUsd` prices its waiting and dropped
 *   requests (`waitUsdPerSecond`, at least the worker's price per second), so that no policy can look cheaper than
 *   the bound by making users wait or give up.
 * - Billing per worker life (boot, idle, busy, rounding, minimum, setup, storage) by `sim/billing.ts`;
 *   wait quantiles from a fixed-bucket histogram. Memory does not grow with the length of the period.
 */

import { IdleSpell, RestartQueue } from "../controller/idle-observations";
import {
  type CacheOutcome,
  type KeepAliveChoice,
  KeepAliveLearner,
  type KeepAliveModel,
  withPrewarmFloor,
} from "../controller/keep-alive";
import {
  decideScale,
  lastStretchOfPaidUnitAtMs,
  type PaidUnit,
  paidUnitOf,
  type ScaleDecision,
  type ScalingModel,
  type WorkerPhase,
  type WorkerView,
} from "../controller/policy";
import type { BillingModel } from "../core/catalog";
import { type BilledLife, billLife } from "./billing";
import {
  ColdStartDraws,
  dropPenaltyUsd,
  effectiveWaitUsdPerSecond,
  lowerBound,
  workerUsdPerSecond,
} from "./bound";
import { Simulation } from "./engine";
import { medianColdStartSeconds, type SimProfile } from "./profiles";
import { Histogram } from "./stats";
import type { Arrival, ArrivalSource, Workload } from "./workloads";

export const POLICY_IDS = ["always-on", "fixed-5s", "fixed-10m", "auto", "adaptive", "bound"] as const;
export type PolicyId = (typeof POLICY_IDS)[number];

export const POLICY_LABELS: Readonly<Record<PolicyId, string>> = {
  "always-on": "keep one worker up all month",
  "fixed-5s": "fixed 5 s keep-alive (RunPod default)",
  "fixed-10m": "fixed 10 min keep-alive",
  auto: "break-even keep-alive (cold-start seconds)",
  adaptive: "break-even refined by the idle-gap history",
  bound: "lower bound (sim/bound.ts)",
};

export function isPolicyId(value: string): value is PolicyId {
  return (POLICY_IDS as readonly string[]).includes(value);
}

export interface SimModel extends ScalingModel {
  /** Seconds a request waits for a worker before it gets 503. */
  readonly queueTimeoutSeconds: number;
}

export interface RunOptions {
  readonly model: SimModel;
  readonly profile: SimProfile;
  readonly policy: PolicyId;
  readonly workload: Workload;
  /** Seeds the cold-start draws (arrivals are seeded by the workload). */
  readonly seed: number;
  /** Stop provisioning once the run has spent this much (the model's or stack's budget). */
  readonly budgetUsd?: number;
  /** Seconds between re-checks of an idle worker the policy kept. Default 30. */
  readonly recheckSeconds?: number;
  /** Called now and then with the fraction of the period simulated. */
  readonly onProgress?: (fraction: number) => void;
  /** USD per request-second waited (raised to the worker's price per second). @default DEFAULT_WAIT_USD_PER_SECOND */
  readonly waitUsdPerSecond?: number;
  /** A fixed keep-alive in seconds instead of the policy's (a sweep over windows); for the fixed policies only. */
  readonly fixedKeepAliveSeconds?: number;
}

export interface BillTotals {
  billedSeconds: number;
  bootSeconds: number;
  busySeconds: number;
  idleSeconds: number;
  roundingSeconds: number;
  computeUsd: number;
  storageUsd: number;
  setupUsd: number;
  usd: number;
}

export interface RunResult {
  readonly policy: PolicyId;
  readonly horizonSeconds: number;
  /** The pattern's active seconds, or for a trace the measured busy seconds. */
  readonly activeSeconds: number;
  /** Seconds with at least one request in flight on the model. */
  readonly busySeconds: number;
  readonly requests: number;
  readonly served: number;
  readonly timedOut: number;
  /** Still waiting or in flight when the period ended. */
  readonly unserved: number;
  readonly coldStarts: number;
  /** Cold starts that loaded weights from the profile's weight cache (0 without a cache). */
  readonly coldStartHits: number;
  /** Cold starts that fetched weights from the Hub: the first with a cache, every one without. */
  readonly coldStartMisses: number;
  readonly peakWorkers: number;
  readonly decisions: number;
  readonly bill: Readonly<BillTotals>;
  readonly wait: Histogram;
  /** Seconds waited by every request, those that timed out with the timeout. */
  readonly waitedSeconds: number;
  /** Service seconds of the requests that timed out (what serving them would have kept a worker busy). */
  readonly droppedServiceSeconds: number;
  /** The wait price the run used, USD per request-second. */
  readonly waitUsdPerSecond: number;
  /** waitedSeconds priced. */
  readonly waitUsd: number;
  /**
   * What serving each dropped request alone would have cost (`dropPenaltyUsd`; their wait is in waitUsd), and the
   * same for the requests still waiting when the period ended, plus the rest of the service of those in flight.
   */
  readonly dropUsd: number;
  /** bill + waiting + dropping: what the comparison with the bound uses. */
  readonly totalUsd: number;
  /** Keep-alive in force at the end (Infinity: never released; NaN for the lower bound). */
  readonly keepAliveSeconds: number;
  /** The last scaling decision's reason (the log line the controller would write). */
  readonly lastDecision: string;
  readonly events: number;
}

const ARRIVAL = 0;
const COMPLETE = 1;
const READY = 2;
const IDLE = 3;
/** A pre-warm plan's window opens or closes (the controller would see it on its next tick). */
const PREWARM = 4;

/** A timer fires this long after the keep-alive runs out, so float rounding never keeps a worker. */
const TIMER_SLACK = 1e-6;

class SimWorker implements WorkerView {
  phase: WorkerPhase = "booting";
  inFlight = 0;
  readyAt = -1;
  /** When its boot ends (the READY event): a boot the period's end cuts short is still billed whole. */
  dueAt = Number.POSITIVE_INFINITY;
  lastActive: number;
  busySince = 0;
  busySeconds = 0;
  timerPending = false;
  alive = true;
  /** What the controller would call this worker's cold start: a hit when the weights were on the volume when it was created. */
  cacheOutcome: "hit" | "miss" = "miss";

  constructor(
    readonly id: string,
    readonly provider: string,
    readonly createdAt: number,
    readonly usdPerHour: number,
    private readonly billing: BillingModel,
  ) {
    this.lastActive = createdAt;
  }

  get paidUnit(): PaidUnit | undefined {
    return paidUnitOf(this.billing, this.createdAtMs, this.readyAtMs);
  }

  get createdAtMs(): number {
    return this.createdAt * 1000;
  }
  get readyAtMs(): number | undefined {
    return this.readyAt >= 0 ? this.readyAt * 1000 : undefined;
  }
  get lastActiveAtMs(): number {
    return this.lastActive * 1000;
  }
}

/** FIFO of waiting requests (arrival time, service seconds) in a growable ring buffer. */
class WaitQueue {
  private times = new Float64Array(64);
  private services = new Float64Array(64);
  private head = 0;
  size = 0;

  push(time: number, service: number): void {
    if (this.size === this.times.length) this.grow();
    const i = (this.head + this.size) % this.times.length;
    this.times[i] = time;
    this.services[i] = service;
    this.size++;
  }
  headTime(): number {
    return this.times[this.head]!;
  }
  headService(): number {
    return this.services[this.head]!;
  }
  shift(): void {
    this.head = (this.head + 1) % this.times.length;
    this.size--;
  }
  private grow(): void {
    const n = this.times.length;
    const times = new Float64Array(n * 2);
    const services = new Float64Array(n * 2);
    for (let k = 0; k < this.size; k++) {
      times[k] = this.times[(this.head + k) % n]!;
      services[k] = this.services[(this.head + k) % n]!;
    }
    this.times = times;
    this.services = services;
    this.head = 0;
  }
}

const emptyBill = (): BillTotals => ({
  billedSeconds: 0,
  bootSeconds: 0,
  busySeconds: 0,
  idleSeconds: 0,
  roundingSeconds: 0,
  computeUsd: 0,
  storageUsd: 0,
  setupUsd: 0,
  usd: 0,
});

function addBill(total: BillTotals, life: BilledLife): void {
  total.billedSeconds += life.billedSeconds;
  total.bootSeconds += life.bootSeconds;
  total.busySeconds += life.busySeconds;
  total.idleSeconds += life.idleSeconds;
  total.roundingSeconds += life.roundingSeconds;
  total.computeUsd += life.computeUsd;
  total.storageUsd += life.storageUsd;
  total.setupUsd += life.setupUsd;
  total.usd += life.usd;
}

const KEEP_ALIVE_MODELS: Readonly<Record<PolicyId, KeepAliveModel>> = {
  "always-on": { idleTimeoutSeconds: "auto" },
  "fixed-5s": { idleTimeoutSeconds: 5 },
  "fixed-10m": { idleTimeoutSeconds: 600 },
  auto: { idleTimeoutSeconds: "auto" },
  adaptive: { idleTimeoutSeconds: "auto" },
  bound: { idleTimeoutSeconds: "auto" },
};

/** Simulate one model × provider × workload × policy (`bound`: compute the lower bound). */
export function simulateRun(options: RunOptions): RunResult {
  if (options.policy === "bound") return boundRun(options);
  const { model, profile, policy, workload } = options;
  const horizon = workload.horizonSeconds;
  const perWorker = Math.max(1, model.targetConcurrency);
  const recheck = options.recheckSeconds ?? 30;
  const queueTimeout = model.queueTimeoutSeconds;
  const alwaysOn = policy === "always-on";
  const scaling: ScalingModel = {
    name: model.name,
    minWorkers: alwaysOn ? Math.max(1, model.minWorkers) : model.minWorkers,
    maxWorkers: model.maxWorkers,
    targetConcurrency: model.targetConcurrency,
    alwaysOn: alwaysOn || model.alwaysOn,
  };
  const floor = Math.min(scaling.maxWorkers, Math.max(scaling.minWorkers, scaling.alwaysOn ? 1 : 0));
  if (options.fixedKeepAliveSeconds !== undefined && !policy.startsWith("fixed-"))
    throw new RangeError(`fixedKeepAliveSeconds is for the fixed policies, not ${policy}`);
  const keepAliveModel =
    options.fixedKeepAliveSeconds === undefined
      ? KEEP_ALIVE_MODELS[policy]
      : { idleTimeoutSeconds: options.fixedKeepAliveSeconds };
  const learnsGaps = policy === "adaptive";
  const cache = profile.weightCache;
  const draws = new ColdStartDraws(options.seed, profile);
  const waitPrice = effectiveWaitUsdPerSecond(profile, options.waitUsdPerSecond);
  // the priors the controller would have: the distribution's median, the miss's where the profile has a cache;
  // adaptive weighs the waits a restart causes as the deployed controller does (the run's wait price in
  // worker-seconds); auto is the bill's break-even alone
  const learner = new KeepAliveLearner(
    (_provider, outcome) =>
      medianColdStartSeconds(cache && outcome === "miss" ? cache.miss : profile.coldStart),
    learnsGaps ? waitPrice / workerUsdPerSecond(profile) : 0,
    // the deployed default randomizes its break-even fallback (draws seeded by the run); `auto` stays plain
    learnsGaps ? options.seed : undefined,
  );
  const idleSpell = new IdleSpell();
  const restartQueue = new RestartQueue();
  const readyWorkers = (): number => workers.reduce((n, w) => n + (w.phase === "ready" ? 1 : 0), 0);
  const unit = { ...keepAliveModel, name: model.name };

  // refs: a worker, an arrival, or (PREWARM) the start of the idle spell a window belongs to, in seconds
  const sim = new Simulation<SimWorker | Arrival | number>();
  const q = sim.queue;
  const workers: SimWorker[] = [];
  const waiting = new WaitQueue();
  const wait = new Histogram();
  const bill = emptyBill();
  let source: ArrivalSource | undefined = workload.open();
  let workerSeq = 0;
  let inFlightTotal = 0;
  // sum of the in-flight requests' end times: at the horizon, what is left of their service is
  // inFlightEnds − horizon × inFlightTotal, without a list of them
  let inFlightEnds = 0;
  let modelBusySince = 0;
  let modelBusy = 0;
  let requests = 0;
  let served = 0;
  let timedOut = 0;
  let waitedSeconds = 0;
  let droppedServiceSeconds = 0;
  let coldStartHits = 0;
  let coldStartMisses = 0;
  /** With a weight cache: when the miss's weights are on the volume (-1: no miss yet). */
  let weightsLandAt = -1;
  let peakWorkers = 0;
  let decisions = 0;
  let lastDecision = "";

  // The keep-alive is recomputed only when what it depends on changed (cold-start estimates, gaps, the cache).
  let keepAliveCache = Number.NaN;
  let choice: KeepAliveChoice | undefined;
  let coldVersion = 0;
  let cachedColdVersion = -1;
  let cachedGaps = -1;
  let cachedOutcome: CacheOutcome | undefined;
  /** What a restart would be now: a hit once a worker has loaded the weights onto the volume. */
  let weightsLanded = false;
  const nextRestart = (): CacheOutcome => (cache && weightsLanded ? "hit" : "miss");
  const keepAlive = (): number => {
    const gaps = learner.gapsObserved(model.name);
    const outcome = nextRestart();
    if (cachedColdVersion !== coldVersion || cachedGaps !== gaps || cachedOutcome !== outcome) {
      choice = learner.keepAlive(unit, profile.provider, profile.billing, outcome);
      keepAliveCache = choice.seconds;
      cachedColdVersion = coldVersion;
      cachedGaps = gaps;
      cachedOutcome = outcome;
    }
    return keepAliveCache;
  };

  const spentUsd = (now: number): number => {
    let usd = bill.usd;
    for (const w of workers) {
      const ready = w.readyAt >= 0;
      usd += billLife(
        {
          bootSeconds: (ready ? w.readyAt : now) - w.createdAt,
          upSeconds: ready ? now - w.readyAt : 0,
          busySeconds: w.busySeconds + (w.inFlight > 0 ? now - w.busySince : 0),
        },
        profile,
      ).usd;
    }
    return usd;
  };

  const provision = (now: number): void => {
    // the k-th provision's draw (a miss first where there is a cache): the same in every run of this seed
    const seconds = draws.at(workerSeq);
    const w = new SimWorker(`w${workerSeq++}`, profile.provider, now, profile.usdPerHour, profile.billing);
    workers.push(w);
    let readyAt = now + seconds;
    if (weightsLanded) w.cacheOutcome = "hit";
    if (!cache) coldStartMisses++;
    else if (weightsLandAt < 0) {
      coldStartMisses++;
      weightsLandAt = readyAt;
    } else {
      coldStartHits++;
      if (readyAt < weightsLandAt) readyAt = weightsLandAt;
    }
    if (workers.length > peakWorkers) peakWorkers = workers.length;
    w.dueAt = readyAt;
    q.push(readyAt, READY, w);
  };

  const terminate = (w: SimWorker, now: number): void => {
    w.alive = false;
    w.phase = "draining";
    const i = workers.indexOf(w);
    if (i >= 0) workers.splice(i, 1);
    if (w.inFlight > 0) w.busySeconds += now - w.busySince;
    const ready = w.readyAt >= 0;
    addBill(
      bill,
      billLife(
        {
          bootSeconds: (ready ? w.readyAt : now) - w.createdAt,
          upSeconds: ready ? now - w.readyAt : 0,
          busySeconds: w.busySeconds,
        },
        profile,
      ),
    );
  };

  const purgeExpired = (now: number): void => {
    while (waiting.size > 0 && waiting.headTime() + queueTimeout < now) drop();
  };

  /** The request at the head of the queue gets its 503 at the queue timeout. */
  const drop = (): void => {
    droppedServiceSeconds += waiting.headService();
    waiting.shift();
    timedOut++;
    wait.add(queueTimeout);
    waitedSeconds += queueTimeout;
  };

  /** The scaling model with the pre-warm floor of the idle spell at `now` (as the controller's scaleModel). */
  const prewarmModel = (now: number): ScalingModel => {
    keepAlive();
    return withPrewarmFloor(scaling, choice, idleSpell.idleSeconds(now * 1000));
  };

  const decide = (now: number): ScaleDecision => {
    purgeExpired(now);
    const decision = decideScale({
      nowMs: now * 1000,
      model: prewarmModel(now),
      waiting: waiting.size,
      workers,
      keepAliveSeconds: keepAlive(),
      budgetExhausted: options.budgetUsd !== undefined && spentUsd(now) >= options.budgetUsd,
    });
    decisions++;
    lastDecision = decision.reason;
    for (let i = 0; i < decision.provision; i++) provision(now);
    for (const order of decision.drain) {
      const w = workers.find((x) => x.id === order.workerId);
      if (w) terminate(w, now);
    }
    return decision;
  };

  const freeWorker = (): SimWorker | undefined => {
    for (const w of workers) if (w.phase === "ready" && w.inFlight < perWorker) return w;
    return undefined;
  };

  const start = (w: SimWorker, now: number, service: number, waited: number): void => {
    wait.add(waited);
    waitedSeconds += waited;
    if (w.inFlight === 0) w.busySince = now;
    if (inFlightTotal === 0) modelBusySince = now;
    w.inFlight++;
    inFlightTotal++;
    w.lastActive = now;
    inFlightEnds += now + service;
    q.push(now + service, COMPLETE, w);
  };

  const dispatchWaiting = (now: number): void => {
    while (waiting.size > 0) {
      purgeExpired(now);
      if (waiting.size === 0) return;
      const w = freeWorker();
      if (!w) return;
      const arrived = waiting.headTime();
      const service = waiting.headService();
      waiting.shift();
      start(w, now, service, now - arrived);
    }
  };

  const armIdle = (w: SimWorker, now: number): void => {
    if (w.timerPending || !w.alive) return;
    const k = keepAlive();
    if (!Number.isFinite(k)) return;
    const at = Math.max(now, w.lastActive + k + TIMER_SLACK);
    w.timerPending = true;
    q.push(at, IDLE, w);
  };

  const scheduleNextArrival = (): void => {
    const a = source?.next();
    if (a && a.time < horizon) q.push(a.time, ARRIVAL, a);
    else source = undefined;
  };

  const modelFellIdle = (now: number): void => {
    idleSpell.update(0, now * 1000);
    keepAlive();
    const plan = choice?.prewarm;
    if (plan) {
      // the window's edges, tagged with the spell they belong to (a request may end it first)
      q.push(now + plan.startAfterSeconds + TIMER_SLACK, PREWARM, now);
      q.push(now + plan.keepUntilSeconds + TIMER_SLACK, PREWARM, now);
    }
  };

  sim
    .on(ARRIVAL, (now, ref) => {
      const a = ref as Arrival;
      requests++;
      // the gap the controller sees end (IdleSpell); only `adaptive` learns from it, as `auto` deploys it
      const gap = idleSpell.update(1, now * 1000);
      if (gap !== undefined && learnsGaps) learner.observeIdleGap(model.name, gap);
      const w = waiting.size === 0 ? freeWorker() : undefined;
      if (w) start(w, now, a.serviceSeconds, 0);
      else {
        waiting.push(now, a.serviceSeconds);
        restartQueue.update(readyWorkers(), waiting.size);
        decide(now);
      }
      scheduleNextArrival();
    })
    .on(COMPLETE, (now, ref) => {
      const w = ref as SimWorker;
      w.inFlight--;
      inFlightTotal--;
      inFlightEnds -= now;
      served++;
      w.lastActive = now;
      if (w.inFlight === 0) w.busySeconds += now - w.busySince;
      if (inFlightTotal === 0) modelBusy += now - modelBusySince;
      dispatchWaiting(now);
      if (w.inFlight === 0) armIdle(w, now);
      if (inFlightTotal === 0 && waiting.size === 0) modelFellIdle(now);
    })
    .on(READY, (now, ref) => {
      const w = ref as SimWorker;
      if (!w.alive) return;
      w.phase = "ready";
      w.readyAt = now;
      w.lastActive = now;
      learner.observeColdStart(model.name, profile.provider, w.cacheOutcome, now - w.createdAt);
      const queued = restartQueue.update(readyWorkers(), waiting.size);
      if (queued !== undefined && learnsGaps) learner.observeRestartQueue(model.name, queued);
      if (cache) weightsLanded = true;
      coldVersion++;
      dispatchWaiting(now);
      if (w.inFlight === 0) armIdle(w, now);
    })
    .on(IDLE, (now, ref) => {
      const w = ref as SimWorker;
      w.timerPending = false;
      if (!w.alive || w.inFlight > 0 || w.phase !== "ready") return;
      const k = keepAlive();
      if (!Number.isFinite(k)) return;
      if (now - w.lastActive >= k) {
        decide(now);
        if (w.alive && w.inFlight === 0 && workers.length > floor) {
          // kept: look again after the recheck, or when the billing unit it has paid for nears its end
          const stretch = lastStretchOfPaidUnitAtMs(w, now * 1000) / 1000;
          w.timerPending = true;
          q.push(stretch > now ? stretch + TIMER_SLACK : now + recheck, IDLE, w);
        }
      } else {
        w.timerPending = true;
        q.push(w.lastActive + k + TIMER_SLACK, IDLE, w);
      }
    })
    .on(PREWARM, (now, ref) => {
      // the window of the spell still under way opens (one worker started) or closes (it may go); the plan may
      // have moved since the spell began (a cold start measured meanwhile): then this edge comes again, later
      const spell = ref as number;
      if (idleSpell.sinceMs !== spell * 1000) return;
      keepAlive();
      const plan = choice?.prewarm;
      const idle = now - spell;
      if (plan && idle < plan.startAfterSeconds)
        q.push(spell + plan.startAfterSeconds + TIMER_SLACK, PREWARM, spell);
      else if (plan && idle > plan.startAfterSeconds + 1 && idle < plan.keepUntilSeconds)
        q.push(spell + plan.keepUntilSeconds + TIMER_SLACK, PREWARM, spell);
      decide(now);
    });

  // Start: the floor's workers (always-on, minWorkers), the first arrival.
  if (floor > 0) decide(0);
  scheduleNextArrival();

  const onBatch = options.onProgress ? (now: number) => options.onProgress!(now / horizon) : undefined;
  const events = sim.run(horizon, onBatch);

  // The period ends: bill every worker still up, settle the queue. A worker still booting bills its whole boot
  // (it was started; cutting its bill at the period's end would make starting a slow one look free, and the
  // bound pays every boot it uses in full).
  for (const w of [...workers]) terminate(w, w.readyAt < 0 ? Math.max(horizon, w.dueAt) : horizon);
  if (inFlightTotal > 0) modelBusy += horizon - modelBusySince;
  while (waiting.size > 0 && waiting.headTime() + queueTimeout < horizon) drop();
  // Requests the period left unserved are not free: each still waiting is priced as a drop (its wait so far, and
  // serving it alone), each in flight the rest of its service. Otherwise a worker whose cold start outlasts the
  // period would bill less than the bound, which serves every request.
  let unservedWaiting = 0;
  let unservedServiceSeconds = Math.max(0, inFlightEnds - horizon * inFlightTotal);
  for (; waiting.size > 0; waiting.shift()) {
    unservedWaiting++;
    unservedServiceSeconds += waiting.headService();
    waitedSeconds += horizon - waiting.headTime();
  }
  options.onProgress?.(1);
  const waitUsd = waitedSeconds * waitPrice;
  // each dropped request: what serving it alone would have cost (sim/bound.ts), its wait is in waitUsd
  const dropUsd =
    (timedOut + unservedWaiting) * dropPenaltyUsd(profile, 0) +
    (droppedServiceSeconds + unservedServiceSeconds) * workerUsdPerSecond(profile);

  return {
    policy,
    horizonSeconds: horizon,
    activeSeconds: workload.activeSeconds ?? modelBusy,
    busySeconds: modelBusy,
    requests,
    served,
    timedOut,
    unserved: requests - served - timedOut,
    coldStarts: coldStartHits + coldStartMisses,
    coldStartHits,
    coldStartMisses,
    peakWorkers,
    decisions,
    bill,
    wait,
    waitedSeconds,
    droppedServiceSeconds,
    waitUsdPerSecond: waitPrice,
    waitUsd,
    dropUsd,
    totalUsd: bill.usd + waitUsd + dropUsd,
    keepAliveSeconds: policy === "always-on" ? Number.POSITIVE_INFINITY : keepAlive(),
    lastDecision,
    events,
  };
}

/** The `bound` row: `lowerBound` over the workload's arrivals, as a run that served everyone at once. */
function boundRun(options: RunOptions): RunResult {
  const { profile, workload, model } = options;
  const source = workload.open();
  const wait = new Histogram();
  const arrivals = {
    *[Symbol.iterator]() {
      for (let a = source.next(); a !== undefined; a = source.next()) {
        if (a.time < workload.horizonSeconds) wait.add(0);
        yield a;
      }
    },
  };
  const draws = new ColdStartDraws(options.seed, profile);
  const waitPrice = effectiveWaitUsdPerSecond(profile, options.waitUsdPerSecond);
  const b = lowerBound(arrivals, profile, draws, {
    waitUsdPerSecond: waitPrice,
    queueTimeoutSeconds: model.queueTimeoutSeconds,
    horizonSeconds: workload.horizonSeconds,
  });
  options.onProgress?.(1);
  const cached = profile.weightCache !== undefined;
  const served = b.lives > 0 ? b.requests : 0;
  const bill: BillTotals = {
    billedSeconds: b.billedSeconds,
    bootSeconds: b.bootSeconds,
    busySeconds: b.lives > 0 ? b.busySeconds : 0,
    idleSeconds: b.idleSeconds,
    roundingSeconds: 0,
    computeUsd: b.computeUsd,
    storageUsd: b.storageUsd,
    setupUsd: b.setupUsd,
    usd: b.lives > 0 ? b.usd : 0,
  };
  const dropUsd = b.lives > 0 ? 0 : b.usd; // serving no one was cheapest: the bound is the drops' price
  return {
    policy: "bound",
    horizonSeconds: workload.horizonSeconds,
    activeSeconds: workload.activeSeconds ?? b.busySeconds,
    busySeconds: b.busySeconds,
    requests: b.requests,
    served,
    timedOut: b.requests - served,
    unserved: 0,
    coldStarts: b.lives,
    coldStartHits: cached ? Math.max(0, b.lives - 1) : 0,
    coldStartMisses: cached ? Math.min(1, b.lives) : b.lives,
    peakWorkers: Math.min(1, b.lives),
    decisions: 0,
    bill,
    wait,
    waitedSeconds: 0,
    droppedServiceSeconds: 0,
    waitUsdPerSecond: waitPrice,
    waitUsd: 0,
    dropUsd,
    totalUsd: b.usd,
    keepAliveSeconds: Number.NaN,
    lastDecision: `lower bound: ${b.lives} worker lives, ${b.gapsKept} of ${b.gaps} idle gaps bridged`,
    events: 0,
  };
}
