/**
 * Issue 21's trace suite: generators that are deterministic, in time order and inside the horizon, and a runner
 * whose every ratio is to a true bound (≥ 1).
 */
import { describe, expect, it } from "vitest";
import { simulateRun } from "../../sim/simulate";
import {
  HINDSIGHT_WINDOWS,
  renderSuite,
  renderSuiteCharts,
  runSuite,
  SUITE_MODEL,
  suiteJson,
  suiteProfiles,
} from "../../sim/traces/run";
import { SUITE, SUITE_HORIZON_SECONDS, suiteArrivals } from "../../sim/traces/suite";
import { arrivalsWorkload } from "../../sim/workloads";

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

  it("with hindsight: the best fixed window per row, never worse than the fixed policies, within 1 of every window", () => {
    const result = runSuite({
      traces: ["daily", "just-after-keep-alive"],
      providers: ["runpod-pod", "datacrunch"],
      horizonSeconds: 3 * 86_400,
      hindsight: true,
    });
    expect(result.hindsight).toHaveLength(2 * 2);
    for (const h of result.hindsight!) {
      expect(HINDSIGHT_WINDOWS).toContain(h.keepAliveSeconds);
      expect(h.ratio).toBeGreaterThanOrEqual(1); // a fixed window is a policy: the bound holds for it too
      for (const fixed of ["fixed-5s", "fixed-10m"] as const) {
        const row = result.rows.find(
          (r) => r.trace === h.trace && r.provider === h.provider && r.policy === fixed,
        )!;
        expect(h.ratio, `${h.trace} ${h.provider} vs ${fixed}`).toBeLessThanOrEqual(row.ratio);
      }
    }
    // daily: a request a day, far apart — letting go at once is the best window
    expect(result.hindsight!.filter((h) => h.trace === "daily").map((h) => h.keepAliveSeconds)).toEqual([
      0, 0,
    ]);
    expect(Object.keys(suiteJson(result))).toEqual([
      "traces",
      "worstRatio",
      "medianRatio",
      "hindsight",
      "versusHindsight",
    ]);
    const versus = result.hindsight!.map((h) => {
      const row = result.rows.find(
        (r) => r.trace === h.trace && r.provider === h.provider && r.policy === "adaptive",
      )!;
      return row.ratio / h.ratio;
    });
    expect(result.versusHindsight!.worstRatio).toBeCloseTo(Math.max(...versus), 3);
    expect(renderSuite(result)).toMatch(/best fixed window in hindsight: over 1\.5× the bound on \d+ of 4/);
  });

  it("a fixed window is only for the fixed policies", () => {
    const profile = suiteProfiles(["runpod-pod"])[0]!;
    const workload = arrivalsWorkload([], 10);
    expect(() =>
      simulateRun({
        model: SUITE_MODEL,
        profile,
        workload,
        seed: 1,
        policy: "adaptive",
        fixedKeepAliveSeconds: 5,
      }),
    ).toThrow(/fixedKeepAliveSeconds is for the fixed policies/);
  });
});
