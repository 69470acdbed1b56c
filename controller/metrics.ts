/** The controller's Prometheus metrics (the contract in core/metrics.ts), on a registry of its own. */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { metricOptions as spec } from "../core/metrics";

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
}
