/**
 * Request tracing (W3C Trace Context + OpenTelemetry). Every request gets a trace id: the caller's when it sends
 * a valid `traceparent`, a fresh one otherwise; the upstream call carries a `traceparent` that makes the worker's
 * spans children of the gateway's, and the audit line names the trace id.
 *
 * With an OTLP endpoint configured the gateway records spans (the request, then auth, limits, queue wait, cold
 * start wait, upstream call, streaming) and exports them in batches. Without one it only propagates: no spans
 * are built, so tracing costs next to nothing when nobody collects it.
 */
import { randomFillSync } from "node:crypto";
import type { Context, Span, Tracer } from "@opentelemetry/api";
// The SDK and the OTLP exporter are loaded only when spans are recorded (`GatewayTracing`): a propagate-only
// gateway saves their ~5 MB of memory.
import type { BasicTracerProvider, SpanExporter } from "@opentelemetry/sdk-trace-base";

/** The steps of a request that get a span of their own. */
export type StepName = "auth" | "limits" | "queue.wait" | "coldstart.wait" | "upstream" | "stream";

export interface StepSpan {
  /** Attach attributes (never secrets or prompt text). */
  set(attributes: Record<string, string | number | boolean>): void;
  /** End the step; an error marks it failed. */
  end(error?: string): void;
}

export interface RequestTrace {
  readonly traceId: string;
  /** Whether spans are recorded: attributes need building only then. */
  readonly recording: boolean;
  step(name: StepName): StepSpan;
  /** The `traceparent` to send upstream: same trace, this hop's upstream span as the parent. */
  upstreamTraceparent(upstream?: StepSpan): string;
  /** End the request's span with its HTTP status and attributes; later calls are ignored. */
  end(status: number, attributes?: Record<string, string | number | boolean>): void;
}

export interface TracingOptions {
  /** OTLP/HTTP traces URL, e.g. http://otel-collector:4318/v1/traces; absent = propagate only. */
  readonly otlpEndpoint?: string;
  /** Share of new traces (no sampled parent) to record, 0..1. @default 1 */
  readonly sampleRatio?: number;
  /** `service.name` of the spans. @default "ai-orchestrator-gateway" */
  readonly serviceName?: string;
  /** Export to this exporter instead of OTLP (tests), synchronously per span. */
  readonly exporter?: SpanExporter;
}

const NO_STEP: StepSpan = { set: () => undefined, end: () => undefined };

/** The OpenTelemetry API, loaded once spans are recorded: a propagate-only gateway never loads it (~3 MB heap). */
let otelApi: typeof import("@opentelemetry/api") | undefined;
const otel = () => {
  otelApi ??= require("@opentelemetry/api") as typeof import("@opentelemetry/api");
  return otelApi;
};

const TRACE_PARENT =
  /^\s?((?!ff)[\da-f]{2})-((?![0]{32})[\da-f]{32})-((?![0]{16})[\da-f]{16})-([\da-f]{2})(-.*)?\s?$/;

/** A W3C `traceparent`, parsed as @opentelemetry/core parses it (null when malformed), without loading it. */
export function parseTraceParent(
  value: string,
): { traceId: string; spanId: string; traceFlags: number } | null {
  const match = TRACE_PARENT.exec(value);
  // a later version may add fields; version 00 may not
  if (!match || (match[1] === "00" && match[5])) return null;
  return { traceId: match[2]!, spanId: match[3]!, traceFlags: Number.parseInt(match[4]!, 16) };
}

/** Random ids (trace, span and request ids) cut from a pooled buffer: one getrandom call per 4 KiB of ids, not one per id. */
const idPool = Buffer.allocUnsafe(4096);
let idPoolUsed = idPool.length;
export const randomHex = (bytes: number): string => {
  if (idPoolUsed + bytes > idPool.length) {
    randomFillSync(idPool);
    idPoolUsed = 0;
  }
  idPoolUsed += bytes;
  return idPool.toString("hex", idPoolUsed - bytes, idPoolUsed);
};

/** Propagation only: the caller's trace id (or a new one) and a fresh parent id per upstream call. */
class PropagatingTrace implements RequestTrace {
  readonly traceId: string;
  readonly recording = false;
  private readonly flags: string;

  constructor(traceparent: string | undefined) {
    const parent = traceparent ? parseTraceParent(traceparent) : null;
    this.traceId = parent?.traceId ?? randomHex(16);
    // keep the caller's sampling decision; a trace we start is not recorded by anyone here, so it is unsampled
    this.flags = parent ? parent.traceFlags.toString(16).padStart(2, "0") : "00";
  }

  step(): StepSpan {
    return NO_STEP;
  }

  upstreamTraceparent(): string {
    return `00-${this.traceId}-${randomHex(8)}-${this.flags}`;
  }

  end(): void {}
}

class RecordingTrace implements RequestTrace {
  readonly traceId: string;
  readonly recording = true;
  private ended = false;
  private readonly root: Span;
  private readonly ctx: Context;

  constructor(
    private readonly tracer: Tracer,
    name: string,
    traceparent: string | undefined,
    attributes: Record<string, string | number | boolean>,
  ) {
    const { trace, ROOT_CONTEXT, SpanKind } = otel();
    const parent = traceparent ? parseTraceParent(traceparent) : null;
    const parentCtx = parent
      ? trace.setSpanContext(ROOT_CONTEXT, { ...parent, isRemote: true })
      : ROOT_CONTEXT;
    this.root = tracer.startSpan(name, { kind: SpanKind.SERVER, attributes }, parentCtx);
    this.ctx = trace.setSpan(parentCtx, this.root);
    this.traceId = this.root.spanContext().traceId;
  }

  step(name: StepName): StepSpan {
    const span = this.tracer.startSpan(
      name,
      { kind: name === "upstream" ? otel().SpanKind.CLIENT : otel().SpanKind.INTERNAL },
      this.ctx,
    );
    return new RecordingStep(span);
  }

  upstreamTraceparent(upstream?: StepSpan): string {
    const span = upstream instanceof RecordingStep ? upstream.span : this.root;
    const { traceId, spanId, traceFlags } = span.spanContext();
    return `00-${traceId}-${spanId}-${traceFlags.toString(16).padStart(2, "0")}`;
  }

  end(status: number, attributes: Record<string, string | number | boolean> = {}): void {
    if (this.ended) return; // the first end has the real outcome
    this.ended = true;
    this.root.setAttributes({ "http.response.status_code": status, ...attributes });
    if (status >= 500) this.root.setStatus({ code: otel().SpanStatusCode.ERROR });
    this.root.end();
  }
}

class RecordingStep implements StepSpan {
  private ended = false;
  constructor(readonly span: Span) {}
  set(attributes: Record<string, string | number | boolean>): void {
    this.span.setAttributes(attributes);
  }
  end(error?: string): void {
    if (this.ended) return;
    this.ended = true;
    if (error) this.span.setStatus({ code: otel().SpanStatusCode.ERROR, message: error });
    this.span.end();
  }
}

const otlpExporter = () =>
  (
    require("@opentelemetry/exporter-trace-otlp-http") as typeof import("@opentelemetry/exporter-trace-otlp-http")
  ).OTLPTraceExporter;

export class GatewayTracing {
  private readonly provider?: BasicTracerProvider;
  private readonly tracer?: Tracer;

  constructor(options: TracingOptions = {}) {
    if (!options.otlpEndpoint && !options.exporter) return;
    const {
      BasicTracerProvider,
      BatchSpanProcessor,
      ParentBasedSampler,
      SimpleSpanProcessor,
      TraceIdRatioBasedSampler,
    } = require("@opentelemetry/sdk-trace-base") as typeof import("@opentelemetry/sdk-trace-base");
    const { resourceFromAttributes } =
      require("@opentelemetry/resources") as typeof import("@opentelemetry/resources");
    const processor = options.exporter
      ? new SimpleSpanProcessor(options.exporter)
      : new BatchSpanProcessor(new (otlpExporter())({ url: options.otlpEndpoint }), {
          // bounded: a collector that is down costs dropped spans, never gateway memory
          maxQueueSize: 4096,
          scheduledDelayMillis: 1000,
        });
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ "service.name": options.serviceName ?? "ai-orchestrator-gateway" }),
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(options.sampleRatio ?? 1) }),
      spanProcessors: [processor],
    });
    this.tracer = this.provider.getTracer("ai-orchestrator-gateway");
  }

  /** Whether spans are recorded and exported (else only propagated). */
  get recording(): boolean {
    return this.tracer !== undefined;
  }

  begin(
    name: string,
    traceparent: string | undefined,
    attributes: Record<string, string | number | boolean> = {},
  ): RequestTrace {
    // an invalid traceparent is ignored, as the W3C spec asks: the request starts a new trace
    return this.tracer
      ? otel().context.with(
          otel().ROOT_CONTEXT,
          () => new RecordingTrace(this.tracer!, name, traceparent, attributes),
        )
      : new PropagatingTrace(traceparent);
  }

  /** Export what is buffered (on shutdown). */
  async close(): Promise<void> {
    await this.provider?.shutdown();
  }
}

/**
 * Tracing settings from the standard OpenTelemetry variables: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (the full URL),
 * else OTEL_EXPORTER_OTLP_ENDPOINT (a base; `/v1/traces` is appended), OTEL_TRACES_SAMPLER_ARG (a ratio) and
 * OTEL_SERVICE_NAME. A malformed ratio is an error that names the variable, not a silent default.
 */
export function tracingFromEnv(env: NodeJS.ProcessEnv): TracingOptions {
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.replace(/\/+$/, "");
  const otlpEndpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || (base ? `${base}/v1/traces` : undefined);
  const ratioText = env.OTEL_TRACES_SAMPLER_ARG;
  const sampleRatio = ratioText === undefined || ratioText === "" ? undefined : Number(ratioText);
  if (sampleRatio !== undefined && !(sampleRatio >= 0 && sampleRatio <= 1))
    throw new Error(`OTEL_TRACES_SAMPLER_ARG must be a ratio between 0 and 1, e.g. 0.1; got "${ratioText}"`);
  return {
    ...(otlpEndpoint ? { otlpEndpoint } : {}),
    ...(sampleRatio !== undefined ? { sampleRatio } : {}),
    ...(env.OTEL_SERVICE_NAME ? { serviceName: env.OTEL_SERVICE_NAME } : {}),
  };
}
