import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  bestTimeoutForGaps,
  ColdStartEstimate,
  IdleGapHistory,
  IdleSpell,
  RestartQueue,
} from "../../controller/idle-observations";
import {
  breakEvenIdleSeconds,
  COLD_STREAK_GAPS,
  coldStreakTimeout,
  KeepAliveLearner,
  keepAliveFor,
  randomizedBreakEvenSeconds,
  restartCostSeconds,
  restartCostWithWaitSeconds,
  spellDraw,
} from "../../controller/keep-alive";
import { type BillingModel, PROVIDERS } from "../../core/catalog";

const PER_SECOND = PROVIDERS["runpod-pod"].billing;

/** Σ over gaps of (g ≤ t ? g : t + C): the idle cost of timeout t. */
const empiricalCost = (gaps: readonly number[], t: number, c: number) =>
  gaps.reduce((sum, g) => sum + (g <= t ? g : t + c), 0);

describe("breakEvenIdleSeconds", () => {
  it("equals the cold-start seconds under per-second billing with boot billed", () => {
    expect(breakEvenIdleSeconds(90, PER_SECOND)).toBe(90);
    expect(breakEvenIdleSeconds(2.3, PROVIDERS["runpod-serverless"].billing)).toBe(2.3);
    expect(breakEvenIdleSeconds(30, PROVIDERS.datacrunch.billing)).toBe(30);
  });

  it("adds half a billing unit under coarse granularity (one more rounded tail per restart)", () => {
    // CoreWeave bills by the hour: a restart adds on average half an hour of rounding
    expect(PROVIDERS.coreweave.billing.granularitySeconds).toBe(3600);
    expect(breakEvenIdleSeconds(45, PROVIDERS.coreweave.billing)).toBe(45 + 1800);
    expect(breakEvenIdleSeconds(45, { ...PER_SECOND, granularitySeconds: 60 })).toBe(75);
  });

  it("a per-start minimum raises the restart cost to the minimum", () => {
    const tenMinutes: BillingModel = { ...PER_SECOND, minimumSeconds: 600 };
    expect(breakEvenIdleSeconds(30, tenMinutes)).toBe(600);
    expect(breakEvenIdleSeconds(900, tenMinutes)).toBe(900);
    // a monthly rental (30-day minimum): keep it for the month
    expect(breakEvenIdleSeconds(540, PROVIDERS["hetzner-dedicated"].billing)).toBeGreaterThanOrEqual(
      30 * 24 * 3600,
    );
  });

  it("is 0 when boot is not billed (a restart costs only latency) and ∞ when idle is free", () => {
    expect(breakEvenIdleSeconds(120, { ...PER_SECOND, billsBoot: false })).toBe(0);
    expect(breakEvenIdleSeconds(0, PROVIDERS.local.billing)).toBe(Number.POSITIVE_INFINITY);
    expect(restartCostSeconds(-5, PER_SECOND)).toBe(0);
  });
});

describe("bestTimeoutForGaps (adaptive)", () => {
  it("picks a short timeout for long gaps and a long one for short gaps", () => {
    expect(bestTimeoutForGaps(Array(50).fill(1000), 30)).toBe(0);
    expect(bestTimeoutForGaps(Array(50).fill(10), 30)).toBe(10);
    // mostly short gaps with a few long ones: keep across the short ones only
    const mixed = [...Array(40).fill(5), ...Array(10).fill(3600)];
    expect(bestTimeoutForGaps(mixed, 30)).toBe(5);
    // no history: break-even
    expect(bestTimeoutForGaps([], 42)).toBe(42);
  });

  it("is never worse than any other timeout on the gaps it saw", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 5000, noNaN: true }), { minLength: 1, maxLength: 60 }),
        fc.double({ min: 0, max: 600, noNaN: true }),
        fc.double({ min: 0, max: 6000, noNaN: true }),
        (gaps, c, other) => {
          const t = bestTimeoutForGaps(gaps, c);
          const best = empiricalCost(gaps, t, c);
          expect(best).toBeLessThanOrEqual(empiricalCost(gaps, other, c) * (1 + 1e-9) + 1e-9);
          expect(best).toBeLessThanOrEqual(empiricalCost(gaps, c, c) * (1 + 1e-9) + 1e-9);
        },
      ),
    );
  });

  it("break-even is 2-competitive with the clairvoyant choice on any gaps (ski rental)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 5000, noNaN: true }), { maxLength: 60 }),
        fc.double({ min: 0.1, max: 600, noNaN: true }),
        (gaps, c) => {
          const offline = gaps.reduce((sum, g) => sum + Math.min(g, c), 0);
          expect(empiricalCost(gaps, c, c)).toBeLessThanOrEqual(2 * offline + 1e-6);
        },
      ),
    );
  });
});

describe("IdleGapHistory", () => {
  it("answers only with enough history, in bounded memory", () => {
    const h = new IdleGapHistory({ capacity: 8, minSamples: 4, recomputeEvery: 1 });
    for (const g of [10, 10, 10]) h.observe(g);
    expect(h.adaptiveTimeout(30)).toBeUndefined();
    h.observe(10);
    expect(h.adaptiveTimeout(30)).toBe(10);
    for (let i = 0; i < 100; i++) h.observe(1000);
    expect(h.size).toBe(8);
    expect(h.total).toBe(104);
    expect(h.gaps()).toEqual(Array(8).fill(1000));
    expect(h.adaptiveTimeout(30)).toBe(0);
    h.observe(-1);
    h.observe(Number.NaN);
    expect(h.total).toBe(104);
  });

  it("answers exactly what a fresh sort of its gaps would, however the ring turns (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 16 }),
        fc.array(fc.integer({ min: 0, max: 100 }), { minLength: 1, maxLength: 80 }),
        fc.integer({ min: 0, max: 60 }),
        (capacity, gaps, c) => {
          const h = new IdleGapHistory({ capacity, minSamples: 1 });
          for (const g of gaps) {
            h.observe(g);
            expect(h.adaptiveTimeout(c)).toBe(bestTimeoutForGaps(h.gaps(), c));
          }
          expect(h.gaps()).toEqual(gaps.slice(-capacity));
        },
      ),
    );
  });

  it("keeps the oldest-first order across the ring's wrap", () => {
    const h = new IdleGapHistory({ capacity: 3 });
    for (const g of [1, 2, 3, 4, 5]) h.observe(g);
    expect(h.gaps()).toEqual([3, 4, 5]);
  });

  it("recomputes at most once per recomputeEvery gaps, and at once when the restart cost changes", () => {
    const h = new IdleGapHistory({ capacity: 64, minSamples: 1, recomputeEvery: 4 });
    h.observe(10);
    expect(h.adaptiveTimeout(30)).toBe(10);
    for (let i = 0; i < 3; i++) h.observe(20);
    expect(h.adaptiveTimeout(30)).toBe(10); // cached: 3 new gaps < 4
    h.observe(20);
    expect(h.adaptiveTimeout(30)).toBe(20);
    expect(h.adaptiveTimeout(5)).toBe(0);
  });
});

describe("keepAliveFor", () => {
  it("a configured number wins over everything", () => {
    const history = new IdleGapHistory({ minSamples: 1 });
    history.observe(1);
    expect(
      keepAliveFor({ idleTimeoutSeconds: 300 }, { coldStartSeconds: 30, billing: PER_SECOND, history }),
    ).toMatchObject({ seconds: 300, basis: "fixed" });
  });

  it('"auto" is break-even without enough history, the empirical optimum with it', () => {
    const history = new IdleGapHistory({ minSamples: 20 });
    const auto = { idleTimeoutSeconds: "auto" as const };
    const observed = { coldStartSeconds: 90, billing: PER_SECOND, history };
    const first = keepAliveFor(auto, observed);
    expect(first).toMatchObject({ seconds: 90, basis: "break-even" });
    expect(first.reason).toBe("auto: break-even 90s (cold start 90s)");
    for (let i = 0; i < 20; i++) history.observe(3600);
    const adaptive = keepAliveFor(auto, observed);
    expect(adaptive).toMatchObject({ seconds: 0, basis: "adaptive" });
    expect(adaptive.reason).toContain("over 20 idle gaps");
    expect(keepAliveFor(auto, { coldStartSeconds: 90, billing: PER_SECOND })).toMatchObject({ seconds: 90 });
  });

  it('"auto" keeps forever where idle time is free', () => {
    expect(
      keepAliveFor({ idleTimeoutSeconds: "auto" }, { coldStartSeconds: 0, billing: PROVIDERS.local.billing })
        .seconds,
    ).toBe(Number.POSITIVE_INFINITY);
  });
});

describe("ColdStartEstimate", () => {
  it("starts at the prior and follows observations as a mean, then an exponentially weighted mean", () => {
    const e = new ColdStartEstimate(30, 4);
    expect(e.seconds).toBe(30);
    e.observe(90);
    expect(e.seconds).toBe(60);
    for (let i = 0; i < 100; i++) e.observe(120);
    expect(e.seconds).toBeCloseTo(120, 6);
    e.observe(Number.NaN);
    expect(e.seconds).toBeCloseTo(120, 6);
  });
});

describe("IdleSpell (the gaps the controller and the simulator observe)", () => {
  it("a gap runs from the moment nothing waits or runs to the next demand, however long", () => {
    const spell = new IdleSpell();
    expect(spell.update(3, 0)).toBeUndefined(); // busy: nothing ended
    expect(spell.update(0, 1_000)).toBeUndefined(); // idle from 1 s
    expect(spell.update(0, 5_000)).toBeUndefined(); // still idle: the start stays
    expect(spell.update(1, 3_601_000)).toBe(3_600); // an hour: longer than any keep-alive, still seen
    expect(spell.update(1, 3_602_000)).toBeUndefined();
    spell.update(0, 4_000_000);
    expect(spell.update(2, 4_000_500)).toBeUndefined(); // under a tick: not idleness
  });
});

describe("KeepAliveLearner", () => {
  const model = { name: "m", idleTimeoutSeconds: "auto" as const };

  it("keeps cache hits and misses apart: one slow miss does not set the keep-alive of the hits", () => {
    const learner = new KeepAliveLearner(() => 10);
    learner.observeColdStart("m", "runpod-pod", "miss", 80);
    expect(learner.keepAlive(model, "runpod-pod", PER_SECOND, "hit").seconds).toBe(10);
    expect(learner.keepAlive(model, "runpod-pod", PER_SECOND, "miss").seconds).toBe(45); // (10 + 80) / 2
  });

  it("learns a model's gaps across providers, and its optimum once it has enough of them", () => {
    const learner = new KeepAliveLearner(() => 30);
    for (let i = 0; i < 20; i++) learner.observeIdleGap("m", 100);
    expect(learner.gapsObserved("m")).toBe(20);
    // every gap is longer than a restart costs: let workers go at once, on any provider
    expect(learner.keepAlive(model, "vastai", PER_SECOND, "miss")).toMatchObject({
      seconds: 0,
      basis: "adaptive",
    });
    expect(learner.keepAlive(model, "runpod-pod", PER_SECOND, "miss").basis).toBe("adaptive");
    expect(
      learner.keepAlive({ ...model, idleTimeoutSeconds: 60 }, "vastai", PER_SECOND, "miss").seconds,
    ).toBe(60);
  });
});

describe("waits in the restart cost (issue 21)", () => {
  it("a restart costs its bill plus the waits of those queued behind it: d·(q + 1)/2, weighted", () => {
    expect(restartCostWithWaitSeconds(30, PER_SECOND)).toBe(30); // the bill only
    expect(restartCostWithWaitSeconds(30, PER_SECOND, 1)).toBe(60); // one request waits the whole boot
    expect(restartCostWithWaitSeconds(30, PER_SECOND, 1, 9)).toBe(180); // ten wait 15 s on average
    expect(restartCostWithWaitSeconds(30, PER_SECOND, 2, 1)).toBe(90);
  });

  it("RestartQueue reports the most that waited while no worker was ready, once a worker is", () => {
    const q = new RestartQueue();
    expect(q.update(1, 5)).toBeUndefined(); // a ready worker: no restart under way
    expect(q.update(0, 2)).toBeUndefined();
    expect(q.update(0, 7)).toBeUndefined();
    expect(q.update(0, 4)).toBeUndefined(); // some timed out: the peak stays
    expect(q.update(1, 4)).toBe(7);
    expect(q.update(1, 0)).toBeUndefined();
  });

  it("the learner keeps the recent median: one flash crowd does not set the keep-alive for a month", () => {
    const learner = new KeepAliveLearner(() => 30, 1);
    const model = { name: "m", idleTimeoutSeconds: "auto" as const };
    for (const queued of [1, 1, 500, 1, 1]) learner.observeRestartQueue("m", queued);
    expect(learner.keepAlive(model, "runpod-pod", PER_SECOND, "miss").seconds).toBe(60);
  });
});

describe("randomized break-even and the cold-streak guard (issue 21)", () => {
  const C = 60;
  /** Expected idle cost of a gap g under the draws of `spells` idle spells (seed 7), and the clairvoyant's. */
  const expectedCost = (g: number, spells: number) => {
    let sum = 0;
    for (let k = 0; k < spells; k++) {
      const t = randomizedBreakEvenSeconds(C, spellDraw(7, "m", k));
      sum += g <= t ? g : t + C;
    }
    return sum / spells;
  };

  it("draws T on [0, C] by the inverse CDF (e^{T/C} − 1)/(e − 1): mean C/(e − 1)", () => {
    expect(randomizedBreakEvenSeconds(C, 0)).toBe(0);
    expect(randomizedBreakEvenSeconds(C, 1)).toBeCloseTo(C, 10);
    const u = 0.3;
    const t = randomizedBreakEvenSeconds(C, u);
    expect((Math.exp(t / C) - 1) / (Math.E - 1)).toBeCloseTo(u, 12);
    let mean = 0;
    const n = 20_000;
    for (let k = 0; k < n; k++) mean += randomizedBreakEvenSeconds(C, spellDraw(3, "model-a", k)) / n;
    expect(mean / C).toBeGreaterThan(1 / (Math.E - 1) - 0.01);
    expect(mean / C).toBeLessThan(1 / (Math.E - 1) + 0.01);
  });

  it("spellDraw is the same within a spell, uniform across spells, and depends on seed and model", () => {
    expect(spellDraw(1, "m", 5)).toBe(spellDraw(1, "m", 5));
    expect(spellDraw(1, "m", 5)).not.toBe(spellDraw(1, "m", 6));
    expect(spellDraw(1, "m", 5)).not.toBe(spellDraw(2, "m", 5));
    expect(spellDraw(1, "m", 5)).not.toBe(spellDraw(1, "n", 5));
    const buckets = new Array<number>(10).fill(0);
    for (let k = 0; k < 10_000; k++) {
      const u = spellDraw(9, "model", k);
      expect(u).toBeGreaterThanOrEqual(0);
      expect(u).toBeLessThan(1);
      buckets[Math.floor(u * 10)]!++;
    }
    for (const b of buckets) expect(Math.abs(b - 1_000)).toBeLessThan(150);
  });

  it("costs at most e/(e − 1) ≈ 1.58× the clairvoyant on any gap in expectation, where T = C costs 2× just past C", () => {
    const bound = Math.E / (Math.E - 1);
    for (const g of [1, 10, 30, 59, 60, 61, 63, 90, 120, 600, 86_400]) {
      const ratio = expectedCost(g, 20_000) / Math.min(g, C);
      expect(ratio, `gap ${g}s`).toBeLessThan(bound + 0.03);
    }
    // the gap that defeats the deterministic break-even: just longer than C, a cold start every time
    const g = C * 1.05;
    expect((C + C) / Math.min(g, C)).toBe(2);
    expect(expectedCost(g, 20_000) / C).toBeLessThan(1.6);
  });

  it("the learner randomizes per idle spell only when seeded, and the reason says so", () => {
    const seeded = new KeepAliveLearner(() => C, 0, 11);
    const plain = new KeepAliveLearner(() => C, 0);
    const model = { name: "m", idleTimeoutSeconds: "auto" as const };
    const first = seeded.keepAlive(model, "runpod-pod", PER_SECOND, "miss");
    expect(first.basis).toBe("randomized");
    expect(first.reason).toContain("randomized break-even");
    expect(seeded.keepAlive(model, "runpod-pod", PER_SECOND, "miss").seconds).toBe(first.seconds);
    seeded.observeIdleGap("m", 5);
    const next = seeded.keepAlive(model, "runpod-pod", PER_SECOND, "miss");
    expect(next.seconds).not.toBe(first.seconds);
    expect(next.seconds).toBeLessThanOrEqual(C);
    expect(plain.keepAlive(model, "runpod-pod", PER_SECOND, "miss")).toMatchObject({
      seconds: C,
      basis: "break-even",
    });
  });

  it("a streak of gaps that all outlived the timeout, each cheaper to bridge than to restart, extends it", () => {
    const history = new IdleGapHistory();
    for (const g of [100, 2, 64, 66, 65]) history.observe(g);
    // one of the last four (2 s) was bridged by a 60 s timeout: no streak
    expect(coldStreakTimeout(history, 60, 120)).toBeUndefined();
    history.observe(67);
    // 64, 66, 65, 67 all outlived 60 s and each costs less than a 120 s restart: keep 67 s
    expect(history.recent(COLD_STREAK_GAPS).sort()).toEqual([64, 65, 66, 67]);
    expect(coldStreakTimeout(history, 60, 120)).toBe(67);
    // restarting is cheaper than bridging 64–67 s when a restart costs 30 s: nothing to extend
    expect(coldStreakTimeout(history, 20, 30)).toBeUndefined();
    // the guard overrides a short randomized draw in keepAliveFor (restart 60 s + 60 s of waits)
    const observed = { coldStartSeconds: 60, billing: PER_SECOND, history, waitWeight: 1 };
    expect(keepAliveFor({ idleTimeoutSeconds: "auto" }, { ...observed, spellDraw: 0.1 })).toMatchObject({
      seconds: 67,
      basis: "cold-streak",
    });
    // a draw long enough to bridge them stands
    expect(keepAliveFor({ idleTimeoutSeconds: "auto" }, { ...observed, spellDraw: 0.9 }).basis).toBe(
      "randomized",
    );
  });

  it("few gaps, all longer than 4 restarts: the worker goes at once, without waiting for 20 gaps", () => {
    const history = new IdleGapHistory();
    const observed = { coldStartSeconds: 100, billing: PER_SECOND, history, spellDraw: 0.5 };
    history.observe(86_400);
    history.observe(90_000);
    expect(keepAliveFor({ idleTimeoutSeconds: "auto" }, observed).basis).toBe("randomized"); // 2 < LONG_GAPS_MIN
    history.observe(80_000);
    expect(keepAliveFor({ idleTimeoutSeconds: "auto" }, observed)).toMatchObject({
      seconds: 0,
      basis: "long-gaps",
    });
    history.observe(350); // shorter than 4 restarts of 100 s: the rule no longer holds
    expect(keepAliveFor({ idleTimeoutSeconds: "auto" }, observed).basis).toBe("randomized");
  });
});
