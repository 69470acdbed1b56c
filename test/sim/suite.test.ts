/**
 * Issue 21's trace suite: generators that are deterministic, in time order and inside the horizon, and a runner
 * whose every ratio is to a true bound (≥ 1).
 */
import { describe, expect, it } from "vitest";
import { renderSuite, renderSuiteCharts, runSuite, suiteJson, suiteProfiles } from "../../sim/traces/run";
import { SUITE, SUITE_HORIZON_SECONDS, suiteArrivals } from "../../sim/traces/suite";

describe("the keep-alive trace suite", () => {
  it("every trace is seeded, ascending and inside its week; the adversary's gaps sit just past break-even", () => {
    for (const trace of SUITE) {
      const a = suiteArrivals(trace, { seed: 3, restartCostSeconds: 120 });
      expect(a.length, trace.name).toBeGreaterThan(2);
      expect(suiteArrivals(trace, { seed: 3, restartCostSeconds: 120 })).toEqual(a);
      for (let i = 1; i < a.length; i++) expect(a[i]!.time).toBeGreaterThanOrEqual(a[i - 1]!.time);
      expect(a.at(-1)!.time).toBeLessThan(SUITE_HORIZON_SECONDS);
      expect(a.every((x) => x.serviceSeconds > 0)).toBe(true);
    }
    const adversary = suiteArrivals(SUITE.find((t) => t.name === "just-after-keep-alive")!, {
      seed: 1,
      restartCostSeconds: 100,
    });
    expect(adversary[1]!.time - adversary[0]!.time).toBeCloseTo(105, 6);
  });

  it("profiles every hourly provider of the catalog (not the team's hardware, not monthly rentals)", () => {
    const providers = suiteProfiles().map((p) => p.provider);
    expect(providers).toContain("runpod-pod");
    expect(providers).toContain("runpod-serverless");
    expect(providers).not.toContain("local");
    expect(providers).not.toContain("hetzner-dedicated");
  });

  it("reports each policy against the bound: no ratio under 1; JSON in the shape the issue reads", () => {
    const result = runSuite({
      traces: ["daily", "cron-20m"],
      providers: ["runpod-pod"],
      horizonSeconds: 2 * 86_400,
    });
    expect(result.rows).toHaveLength(2 * 5);
    for (const r of result.rows) expect(r.ratio, `${r.trace} ${r.policy}`).toBeGreaterThanOrEqual(1);
    const json = suiteJson(result);
    expect(Object.keys(json)).toEqual(["traces", "worstRatio", "medianRatio"]);
    expect(Object.keys(json.traces[0]!)).toEqual([
      "name",
      "provider",
      "policy",
      "ratio",
      "p95WaitSeconds",
      "dropped",
    ]);
    expect(json.worstRatio).toBeGreaterThanOrEqual(json.medianRatio);
    const charts = renderSuiteCharts(result);
    expect([...charts.keys()]).toEqual(["cron-20m", "daily"]);
    for (const svg of charts.values()) {
      expect(svg.startsWith("<svg")).toBe(true);
      expect(svg.match(/<circle cx=/g)?.length).toBe(5 + 5); // legend + one dot per policy
      expect(svg.match(/<rect x=[^>]*stroke=/g)?.length).toBe(1 + 1); // legend + the bound's square
    }
    expect(renderSuite(result)).toMatch(/^cron-20m: a batch of 3 requests every 20 minutes/); // the suite's order
  });
});
