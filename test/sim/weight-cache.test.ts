import { describe, expect, it } from "vitest";
import { runSimulate } from "../../cli/simulate";
import { loadStackConfig, parseStackFile, renderRuntimeConfig } from "../../core/config";
import { stackYaml } from "../../devkit/stack-yaml";
import { forecastForStack } from "../../sim/forecast";
import { type ColdStartDistribution, providerProfile } from "../../sim/profiles";
import { forecastJson, renderForecastText } from "../../sim/report";
import { type PolicyId, type SimModel, simulateRun } from "../../sim/simulate";
import { burstyArrivals, fixedWorkload, patternWorkload, REQUEST_SHAPES } from "../../sim/workloads";
import { removeProject, tempProject } from "../cli/helpers";

const MODEL: SimModel = {
  name: "llama",
  minWorkers: 0,
  maxWorkers: 1,
  targetConcurrency: 1000,
  queueTimeoutSeconds: 1e9,
};

const fixed = (seconds: number): ColdStartDistribution => ({ kind: "fixed", seconds });

/** runpod-pod billing at $3.60/h; a 100 s miss and 10 s hits when cached, else 100 s every time. */
const profile = (cached: boolean) =>
  providerProfile("runpod-pod", "RTX_4090", {
    usdPerHour: 3.6,
    coldStart: fixed(100),
    ...(cached ? { weightCache: { miss: fixed(100), hit: fixed(10) } } : {}),
  });

/** Requests an hour apart: the 5 s keep-alive lets the worker go after each, so each one cold-starts. */
const spaced = (n: number) => Array.from({ length: n }, (_, i) => 100 + i * 3600);

const run = (cached: boolean, policy: PolicyId, times: number[], model: SimModel = MODEL) =>
  simulateRun({
    model,
    profile: profile(cached),
    policy,
    workload: fixedWorkload(times, 5, times[times.length - 1]! + 3600),
    seed: 1,
  });

describe("weight cache profile", () => {
  it("RunPod serverless without FlashBoot: a miss is the ~80 s first boot, hits drop the download", () => {
    const p = providerProfile("runpod-serverless", "RTX_4090", {
      flashboot: false,
      weightCache: { dataCenter: "EU-RO-1" },
    });
    expect(p.weightCache?.miss).toEqual({ kind: "lognormal", p50Seconds: 80, p95Seconds: 180 });
    expect(p.coldStart).toEqual({ kind: "lognormal", p50Seconds: 35, p95Seconds: 90 });
    expect(p.weightCache?.dataCenter).toBe("EU-RO-1");
    expect(p.coldStartSource).toMatch(/^weight cache in EU-RO-1: first cold start a miss .*later ones hits/);
  });

  it("with FlashBoot, hits stay at the FlashBoot figures; the first boot is still a miss", () => {
    const plain = providerProfile("runpod-serverless", "RTX_4090");
    const p = providerProfile("runpod-serverless", "RTX_4090", { weightCache: {} });
    expect(p.coldStart).toEqual(plain.coldStart);
    expect(p.coldStart).toEqual({ kind: "lognormal", p50Seconds: 1, p95Seconds: 2.3 });
    expect(p.weightCache?.miss).toEqual({ kind: "lognormal", p50Seconds: 80, p95Seconds: 180 });
  });

  it("no cache, no weightCache field; other providers ignore a stack's cache unless given both draws", () => {
    expect(providerProfile("runpod-serverless", "RTX_4090").weightCache).toBeUndefined();
    const pod = providerProfile("runpod-pod", "RTX_4090", { weightCache: { dataCenter: "EU-RO-1" } });
    expect(pod.weightCache).toBeUndefined();
    expect(pod.coldStart).toEqual(providerProfile("runpod-pod", "RTX_4090").coldStart);
    expect(profile(true).weightCache?.miss).toEqual(fixed(100));
    expect(profile(true).coldStart).toEqual(fixed(10));
  });
});

describe("simulateRun with a weight cache", () => {
  it("the first cold start misses, every later one hits", () => {
    const r = run(true, "fixed-5s", spaced(6));
    expect(r).toMatchObject({ served: 6, coldStarts: 6, coldStartMisses: 1, coldStartHits: 5 });
    // one request waited the 100 s miss, the five others a 10 s hit
    expect(r.wait.max).toBeCloseTo(100, 0);
    expect(Math.abs(r.wait.quantile(0.5) / 10 - 1)).toBeLessThan(0.01);
    expect(r.bill.bootSeconds).toBeCloseTo(100 + 5 * 10, 6);
  });

  it("without a cache every cold start is a miss", () => {
    const r = run(false, "fixed-5s", spaced(6));
    expect(r).toMatchObject({ served: 6, coldStarts: 6, coldStartMisses: 6, coldStartHits: 0 });
    expect(Math.abs(r.wait.quantile(0.5) / 100 - 1)).toBeLessThan(0.01);
  });

  it("a hit that starts while the miss downloads is not ready before the weights are", () => {
    // two requests one second apart, one per worker: the second worker hits but waits for the weights
    const r = run(true, "auto", [0, 1], { ...MODEL, maxWorkers: 2, targetConcurrency: 1 });
    expect(r).toMatchObject({ coldStarts: 2, coldStartMisses: 1, coldStartHits: 1, peakWorkers: 2 });
    expect(r.wait.quantile(0.01)).toBeGreaterThanOrEqual(98);
  });

  it("every policy counts exactly one miss; the clairvoyant bound still serves without waiting", () => {
    for (const policy of ["always-on", "fixed-5s", "fixed-10m", "auto", "adaptive", "bound"] as const) {
      const r = run(true, policy, spaced(5));
      expect(r.coldStartMisses, policy).toBe(1);
      expect(r.coldStartHits + r.coldStartMisses, policy).toBe(r.coldStarts);
      if (policy === "bound") expect(r.wait.max).toBe(0);
    }
  });

  it("lowers the p95 wait of a bursty month on RunPod serverless without FlashBoot (same seed)", () => {
    const month = (cached: boolean) =>
      simulateRun({
        model: { ...MODEL, maxWorkers: 2, targetConcurrency: 8, queueTimeoutSeconds: 600 },
        profile: providerProfile("runpod-serverless", "RTX_4090", {
          flashboot: false,
          ...(cached ? { weightCache: { dataCenter: "EU-RO-1" } } : {}),
        }),
        policy: "auto",
        workload: patternWorkload({
          pattern: "on-demand",
          arrivals: burstyArrivals(0.1),
          shape: REQUEST_SHAPES.chat,
          seed: 5,
          label: "llama",
        }),
        seed: 5,
      });
    const without = month(false);
    const withCache = month(true);
    const again = month(true);
    expect(withCache.requests).toBe(without.requests);
    expect(withCache.coldStartMisses).toBe(1);
    expect(withCache.coldStartHits).toBeGreaterThan(10);
    expect(without.coldStartHits).toBe(0);
    expect(without.coldStartMisses).toBe(without.coldStarts);
    expect(withCache.wait.quantile(0.95)).toBeLessThan(0.75 * without.wait.quantile(0.95));
    // deterministic per seed
    expect([again.coldStartHits, again.wait.quantile(0.95), again.bill.usd]).toEqual([
      withCache.coldStartHits,
      withCache.wait.quantile(0.95),
      withCache.bill.usd,
    ]);
  });
});

const CACHED_STACK = stackYaml({
  providers:
    "{ runpod-pod: {}, runpod-serverless: { flashboot: false, dataCenters: [EU-RO-1], weightCache: { sizeGb: 200 } } }",
  models:
    "[{ name: m, kind: chat, source: org/model, gpu: [RTX_4090], providers: [runpod-pod, runpod-serverless], maxWorkers: 2 }]",
});

describe("forecast with the stack's weight cache", () => {
  const runtime = renderRuntimeConfig(
    loadStackConfig(parseStackFile(CACHED_STACK, "Pulumi.test.yaml"), "ai-orchestrator"),
    "test",
  );

  it("reaches the RunPod serverless profile; JSON and table carry hits and misses", () => {
    const f = forecastForStack(runtime, {
      seed: 1,
      horizonSeconds: 7 * 24 * 3600,
      patterns: ["business-hours"],
      policies: ["auto", "always-on"],
    });
    const json = JSON.parse(JSON.stringify(forecastJson(f))) as ReturnType<typeof forecastJson>;
    const serverless = json.results.filter((r) => r.provider === "runpod-serverless");
    const pod = json.results.filter((r) => r.provider === "runpod-pod");
    expect(serverless).toHaveLength(2);
    for (const r of serverless) {
      expect(r.weightCache).toBe(true);
      expect(r.coldStartMisses).toBe(1);
      expect(r.coldStartHits).toBe(r.coldStarts - 1);
    }
    expect(serverless.find((r) => r.policy === "auto")!.coldStartHits).toBeGreaterThan(0);
    for (const r of pod) {
      expect(r).toMatchObject({ weightCache: false, coldStartHits: 0, coldStartMisses: r.coldStarts });
    }
    expect(json.assumptions.join("\n")).toMatch(
      /runpod-serverless: weight cache in EU-RO-1: .*miss lognormal p50 80s p95 180s, hit lognormal p50 35s p95 90s/,
    );
    const text = renderForecastText(f);
    expect(text).toMatch(
      /m on runpod-serverless \(RTX_4090, \$[\d.]+\/h, weight cache\):\n.*cold starts\s+hit\/miss/,
    );
    expect(text).toMatch(/m on runpod-pod \(RTX_4090, \$0\.34\/h\):\n(?!.*hit\/miss)/);
  });

  it("aiorch simulate --json passes the stack's cache to the RunPod serverless runs", async () => {
    const dir = tempProject({ "Pulumi.cache.yaml": CACHED_STACK }, { linkProgram: false });
    try {
      let out = "";
      const code = await runSimulate(
        ["--dir", dir, "--stack", "cache", "--json", "--pattern", "burst", "--policy", "adaptive"],
        { out: (t) => (out += t), err: () => {} },
      );
      expect(code).toBe(0);
      const { results } = JSON.parse(out) as {
        results: { provider: string; coldStarts: number; coldStartHits: number; coldStartMisses: number }[];
      };
      const serverless = results.find((r) => r.provider === "runpod-serverless")!;
      expect(serverless).toMatchObject({ weightCache: true, coldStartMisses: 1 });
      expect(serverless.coldStartHits).toBe(serverless.coldStarts - 1);
      expect(results.find((r) => r.provider === "runpod-pod")).toMatchObject({
        weightCache: false,
        coldStartHits: 0,
      });
    } finally {
      removeProject(dir);
    }
  });
});
