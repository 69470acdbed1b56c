/**
 * A model's own price of a waited second (`waitUsdPerSecond`, issue 21): the config takes it, the controller's
 * keep-alive weighs a restart's waits with it, and the forecast prices waiting with it — the same figure in all three.
 */
import { describe, expect, it } from "vitest";
import { KeepAliveLearner } from "../../controller/keep-alive";
import { waitWeightOf } from "../../controller/keep-alive-state";
import { PROVIDERS } from "../../core/catalog";
import { StackConfigError } from "../../core/config";
import { runtimeConfigOf, stackYaml } from "../../devkit/stack-yaml";
import { forecastForStack } from "../../sim/forecast";

const model = (extra: string) =>
  `[{ name: m, kind: chat, source: org/model, gpu: [RTX_4090], providers: [runpod-pod]${extra} }]`;
const runtime = (extra: string) =>
  runtimeConfigOf(stackYaml({ providers: "{ runpod-pod: {} }", models: model(extra) }), "t");

describe("waitUsdPerSecond", () => {
  it("is optional, and a bad value is refused naming the key", () => {
    expect(runtime("").models[0]!.waitUsdPerSecond).toBeUndefined();
    expect(runtime(", waitUsdPerSecond: 0.002").models[0]!.waitUsdPerSecond).toBe(0.002);
    let error: unknown;
    try {
      runtime(", waitUsdPerSecond: -1");
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(StackConfigError);
    const problem = (error as StackConfigError).problems.find((p) => p.key.endsWith("waitUsdPerSecond"));
    expect(problem?.key).toBe("ai-orchestrator:models[0].waitUsdPerSecond");
    expect(problem?.message).toMatch(/≥ 0/);
  });

  it("becomes the keep-alive's wait weight: its price over the cheapest worker's per second, never below 1", () => {
    const config = runtime(", waitUsdPerSecond: 0.001");
    const m = config.models[0]!;
    const perSecond =
      config.prices.find((p) => p.provider === "runpod-pod" && p.gpu === "RTX_4090")!.usdPerHour / 3600;
    expect(waitWeightOf(m, "runpod-pod", config.prices)).toBeCloseTo(0.001 / perSecond, 9);
    expect(waitWeightOf({ ...m, gpuCount: 2 }, "runpod-pod", config.prices)).toBeCloseTo(
      0.001 / (2 * perSecond),
      9,
    );
    expect(waitWeightOf({ ...m, waitUsdPerSecond: 1e-9 }, "runpod-pod", config.prices)).toBe(1);
    expect(waitWeightOf({ ...m, waitUsdPerSecond: undefined }, "runpod-pod", config.prices)).toBe(1);
    expect(waitWeightOf(m, "datacrunch", config.prices)).toBe(1); // no price for the worker: the default
  });

  it("a dearer wait keeps workers longer: the break-even grows by the weighted waits", () => {
    const learner = new KeepAliveLearner(() => 60, 1);
    const billing = PROVIDERS["runpod-pod"].billing;
    const auto = { name: "m", idleTimeoutSeconds: "auto" as const };
    expect(learner.keepAlive(auto, "runpod-pod", billing, "miss").seconds).toBe(120); // 60 s boot + 60 s waited
    expect(learner.keepAlive(auto, "runpod-pod", billing, "miss", 10).seconds).toBe(660); // + 10 × 60 s
  });

  it("the forecast prices waiting with the model's own figure unless --wait-price overrides it", () => {
    const options = { patterns: ["on-demand" as const], policies: ["adaptive" as const], seed: 1 };
    const cheap = forecastForStack(runtime(""), options).results[0]!;
    const dear = forecastForStack(runtime(", waitUsdPerSecond: 0.01"), options).results[0]!;
    const overridden = forecastForStack(runtime(", waitUsdPerSecond: 0.01"), {
      ...options,
      waitUsdPerSecond: 0,
    }).results[0]!;
    expect(dear.waitUsd).toBeGreaterThan(cheap.waitUsd);
    expect(overridden.waitUsd).toBeCloseTo(cheap.waitUsd, 6);
  });
});
