/** Issue 23: run-time controls only narrow the stack's config: bounds within its maxWorkers, budgets lowered, per month. */
import { describe, expect, it } from "vitest";
import { loadStackConfig, parseStackFile, renderRuntimeConfig } from "../../core/config";
import { boundedModel, boundsRefusal, withLoweredBudgets } from "../../core/run-time-controls";
import { stackYaml } from "../../devkit/stack-yaml";

const config = renderRuntimeConfig(
  loadStackConfig(
    parseStackFile(
      stackYaml({
        providers: "{ vastai: {} }",
        models:
          "[{ name: m, kind: chat, source: o/m, gpu: [RTX_3090], providers: [vastai], minWorkers: 1, maxWorkers: 3, monthlyBudgetUsd: 40 }, { name: n, kind: chat, source: o/n, gpu: [RTX_3090], providers: [vastai] }]",
        budget: "{ monthlyUsd: 100 }",
      }),
      "t.yaml",
    ),
  ),
  "t",
);
const m = config.models[0]!;
const DEC = Date.UTC(2026, 11, 7);

describe("run-time controls", () => {
  it("bounds stay within the config's maxWorkers; min may be raised to that cap or lowered to 0", () => {
    expect(boundsRefusal(m, { minWorkers: 0, maxWorkers: 3 })).toBeUndefined();
    expect(boundsRefusal(m, { minWorkers: 3, maxWorkers: 3 })).toBeUndefined();
    expect(boundsRefusal(m, { minWorkers: 1, maxWorkers: 4 })).toMatch(/above the stack's maxWorkers 3/);
    expect(boundsRefusal(m, { minWorkers: 2, maxWorkers: 1 })).toMatch(/must not exceed/);
    expect(boundedModel(m, { minWorkers: 0, maxWorkers: 1 })).toMatchObject({ minWorkers: 0, maxWorkers: 1 });
    // a control written before a deploy lowered maxWorkers cannot lift it again
    expect(boundedModel({ ...m, maxWorkers: 2 }, { minWorkers: 3, maxWorkers: 3 })).toMatchObject({
      minWorkers: 2,
      maxWorkers: 2,
    });
    expect(boundedModel(m, undefined)).toBe(m);
  });

  it("budgets are only lowered, and only in the month they were set for", () => {
    const lowered = withLoweredBudgets(
      config,
      {
        "*": { usd: 20, month: "2026-12" },
        m: { usd: 60, month: "2026-12" },
        n: { usd: 5, month: "2026-12" },
      },
      DEC,
    );
    expect(lowered.budget?.monthlyUsd).toBe(20);
    expect(lowered.models.find((x) => x.name === "m")?.monthlyBudgetUsd).toBe(40); // 60 is not lower than 40
    expect(lowered.models.find((x) => x.name === "n")?.monthlyBudgetUsd).toBe(5);
    const nextMonth = withLoweredBudgets(
      config,
      { "*": { usd: 20, month: "2026-12" } },
      Date.UTC(2027, 0, 1),
    );
    expect(nextMonth).toBe(config);
  });
});
