/**
 * The gateway's Prometheus metrics, on a registry of its own (several gateways can live in one test process).
 * Labels are bounded: model names come from the runtime config ("unknown" otherwise), statuses are codes.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { metricOptions as spec } from "../core/metrics";

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<"model" | "status">;
  readonly latency: Histogram<"model">;
  readonly ttft: Histogram<"model">;
  readonly tokens: Counter<"model" | "type">;
  readonly queueDepth: Gauge<"model">;
  readonly queueWait: Histogram<"model">;
  readonly expired: Counter<"model">;
  readonly rateLimited: Counter<"kind">;
  readonly upstreamErrors: Counter<"model" | "kind">;
  readonly auditDropped: Counter;
  readonly requestsPerMinute: Gauge<"model">;
  private readonly recent = new Map<string, number[]>();

  constructor(
    private readonly knownModels: ReadonlySet<string>,
    options: { defaultMetrics?: boolean } = {},
  ) {
    const registers = [this.registry];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({ ...spec("requestsTotal"), registers });
    this.latency = new Histogram({
      name: "aiorch_gateway_request_duration_seconds",
      help: "Time from request arrival to the last byte of the answer",
      labelNames: ["model"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    });
    this.ttft = new Histogram({ ...spec("timeToFirstTokenSeconds"), registers });
    this.tokens = new Counter({
      name: "aiorch_gateway_tokens_total",
      help: "Tokens served, by type (prompt, completion)",
      labelNames: ["model", "type"],
      registers,
    });
    this.queueDepth = new Gauge({
      ...spec("queueDepth"),
      help: "Requests this gateway holds waiting for a worker",
      registers,
    });
    this.queueWait = new Histogram({
      name: "aiorch_gateway_queue_wait_seconds",
      help: "How long requests waited for a ready worker",
      labelNames: ["model"],
      buckets: [0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
      registers,
    });
    this.expired = new Counter({ ...spec("requestsExpiredTotal"), registers });
    this.rateLimited = new Counter({
      name: "aiorch_gateway_rate_limited_total",
      help: "Requests refused by a limit (rpm, tpm, budget, queue_full)",
      labelNames: ["kind"],
      registers,
    });
    this.upstreamErrors = new Counter({
      name: "aiorch_gateway_upstream_errors_total",
      help: "Failed upstream calls by kind (connect, timeout, status_5xx, status_429, auth, stream_broken)",
      labelNames: ["model", "kind"],
      registers,
    });
    this.auditDropped = new Counter({
      name: "aiorch_gateway_audit_dropped_total",
      help: "Audit lines dropped because the audit sink could not keep up",
      registers,
    });
    const recent = this.recent;
    this.requestsPerMinute = new Gauge({
      ...spec("inferenceRequestsPerMinute"),
      registers,
      collect() {
        const cutoff = Date.now() - 60_000;
        for (const [model, times] of recent) {
          while (times.length > 0 && times[0]! < cutoff) times.shift();
          this.set({ model }, times.length);
        }
      },
    });
  }

  /** The label for a model name: only names from the config, so clients cannot grow the label set. */
  model(name: string): string {
    return this.knownModels.has(name) ? name : "unknown";
  }

  countRequest(model: string, status: number): void {
    const label = this.model(model);
    this.requests.inc({ model: label, status: String(status) });
    if (label === "unknown") return;
    const times = this.recent.get(label) ?? [];
    if (times.length === 0) this.recent.set(label, times);
    times.push(Date.now());
    if (times.length > 100_000) times.shift(); // bounded even at absurd rates
  }
}
