/**
 * The metrics contract: names, types and labels the gateway and controller export, and the alert rules and
 * dashboard read. One place, so a renamed metric breaks a test instead of silently emptying a panel.
 * No secret ever goes into a label (API keys appear as key ids only).
 */

export type MetricType = "counter" | "gauge" | "histogram";

export interface MetricSpec {
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  readonly labels: readonly string[];
  /** Histogram buckets (seconds or USD). */
  readonly buckets?: readonly number[];
}

const metric = (spec: MetricSpec): MetricSpec => spec;

export const METRICS = {
  // ── the seed's metrics ──
  gpuUtilizationPercent: metric({
    name: "aiorch_gpu_utilization_percent",
    type: "gauge",
    help: "Share of a worker's capacity in use (in-flight requests / target concurrency), percent",
    labels: ["model", "provider", "worker"],
  }),
  inferenceRequestsPerMinute: metric({
    name: "aiorch_inference_requests_per_minute",
    type: "gauge",
    help: "Requests per minute over the last minute",
    labels: ["model"],
  }),
  gpuIdleTimeSeconds: metric({
    name: "aiorch_gpu_idle_time_seconds",
    type: "gauge",
    help: "Seconds a ready worker has had no request in flight",
    labels: ["model", "provider", "worker"],
  }),
  costPerInferenceUsd: metric({
    name: "aiorch_cost_per_inference_usd",
    type: "gauge",
    help: "GPU spend of the current month divided by the requests served, USD",
    labels: ["model"],
  }),
  coldStartLatencySeconds: metric({
    name: "aiorch_cold_start_latency_seconds",
    type: "histogram",
    help: "From provision request to the worker answering its health check; cache: whether its weights came from the provider's weight cache (hit) or the model hub (miss)",
    labels: ["model", "provider", "cache"],
    buckets: [1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200],
  }),
  // ── queue and workers ──
  queueDepth: metric({
    name: "aiorch_queue_depth",
    type: "gauge",
    help: "Requests waiting for a worker",
    labels: ["model"],
  }),
  workers: metric({
    name: "aiorch_workers",
    type: "gauge",
    help: "Workers by state",
    labels: ["model", "provider", "state"],
  }),
  requestsExpiredTotal: metric({
    name: "aiorch_requests_expired_total",
    type: "counter",
    help: "Requests that waited past their deadline and got 503",
    labels: ["model"],
  }),
  requestsTotal: metric({
    name: "aiorch_requests_total",
    type: "counter",
    help: "Requests answered by the gateway (variant is empty for a model without variants)",
    labels: ["model", "variant", "status"],
  }),
  timeToFirstTokenSeconds: metric({
    name: "aiorch_time_to_first_token_seconds",
    type: "histogram",
    help: "From request arrival to the first byte of the answer, including any wait for a cold start",
    labels: ["model", "variant"],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
  }),
  // ── money ──
  spendMonthUsd: metric({
    name: "aiorch_spend_month_usd",
    type: "gauge",
    help: "GPU spend of the current calendar month per model and variant (empty for a model without variants), USD",
    labels: ["model", "variant"],
  }),
  budgetMonthUsd: metric({
    name: "aiorch_budget_month_usd",
    type: "gauge",
    help: "Monthly budget per model, USD (absent for models without one)",
    labels: ["model"],
  }),
  spendMonthTotalUsd: metric({
    name: "aiorch_spend_month_total_usd",
    type: "gauge",
    help: "GPU spend of the current calendar month, whole stack, USD",
    labels: [],
  }),
  budgetMonthTotalUsd: metric({
    name: "aiorch_budget_month_total_usd",
    type: "gauge",
    help: "Monthly budget of the stack, USD",
    labels: [],
  }),
  // ── providers and reconciliation ──
  providerErrorsTotal: metric({
    name: "aiorch_provider_errors_total",
    type: "counter",
    help: "Failed provider API calls by error class (auth, capacity, rate_limit, transient, invalid, fatal)",
    labels: ["provider", "kind"],
  }),
  orphansFoundTotal: metric({
    name: "aiorch_orphans_found_total",
    type: "counter",
    help: "Instances found at a provider with the stack's owner label but unknown to the registry",
    labels: ["provider"],
  }),
  providerRequestRejected: metric({
    name: "aiorch_provider_request_rejected",
    type: "gauge",
    help: "1 while the controller sends no more creates for a model to a provider that refused one as invalid (a configuration error; retried hourly)",
    labels: ["model", "provider"],
  }),
  terminationPendingSeconds: metric({
    name: "aiorch_termination_pending_seconds",
    type: "gauge",
    help: "Age of a termination the provider has not confirmed yet",
    labels: ["provider", "worker"],
  }),
  backupLastSuccessTimestampSeconds: metric({
    name: "aiorch_backup_last_success_timestamp_seconds",
    type: "gauge",
    help: "When the last backup of the stack's Redis was stored (Unix seconds); absent until the first one",
    labels: ["bucket"],
  }),
} as const;

export type MetricKey = keyof typeof METRICS;

/** The prom-client options of a contract metric: name, help, label names and buckets. */
export function metricOptions<K extends MetricKey>(key: K) {
  const m = METRICS[key];
  return {
    name: m.name,
    help: m.help,
    labelNames: [...m.labels],
    ...(m.buckets ? { buckets: [...m.buckets] } : {}),
  };
}

/** The uid of the stack's Grafana dashboard (components/grafana-dashboard.ts): links to it are `<grafana>/d/<uid>`. */
export function dashboardUid(stack: string): string {
  return `aiorch-${stack}`.slice(0, 40);
}
