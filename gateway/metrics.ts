/**
 * The gateway's Prometheus metrics, on a registry of its own (several gateways can live in one test process).
 * Labels are bounded: model names come from the runtime config ("unknown" otherwise), statuses are codes.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { metricOptions as spec } from "../core/metrics";

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<"model" | "variant" | "status">;
  readonly latency: Histogram<"model">;
  readonly ttft: Histogram<"model" | "variant">;
  readonly tokens: Counter<"model" | "type">;
  readonly queueDepth: Gauge<"model">;
  readonly queueWait: Histogram<"model">;
  readonly expired: Counter<"model">;
  readonly rateLimited: Counter<"kind">;
  /** Requests refused for their API key: missing, invalid, revoked, expired. */
  readonly authFailures: Counter<"reason">;
  readonly upstreamErrors: Counter<"model" | "kind">;
  readonly auditDropped: Counter;
  readonly requestsPerMinute: Gauge<"model">;
  /** Requests per model in the last minute, as a ring of per-second counts (O(1) per request, 120 numbers). */
  private readonly recent = new Map<string, { seconds: Float64Array; counts: Float64Array }>();
  /**
   * Requests (model → variant → status) and tokens (model) counted since the last read, added to the counters
   * when they are read (`collect`, at each scrape): prom-client hashes the label set on every `inc`, which cost
   * about a microsecond per request on the hot path; here a request is two map lookups and an addition.
   */
  private readonly pendingRequests = new Map<
    string,
    Map<string, Map<number, { labels: { model: string; variant: string; status: string }; n: number }>>
  >();
  /** Histogram label sets, one object per model / serving unit rather than one per request. */
  private readonly modelLabelSets = new Map<string, { model: string }>();
  private readonly unitLabelSets = new Map<string, Map<string, { model: string; variant: string }>>();
  private readonly pendingTokens = new Map<
    string,
    {
      prompt: { model: string; type: string };
      completion: { model: string; type: string };
      p: number;
      c: number;
    }
  >();

  constructor(
    private readonly knownModels: ReadonlySet<string>,
    options: { defaultMetrics?: boolean } = {},
  ) {
    const registers = [this.registry];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    const applyPending = () => this.applyPending();
    this.requests = new Counter({ ...spec("requestsTotal"), registers, collect: applyPending });
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
      collect: applyPending,
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
    // The alert reads increase() of this counter: a series first seen at 1 shows no increase, so start it at 0.
    for (const model of knownModels) this.expired.inc({ model }, 0);
    this.rateLimited = new Counter({
      name: "aiorch_gateway_rate_limited_total",
      help: "Requests refused by a limit (rpm, tpm, budget, queue_full)",
      labelNames: ["kind"],
      registers,
    });
    this.authFailures = new Counter({
      name: "aiorch_gateway_auth_failures_total",
      help: "Requests refused for their API key (missing, invalid, revoked, expired)",
      labelNames: ["reason"],
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
        const second = Math.floor(Date.now() / 1000);
        for (const [model, ring] of recent) {
          let total = 0;
          for (let i = 0; i < 60; i++) if (ring.seconds[i]! > second - 60) total += ring.counts[i]!;
          this.set({ model }, total);
        }
      },
    });
  }

  /** The label for a model name: only names from the config, so clients cannot grow the label set. */
  model(name: string): string {
    return this.knownModels.has(name) ? name : "unknown";
  }

  countRequest(model: string, status: number, variant?: string): void {
    const label = this.model(model);
    const variantLabel = variant ?? "";
    const byStatus = mapUnder(mapUnder(this.pendingRequests, label), variantLabel);
    const counted = byStatus.get(status);
    if (counted) counted.n += 1;
    else
      byStatus.set(status, { labels: { model: label, variant: variantLabel, status: String(status) }, n: 1 });
    if (label === "unknown") return;
    let ring = this.recent.get(label);
    if (!ring) {
      ring = { seconds: new Float64Array(60).fill(-1), counts: new Float64Array(60) };
      this.recent.set(label, ring);
    }
    const second = Math.floor(Date.now() / 1000);
    const slot = second % 60;
    if (ring.seconds[slot] !== second) {
      ring.seconds[slot] = second;
      ring.counts[slot] = 0;
    }
    ring.counts[slot] = ring.counts[slot]! + 1;
  }

  /** A request's latency, seconds (label sets made once per model: prom-client keeps them as given). */
  observeLatency(model: string, seconds: number): void {
    const label = this.model(model);
    let labels = this.modelLabelSets.get(label);
    if (!labels) {
      labels = Object.freeze({ model: label });
      this.modelLabelSets.set(label, labels); // bounded: model labels come from the config (or "unknown")
    }
    this.latency.observe(labels, seconds);
  }

  /** A request's time to first token, seconds, per serving unit (model and variant). */
  observeTtft(model: string, variant: string | undefined, seconds: number): void {
    const label = this.model(model);
    const variantLabel = variant ?? "";
    const byVariant = mapUnder(this.unitLabelSets, label);
    let labels = byVariant.get(variantLabel);
    if (!labels) {
      labels = Object.freeze({ model: label, variant: variantLabel });
      byVariant.set(variantLabel, labels); // bounded: variants come from the config
    }
    this.ttft.observe(labels, seconds);
  }

  /** Prompt and completion tokens of a request (`aiorch_gateway_tokens_total`). */
  countTokens(model: string, prompt: number, completion: number): void {
    const label = this.model(model);
    const counted = this.pendingTokens.get(label);
    if (counted) {
      counted.p += prompt;
      counted.c += completion;
    } else {
      const labels = {
        prompt: { model: label, type: "prompt" },
        completion: { model: label, type: "completion" },
      };
      this.pendingTokens.set(label, { ...labels, p: prompt, c: completion });
    }
  }

  /** Add what was counted since the last read to the counters (label sets stay, their counts go back to 0). */
  private applyPending(): void {
    for (const byVariant of this.pendingRequests.values())
      for (const byStatus of byVariant.values())
        for (const counted of byStatus.values()) {
          if (counted.n > 0) this.requests.inc(counted.labels, counted.n);
          counted.n = 0;
        }
    for (const counted of this.pendingTokens.values()) {
      // a series exists from a model's first request on, also while its count is still 0
      this.tokens.inc(counted.prompt, counted.p);
      this.tokens.inc(counted.completion, counted.c);
      counted.p = 0;
      counted.c = 0;
    }
  }
}

/** The map under `key` in a map of maps, made on first use (labels are bounded: models and variants of the config). */
function mapUnder<K, V>(outer: Map<string, Map<K, V>>, key: string): Map<K, V> {
  let inner = outer.get(key);
  if (!inner) {
    inner = new Map();
    outer.set(key, inner);
  }
  return inner;
}
