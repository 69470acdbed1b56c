/** The controller's Prometheus metrics (the contract in core/metrics.ts), on a registry of its own. */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { RuntimeConfig } from "../core/config/runtime";
import { metricOptions as spec } from "../core/metrics";
import { weightCacheEntry } from "./model-types";

export class ControllerMetrics {
  readonly registry = new Registry();
  readonly workers: Gauge;
  readonly queueDepth: Gauge;
  readonly coldStart: Histogram;
  readonly gpuIdle: Gauge;
  readonly gpuUtilization: Gauge;
  readonly costPerInference: Gauge;
  readonly spendModel: Gauge;
  readonly budgetModel: Gauge;
  readonly spendTotal: Gauge;
  readonly budgetTotal: Gauge;
  readonly providerErrors: Counter;
  readonly orphans: Counter;
  readonly terminationPending: Gauge;
  readonly requestRejected: Gauge;
  readonly decisions: Counter;
  readonly reaction: Histogram;
  readonly backupLastSuccess: Gauge;
  /** Where the last successful backup is read from at each scrape (set when the stack has backups). */
  private lastBackup?: () => Promise<{ bucket: string; atMs: number } | undefined>;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.workers = new Gauge({ ...spec("workers"), registers });
    this.queueDepth = new Gauge({ ...spec("queueDepth"), registers });
    this.coldStart = new Histogram({ ...spec("coldStartLatencySeconds"), registers });
    this.gpuIdle = new Gauge({ ...spec("gpuIdleTimeSeconds"), registers });
    this.gpuUtilization = new Gauge({ ...spec("gpuUtilizationPercent"), registers });
    this.costPerInference = new Gauge({ ...spec("costPerInferenceUsd"), registers });
    this.spendModel = new Gauge({ ...spec("spendMonthUsd"), registers });
    this.budgetModel = new Gauge({ ...spec("budgetMonthUsd"), registers });
    this.spendTotal = new Gauge({ ...spec("spendMonthTotalUsd"), registers });
    this.budgetTotal = new Gauge({ ...spec("budgetMonthTotalUsd"), registers });
    this.providerErrors = new Counter({ ...spec("providerErrorsTotal"), registers });
    this.orphans = new Counter({ ...spec("orphansFoundTotal"), registers });
    this.terminationPending = new Gauge({ ...spec("terminationPendingSeconds"), registers });
    this.requestRejected = new Gauge({ ...spec("providerRequestRejected"), registers });
    const read = () => this.lastBackup?.();
    this.backupLastSuccess = new Gauge({
      ...spec("backupLastSuccessTimestampSeconds"),
      registers,
      // read at scrape time: the backup CronJob writes it to Redis, not to this process; a failed read keeps the
      // last value (an unreadable Redis must not empty the whole /metrics page)
      async collect() {
        const last = await read()?.catch(() => undefined);
        if (last) {
          this.reset();
          this.set({ bucket: last.bucket }, last.atMs / 1000);
        }
      },
    });
    this.decisions = new Counter({
      name: "aiorch_scale_decisions_total",
      help: "Scaling actions by model and action (provision, drain, refuse)",
      labelNames: ["model", "action"],
      registers,
    });
    this.reaction = new Histogram({
      name: "aiorch_scale_reaction_seconds",
      help: "From a demand signal to the first provider create call for it",
      labelNames: ["model"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
  }

  /** Export the last successful backup's time, read with `read` at each scrape. */
  readLastBackup(read: () => Promise<{ bucket: string; atMs: number } | undefined>): void {
    this.lastBackup = read;
  }
}

/**
 * Create the labelled series of the counters and histograms the alert rules read with rate()/increase(), at 0:
 * Prometheus sees no increase in a series whose first sample already counts an event, so without this the
 * first orphan or slow cold start after a controller start would never raise its alert. `providers`: those with
 * an adapter or a managed backend; cold-start series only for providers the controller starts workers on.
 */
export function zeroAlertSeries(
  m: ControllerMetrics,
  config: Pick<RuntimeConfig, "models" | "providers">,
  providers: readonly string[],
): void {
  const kinds = ["auth", "capacity", "rate_limit", "transient", "invalid", "fatal"];
  for (const provider of providers) {
    m.orphans.inc({ provider }, 0);
    for (const kind of kinds) m.providerErrors.inc({ provider, kind }, 0);
  }
  for (const model of config.models)
    for (const provider of model.providers) {
      if (!providers.includes(provider)) continue;
      m.coldStart.zero({ model: model.name, provider, cache: "miss" });
      if (weightCacheEntry(config, model, provider))
        m.coldStart.zero({ model: model.name, provider, cache: "hit" });
    }
}
