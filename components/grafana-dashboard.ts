/**
 * Pure renderer of the stack's Grafana dashboard (JSON model, loaded by the Grafana sidecar from a labelled
 * ConfigMap). Every query reads a metric of the contract in `core/metrics.ts`, scoped to the stack's namespace.
 */
import { dashboardUid, METRICS } from "../core/metrics";

export interface DashboardInput {
  /** Namespace of the stack's gateway and controller. */
  readonly namespace: string;
  /** Stack name, shown in the title and part of the uid. */
  readonly stack: string;
}

interface Target {
  readonly expr: string;
  readonly legendFormat: string;
}

interface Panel {
  readonly id: number;
  readonly type: "timeseries" | "stat" | "gauge";
  readonly title: string;
  readonly description: string;
  readonly gridPos: { x: number; y: number; w: number; h: number };
  readonly datasource: { type: "prometheus"; uid: string };
  readonly targets: readonly Target[];
  readonly fieldConfig: { defaults: Record<string, unknown>; overrides: [] };
  readonly options?: Record<string, unknown>;
}

const WIDTH = 12;
// Grafana's own variable syntax, not a template literal: the dashboard's datasource variable.
const DATASOURCE_VARIABLE = "$" + "{datasource}";
const HEIGHT = 8;

export function renderDashboard(input: DashboardInput): Record<string, unknown> {
  const ns = `namespace="${input.namespace}"`;
  const m = METRICS;
  const specs: Omit<Panel, "id" | "gridPos" | "datasource">[] = [
    {
      type: "timeseries",
      title: "Queue depth",
      description:
        "Requests waiting for a worker, per model. Anything above zero at zero workers is a cold start in progress.",
      targets: [{ expr: `sum by (model) (${m.queueDepth.name}{${ns}})`, legendFormat: "{{model}}" }],
      fieldConfig: { defaults: { unit: "short", min: 0 }, overrides: [] },
    },
    {
      type: "timeseries",
      title: "Workers by state",
      description:
        "Workers per lifecycle state; booting and provisioning workers are billed on most providers.",
      targets: [{ expr: `sum by (state) (${m.workers.name}{${ns}})`, legendFormat: "{{state}}" }],
      fieldConfig: {
        defaults: { unit: "short", min: 0, custom: { stacking: { mode: "normal" }, fillOpacity: 40 } },
        overrides: [],
      },
    },
    {
      type: "timeseries",
      title: "Spend vs budget (month to date)",
      description: "GPU spend of the calendar month against the stack's monthly budget.",
      targets: [
        { expr: `max(${m.spendMonthTotalUsd.name}{${ns}})`, legendFormat: "spend" },
        { expr: `max(${m.budgetMonthTotalUsd.name}{${ns}})`, legendFormat: "budget" },
      ],
      fieldConfig: { defaults: { unit: "currencyUSD", min: 0 }, overrides: [] },
    },
    {
      type: "gauge",
      title: "Budget used",
      description: "Share of the monthly budget spent; at 100% no new workers start.",
      targets: [
        {
          expr: `100 * max(${m.spendMonthTotalUsd.name}{${ns}}) / max(${m.budgetMonthTotalUsd.name}{${ns}})`,
          legendFormat: "budget used",
        },
      ],
      fieldConfig: {
        defaults: {
          unit: "percent",
          min: 0,
          max: 100,
          thresholds: {
            mode: "absolute",
            steps: [
              { color: "green", value: null },
              { color: "orange", value: 80 },
              { color: "red", value: 100 },
            ],
          },
        },
        overrides: [],
      },
    },
    {
      type: "timeseries",
      title: "Cost per inference",
      description: "Month-to-date GPU spend divided by requests served, per model.",
      targets: [{ expr: `max by (model) (${m.costPerInferenceUsd.name}{${ns}})`, legendFormat: "{{model}}" }],
      fieldConfig: { defaults: { unit: "currencyUSD", decimals: 5, min: 0 }, overrides: [] },
    },
    {
      type: "timeseries",
      title: "Time to first token",
      description: "p50 and p95 from request arrival to the first byte, including waits for cold starts.",
      targets: [0.5, 0.95].map((q) => ({
        expr: `histogram_quantile(${q}, sum by (le, model) (rate(${m.timeToFirstTokenSeconds.name}_bucket{${ns}}[5m])))`,
        legendFormat: `p${q * 100} {{model}}`,
      })),
      fieldConfig: { defaults: { unit: "s", min: 0 }, overrides: [] },
    },
    {
      type: "timeseries",
      title: "Rollout: traffic and errors by variant",
      description:
        "Requests per second per model variant (aiorch models set-weight moves them) and each variant's 5xx share, to compare a new version with the old.",
      targets: [
        {
          expr: `sum by (model, variant) (rate(${m.requestsTotal.name}{${ns},variant!=""}[5m]))`,
          legendFormat: "req/s {{model}}@{{variant}}",
        },
        {
          expr: `sum by (model, variant) (rate(${m.requestsTotal.name}{${ns},variant!="",status=~"5.."}[5m])) / sum by (model, variant) (rate(${m.requestsTotal.name}{${ns},variant!=""}[5m]))`,
          legendFormat: "5xx share {{model}}@{{variant}}",
        },
      ],
      fieldConfig: { defaults: { min: 0 }, overrides: [] },
    },
    {
      type: "timeseries",
      title: "Cold starts",
      description:
        "Cold starts per hour and their p95 duration, per model, provider and weight cache (hit or miss).",
      targets: [
        {
          expr: `sum by (model, provider, cache) (increase(${m.coldStartLatencySeconds.name}_count{${ns}}[1h]))`,
          legendFormat: "starts/h {{model}} {{provider}} cache {{cache}}",
        },
        {
          expr: `histogram_quantile(0.95, sum by (le, model, provider, cache) (rate(${m.coldStartLatencySeconds.name}_bucket{${ns}}[1h])))`,
          legendFormat: "p95 s {{model}} {{provider}} cache {{cache}}",
        },
      ],
      fieldConfig: { defaults: { min: 0 }, overrides: [] },
    },
    {
      type: "timeseries",
      title: "GPU utilisation and idle time",
      description:
        "Capacity in use per worker, and how long ready workers have been idle (billed while idle).",
      targets: [
        {
          expr: `max by (model, worker) (${m.gpuUtilizationPercent.name}{${ns}})`,
          legendFormat: "util % {{model}} {{worker}}",
        },
        {
          expr: `max by (model, worker) (${m.gpuIdleTimeSeconds.name}{${ns}})`,
          legendFormat: "idle s {{model}} {{worker}}",
        },
      ],
      fieldConfig: { defaults: { min: 0 }, overrides: [] },
    },
    {
      type: "timeseries",
      title: "Requests per minute",
      description: "Requests per minute per model, and the ones that waited past their deadline.",
      targets: [
        { expr: `sum by (model) (${m.inferenceRequestsPerMinute.name}{${ns}})`, legendFormat: "{{model}}" },
        {
          expr: `sum by (model) (rate(${m.requestsExpiredTotal.name}{${ns}}[5m])) * 60`,
          legendFormat: "expired {{model}}",
        },
      ],
      fieldConfig: { defaults: { unit: "reqpm", min: 0 }, overrides: [] },
    },
    {
      type: "timeseries",
      title: "Provider errors",
      description: "Failed provider API calls per minute by provider and error class.",
      targets: [
        {
          expr: `sum by (provider, kind) (rate(${m.providerErrorsTotal.name}{${ns}}[5m])) * 60`,
          legendFormat: "{{provider}} {{kind}}",
        },
      ],
      fieldConfig: { defaults: { unit: "short", min: 0 }, overrides: [] },
    },
  ];
  const panels: Panel[] = specs.map((spec, i) => ({
    ...spec,
    id: i + 1,
    gridPos: { x: (i % 2) * WIDTH, y: Math.floor(i / 2) * HEIGHT, w: WIDTH, h: HEIGHT },
    datasource: { type: "prometheus", uid: DATASOURCE_VARIABLE },
  }));
  return {
    uid: dashboardUid(input.stack),
    title: `ai-orchestrator · ${input.stack}`,
    tags: ["ai-orchestrator", "gpu"],
    timezone: "utc",
    schemaVersion: 39,
    version: 1,
    editable: false,
    refresh: "30s",
    time: { from: "now-24h", to: "now" },
    templating: {
      list: [
        { name: "datasource", type: "datasource", query: "prometheus", label: "Prometheus", current: {} },
      ],
    },
    panels,
  };
}
