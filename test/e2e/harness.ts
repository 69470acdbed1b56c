/**
 * The scenario table of the end-to-end suite: one row per scenario with the accounting of its requests and
 * instances, printed to stderr and appended to $E2E_REPORT when that is set. The stack itself, its servers and the
 * request accounting live in devkit/ (shared with the soak benchmark).
 */
import { appendFileSync } from "node:fs";
import type { InstanceAccount } from "../../devkit/e2e-stack";
import type { Tally } from "../../devkit/traffic";

export interface ScenarioRow {
  scenario: string;
  sent: number;
  succeeded: number;
  failed: number;
  lost: number;
  created: number;
  terminated: number;
  running: number;
  seconds: number;
  errors: Record<string, number>;
}

export function scenarioRow(
  scenario: string,
  tally: Tally,
  account: Pick<InstanceAccount, "created" | "terminated" | "running">,
  startedMs: number,
): ScenarioRow {
  return {
    scenario,
    sent: tally.sent,
    succeeded: tally.succeeded,
    failed: tally.failed,
    lost: tally.lost,
    created: account.created,
    terminated: account.terminated,
    running: account.running,
    seconds: Math.round((Date.now() - startedMs) / 100) / 10,
    errors: tally.errors(),
  };
}

/** The scenario table as Markdown (README) — also appended to E2E_REPORT when that is set. */
export function renderScenarioTable(rows: readonly ScenarioRow[]): string {
  const head =
    "| scenario | requests sent | succeeded | failed (clear error) | lost | instances created | terminated | running | duration |\n" +
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |";
  const lines = rows.map(
    (r) =>
      `| ${r.scenario} | ${r.sent} | ${r.succeeded} | ${r.failed}${
        Object.keys(r.errors).length > 0
          ? ` (${Object.entries(r.errors)
              .map(([k, v]) => `${v}× ${k}`)
              .join("; ")})`
          : ""
      } | ${r.lost} | ${r.created} | ${r.terminated} | ${r.running} | ${r.seconds} s |`,
  );
  return [head, ...lines].join("\n");
}

export function writeReport(title: string, rows: readonly ScenarioRow[]): void {
  const table = renderScenarioTable(rows);
  process.stderr.write(`\n${title}\n${table}\n`);
  const file = process.env.E2E_REPORT;
  if (file) appendFileSync(file, `\n### ${title}\n\n${table}\n`);
}
