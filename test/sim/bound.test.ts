/**
 * Issue 21: the reference is a true lower bound. Under the same cold-start draws and wait pricing, no runnable
 * policy ever costs less than `lowerBound` — over thousands of random traces, billing rules, cold-start
 * distributions and model limits.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { BillingModel } from "../../core/catalog";
import { ColdStartDraws, effectiveWaitUsdPerSecond, lowerBound } from "../../sim/bound";
import { type ColdStartDistribution, providerProfile, type SimProfile } from "../../sim/profiles";
import { POLICY_IDS, type SimModel, simulateRun } from "../../sim/simulate";
import { type Arrival, arrivalsWorkload } from "../../sim/workloads";

const RUNNABLE = POLICY_IDS.filter((p) => p !== "bound");

const coldStartArb: fc.Arbitrary<ColdStartDistribution> = fc.oneof(
  fc.record({ kind: fc.constant("fixed" as const), seconds: fc.integer({ min: 1, max: 400 }) }),
  fc
    .tuple(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 0, max: 600 }))
    .map(([min, span]) => ({ kind: "uniform" as const, minSeconds: min, maxSeconds: min + span })),
  fc
    .tuple(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 0, max: 800 }))
    .map(([p50, extra]) => ({ kind: "lognormal" as const, p50Seconds: p50, p95Seconds: p50 + extra })),
);

const billingArb: fc.Arbitrary<BillingModel> = fc.record({
  granularitySeconds: fc.constantFrom(1, 60, 3600),
  minimumSeconds: fc.constantFrom(0, 60, 600),
  billsBoot: fc.boolean(),
  billsIdle: fc.boolean(),
  billsStorageWhenStopped: fc.constant(false),
  monthlyRental: fc.constant(false),
});

const caseArb = fc.record({
  gaps: fc.array(fc.double({ min: 0, max: 2_000, noNaN: true }), { minLength: 1, maxLength: 30 }),
  services: fc.array(fc.double({ min: 0.05, max: 60, noNaN: true }), { minLength: 30, maxLength: 30 }),
  coldStart: coldStartArb,
  cached: fc.boolean(),
  billing: billingArb,
  usdPerHour: fc.double({ min: 0.1, max: 20, noNaN: true }),
  storageUsdPerHour: fc.constantFrom(0, 0.01),
  setupFeeUsd: fc.constantFrom(0, 0.5),
  targetConcurrency: fc.integer({ min: 1, max: 4 }),
  maxWorkers: fc.integer({ min: 1, max: 3 }),
  queueTimeoutSeconds: fc.constantFrom(30, 180, 600, 1e9),
  waitUsdPerSecond: fc.constantFrom(0, 0.0001, 0.01),
  seed: fc.integer({ min: 1, max: 1_000_000 }),
});

type Case = typeof caseArb extends fc.Arbitrary<infer T> ? T : never;

/** Cases the property once failed on, run first every time. */
const FOUND: Case[] = [
  // CI, 2026-12-07: the one cold start (lognormal tail, seed 6) outlasted the 5,000 s period, so the request was
  // never served and always-on billed $0 — an unserved request must be priced as a drop
  {
    gaps: [0],
    services: Array.from({ length: 30 }, () => 0.05),
    coldStart: { kind: "lognormal", p50Seconds: 1, p95Seconds: 214 },
    cached: false,
    billing: {
      granularitySeconds: 1,
      minimumSeconds: 0,
      billsBoot: false,
      billsIdle: false,
      billsStorageWhenStopped: false,
      monthlyRental: false,
    },
    usdPerHour: 0.1,
    storageUsdPerHour: 0,
    setupFeeUsd: 0,
    targetConcurrency: 1,
    maxWorkers: 1,
    queueTimeoutSeconds: 1e9,
    waitUsdPerSecond: 0,
    seed: 6,
  },
];

function setup(c: Case) {
  let t = 0;
  const arrivals: Arrival[] = c.gaps.map((gap, i) => {
    t += gap;
    return { time: t, tokens: 0, serviceSeconds: c.services[i]! };
  });
  const base = providerProfile("runpod-pod", "RTX_4090", {
    usdPerHour: c.usdPerHour,
    coldStart: c.coldStart,
  });
  const profile: SimProfile = {
    ...base,
    billing: c.billing,
    storageUsdPerHour: c.storageUsdPerHour,
    setupFeeUsd: c.setupFeeUsd,
    weightCache: c.cached
      ? { dataCenter: "EU-RO-1", miss: { kind: "fixed", seconds: 500 }, source: "test" }
      : undefined,
  };
  const model: SimModel = {
    name: "m",
    minWorkers: 0,
    maxWorkers: c.maxWorkers,
    targetConcurrency: c.targetConcurrency,
    queueTimeoutSeconds: c.queueTimeoutSeconds,
  };
  return { arrivals, profile, model, workload: arrivalsWorkload(arrivals, t + 5_000) };
}

describe("lowerBound", () => {
  it("no runnable policy costs less than the bound, under the same draws and wait pricing", () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const { profile, model, workload } = setup(c);
        const options = { model, profile, workload, seed: c.seed, waitUsdPerSecond: c.waitUsdPerSecond };
        const bound = simulateRun({ ...options, policy: "bound" });
        for (const policy of RUNNABLE) {
          const run = simulateRun({ ...options, policy });
          expect(run.totalUsd, `${policy}: ${run.lastDecision}`).toBeGreaterThanOrEqual(
            bound.totalUsd * (1 - 1e-9),
          );
        }
      }),
      { numRuns: 2_000, examples: FOUND.map((c) => [c] as [Case]) },
    );
  });

  it("is the cheapest choice of idle gaps to bridge: keeps the short gap, restarts across the long ones", () => {
    const profile = providerProfile("runpod-pod", "RTX_4090", {
      usdPerHour: 3.6,
      coldStart: { kind: "fixed", seconds: 30 },
    });
    const arrivals = [100, 110, 400, 2000].map((time) => ({ time, tokens: 0, serviceSeconds: 5 }));
    const b = lowerBound(arrivals, profile, new ColdStartDraws(1, profile), {
      waitUsdPerSecond: effectiveWaitUsdPerSecond(profile),
      queueTimeoutSeconds: 600,
      horizonSeconds: 3_000,
    });
    // three lives (30 s boot each), 20 s busy, the 5 s gap bridged: $0.001/s
    expect(b).toMatchObject({ lives: 3, busySeconds: 20, gaps: 3, gapsKept: 1, billedSeconds: 115 });
    expect(b.usd).toBeCloseTo(0.115, 10);
  });

  it("every run draws its k-th cold start from the same stream (common random numbers)", () => {
    const profile = providerProfile("vastai", "RTX_4090", {
      usdPerHour: 0.4,
      coldStart: { kind: "lognormal", p50Seconds: 240, p95Seconds: 900 },
    });
    const a = new ColdStartDraws(7, profile);
    const b = new ColdStartDraws(7, profile);
    const firstFive = [0, 1, 2, 3, 4].map((k) => a.at(k));
    expect([4, 3, 2, 1, 0].map((k) => b.at(k)).reverse()).toEqual(firstFive);
    expect(new ColdStartDraws(8, profile).at(0)).not.toBe(firstFive[0]);
  });

  it("waiting is never priced below the worker's own second", () => {
    const profile = providerProfile("runpod-pod", "RTX_4090", { usdPerHour: 36 });
    expect(effectiveWaitUsdPerSecond(profile)).toBeCloseTo(0.01, 10);
    expect(effectiveWaitUsdPerSecond(profile, 0.05)).toBe(0.05);
  });
});
