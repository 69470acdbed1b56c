/**
 * Keep-alive policies: how long an idle worker stays up before the scaling policy may drain it.
 *
 * Pure functions and small bounded-memory classes; no clock, no I/O. The controller and the simulator in
 * `sim/` call the same code. `keepAliveFor` is the entry point; the rest is exported for tests and tools.
 *
 * The problem is rent-or-buy (ski rental). While a worker idles we "rent" it at its price r per second. If we
 * let it go, the next request "buys" a new worker: it pays the restart cost C (in seconds of the running
 * price, see `restartCostSeconds`) and waits for the cold start. Staying warm for exactly T* = C seconds and
 * then letting go never costs more than twice what a clairvoyant policy pays on the same gaps (it keeps a
 * worker across a gap g only when g < C): if g ≤ T* both pay g; otherwise we pay T* + C = 2C and it pays C.
 * No deterministic timeout does better in the worst case. With history, the empirical optimum over the
 * observed idle gaps does better on the workload it has seen (Shahrad et al., ATC 2020).
 *
 * Waiting is part of the price (issue 21): a restart also makes the requests that queue behind its cold start
 * wait, so the restart cost adds those waits, weighted as worker-seconds (`restartCostWithWaitSeconds`); the
 * controller weighs a waited request-second as one worker-second, the simulator's default wait price. Gaps are
 * observed for the whole model (`IdleSpell`), also those no warm worker outlived, and the queue restarts build
 * (`RestartQueue`, its recent median); `KeepAliveLearner` holds both for the controller and the simulator alike.
 *
 * Until the history suffices, the break-even timeout is randomized per idle spell (Karlin et al.'s randomized ski
 * rental: T drawn on [0, C] with density e^{t/C} / (C·(e − 1)), expected cost ≤ e/(e − 1) ≈ 1.58× the clairvoyant's
 * on any sequence fixed in advance, against 2× for the deterministic T = C, which a sequence of gaps just longer
 * than C drives to a cold start per request). And whatever the timeout's basis, a streak of recent gaps that all
 * outlived it although bridging them would have cost less (`COLD_STREAK_GAPS` of them) extends it to their
 * empirical optimum: the guard against "every request cold".
 */
import type { BillingModel } from "../core/catalog";
import { bestTimeoutForGaps, ColdStartEstimate, IdleGapHistory, RecentValues } from "./idle-observations";
import { type PrewarmPlan, waitsPerBootSecond } from "./prewarm";

/**
 * What letting a worker go and starting a new one later costs, in seconds of the worker's running price.
 *
 * Derivation, per billing rule (`BillingModel`):
 * - boot: with `billsBoot` the image pull and weight load of the new worker are billed at the running rate,
 *   so a restart costs the cold-start seconds d (per-second billing: C = d exactly). Without it, 0.
 * - per-start minimum m: a new worker is billed at least m seconds however short its life; the worst case
 *   (the next busy period is tiny) costs max(d, m) instead of d — the boot is part of that minimum.
 *   A monthly rental (minimum 30 days) therefore gets a keep-alive of a month: renting again costs more.
 * - granularity G: each worker's billed life is rounded up to a multiple of G. Splitting one life into two
 *   adds one more rounded tail, on average G/2 seconds (the phase is uniform). Per-second billing (G = 1)
 *   is treated as continuous: the sub-second tail is noise and C stays exactly d, as the design requires.
 * So C = max(billsBoot ? d : 0, m) + (G > 1 ? G/2 : 0).
 */
export function restartCostSeconds(coldStartSeconds: number, billing: BillingModel): number {
  const boot = billing.billsBoot ? Math.max(0, coldStartSeconds) : 0;
  const rounding = billing.granularitySeconds > 1 ? billing.granularitySeconds / 2 : 0;
  return Math.max(boot, billing.minimumSeconds) + rounding;
}

/**
 * The break-even idle timeout T* in seconds: stay warm as long as staying costs less than a restart.
 * Equals the cold-start seconds under per-second billing with boot billed (see `restartCostSeconds`).
 * When idle time is not billed (the team's own hardware), keeping a worker is free: Infinity.
 */
export function breakEvenIdleSeconds(coldStartSeconds: number, billing: BillingModel): number {
  if (!billing.billsIdle) return Number.POSITIVE_INFINITY;
  return restartCostSeconds(coldStartSeconds, billing);
}

export type KeepAliveBasis =
  | "fixed"
  | "always-on"
  | "break-even"
  | "randomized"
  | "long-gaps"
  | "adaptive"
  | "prewarm"
  | "cold-streak";

export interface KeepAliveChoice {
  /** Idle seconds after which a ready worker may be drained; Infinity = never. */
  readonly seconds: number;
  readonly basis: KeepAliveBasis;
  /** For the decision log. */
  readonly reason: string;
  /** With basis "prewarm": when into an idle spell one worker is started and until when it is kept (`prewarmFloor`). */
  readonly prewarm?: PrewarmPlan;
}

/** ω / (ω + 1): how sure a pre-warmed worker should be to be ready in time (ω: `waitsPerBootSecond`). */
function criticalRatio(waitWeight: number, queued: number): number {
  const omega = waitsPerBootSecond(waitWeight, queued);
  return omega / (omega + 1);
}

/**
 * The workers a pre-warm plan holds `idleSeconds` into the model's idle spell: one inside its window, none
 * outside (the caller raises `minWorkers` to it for `decideScale`). Undefined idle: the model is not idle.
 */
export function prewarmFloor(choice: KeepAliveChoice, idleSeconds: number | undefined): number {
  const plan = choice.prewarm;
  if (!plan || idleSeconds === undefined) return 0;
  return idleSeconds >= plan.startAfterSeconds && idleSeconds < plan.keepUntilSeconds ? 1 : 0;
}

/** `model` as `decideScale` gets it: `minWorkers` raised to the pre-warm floor (the controller and the simulator). */
export function withPrewarmFloor<M extends { readonly minWorkers: number }>(
  model: M,
  choice: KeepAliveChoice | undefined,
  idleSeconds: number | undefined,
): M {
  const floor = choice ? prewarmFloor(choice, idleSeconds) : 0;
  return floor > model.minWorkers ? { ...model, minWorkers: floor } : model;
}

/** The keep-alive fields of a model's config (`modelSchema`). */
export interface KeepAliveModel {
  /** Whole seconds, or "auto" (break-even refined by history). */
  readonly idleTimeoutSeconds: number | "auto";
}

export interface KeepAliveObservations {
  /** Observed mean cold-start seconds for this model × provider (the catalog figure until measured). */
  readonly coldStartSeconds: number;
  readonly billing: BillingModel;
  /** Idle-gap history of this model × provider; without it (or with too little), break-even. */
  readonly history?: IdleGapHistory;
  /**
   * What a request's waited second is worth in seconds of the worker's price: a restart also costs the waits of
   * the requests that queue behind its cold start (`restartCostWithWaitSeconds`). @default 0 (the bill only)
   */
  readonly waitWeight?: number;
  /** Requests that typically queue behind a restart from zero (`RestartQueue`); unknown: one. */
  readonly queuedPerRestart?: number;
  /**
   * How far ahead of a request a pre-warm must start for the boot to be done with probability p (a quantile of
   * the cold starts); unknown: the mean.
   */
  readonly coldStartQuantile?: (p: number) => number;
  /**
   * A uniform draw in [0, 1) fixed for the current idle spell (`spellDraw`): with it, the break-even fallback is
   * randomized (`randomizedBreakEvenSeconds`); without it, deterministic.
   */
  readonly spellDraw?: number;
}

/**
 * Randomized ski rental: the timeout for a uniform draw u, T = C·ln(1 + u·(e − 1)), the inverse of the CDF
 * (e^{T/C} − 1)/(e − 1) on [0, C]. Its expected cost on any gap is at most e/(e − 1) times the clairvoyant's
 * min(g, C) (Karlin, Manasse, McGeoch, Owicki, "Competitive randomized algorithms for nonuniform problems",
 * Algorithmica 1994); its mean is C/(e − 1) ≈ 0.58·C.
 */
export function randomizedBreakEvenSeconds(restartCost: number, draw: number): number {
  const u = Math.min(Math.max(draw, 0), 1);
  return restartCost * Math.log(1 + u * (Math.E - 1));
}

/**
 * Few gaps, all long: from `LONG_GAPS_MIN` gaps on, when even the shortest was more than `LONG_GAP_RESTARTS` restarts
 * long, the worker goes at once — waiting for the 20 gaps the history needs would pay an idle spell per request for
 * a model used a few times a day. A short gap after that costs one restart, and four of them trip the cold-streak guard.
 */
export const LONG_GAPS_MIN = 3;
export const LONG_GAP_RESTARTS = 4;

/** Recent gaps the cold-streak guard looks at: all of them outliving the timeout is the signal. */
export const COLD_STREAK_GAPS = 4;

/**
 * The guard against "every request cold": when each of the last `COLD_STREAK_GAPS` gaps outlived `timeout` (each
 * ended in a restart) and bridging them would have cost less than restarting (their empirical optimum is longer),
 * that optimum; otherwise undefined. A shift of the workload shows here within a few gaps, long before it moves the
 * optimum over the whole history, and no timeout a pattern of gaps "just too long" can pin down survives it.
 */
export function coldStreakTimeout(
  history: IdleGapHistory | undefined,
  timeout: number,
  restartCost: number,
): number | undefined {
  if (!history || history.size < COLD_STREAK_GAPS) return undefined;
  const recent = history.recent(COLD_STREAK_GAPS);
  if (!recent.every((g) => g > timeout)) return undefined;
  const best = bestTimeoutForGaps(recent, restartCost);
  return best > timeout ? best : undefined;
}

/**
 * A uniform draw in [0, 1) for the idle spell numbered `spell` of `model` under `seed`: the same for every call
 * during the spell (the controller asks each tick), a new one for the next, none an observer of past spells can
 * predict without the seed. A 32-bit integer hash (FNV-1a over the model name, then a murmur3 finalizer).
 */
export function spellDraw(seed: number, model: string, spell: number): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  for (let i = 0; i < model.length; i++) h = Math.imul(h ^ model.charCodeAt(i), 0x01000193);
  h ^= Math.imul(spell >>> 0, 0x9e3779b9);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 2 ** 32;
}

/**
 * A restart's cost in worker-seconds when waiting is priced: the bill's (`restartCostSeconds`) plus the waits of
 * the requests that queue behind the cold start d — the first waits d, the others arrive during the boot and wait
 * d/2 on average, so q queued requests wait d·(q + 1)/2 together (q = 1: d), times `waitWeight`. Without it a
 * keep-alive set at the bill's break-even makes every burst after a gap wait out a boot (issue 21).
 */
export function restartCostWithWaitSeconds(
  coldStartSeconds: number,
  billing: BillingModel,
  waitWeight = 0,
  queuedPerRestart = 1,
): number {
  const waits = waitsPerBootSecond(waitWeight, queuedPerRestart) * Math.max(0, coldStartSeconds);
  return restartCostSeconds(coldStartSeconds, billing) + waits;
}

/** A fixed timeout, e.g. RunPod's default 5 s or the 10 min of Lambda-style platforms. */
export function fixedKeepAlive(seconds: number): KeepAliveChoice {
  return { seconds: Math.max(0, seconds), basis: "fixed", reason: `fixed idleTimeoutSeconds ${seconds}s` };
}

/** Never release an idle worker (a dedicated rental, or the always-on baseline). */
export function alwaysOnKeepAlive(): KeepAliveChoice {
  return { seconds: Number.POSITIVE_INFINITY, basis: "always-on", reason: "always on: never released" };
}

const round1 = (x: number): string => (Number.isFinite(x) ? String(Math.round(x * 10) / 10) : "∞");

/**
 * The keep-alive for a model on a provider: a configured number wins; "auto" is the break-even timeout from
 * the observed cold start and the provider's billing, replaced by the empirical optimum of the idle-gap
 * history once there is enough of it. (`alwaysOn` is a floor on the worker count, which `decideScale`
 * enforces; workers above that floor follow this timeout.)
 */
export function keepAliveFor(model: KeepAliveModel, observed: KeepAliveObservations): KeepAliveChoice {
  if (typeof model.idleTimeoutSeconds === "number") return fixedKeepAlive(model.idleTimeoutSeconds);
  const { billing, coldStartSeconds, history } = observed;
  if (!billing.billsIdle) {
    return {
      seconds: Number.POSITIVE_INFINITY,
      basis: "break-even",
      reason: "auto: idle time is not billed, keeping is free",
    };
  }
  const cost = restartCostWithWaitSeconds(
    coldStartSeconds,
    billing,
    observed.waitWeight,
    observed.queuedPerRestart,
  );
  const adaptive = history?.adaptiveTimeout(cost);
  const prewarm =
    adaptive !== undefined && history
      ? history.prewarmPlan(() => ({
          coldStartSeconds,
          // the lead a pre-warm needs: a late boot costs the waits (ω a second), an early one idle time (1 a
          // second), so the boot should be done by the newsvendor's critical ratio ω / (ω + 1)
          leadSeconds:
            observed.coldStartQuantile?.(
              criticalRatio(observed.waitWeight ?? 0, observed.queuedPerRestart ?? 1),
            ) ?? coldStartSeconds,
          restartCostSeconds: restartCostSeconds(coldStartSeconds, billing),
          billsIdle: billing.billsIdle,
          waitWeight: observed.waitWeight ?? 0,
          queuedPerRestart: observed.queuedPerRestart ?? 1,
        }))
      : undefined;
  if (prewarm) {
    return {
      seconds: 0,
      basis: "prewarm",
      prewarm,
      reason: `auto: idle gaps cluster — let go at once, start one ${round1(prewarm.startAfterSeconds)}s into an idle spell, keep it until ${round1(prewarm.keepUntilSeconds)}s (${round1(prewarm.costPerGapSeconds)} worker-s a gap against ${round1(prewarm.keepAliveCostPerGapSeconds)} keeping warm, over ${history!.size} gaps)`,
    };
  }
  if (adaptive !== undefined) {
    return (
      coldStreak(history, adaptive, cost) ?? {
        seconds: adaptive,
        basis: "adaptive",
        reason: `auto: ${round1(adaptive)}s minimises cost over ${history!.size} idle gaps (restart ${round1(cost)}s)`,
      }
    );
  }
  const withWaits = observed.waitWeight ? ", with the waits of the requests queued behind it" : "";
  const shortest = history && history.size >= LONG_GAPS_MIN ? history.shortest() : undefined;
  if (shortest !== undefined && shortest > LONG_GAP_RESTARTS * cost) {
    return {
      seconds: 0,
      basis: "long-gaps",
      reason: `auto: every one of ${history!.size} idle gaps was longer than ${LONG_GAP_RESTARTS} restarts (shortest ${round1(shortest)}s, restart ${round1(cost)}s): let go at once`,
    };
  }
  if (observed.spellDraw !== undefined) {
    const drawn = randomizedBreakEvenSeconds(cost, observed.spellDraw);
    return (
      coldStreak(history, drawn, cost) ?? {
        seconds: drawn,
        basis: "randomized",
        reason: `auto: ${round1(drawn)}s drawn on [0, ${round1(cost)}s] for this idle spell (randomized break-even while the idle-gap history is short: ${history?.size ?? 0} gaps; cold start ${round1(coldStartSeconds)}s${withWaits})`,
      }
    );
  }
  return (
    coldStreak(history, cost, cost) ?? {
      seconds: cost,
      basis: "break-even",
      reason: `auto: break-even ${round1(cost)}s (cold start ${round1(coldStartSeconds)}s${withWaits})`,
    }
  );
}

function coldStreak(
  history: IdleGapHistory | undefined,
  timeout: number,
  restartCost: number,
): KeepAliveChoice | undefined {
  const extended = coldStreakTimeout(history, timeout, restartCost);
  if (extended === undefined) return undefined;
  return {
    seconds: extended,
    basis: "cold-streak",
    reason: `auto: the last ${COLD_STREAK_GAPS} idle gaps all outlived ${round1(timeout)}s and bridging them costs less than restarting (${round1(restartCost)}s): ${round1(extended)}s`,
  };
}

/** Whether the next cold start loads the weights from a cache some worker filled ("hit") or fetches them. */
export type CacheOutcome = "hit" | "miss";

/**
 * What the keep-alive has learnt: per model × provider the cold starts, kept apart by cache outcome (a miss is a
 * download, a hit a load from the volume: one estimate for both lets the first miss set the keep-alive of every
 * hit after it), and per model the idle-gap history (the gaps are the workload's, whatever serves it). Pure and bounded; the controller (`KeepAliveState`) and the simulator
 * use this one class, so what the simulator forecasts is what is deployed.
 */
export class KeepAliveLearner {
  private readonly coldStarts = new Map<string, ColdStartEstimate>();
  private readonly histories = new Map<string, IdleGapHistory>();
  /** The queues of the last restarts: their median, so a flash crowd now and then does not set the typical one. */
  private readonly restartQueues = new Map<string, RecentValues>();

  /**
   * `priorSeconds`: the cold start assumed before any is measured (the catalog's median); `waitWeight`: a waited
   * request-second in worker-seconds (0: the keep-alive weighs the bill only); `drawSeed`: with one, the break-even
   * fallback is randomized per idle spell (`spellDraw`), without it deterministic.
   */
  constructor(
    private readonly priorSeconds: (provider: string, cache: CacheOutcome) => number,
    private readonly waitWeight = 0,
    private readonly drawSeed?: number,
  ) {}

  /**
   * How long an idle worker stays up; `cache`: what the restart it risks would be; `waitWeight`: this model's
   * waited request-second in worker-seconds, when it has its own (else the learner's).
   */
  keepAlive(
    model: KeepAliveModel & { readonly name: string },
    provider: string,
    billing: BillingModel,
    cache: CacheOutcome,
    waitWeight = this.waitWeight,
  ): KeepAliveChoice {
    const history = this.history(model.name);
    return keepAliveFor(model, {
      coldStartSeconds: this.coldStart(model.name, provider, cache).seconds,
      billing,
      history,
      coldStartQuantile: (p) => this.coldStart(model.name, provider, cache).quantile(p),
      waitWeight,
      queuedPerRestart: this.restartQueues.get(model.name)?.quantile(0.5),
      // the spell under way is numbered by the gaps seen before it: one draw for all of it
      spellDraw:
        this.drawSeed === undefined ? undefined : spellDraw(this.drawSeed, model.name, history.total),
    });
  }

  /** A restart from zero ended with `queued` requests having waited for it (`RestartQueue`). */
  observeRestartQueue(model: string, queued: number): void {
    let recent = this.restartQueues.get(model);
    if (!recent) {
      recent = new RecentValues(16);
      this.restartQueues.set(model, recent);
    }
    recent.observe(queued);
  }

  observeIdleGap(model: string, gapSeconds: number): void {
    this.history(model).observe(gapSeconds);
  }

  observeColdStart(model: string, provider: string, cache: CacheOutcome, seconds: number): void {
    this.coldStart(model, provider, cache).observe(seconds);
  }

  /** Idle gaps observed so far (what changes the adaptive optimum). */
  gapsObserved(model: string): number {
    return this.histories.get(model)?.total ?? 0;
  }

  private history(model: string): IdleGapHistory {
    let history = this.histories.get(model);
    if (!history) {
      history = new IdleGapHistory();
      this.histories.set(model, history);
    }
    return history;
  }

  private coldStart(model: string, provider: string, cache: CacheOutcome): ColdStartEstimate {
    const key = `${model}/${provider}/${cache}`;
    let estimate = this.coldStarts.get(key);
    if (!estimate) {
      estimate = new ColdStartEstimate(this.priorSeconds(provider, cache));
      this.coldStarts.set(key, estimate);
    }
    return estimate;
  }
}
