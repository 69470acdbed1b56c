/**
 * The alerts for anomalies the controller does not act on by itself (spend rate far above the month's average, a
 * 5xx spike), run through `promtool test rules` on series that must fire them and series that must not.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { type AlertRule, renderAlertRules } from "../../components/alert-rules";
import { METRICS } from "../../core/metrics";

const NS = "ai";
const rules = renderAlertRules({
  namespace: NS,
  stack: "prod",
  budgetAlertAtPercent: [],
  modelBudgets: false,
});
const byName = (alert: string) =>
  rules.groups.flatMap((g) => g.rules).find((r) => r.alert === alert) as AlertRule;
const dir = mkdtempSync(join(tmpdir(), "aiorch-anomaly-rules-"));
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
const series = (metric: string, labels: Record<string, string>, values: string) => ({
  series: `${metric}{${Object.entries({ namespace: NS, ...labels })
    .map(([k, v]) => `${k}="${v}"`)
    .join(",")}}`,
  values,
});
const firing = (alert: string) => {
  const rule = byName(alert);
  return [{ exp_labels: rule.labels, exp_annotations: rule.annotations }];
};
const requests = (status: string, values: string) =>
  series(METRICS.requestsTotal.name, { model: "m", variant: "", status }, values);

describe("anomaly alerts", () => {
  it("are in their own group and pass promtool check rules", () => {
    expect(
      rules.groups.find((g) => g.name === `ai-orchestrator.${NS}.anomalies`)?.rules.map((r) => r.alert),
    ).toEqual(["GpuSpendRateAboveMonthAverage", "ErrorRateSpike"]);
    const result = promtool("check", "rules", "rules.yml");
    expect(result.code, result.output).toBe(0);
  });

  it("fire on a spend surge and a 5xx spike, stay quiet on steady spend and a steady error share (promtool)", () => {
    const spend = METRICS.spendMonthTotalUsd.name;
    const tests = {
      rule_files: ["rules.yml"],
      evaluation_interval: "1m",
      tests: [
        {
          // day 1 at $0.60 an hour, then $12 an hour from the second day on (time 0 is the 1st of a month, UTC)
          interval: "1m",
          input_series: [series(spend, {}, "0+0.01x1440 14.4+0.2x360")],
          alert_rule_test: [
            { eval_time: "23h", alertname: "GpuSpendRateAboveMonthAverage", exp_alerts: [] },
            {
              eval_time: "26h",
              alertname: "GpuSpendRateAboveMonthAverage",
              exp_alerts: firing("GpuSpendRateAboveMonthAverage"),
            },
          ],
        },
        {
          // a steady $2 an hour: never three times its own average
          interval: "1m",
          input_series: [series(spend, {}, "0+0.0333x1800")],
          alert_rule_test: [{ eval_time: "28h", alertname: "GpuSpendRateAboveMonthAverage", exp_alerts: [] }],
        },
        {
          // 10 good requests a minute throughout; from minute 62 on, 5 failing ones a minute
          interval: "1m",
          input_series: [requests("200", "0+10x80"), requests("502", "0x62 0+5x18")],
          alert_rule_test: [
            { eval_time: "60m", alertname: "ErrorRateSpike", exp_alerts: [] },
            { eval_time: "70m", alertname: "ErrorRateSpike", exp_alerts: firing("ErrorRateSpike") },
          ],
        },
        {
          // 30 % failing all along: a bad model, not a spike (ProviderErrors and SLO alerts cover that)
          interval: "1m",
          input_series: [requests("200", "0+7x80"), requests("503", "0+3x80")],
          alert_rule_test: [{ eval_time: "70m", alertname: "ErrorRateSpike", exp_alerts: [] }],
        },
        {
          // a spike on a trickle: under 10 requests in 5 minutes is no signal
          interval: "1m",
          input_series: [requests("200", "0+1x80"), requests("500", "0x62 0+0.5x18")],
          alert_rule_test: [{ eval_time: "70m", alertname: "ErrorRateSpike", exp_alerts: [] }],
        },
      ],
    };
    writeFileSync(join(dir, "tests.yml"), stringify(tests));
    const result = promtool("test", "rules", "tests.yml");
    expect(result.code, result.output).toBe(0);
    expect(result.output).toContain("SUCCESS");
  });
});
