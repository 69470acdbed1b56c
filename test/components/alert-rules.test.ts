import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { type AlertRule, renderAlertRules, ttftBucket } from "../../components/alert-rules";
import { METRICS } from "../../core/metrics";

const NS = "ai";
const rules = renderAlertRules({
  namespace: NS,
  stack: "prod",
  budgetAlertAtPercent: [80, 50, 100, 80],
  modelBudgets: true,
});
const allRules = rules.groups.flatMap((g) => g.rules);
const dir = mkdtempSync(join(tmpdir(), "aiorch-rules-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, "rules.yml"), stringify(rules));

function promtool(...args: string[]): { code: number | null; output: string } {
  const result = spawnSync("promtool", args, { cwd: dir, encoding: "utf8" });
  if (result.error)
    throw new Error(
      `promtool is needed for these tests (Debian package prometheus): ${result.error.message}`,
    );
  return { code: result.status, output: `${result.stdout}${result.stderr}` };
}

/** The annotations Prometheus renders for an alert with these labels (annotations reference labels only). */
function annotationsFor(
  alert: string,
  labels: Record<string, string>,
  threshold?: string,
): Record<string, string> {
  const rule = allRules.find(
    (r) => r.alert === alert && (threshold === undefined || r.labels.threshold === threshold),
  ) as AlertRule;
  return Object.fromEntries(
    Object.entries(rule.annotations).map(([k, v]) => [
      k,
      v.replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, l: string) => labels[l] ?? ""),
    ]),
  );
}

interface Expected {
  alert: string;
  labels: Record<string, string>;
  threshold?: string;
}
const expectAlert = ({ alert, labels, threshold }: Expected) => {
  const rule = allRules.find(
    (r) => r.alert === alert && (threshold === undefined || r.labels.threshold === threshold),
  )!;
  return {
    exp_labels: { ...rule.labels, ...labels },
    exp_annotations: annotationsFor(alert, labels, threshold),
  };
};

const series = (metric: string, labels: Record<string, string>, values: string) => ({
  series: `${metric}{${Object.entries({ namespace: NS, ...labels })
    .map(([k, v]) => `${k}="${v}"`)
    .join(",")}}`,
  values,
});

describe("alert rules", () => {
  it("have the alerts the platform relies on, one budget alert per threshold", () => {
    expect([...new Set(allRules.map((r) => r.alert))].sort()).toEqual([
      "ColdStartLatencyHigh",
      "ErrorRateSpike",
      "GpuIdleWhileWorkerRunning",
      "GpuSpendAboveBudget",
      "GpuSpendAboveModelBudget",
      "GpuSpendRateAboveMonthAverage",
      "OrphanedInstanceFound",
      "ProviderErrors",
      "ProviderRejectsConfiguration",
      "RequestsWaitedPastDeadline",
      "TerminationNotConfirmed",
    ]);
    expect(allRules.filter((r) => r.alert === "GpuSpendAboveBudget").map((r) => r.labels.threshold)).toEqual([
      "50",
      "80",
      "100",
    ]);
    for (const rule of allRules) {
      expect(rule.expr).toContain(`namespace="${NS}"`);
      expect(rule.labels.severity).toMatch(/^(warning|critical)$/);
    }
  });

  it("without a budget there is no budget group", () => {
    const none = renderAlertRules({
      namespace: NS,
      stack: "dev",
      budgetAlertAtPercent: [],
      modelBudgets: false,
    });
    expect(none.groups.map((g) => g.name)).toEqual([
      "ai-orchestrator.ai.workers",
      "ai-orchestrator.ai.providers",
      "ai-orchestrator.ai.anomalies",
    ]);
  });

  it("pass promtool check rules", () => {
    const result = promtool("check", "rules", "rules.yml");
    expect(result.code, result.output).toBe(0);
    expect(result.output).toContain(`SUCCESS: ${allRules.length} rules found`);
  });

  it("fire on the series that must fire them, and stay quiet on those that must not (promtool test rules)", () => {
    const bucketSeries = (labels: Record<string, string>, slowFrom: number) =>
      [...(METRICS.coldStartLatencySeconds.buckets ?? []), "+Inf"].map((le) =>
        // one cold start a minute, all of them taking just under `slowFrom` seconds
        series(
          `${METRICS.coldStartLatencySeconds.name}_bucket`,
          { ...labels, le: String(le) },
          le === "+Inf" || Number(le) >= slowFrom ? "0+1x60" : "0x60",
        ),
      );
    const idle = { model: "llama", provider: "vastai", worker: "w1" };
    const slow = { model: "llama", provider: "vastai" };
    const fast = { model: "bge", provider: "runpod-serverless" };
    const tests = {
      rule_files: ["rules.yml"],
      evaluation_interval: "1m",
      tests: [
        {
          interval: "1m",
          input_series: [
            series(METRICS.gpuIdleTimeSeconds.name, idle, "0+60x30"),
            // the same series in another stack's namespace must not fire this stack's alert
            {
              series: `${METRICS.gpuIdleTimeSeconds.name}{namespace="other",model="x",provider="p",worker="w9"}`,
              values: "0+60x30",
            },
            ...bucketSeries(slow, 30),
            ...bucketSeries(fast, 1),
            series(
              METRICS.requestsExpiredTotal.name,
              { model: "llama" },
              "0 0 0 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
            ),
            series(METRICS.providerErrorsTotal.name, { provider: "vastai", kind: "capacity" }, "0+2x30"),
            series(
              METRICS.providerErrorsTotal.name,
              { provider: "datacrunch", kind: "transient" },
              "0+0.5x30",
            ),
            series(
              METRICS.orphansFoundTotal.name,
              { provider: "vastai" },
              "0 0 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
            ),
            series(
              METRICS.terminationPendingSeconds.name,
              { provider: "datacrunch", worker: "w2" },
              "0+60x20",
            ),
            series(
              METRICS.providerRequestRejected.name,
              { model: "llama", provider: "runpod-pod" },
              "0 0 1 1 0",
            ),
          ],
          alert_rule_test: [
            { eval_time: "10m", alertname: "GpuIdleWhileWorkerRunning", exp_alerts: [] },
            {
              eval_time: "20m",
              alertname: "GpuIdleWhileWorkerRunning",
              exp_alerts: [expectAlert({ alert: "GpuIdleWhileWorkerRunning", labels: idle })],
            },
            {
              eval_time: "40m",
              alertname: "ColdStartLatencyHigh",
              exp_alerts: [expectAlert({ alert: "ColdStartLatencyHigh", labels: slow })],
            },
            {
              eval_time: "4m",
              alertname: "RequestsWaitedPastDeadline",
              exp_alerts: [expectAlert({ alert: "RequestsWaitedPastDeadline", labels: { model: "llama" } })],
            },
            { eval_time: "15m", alertname: "RequestsWaitedPastDeadline", exp_alerts: [] },
            { eval_time: "5m", alertname: "ProviderErrors", exp_alerts: [] },
            {
              eval_time: "25m",
              alertname: "ProviderErrors",
              exp_alerts: [
                expectAlert({ alert: "ProviderErrors", labels: { provider: "vastai", kind: "capacity" } }),
              ],
            },
            { eval_time: "1m", alertname: "ProviderRejectsConfiguration", exp_alerts: [] },
            {
              eval_time: "2m",
              alertname: "ProviderRejectsConfiguration",
              exp_alerts: [
                expectAlert({
                  alert: "ProviderRejectsConfiguration",
                  labels: { model: "llama", provider: "runpod-pod" },
                }),
              ],
            },
            { eval_time: "4m", alertname: "ProviderRejectsConfiguration", exp_alerts: [] },
            { eval_time: "1m", alertname: "OrphanedInstanceFound", exp_alerts: [] },
            {
              eval_time: "5m",
              alertname: "OrphanedInstanceFound",
              exp_alerts: [expectAlert({ alert: "OrphanedInstanceFound", labels: { provider: "vastai" } })],
            },
            { eval_time: "5m", alertname: "TerminationNotConfirmed", exp_alerts: [] },
            {
              eval_time: "15m",
              alertname: "TerminationNotConfirmed",
              exp_alerts: [
                expectAlert({
                  alert: "TerminationNotConfirmed",
                  labels: { provider: "datacrunch", worker: "w2" },
                }),
              ],
            },
          ],
        },
        {
          interval: "1m",
          input_series: [
            series(METRICS.spendMonthTotalUsd.name, {}, "40 85 120"),
            series(METRICS.budgetMonthTotalUsd.name, {}, "100 100 100"),
            series(METRICS.spendMonthUsd.name, { model: "llama" }, "100 210 210"),
            series(METRICS.budgetMonthUsd.name, { model: "llama" }, "200 200 200"),
            series(METRICS.spendMonthUsd.name, { model: "bge" }, "10 10 10"),
            series(METRICS.budgetMonthUsd.name, { model: "bge" }, "200 200 200"),
          ],
          alert_rule_test: [
            { eval_time: "0m", alertname: "GpuSpendAboveBudget", exp_alerts: [] },
            {
              eval_time: "1m",
              alertname: "GpuSpendAboveBudget",
              exp_alerts: ["50", "80"].map((threshold) =>
                expectAlert({ alert: "GpuSpendAboveBudget", labels: {}, threshold }),
              ),
            },
            {
              eval_time: "2m",
              alertname: "GpuSpendAboveBudget",
              exp_alerts: ["50", "80", "100"].map((threshold) =>
                expectAlert({ alert: "GpuSpendAboveBudget", labels: {}, threshold }),
              ),
            },
            { eval_time: "0m", alertname: "GpuSpendAboveModelBudget", exp_alerts: [] },
            {
              eval_time: "1m",
              alertname: "GpuSpendAboveModelBudget",
              exp_alerts: [expectAlert({ alert: "GpuSpendAboveModelBudget", labels: { model: "llama" } })],
            },
          ],
        },
      ],
    };
    writeFileSync(join(dir, "tests.yml"), stringify(tests));
    const result = promtool("test", "rules", "tests.yml");
    expect(result.code, result.output).toBe(0);
    expect(result.output).toContain("SUCCESS");
  });
});

describe("SLO burn-rate alerts", () => {
  const slo = renderAlertRules({
    namespace: NS,
    stack: "prod",
    budgetAlertAtPercent: [],
    modelBudgets: false,
    slos: [
      { model: "llama", availability: 0.99, ttftSeconds: 2, ttftTarget: 0.95 },
      { model: "bge", availability: 0.99, ttftTarget: 0.95 },
    ],
  });
  const sloRules = slo.groups.flatMap((g) => g.rules);
  writeFileSync(join(dir, "slo.yml"), stringify(slo));
  const firing = (alert: string, model: string, windows: string[]) =>
    windows.map((window) => {
      const rule = sloRules.find(
        (r) => r.alert === alert && r.labels.model === model && r.labels.window === window,
      )!;
      return { exp_labels: rule.labels, exp_annotations: rule.annotations };
    });

  it("render three windows per objective, in their own group, measured at a histogram boundary", () => {
    expect(slo.groups.map((g) => g.name)).toContain("ai-orchestrator.ai.slo");
    expect(
      sloRules.filter((r) => r.alert === "ModelAvailabilityBudgetBurn").map((r) => r.labels.model),
    ).toEqual(["llama", "llama", "llama", "bge", "bge", "bge"]);
    // bge has no TTFT objective, so no TTFT alert
    expect(sloRules.filter((r) => r.alert === "ModelTtftBudgetBurn").map((r) => r.labels.window)).toEqual([
      "1h",
      "6h",
      "3d",
    ]);
    expect(ttftBucket(2)).toBe(2.5);
    expect(ttftBucket(1)).toBe(1);
    expect(() => ttftBucket(1000)).toThrow(/beyond the largest bucket/);
    expect(promtool("check", "rules", "slo.yml").code).toBe(0);
  });

  it("fire while the budget burns, stop the fast window soon after, and stay quiet within budget (promtool)", () => {
    const ttftBuckets = (model: string, slowShare: number) =>
      // 100 first tokens a minute; `slowShare` of them take 4 s, the rest 0.3 s
      [...(METRICS.timeToFirstTokenSeconds.buckets ?? []), "+Inf"].map((le) => {
        const n = le === "+Inf" || Number(le) >= 5 ? 100 : Number(le) >= 0.5 ? 100 - 100 * slowShare : 0;
        return series(
          `${METRICS.timeToFirstTokenSeconds.name}_bucket`,
          { model, le: String(le) },
          `0+${n}x90`,
        );
      });
    const tests = {
      rule_files: ["slo.yml"],
      evaluation_interval: "1m",
      tests: [
        {
          interval: "1m",
          input_series: [
            // llama: 100 answers a minute, 25 of them 5xx for the first 30 minutes, then none
            series(METRICS.requestsTotal.name, { model: "llama", status: "200" }, "0+75x30 2250+100x60"),
            series(METRICS.requestsTotal.name, { model: "llama", status: "503" }, "0+25x30 750x60"),
            // bge: half a percent of 5xx, inside a 1% budget
            series(METRICS.requestsTotal.name, { model: "bge", status: "200" }, "0+199x90"),
            series(METRICS.requestsTotal.name, { model: "bge", status: "500" }, "0+1x90"),
            series(`${METRICS.timeToFirstTokenSeconds.name}_count`, { model: "llama" }, "0+100x90"),
            ...ttftBuckets("llama", 0.8),
          ],
          alert_rule_test: [
            {
              eval_time: "10m",
              alertname: "ModelAvailabilityBudgetBurn",
              exp_alerts: firing("ModelAvailabilityBudgetBurn", "llama", ["1h", "6h", "3d"]),
            },
            // errors stopped at 30m: the 5-minute window clears first, the slower pages follow later
            {
              eval_time: "40m",
              alertname: "ModelAvailabilityBudgetBurn",
              exp_alerts: firing("ModelAvailabilityBudgetBurn", "llama", ["6h", "3d"]),
            },
            {
              eval_time: "10m",
              alertname: "ModelTtftBudgetBurn",
              exp_alerts: firing("ModelTtftBudgetBurn", "llama", ["1h", "6h", "3d"]),
            },
          ],
        },
        {
          interval: "1m",
          input_series: [
            // 2% of first tokens slower than the objective: within 5% of budget for every window
            series(`${METRICS.timeToFirstTokenSeconds.name}_count`, { model: "llama" }, "0+100x90"),
            ...ttftBuckets("llama", 0.02),
            series(METRICS.requestsTotal.name, { model: "llama", status: "200" }, "0+100x90"),
          ],
          alert_rule_test: [
            { eval_time: "30m", alertname: "ModelTtftBudgetBurn", exp_alerts: [] },
            { eval_time: "30m", alertname: "ModelAvailabilityBudgetBurn", exp_alerts: [] },
          ],
        },
      ],
    };
    writeFileSync(join(dir, "slo-tests.yml"), stringify(tests));
    const result = promtool("test", "rules", "slo-tests.yml");
    expect(result.code, result.output).toBe(0);
  });
});
