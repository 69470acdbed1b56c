/**
 * Billing arithmetic: what one worker's life costs under a provider's billing rules (`BillingModel`).
 *
 * A life is the time from the create call to termination: boot (create → ready) then up (ready → end),
 * of which some seconds were busy. Billed seconds = the billed part of the life (boot if `billsBoot`, all
 * of the up time if `billsIdle`, else only the busy time), rounded up to the granularity, and at least the
 * per-start minimum. Storage (disk) bills over the whole life where the provider bills it; a dedicated
 * server adds its one-time setup fee per rental. The controller terminates workers rather than stopping
 * them, so no stopped-but-kept storage accrues in the simulation.
 */
import { type BillingModel, HOURS_PER_MONTH } from "../core/catalog";

export interface WorkerLife {
  /** Seconds from the create call to ready. */
  readonly bootSeconds: number;
  /** Seconds from ready to termination. */
  readonly upSeconds: number;
  /** Seconds of the up time with at least one request in flight. */
  readonly busySeconds: number;
}

export interface BilledLife {
  /** Seconds the billing rules count before rounding and minimums. */
  readonly rawSeconds: number;
  readonly billedSeconds: number;
  /** Billed seconds by cause; they add up to billedSeconds. */
  readonly bootSeconds: number;
  readonly busySeconds: number;
  readonly idleSeconds: number;
  /** Granularity rounding and per-start minimum top-up. */
  readonly roundingSeconds: number;
  readonly computeUsd: number;
  readonly storageUsd: number;
  readonly setupUsd: number;
  readonly usd: number;
}

export interface PriceTerms {
  readonly usdPerHour: number;
  readonly billing: BillingModel;
  readonly setupFeeUsd?: number;
  readonly storageUsdPerHour?: number;
}

/** Time below this (seconds) past a billing boundary is floating-point dust, not a new unit. */
const DUST_SECONDS = 1e-5;

/** Round seconds up to a whole number of billing units (tolerant of floating-point dust). */
export function roundUpToGranularity(seconds: number, granularitySeconds: number): number {
  if (seconds <= 0) return 0;
  if (granularitySeconds <= 0) return seconds;
  return Math.max(1, Math.ceil((seconds - DUST_SECONDS) / granularitySeconds)) * granularitySeconds;
}

/** Seconds the provider bills for one worker life. */
export function billedSeconds(life: WorkerLife, billing: BillingModel): number {
  const raw =
    (billing.billsBoot ? life.bootSeconds : 0) + (billing.billsIdle ? life.upSeconds : life.busySeconds);
  return Math.max(billing.minimumSeconds, roundUpToGranularity(raw, billing.granularitySeconds));
}

/** The full bill of one worker life, by cause. */
export function billLife(life: WorkerLife, terms: PriceTerms): BilledLife {
  const { billing } = terms;
  const boot = billing.billsBoot ? life.bootSeconds : 0;
  const busy = Math.min(life.busySeconds, life.upSeconds);
  const idle = billing.billsIdle ? life.upSeconds - busy : 0;
  const raw = boot + busy + idle;
  const billed = billedSeconds(life, billing);
  const computeUsd = (billed / 3600) * terms.usdPerHour;
  const storageUsd = ((life.bootSeconds + life.upSeconds) / 3600) * (terms.storageUsdPerHour ?? 0);
  const setupUsd = terms.setupFeeUsd ?? 0;
  return {
    rawSeconds: raw,
    billedSeconds: billed,
    bootSeconds: boot,
    busySeconds: busy,
    idleSeconds: idle,
    roundingSeconds: billed - raw,
    computeUsd,
    storageUsd,
    setupUsd,
    usd: computeUsd + storageUsd + setupUsd,
  };
}

/** One worker kept up for `hours` (a month by default), boot included: the always-on baseline. */
export function alwaysOnUsd(terms: PriceTerms, hours: number = HOURS_PER_MONTH): number {
  return billLife({ bootSeconds: 0, upSeconds: hours * 3600, busySeconds: 0 }, terms).usd;
}

/** USD rounded to cents, as every report shows money. */
export const cents = (usd: number): number => Math.round(usd * 100) / 100;
