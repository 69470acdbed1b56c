/**
 * "No successful backup in N hours" with promtool: a backup that stops being written raises BackupTooOld; a
 * stack whose backups never succeed raises BackupNeverSucceeded after N hours; backups on time stay quiet.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { renderAlertRules } from "../../components/alert-rules";
import { METRICS } from "../../core/metrics";

const NS = "ai";
const input = { namespace: NS, stack: "prod", budgetAlertAtPercent: [], modelBudgets: false };
const rules = renderAlertRules({ ...input, backupAlertAfterHours: 3 });
const dir = mkdtempSync(join(tmpdir(), "aiorch-backup-rules-"));
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

const metric = METRICS.backupLastSuccessTimestampSeconds.name;
const lastBackup = (values: string) => ({
  series: `${metric}{namespace="${NS}",bucket="aiorch-backups",job="controller"}`,
  values,
});
const rule = (alert: string) => rules.groups.flatMap((g) => g.rules).find((r) => r.alert === alert)!;
const firing = (alert: string, extraLabels: Record<string, string> = {}) => [
  { exp_labels: { ...rule(alert).labels, ...extraLabels }, exp_annotations: rule(alert).annotations },
];

describe("backup alerts", () => {
  it("exist only for a stack that takes backups, and pass promtool check rules", () => {
    expect(renderAlertRules(input).groups.map((g) => g.name)).not.toContain(`ai-orchestrator.${NS}.backup`);
    expect(
      rules.groups.find((g) => g.name === `ai-orchestrator.${NS}.backup`)?.rules.map((r) => r.alert),
    ).toEqual(["BackupTooOld", "BackupNeverSucceeded"]);
    const result = promtool("check", "rules", "rules.yml");
    expect(result.code, result.output).toBe(0);
  });

  it("fire when backups stop being written or never succeed, and stay quiet while they are on time", () => {
    const tests = {
      rule_files: ["rules.yml"],
      evaluation_interval: "1m",
      tests: [
        {
          // hourly backups at 0h, 1h, 2h; from 3h on every write fails, so the last success stays at 2h
          interval: "1m",
          input_series: [lastBackup("0x59 3600x59 7200x359")],
          alert_rule_test: [
            { eval_time: "4h30m", alertname: "BackupTooOld", exp_alerts: [] },
            { eval_time: "5h10m", alertname: "BackupTooOld", exp_alerts: firing("BackupTooOld") },
            { eval_time: "5h10m", alertname: "BackupNeverSucceeded", exp_alerts: [] },
          ],
        },
        {
          // backups on time every hour
          interval: "1m",
          input_series: [lastBackup("0x59 3600x59 7200x59 10800x59 14400x59 18000x59 21600x59")],
          alert_rule_test: [
            { eval_time: "6h30m", alertname: "BackupTooOld", exp_alerts: [] },
            { eval_time: "6h30m", alertname: "BackupNeverSucceeded", exp_alerts: [] },
          ],
        },
        {
          // a stack whose first backups all fail: no series at all
          interval: "1m",
          input_series: [{ series: `up{namespace="${NS}",job="controller"}`, values: "1x300" }],
          alert_rule_test: [
            { eval_time: "2h50m", alertname: "BackupNeverSucceeded", exp_alerts: [] },
            {
              eval_time: "3h10m",
              alertname: "BackupNeverSucceeded",
              exp_alerts: firing("BackupNeverSucceeded", { namespace: NS }),
            },
          ],
        },
      ],
    };
    writeFileSync(join(dir, "tests.yml"), stringify(tests));
    const result = promtool("test", "rules", "tests.yml");
    expect(result.code, result.output).toBe(0);
  });
});
