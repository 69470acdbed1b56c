/**
 * Pre-warming from the idle-gap history (controller/prewarm.ts): planned only where the gaps cluster, timed so the
 * boot is done before the next request, and held by the scaling floor only inside its window.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { IdleGapHistory } from "../../controller/idle-observations";
import { keepAliveFor, prewarmFloor } from "../../controller/keep-alive";
import { bestPrewarm } from "../../controller/prewarm";
import { PROVIDERS } from "../../core/catalog";

const PER_SECOND = PROVIDERS["runpod-pod"].billing;
const plan = (gaps: number[], coldStart = 100, lead = coldStart) =>
  bestPrewarm({
    sortedGaps: [...gaps].sort((a, b) => a - b),
    n: gaps.length,
    coldStartSeconds: coldStart,
    leadSeconds: lead,
    restartCostSeconds: coldStart,
    billsIdle: true,
    waitWeight: 1,
    queuedPerRestart: 1,
  });

describe("bestPrewarm", () => {
  it("a cron's gaps: let go at once, start one a lead before the cluster, keep it through the latest gap", () => {
    const gaps = Array.from({ length: 30 }, (_, i) => 1_190 + (i % 6));
    const p = plan(gaps, 100, 130)!;
    // within the cluster less the lead (a second of waiting costs what a second of idling does here)
    expect(p.startAfterSeconds).toBeGreaterThanOrEqual(1_190 - 130);
    expect(p.startAfterSeconds).toBeLessThanOrEqual(1_195 - 130);
    expect(p.keepUntilSeconds).toBe(1_195);
    expect(p.costPerGapSeconds).toBeLessThan(p.keepAliveCostPerGapSeconds);
  });

  it("gaps that do not cluster (exponential, or all shorter than a restart) get no plan", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000 }), (seed) => {
        let x = seed;
        const next = () => {
          x = (x * 48_271) % 2_147_483_647;
          return x / 2_147_483_647;
        };
        const exponential = Array.from({ length: 60 }, () => -Math.log(1 - next()) * 300);
        expect(plan(exponential)).toBeUndefined();
      }),
      { numRuns: 50 },
    );
    expect(plan(Array.from({ length: 30 }, () => 40))).toBeUndefined(); // keeping warm costs 40 s a gap
  });

  it("keepAliveFor plans it only with enough history, and the floor holds one worker inside the window only", () => {
    const history = new IdleGapHistory();
    for (let i = 0; i < 19; i++) history.observe(1_200);
    const observed = { coldStartSeconds: 100, billing: PER_SECOND, history, waitWeight: 1 };
    // 19 gaps, each over 4 restarts (200 s with the waits): let go at once, but no pre-warm yet
    expect(keepAliveFor({ idleTimeoutSeconds: "auto" }, observed)).toMatchObject({
      seconds: 0,
      basis: "long-gaps",
    });
    history.observe(1_200);
    const choice = keepAliveFor({ idleTimeoutSeconds: "auto" }, observed);
    expect(choice).toMatchObject({ seconds: 0, basis: "prewarm" });
    expect(choice.reason).toMatch(/start one 1100s into an idle spell, keep it until 1200s/);
    expect(prewarmFloor(choice, undefined)).toBe(0); // demand: not idle
    expect(prewarmFloor(choice, 1_099)).toBe(0);
    expect(prewarmFloor(choice, 1_100)).toBe(1);
    expect(prewarmFloor(choice, 1_200)).toBe(0);
    expect(keepAliveFor({ idleTimeoutSeconds: 60 }, observed).prewarm).toBeUndefined(); // a fixed keep-alive wins
  });
});
