/** The self-healing decisions as plain functions: what is acted on, what is held back, and why. */
import { describe, expect, it } from "vitest";
import {
  decideSelfHealing,
  FAIL_OVER_HOLD_MS,
  type SelfHealingInput,
} from "../../controller/self-healing-policy";
import type { Anomaly } from "../../core/anomalies";
import { StackConfigError } from "../../core/config";
import { selfHealingSchema } from "../../core/config/schema";
import { runtimeConfigOf, stackYaml } from "../../devkit/stack-yaml";

const NOW = Date.UTC(2026, 11, 7, 12);
const on = selfHealingSchema.parse({ enabled: true });
const slow = (id: string): Anomaly => ({
  kind: "slow-boot",
  subject: id,
  detail: `m on vastai still booting after 900 s`,
  suggestion: "drain_worker",
});
const erroring = (provider: string): Anomaly => ({
  kind: "provider-erroring",
  subject: provider,
  detail: "5 errors in the last 10 minutes (capacity)",
  suggestion: "provider_errors",
});
const input = (over: Partial<SelfHealingInput> = {}): SelfHealingInput => ({
  nowMs: NOW,
  config: on,
  anomalies: [],
  workers: [
    { id: "w1", model: "m", provider: "vastai", state: "booting" },
    { id: "w2", model: "m", provider: "vastai", state: "provisioning" },
    { id: "w3", model: "m", provider: "vastai", state: "requested" },
  ],
  providersOf: { m: ["vastai", "datacrunch"], solo: ["vastai"] },
  budgetBlocks: {},
  heldBack: new Set(),
  actionsAtMs: [],
  ...over,
});

describe("self-healing guard rails (stack config)", () => {
  it("default to off and conservative; bad values name the field's fix", () => {
    expect(selfHealingSchema.parse({})).toEqual({
      enabled: false,
      replaceSlowWorkers: true,
      failOverOnProviderErrors: true,
      maxActionsPerHour: 3,
    });
    const zero = selfHealingSchema.safeParse({ enabled: true, maxActionsPerHour: 0 });
    expect(zero.success).toBe(false);
    expect(zero.error?.issues[0]?.path).toEqual(["maxActionsPerHour"]);
    expect(zero.error?.issues[0]?.message).toContain("enabled: false");
    expect(selfHealingSchema.safeParse({ enabled: true, replaceSlow: true }).success).toBe(false);
  });

  it("reach the runtime config from the stack file; an error names the stack key", () => {
    const yaml = (selfHealing: string) => stackYaml({ selfHealing });
    expect(runtimeConfigOf(yaml("{ enabled: true }"), "s").selfHealing).toEqual({
      enabled: true,
      replaceSlowWorkers: true,
      failOverOnProviderErrors: true,
      maxActionsPerHour: 3,
    });
    expect(runtimeConfigOf(stackYaml(), "s").selfHealing).toBeUndefined();
    let problems: readonly { key: string; message: string }[] = [];
    try {
      runtimeConfigOf(yaml("{ enabled: true, maxActionsPerHour: 100 }"), "s");
    } catch (error) {
      if (!(error instanceof StackConfigError)) throw error;
      problems = error.problems;
    }
    expect(problems).toEqual([
      expect.objectContaining({
        key: "ai-orchestrator:selfHealing.maxActionsPerHour",
        message: expect.stringContaining("at most 60"),
      }),
    ]);
  });
});

describe("decideSelfHealing", () => {
  it("does nothing while off, and says so for each anomaly", () => {
    const d = decideSelfHealing(input({ config: undefined, anomalies: [slow("w1"), erroring("vastai")] }));
    expect(d.actions).toEqual([]);
    expect(d.notActed.map((n) => n.why)).toEqual([
      expect.stringContaining("selfHealing.enabled"),
      expect.stringContaining("selfHealing.enabled"),
    ]);
  });

  it("replaces a created worker slow to boot, never one whose create is under way", () => {
    const d = decideSelfHealing(input({ anomalies: [slow("w1"), slow("w3"), slow("gone")] }));
    expect(d.actions).toEqual([
      { kind: "replace-worker", workerId: "w1", model: "m", reason: expect.stringContaining("900 s") },
    ]);
    expect(d.notActed.map((n) => [n.anomaly.subject, n.why])).toEqual([
      ["w3", expect.stringContaining("requested")],
      ["gone", "the worker is gone"],
    ]);
  });

  it("never acts while a budget blocks", () => {
    const d = decideSelfHealing(
      input({ anomalies: [slow("w1"), erroring("vastai")], budgetBlocks: { m: "stack budget reached" } }),
    );
    expect(d.actions).toEqual([]);
    expect(d.notActed.map((n) => n.why)).toEqual([
      expect.stringContaining("a budget blocks new workers for m"),
      expect.stringContaining("a budget blocks"),
    ]);
  });

  it("fails over only the models with another provider, once while the hold lasts", () => {
    const d = decideSelfHealing(input({ anomalies: [erroring("vastai")] }));
    expect(d.actions).toEqual([
      {
        kind: "fail-over",
        provider: "vastai",
        models: ["m"],
        holdMs: FAIL_OVER_HOLD_MS,
        reason: expect.stringContaining("no new workers there for 15 minutes for m"),
      },
    ]);
    const again = decideSelfHealing(
      input({ anomalies: [erroring("vastai")], heldBack: new Set(["m|vastai"]) }),
    );
    expect(again.actions).toEqual([]);
    expect(again.notActed[0]?.why).toContain("already failed over");
    const alone = decideSelfHealing(
      input({ anomalies: [erroring("vastai")], providersOf: { solo: ["vastai"] } }),
    );
    expect(alone.actions).toEqual([]);
    expect(alone.notActed[0]?.why).toBe("no model using vastai has another provider to fail over to");
    const unused = decideSelfHealing(input({ anomalies: [erroring("runpod-pod")] }));
    expect(unused.notActed[0]?.why).toBe("no model of this stack starts workers at runpod-pod");
  });

  it("stops at the hourly cap, counting the last hour's actions only", () => {
    const one = selfHealingSchema.parse({ enabled: true, maxActionsPerHour: 2 });
    const d = decideSelfHealing(
      input({
        config: one,
        anomalies: [slow("w1"), slow("w2"), erroring("vastai")],
        actionsAtMs: [NOW - 10 * 60_000, NOW - 2 * 3_600_000],
      }),
    );
    expect(d.actions.map((a) => (a.kind === "replace-worker" ? a.workerId : a.provider))).toEqual(["w1"]);
    expect(d.notActed.map((n) => [n.anomaly.subject, n.why])).toEqual([
      ["w2", expect.stringContaining("2 self-healing action(s) per hour is used up")],
      ["vastai", expect.stringContaining("selfHealing.maxActionsPerHour")],
    ]);
  });

  it("respects each kind's switch, and leaves spend and 5xx spikes to a human", () => {
    const off = selfHealingSchema.parse({
      enabled: true,
      replaceSlowWorkers: false,
      failOverOnProviderErrors: false,
    });
    const spend: Anomaly = { kind: "spend-rate", subject: "stack", detail: "x", suggestion: "y" };
    const d = decideSelfHealing(input({ config: off, anomalies: [slow("w1"), erroring("vastai"), spend] }));
    expect(d.actions).toEqual([]);
    expect(d.notActed.map((n) => n.why)).toEqual([
      expect.stringContaining("surfaced only"),
      expect.stringContaining("selfHealing.replaceSlowWorkers"),
      expect.stringContaining("selfHealing.failOverOnProviderErrors"),
    ]);
  });
});
