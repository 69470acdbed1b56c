/**
 * Pure renderer of the stack's Prometheus alert rules (the `spec` of a PrometheusRule). Tested with
 * `promtool check rules` and `promtool test rules`. Expressions are scoped to the stack's namespace so several
 * stacks can share one Prometheus; annotations reference labels only, so they read the same in every tool.
 */
import { METRICS } from "../core/metrics";

export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels: Record<string, string>;
  readonly annotations: Record<string, string>;
}

export interface RuleGroup {
  readonly name: string;
  readonly interval?: string;
  readonly rules: readonly AlertRule[];
}

export interface AlertRulesInput {
  /** Namespace the gateway and controller run in; every expression filters on it. */
  readonly namespace: string;
  /** Stack name, added as a label to every alert. */
  readonly stack: string;
  /** Percentages of the monthly budget that raise an alert; empty when the stack has no budget. */
  readonly budgetAlertAtPercent: readonly number[];
  /** Whether any model has its own monthly budget. */
  readonly modelBudgets: boolean;
  /** A ready worker idle this long raises an alert. @default 900 */
  readonly gpuIdleAlertSeconds?: number;
  /** p95 cold start above this many seconds raises an alert. @default 5 */
  readonly coldStartAlertSeconds?: number;
  /** Provider API errors per minute, sustained for 10 minutes, that raise an alert. @default 1 */
  readonly providerErrorsPerMinute?: number;
  /** An unconfirmed termination older than this raises an alert. @default 600 */
  readonly terminationPendingAlertSeconds?: number;
  /** Per-model service level objectives, rendered as multi-window burn-rate alerts. @default none */
  readonly slos?: readonly ModelSlo[];
  /** Hours without a successful backup that raise an alert; absent when the stack takes no backups. */
  readonly backupAlertAfterHours?: number;
}

/** Labels every alert of the stack carries: its namespace (what Alertmanager routes by) and its name. */
export interface StackLabels {
  readonly namespace: string;
  readonly stack: string;
}

export interface ModelSlo {
  readonly model: string;
  /** Share of requests that must not fail with a 5xx, e.g. 0.995. */
  readonly availability?: number;
  /** Time to first token, seconds, that `ttftTarget` of requests must beat. */
  readonly ttftSeconds?: number;
  readonly ttftTarget: number;
}

/**
 * Multi-window, multi-burn-rate alerting (the SRE workbook's recipe for a 30-day budget): page when the budget
 * burns 14.4× too fast over 1 h (and still over 5 min), or 6× over 6 h (and 30 min); open a ticket at 1× over 3 d
 * (and 6 h). The short window makes an alert stop soon after the burning does.
 */
export const BURN_WINDOWS = [
  { long: "1h", short: "5m", factor: 14.4, severity: "critical" },
  { long: "6h", short: "30m", factor: 6, severity: "critical" },
  { long: "3d", short: "6h", factor: 1, severity: "warning" },
] as const;

/** The histogram bucket a TTFT objective is measured at: the smallest boundary at or above the threshold. */
export function ttftBucket(seconds: number): number {
  const buckets = METRICS.timeToFirstTokenSeconds.buckets ?? [];
  const bucket = buckets.find((b) => b >= seconds);
  if (bucket === undefined)
    throw new Error(`a TTFT objective of ${seconds}s is beyond the largest bucket (${buckets.at(-1)}s)`);
  return bucket;
}

function sloRules(ns: string, stackLabels: StackLabels, slos: readonly ModelSlo[]): AlertRule[] {
  const rules: AlertRule[] = [];
  const m = METRICS;
  for (const slo of slos) {
    const sel = `${ns},model="${slo.model}"`;
    if (slo.availability !== undefined) {
      const budget = 1 - slo.availability;
      const ratio = (w: string) =>
        `(sum(rate(${m.requestsTotal.name}{${sel},status=~"5.."}[${w}])) / sum(rate(${m.requestsTotal.name}{${sel}}[${w}])))`;
      for (const win of BURN_WINDOWS) {
        rules.push({
          alert: "ModelAvailabilityBudgetBurn",
          expr: `${ratio(win.long)} > ${win.factor} * ${budget.toFixed(6)} and ${ratio(win.short)} > ${win.factor} * ${budget.toFixed(6)}`,
          labels: { severity: win.severity, model: slo.model, window: win.long, ...stackLabels },
          annotations: {
            summary: `Model ${slo.model} is burning its availability budget ${win.factor}× too fast (${win.long})`,
            description: `The objective is ${(slo.availability * 100).toFixed(2)}% of requests without a 5xx over 30 days; at this rate the month's error budget is gone early.`,
          },
        });
      }
    }
    if (slo.ttftSeconds !== undefined) {
      const budget = 1 - slo.ttftTarget;
      const le = ttftBucket(slo.ttftSeconds);
      const slow = (w: string) =>
        `(1 - sum(rate(${m.timeToFirstTokenSeconds.name}_bucket{${sel},le="${le}"}[${w}])) / sum(rate(${m.timeToFirstTokenSeconds.name}_count{${sel}}[${w}])))`;
      for (const win of BURN_WINDOWS) {
        rules.push({
          alert: "ModelTtftBudgetBurn",
          expr: `${slow(win.long)} > ${win.factor} * ${budget.toFixed(6)} and ${slow(win.short)} > ${win.factor} * ${budget.toFixed(6)}`,
          labels: { severity: win.severity, model: slo.model, window: win.long, ...stackLabels },
          annotations: {
            summary: `Model ${slo.model} answers its first token slower than ${le}s too often (${win.long})`,
            description: `The objective is ${(slo.ttftTarget * 100).toFixed(1)}% of requests under ${le}s to the first token; cold starts and queueing are the usual causes.`,
          },
        });
      }
    }
  }
  return rules;
}

export function renderAlertRules(input: AlertRulesInput): { groups: RuleGroup[] } {
  const ns = `namespace="${input.namespace}"`;
  // every alert names its stack and namespace: the expressions aggregate the series' labels away, and the stack's
  // AlertmanagerConfig only receives alerts labelled with its namespace (alertmanager-config.ts)
  const stackLabels: StackLabels = { namespace: input.namespace, stack: input.stack };
  const idle = input.gpuIdleAlertSeconds ?? 900;
  const coldStart = input.coldStartAlertSeconds ?? 5;
  const errorsPerMinute = input.providerErrorsPerMinute ?? 1;
  const terminationPending = input.terminationPendingAlertSeconds ?? 600;
  const m = METRICS;

  const workers: AlertRule[] = [
    {
      alert: "GpuIdleWhileWorkerRunning",
      expr: `max by (model, provider, worker) (${m.gpuIdleTimeSeconds.name}{${ns}}) > ${idle}`,
      for: "1m",
      labels: { severity: "warning", ...stackLabels },
      annotations: {
        summary:
          "GPU worker {{ $labels.worker }} of {{ $labels.model }} on {{ $labels.provider }} is idle and billed",
        description: `A ready worker has served nothing for more than ${idle / 60} minutes. Check the model's idleTimeoutSeconds; the controller should have drained it.`,
      },
    },
    {
      alert: "ColdStartLatencyHigh",
      expr: `histogram_quantile(0.95, sum by (le, model, provider) (rate(${m.coldStartLatencySeconds.name}_bucket{${ns}}[30m]))) > ${coldStart}`,
      for: "5m",
      labels: { severity: "warning", ...stackLabels },
      annotations: {
        summary: "Cold starts of {{ $labels.model }} on {{ $labels.provider }} are slow",
        description: `The 95th percentile of cold starts over 30 minutes is above ${coldStart} s: users wait. Consider FlashBoot, a weight cache or a longer keep-alive.`,
      },
    },
    {
      alert: "RequestsWaitedPastDeadline",
      expr: `sum by (model) (increase(${m.requestsExpiredTotal.name}{${ns}}[5m])) > 0`,
      labels: { severity: "warning", ...stackLabels },
      annotations: {
        summary: "Requests for {{ $labels.model }} waited past their deadline",
        description:
          "No worker became ready in time and clients got 503. Check provider capacity, errors and maxWorkers.",
      },
    },
  ];

  const providers: AlertRule[] = [
    {
      alert: "ProviderErrors",
      expr: `sum by (provider, kind) (rate(${m.providerErrorsTotal.name}{${ns}}[5m])) * 60 > ${errorsPerMinute}`,
      for: "10m",
      labels: { severity: "warning", ...stackLabels },
      annotations: {
        summary: "{{ $labels.provider }} API calls fail ({{ $labels.kind }})",
        description: `More than ${errorsPerMinute} failed call(s) per minute for 10 minutes. Requests fail over to the next provider where one is configured.`,
      },
    },
    {
      alert: "ProviderRejectsConfiguration",
      expr: `max by (model, provider) (${m.providerRequestRejected.name}{${ns}}) > 0`,
      labels: { severity: "critical", ...stackLabels },
      annotations: {
        summary: "{{ $labels.provider }} refuses to create workers for {{ $labels.model }} as invalid",
        description:
          "The provider answered that the request breaks its API contract (RunPod 422 lists each field). It is a configuration or adapter error, not capacity: the controller stops asking (it retries hourly) and fails over to the model's other providers. See the controller log and `aiorch status --decisions`.",
      },
    },
    {
      alert: "OrphanedInstanceFound",
      expr: `sum by (provider) (increase(${m.orphansFoundTotal.name}{${ns}}[15m])) > 0`,
      labels: { severity: "critical", ...stackLabels },
      annotations: {
        summary:
          "An instance on {{ $labels.provider }} carries the stack's owner label but is not in the registry",
        description:
          "The reconciler terminates it. Look for a crash during provisioning or a second controller.",
      },
    },
    {
      alert: "TerminationNotConfirmed",
      expr: `max by (provider, worker) (${m.terminationPendingSeconds.name}{${ns}}) > ${terminationPending}`,
      labels: { severity: "critical", ...stackLabels },
      annotations: {
        summary: "{{ $labels.provider }} has not confirmed terminating worker {{ $labels.worker }}",
        description: `The controller keeps retrying, but the instance may still be billing after ${terminationPending / 60} minutes. Check the provider console.`,
      },
    },
  ];

  const budget: AlertRule[] = [...new Set(input.budgetAlertAtPercent)]
    .sort((a, b) => a - b)
    .map((percent) => ({
      alert: "GpuSpendAboveBudget",
      expr: `100 * max(${m.spendMonthTotalUsd.name}{${ns}}) / max(${m.budgetMonthTotalUsd.name}{${ns}}) >= ${percent}`,
      labels: {
        severity: percent >= 100 ? "critical" : "warning",
        threshold: String(percent),
        ...stackLabels,
      },
      annotations: {
        summary: `GPU spend of stack ${input.stack} passed ${percent}% of its monthly budget`,
        description:
          percent >= 100
            ? "The budget is reached: no new workers start and managed endpoints are set to zero workers until the month ends or the budget is raised."
            : "Spend is on its way to the budget; at 100% no new workers start.",
      },
    }));
  if (input.modelBudgets) {
    budget.push({
      alert: "GpuSpendAboveModelBudget",
      // variants of a model share its budget: dedupe controller replicas per variant, then add the variants up
      expr: `100 * sum by (model) (max by (model, variant) (${m.spendMonthUsd.name}{${ns}})) / max by (model) (${m.budgetMonthUsd.name}{${ns}}) >= 100`,
      labels: { severity: "critical", ...stackLabels },
      annotations: {
        summary: "Model {{ $labels.model }} reached its monthly budget",
        description: "No new workers start for this model until the month ends or its budget is raised.",
      },
    });
  }

  // the anomalies core/anomalies.ts detects that the controller never acts on by itself (controller/
  // self-healing-policy.ts): for a human or an assistant (MCP `anomalies`) to decide. Repeated provider errors are
  // `ProviderErrors` above.
  const spent1h = `max(delta(${m.spendMonthTotalUsd.name}{${ns}}[1h]))`;
  const share = (window: string, offset = "") =>
    `sum(rate(${m.requestsTotal.name}{${ns},status=~"5.."}[${window}]${offset})) / sum(rate(${m.requestsTotal.name}{${ns}}[${window}]${offset}))`;
  const anomalies: AlertRule[] = [
    {
      alert: "GpuSpendRateAboveMonthAverage",
      // hours since the month began from Prometheus' own clock (day_of_month, hour, minute: UTC); only once the
      // month has a day behind it, and only for at least $1 in the last hour
      expr: `${spent1h} >= 1 and on() ${spent1h} > 3 * max(${m.spendMonthTotalUsd.name}{${ns}}) / ((day_of_month() - 1) * 24 + hour() + minute() / 60) and on() day_of_month() > 1`,
      for: "15m",
      labels: { severity: "warning", ...stackLabels },
      annotations: {
        summary: `GPU spend of stack ${input.stack} runs at over 3 times the month's average hourly rate`,
        description:
          "The last hour cost more than three times the average hour of the month so far. Ask the MCP `spend` and `worker_health` tools (or `aiorch status`) where it goes; `lower_budget` or `set_worker_bounds` cap it.",
      },
    },
    {
      alert: "ErrorRateSpike",
      // at least 10 requests in 5 minutes, 20 % or more of them 5xx, and at least 3 times the share of the hour
      // before (no 5xx that hour: any such share)
      expr: `${share("5m")} >= 0.2 and on() sum(increase(${m.requestsTotal.name}{${ns}}[5m])) >= 10 unless on() 3 * (${share("1h", " offset 5m")}) > ${share("5m")}`,
      for: "2m",
      labels: { severity: "critical", ...stackLabels },
      annotations: {
        summary: `A spike of 5xx answers from the gateway of stack ${input.stack}`,
        description:
          "20 % or more of the last 5 minutes' requests failed with a 5xx, at least three times the hour before. The MCP `provider_errors` and `worker_health` tools (or `aiorch status`) show the cause; `pause_model` stops a model that fails throughout.",
      },
    },
  ];

  const groups: RuleGroup[] = [
    { name: `ai-orchestrator.${input.namespace}.workers`, rules: workers },
    { name: `ai-orchestrator.${input.namespace}.providers`, rules: providers },
    { name: `ai-orchestrator.${input.namespace}.anomalies`, rules: anomalies },
  ];
  if (budget.length > 0) groups.push({ name: `ai-orchestrator.${input.namespace}.budget`, rules: budget });
  const slo = sloRules(ns, stackLabels, input.slos ?? []);
  if (slo.length > 0) groups.push({ name: `ai-orchestrator.${input.namespace}.slo`, rules: slo });
  if (input.backupAlertAfterHours !== undefined)
    groups.push({
      name: `ai-orchestrator.${input.namespace}.backup`,
      rules: backupRules(ns, stackLabels, input.backupAlertAfterHours),
    });
  return { groups };
}

/**
 * No successful backup in N hours. The controller exports when the last backup was stored (read from Redis,
 * where the backup CronJob records it); before the first one there is no series, so that case waits N hours
 * of absence (`for`) instead — a new stack does not page before its first scheduled backups had their chance.
 */
function backupRules(ns: string, stackLabels: StackLabels, hours: number): AlertRule[] {
  const metric = METRICS.backupLastSuccessTimestampSeconds.name;
  const description = `Redis holds the API keys, the spend ledger and the audit trail; if it is lost now, up to ${hours} hours or more of changes are gone. Check the backup CronJob's last job (kubectl logs) and the object storage credentials.`;
  return [
    {
      alert: "BackupTooOld",
      expr: `time() - max(${metric}{${ns}}) > ${hours * 3600}`,
      for: "5m",
      labels: { severity: "critical", ...stackLabels },
      annotations: {
        summary: `No successful backup of stack ${stackLabels.stack} in ${hours} hours`,
        description,
      },
    },
    {
      alert: "BackupNeverSucceeded",
      expr: `absent(${metric}{${ns}})`,
      for: `${hours}h`,
      labels: { severity: "critical", ...stackLabels },
      annotations: {
        summary: `Stack ${stackLabels.stack} has had no successful backup for ${hours} hours`,
        description,
      },
    },
  ];
}
