/**
 * The scaling policy: how many workers a model should have right now, which to start and which to let go.
 *
 * Pure: no I/O, no clock (time is an input), no Redis, no Pulumi. The controller loop calls it on every
 * wake-up (a waiting request's pub/sub signal, a worker becoming ready, an idle timer, the periodic tick)
 * and the simulator in `sim/` calls the very same function with a virtual clock.
 *
 * Rules (DESIGN.md §4):
 * - demand = requests waiting for a worker + requests in flight on workers that still take traffic
 *   (a draining worker's in-flight requests finish where they are and need no new capacity);
 * - desired = ceil(demand / targetConcurrency), within [minWorkers, maxWorkers]; at least 1 while anything
 *   waits (when maxWorkers ≥ 1); `alwaysOn` raises the floor to at least 1;
 * - capacity = every worker that is loading (requested, provisioning, booting) or ready; loading workers are
 *   never drained and never idle, so a worker still pulling its image is never killed for "idleness";
 * - provision = desired − capacity when positive — unless the budget is exhausted, then 0 (said in the reason);
 * - never scale down while anything waits;
 * - otherwise a ready worker with nothing in flight whose idle time (now − lastActiveAt) ≥ keepAliveSeconds
 *   is drained, at most capacity − desired of them (so never below minWorkers nor below what the in-flight
 *   load needs). Among candidates the most expensive goes first (USD per hour, highest first), then the one
 *   idle longest (oldest lastActiveAt), then by id so the order is deterministic;
 * - on a provider that bills whole units (an hour), an idle worker past its keep-alive is drained only in the last
 *   stretch of the unit it has paid for (`inLastStretchOfPaidUnit`): the rest of that unit costs nothing more, and
 *   the next request in it finds the worker warm.
 */

import type { WorkerState } from "../core/redis-keys";

/** The registry's worker states that still hold (or will hold) a machine: "requested" … "draining". */
export type WorkerPhase = Exclude<WorkerState, "terminated" | "failed">;

/** What the policy needs to know about one worker of the model. */
export interface WorkerView {
  readonly id: string;
  readonly provider: string;
  readonly phase: WorkerPhase;
  /** Requests being served by this worker now. */
  readonly inFlight: number;
  readonly createdAtMs: number;
  readonly readyAtMs?: number;
  /** Last moment the worker had a request in flight, or when it became ready if it never had one. */
  readonly lastActiveAtMs: number;
  /** USD per hour while billed; among idle workers the most expensive is drained first. Unknown: 0. */
  readonly usdPerHour?: number;
  /** The provider bills whole units (`paidUnitOf`); absent for per-second billing. */
  readonly paidUnit?: PaidUnit;
}

/** Whole billing units of `seconds`, counted from `sinceMs`: a life is billed up to the end of the unit it is in. */
export interface PaidUnit {
  readonly seconds: number;
  readonly sinceMs: number;
}

/**
 * How a worker is billed in whole units, from its provider's billing rule (`BillingModel`): units of the granularity
 * from creation (boot billed) or from ready; undefined for per-second billing or before a boot-unbilled worker is
 * ready.
 */
export function paidUnitOf(
  billing: { readonly granularitySeconds: number; readonly billsBoot: boolean },
  createdAtMs: number,
  readyAtMs: number | undefined,
): PaidUnit | undefined {
  if (billing.granularitySeconds <= 1) return undefined;
  const sinceMs = billing.billsBoot ? createdAtMs : readyAtMs;
  return sinceMs === undefined ? undefined : { seconds: billing.granularitySeconds, sinceMs };
}

/** How long before a paid unit ends its worker may be drained: a minute (the drain and the provider's stop take time), at most a quarter unit. */
export function paidUnitMarginMs(unit: PaidUnit): number {
  return Math.min(60, unit.seconds / 4) * 1000;
}

/** Whether `nowMs` is in the last `paidUnitMarginMs` of the unit the worker is in (always, without units). */
export function inLastStretchOfPaidUnit(w: Pick<WorkerView, "paidUnit">, nowMs: number): boolean {
  const unit = w.paidUnit;
  if (!unit) return true;
  const unitMs = unit.seconds * 1000;
  const into = (((nowMs - unit.sinceMs) % unitMs) + unitMs) % unitMs;
  return unitMs - into <= paidUnitMarginMs(unit);
}

/** When the last stretch of the worker's current paid unit begins (ms), or `nowMs` without units. */
export function lastStretchOfPaidUnitAtMs(w: Pick<WorkerView, "paidUnit">, nowMs: number): number {
  const unit = w.paidUnit;
  if (!unit || inLastStretchOfPaidUnit(w, nowMs)) return nowMs;
  const unitMs = unit.seconds * 1000;
  const into = (((nowMs - unit.sinceMs) % unitMs) + unitMs) % unitMs;
  return nowMs - into + unitMs - paidUnitMarginMs(unit);
}

/** The scaling fields of a model's config (`modelSchema`). */
export interface ScalingModel {
  readonly name: string;
  readonly minWorkers: number;
  readonly maxWorkers: number;
  readonly targetConcurrency: number;
  /** The model is meant to run around the clock: keep at least one worker even with minWorkers 0. */
  readonly alwaysOn?: boolean;
}

export interface ModelScalingInput {
  readonly nowMs: number;
  readonly model: ScalingModel;
  /** Requests waiting for a worker, queued async jobs included. */
  readonly waiting: number;
  /** The model's workers that are neither terminated nor failed (any provider). */
  readonly workers: readonly WorkerView[];
  /** From the keep-alive policy (`controller/keep-alive.ts`); Infinity keeps idle workers; NaN is Infinity. */
  readonly keepAliveSeconds: number;
  /** The stack's or the model's monthly budget is reached: never provision. */
  readonly budgetExhausted: boolean;
}

export interface DrainOrder {
  readonly workerId: string;
  readonly reason: string;
}

export interface ScaleDecision {
  /** Workers the model should have (loading + ready), after the bounds. */
  readonly desired: number;
  /** Workers to start now. */
  readonly provision: number;
  /** Workers to drain (stop routing to, then terminate); all have nothing in flight. */
  readonly drain: DrainOrder[];
  /** One line for the log: the numbers the decision came from. */
  readonly reason: string;
}

export function isLoading(phase: WorkerPhase): boolean {
  return phase === "requested" || phase === "provisioning" || phase === "booting";
}

const seconds = (ms: number): string => {
  const s = ms / 1000;
  return Number.isInteger(s) ? `${s}s` : `${s.toFixed(1)}s`;
};

/** Decide how the model's worker set should change now. See the rules at the top of this file. */
export function decideScale(input: ModelScalingInput): ScaleDecision {
  const { nowMs, model, workers, budgetExhausted } = input;
  const waiting = Math.max(0, input.waiting);
  const keepAliveMs = Number.isNaN(input.keepAliveSeconds)
    ? Number.POSITIVE_INFINITY
    : Math.max(0, input.keepAliveSeconds) * 1000;
  const perWorker = Math.max(1, model.targetConcurrency);
  const maxWorkers = Math.max(0, model.maxWorkers);

  let inFlight = 0;
  let loading = 0;
  let ready = 0;
  for (const w of workers) {
    if (w.phase === "draining") continue;
    inFlight += w.inFlight;
    if (w.phase === "ready") ready++;
    else loading++;
  }
  const capacity = loading + ready;
  const demand = waiting + inFlight;

  const floor = Math.min(maxWorkers, Math.max(model.minWorkers, model.alwaysOn ? 1 : 0));
  let desired = Math.ceil(demand / perWorker);
  if (waiting > 0) desired = Math.max(desired, 1);
  desired = Math.min(maxWorkers, Math.max(floor, desired));

  const head =
    `${model.name}: demand ${demand} (${waiting} waiting + ${inFlight} in flight) at ${perWorker}/worker` +
    ` → desired ${desired} [min ${model.minWorkers}, max ${maxWorkers}]; have ${capacity}` +
    ` (${loading} loading, ${ready} ready)`;

  const shortfall = Math.max(0, desired - capacity);
  if (shortfall > 0) {
    if (budgetExhausted) {
      return {
        desired,
        provision: 0,
        drain: [],
        reason: `${head}; budget exhausted: ${shortfall} more worker(s) wanted, none provisioned`,
      };
    }
    const capped = waiting > 0 && desired === maxWorkers && Math.ceil(demand / perWorker) > maxWorkers;
    return {
      desired,
      provision: shortfall,
      drain: [],
      reason: `${head}; provision ${shortfall}${capped ? " (capped by maxWorkers)" : ""}`,
    };
  }

  if (waiting > 0) {
    const atMax = capacity >= maxWorkers && Math.ceil(demand / perWorker) > capacity;
    return {
      desired,
      provision: 0,
      drain: [],
      reason: `${head}; ${waiting} waiting: no scale-down${atMax ? ", at maxWorkers" : ""}`,
    };
  }

  const surplus = capacity - desired;
  if (surplus <= 0 || keepAliveMs === Number.POSITIVE_INFINITY) {
    return { desired, provision: 0, drain: [], reason: `${head}; steady` };
  }

  let candidates: WorkerView[] | undefined;
  let paidFor = 0;
  for (const w of workers) {
    if (w.phase === "ready" && w.inFlight === 0 && nowMs - w.lastActiveAtMs >= keepAliveMs) {
      if (!inLastStretchOfPaidUnit(w, nowMs)) {
        paidFor++;
        continue;
      }
      if (candidates === undefined) candidates = [];
      candidates.push(w);
    }
  }
  if (candidates === undefined) {
    const why =
      paidFor > 0
        ? `${paidFor} idle past keep-alive kept to the end of the billing unit it has paid for`
        : "no worker idle past keep-alive";
    return { desired, provision: 0, drain: [], reason: `${head}; steady (${why})` };
  }
  candidates.sort(
    (a, b) =>
      (b.usdPerHour ?? 0) - (a.usdPerHour ?? 0) ||
      a.lastActiveAtMs - b.lastActiveAtMs ||
      (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  );
  const drain: DrainOrder[] = [];
  const keepAliveText = seconds(keepAliveMs);
  for (const w of candidates.slice(0, surplus)) {
    drain.push({
      workerId: w.id,
      reason: `idle ${seconds(nowMs - w.lastActiveAtMs)} ≥ keep-alive ${keepAliveText}`,
    });
  }
  const kept = candidates.length - drain.length;
  return {
    desired,
    provision: 0,
    drain,
    reason:
      `${head}; drain ${drain.length} idle past keep-alive ${keepAliveText}` +
      (kept > 0 ? ` (${kept} kept for min/in-flight)` : ""),
  };
}
