/**
 * Serving one inference request: admission (budget, limits), a ready backend — or waiting for one while the
 * model is at zero — then proxying with failover before the first byte, streaming with usage accounting,
 * settlement of reserved tokens, spend, metrics and the audit line.
 */
import type { Readable } from "node:stream";
import type { FastifyReply } from "fastify";
import type { Redis } from "ioredis";
import type { RuntimeConfig } from "../core/config";
import type { ApiKeyRecord } from "../core/protocol";
import type { RedisKeys } from "../core/redis-keys";
import { VARIANT_HEADER } from "../core/variants";
import { AbortFlag } from "./abort";
import type { CounterBatch, InflightBoard } from "./accounting";
import { type Admitted, admit } from "./admission";
import { failOver, holdWorker, releaseWorker, unreachableVerdict, upstreamVerdict } from "./attempt";
import type { AuditLog } from "./audit";
import { billOf, bookSpend, type FinishedWork, recordFinished } from "./bookkeeping";
import type { KeyBudgetGuard } from "./budget";
import { GatewayError, isErrorEnvelope, noCapacity, upstreamFailed } from "./errors";
import { estimatePromptTokens, type RateLimiter } from "./limits";
import type { GatewayMetrics } from "./metrics";
import type { Backend, BackendRegistry } from "./routing";
import type { SpendView } from "./spend";
import {
  pooledUsage,
  SseUsageTap,
  type StreamProtocol,
  sseComment,
  sseEndFor,
  sseErrorFor,
  type Usage,
  usageFrom,
} from "./sse";
import type { RequestTrace, StepSpan } from "./tracing";
import {
  type BufferedResponse,
  type UpstreamClient,
  UpstreamError,
  type UpstreamResponse,
  upstreamErrorAnswer,
} from "./upstream";
import { ENDPOINT_PATHS, type InferenceRequest, imagesRequested, POOLING_ENDPOINTS } from "./validate";
import type { UnitConfig } from "./variants";

/** The serving unit answering the request: a model, or one variant of it (`model@variant`). */
type ModelConfig = UnitConfig;

export interface InferenceDeps {
  readonly config: RuntimeConfig;
  readonly redis: Redis;
  readonly keys: RedisKeys;
  readonly registry: BackendRegistry;
  readonly limiter: RateLimiter;
  readonly upstream: UpstreamClient;
  readonly metrics: GatewayMetrics;
  readonly audit: AuditLog;
  readonly now: () => number;
  /** Cached reads of spend and budget blocks (a few seconds stale at most). */
  readonly spend: SpendView;
  /** Spend and request counters, written to Redis in batches. */
  readonly counters: CounterBatch;
  /** This replica's in-flight count per worker, published for the controller. */
  readonly inflight: InflightBoard;
  /** What requests of budgeted keys in flight are expected to cost (so a burst cannot pass the budget). */
  readonly budgets: KeyBudgetGuard;
}

/** Tokens reserved for the answer when the client sets no max_tokens; settled to the real count afterwards. */
const DEFAULT_COMPLETION_RESERVE = 512;
const MAX_ATTEMPTS = 3;
const MAX_BODY_BYTES = 64 * 1024 * 1024;

/** The client side of a response: plain until the first SSE byte, then a hijacked event stream. */
class ClientStream {
  started = false;
  private closed = false;

  constructor(
    private readonly reply: FastifyReply,
    private readonly requestId: string,
    private readonly variant: string | undefined,
    private readonly limitHeaders: Record<string, string>,
    /** Aborted when the client goes away before the answer is complete. */
    abort: AbortFlag,
  ) {
    reply.raw.on("close", () => {
      this.closed = true;
      if (!reply.raw.writableFinished) abort.abort();
    });
  }

  get gone(): boolean {
    return this.closed && !this.reply.raw.writableFinished;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.reply.hijack();
    // names and values in one flat list, as writeHead takes them: no header object is built and copied
    const headers = ["x-request-id", this.requestId];
    const clientRequestId = this.reply.request.clientRequestId; // a label (see onRequest in app.ts)
    if (clientRequestId !== undefined) headers.push("x-client-request-id", clientRequestId);
    if (this.variant) headers.push(VARIANT_HEADER, this.variant);
    for (const name in this.limitHeaders) headers.push(name, this.limitHeaders[name]!);
    headers.push(
      "content-type",
      "text/event-stream; charset=utf-8",
      "cache-control",
      "no-cache",
      "connection",
      "keep-alive",
      "x-accel-buffering",
      "no",
    );
    this.reply.raw.writeHead(200, headers);
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (!this.writeNow(bytes) && !this.closed) await new Promise<void>((resolve) => this.onWritable(resolve));
  }

  /** Write without waiting: false when the client's buffer is full (wait with `onWritable`) or it is gone. */
  writeNow(bytes: Uint8Array): boolean {
    return !this.closed && this.reply.raw.write(bytes);
  }

  /** Call back once the client can take more, or went away. */
  onWritable(callback: () => void): void {
    const raw = this.reply.raw;
    const done = () => {
      raw.off("drain", done);
      raw.off("close", done);
      callback();
    };
    raw.once("drain", done);
    raw.once("close", done);
  }

  end(): void {
    if (!this.closed) this.reply.raw.end();
  }
}

interface Outcome {
  status: number;
  backend?: Backend;
  usage?: Usage;
  completionEstimate: number;
  ttftMs: number | null;
  error: string | null;
  concurrency: number;
  /** The request's trace id, for the audit line. */
  traceId: string;
  /** The client's x-request-id, a label for the audit line (never stored or counted: `requestId` is). */
  clientRequestId: string | undefined;
}

/**
 * One request as it moves through admission, waiting for a worker, the attempts, the relay and its accounting:
 * what every step reads, in one object instead of a dozen arguments.
 */
interface Exchange {
  readonly deps: InferenceDeps;
  readonly req: InferenceRequest;
  readonly model: ModelConfig;
  readonly key: ApiKeyRecord;
  readonly reply: FastifyReply;
  readonly requestId: string;
  readonly trace: RequestTrace;
  /** When the request arrived (deps.now()). */
  readonly started: number;
  readonly promptEstimate: number;
  /** What admission took (budget hold, tokens), given back by `finish`; its x-ratelimit-* headers. */
  readonly admitted: Admitted;
  /** Aborted when the client goes away. */
  readonly abort: AbortFlag;
  readonly client: ClientStream;
  readonly outcome: Outcome;
  /** Time spent waiting for a worker, ms. */
  queueMs: number;
}

export async function serveInference(
  deps: InferenceDeps,
  req: InferenceRequest,
  model: ModelConfig,
  key: ApiKeyRecord,
  reply: FastifyReply,
  requestId: string,
  trace: RequestTrace,
): Promise<void> {
  const started = deps.now();
  const metricsModel = deps.metrics.model(model.publicName);

  // ── admission: budgets, then rpm/tpm with max_tokens + the prompt estimate reserved ──
  const promptEstimate = estimatePromptTokens(req.body);
  const reserved =
    promptEstimate +
    (POOLING_ENDPOINTS.has(req.endpoint) ? 0 : (req.maxTokens ?? DEFAULT_COMPLETION_RESERVE));
  const limitsStep = trace.step("limits");
  let admitted: Admitted;
  try {
    const pending = admit(deps, key, { unit: model, reserved, holdBudget: true });
    admitted = pending instanceof Promise ? await pending : pending;
  } catch (error) {
    limitsStep.end("refused");
    throw error;
  }
  limitsStep.end();
  const limitHeaders = admitted.headers;

  const abort = new AbortFlag();
  const client = new ClientStream(reply, requestId, model.variant, limitHeaders, abort);
  const outcome: Outcome = {
    status: 0,
    completionEstimate: 0,
    ttftMs: null,
    error: null,
    concurrency: 1,
    traceId: trace.traceId,
    clientRequestId: reply.request.clientRequestId,
  };
  const x: Exchange = {
    deps,
    req,
    model,
    key,
    reply,
    requestId,
    trace,
    started,
    promptEstimate,
    admitted,
    abort,
    client,
    outcome,
    queueMs: 0,
  };
  try {
    const waitStart = deps.now();
    // a fresh cache of ready backends answers without a promise; waiting (or a Redis read) otherwise
    const cached = deps.registry.cachedBackends(model.name);
    const backends = cached !== undefined && cached.length > 0 ? cached : await readyBackends(x);
    x.queueMs = deps.now() - waitStart;
    if (x.queueMs > 0) deps.metrics.queueWait.observe({ model: metricsModel }, x.queueMs / 1000);
    await proxy(x, backends);
  } catch (error) {
    if (abort.aborted && !(error instanceof GatewayError)) {
      outcome.status = 499; // client closed the request
      outcome.error = "client_disconnected";
      client.end();
    } else if (client.started) {
      // Headers went out already: the error can only travel as an SSE event.
      const e = error instanceof GatewayError ? error : upstreamFailed("the request failed");
      outcome.status = e.status;
      outcome.error = e.code;
      await client.write(sseErrorFor(streamProtocolOf(req), e.message, e.code ?? "error", e.type));
      client.end();
    } else {
      outcome.status = error instanceof GatewayError ? error.status : 500;
      outcome.error = error instanceof GatewayError ? error.code : "internal";
      throw error instanceof GatewayError ? withHeaders(error, limitHeaders) : error;
    }
  } finally {
    reply.request.audited = true;
    finish(x);
    if (trace.recording) trace.end(outcome.status, requestAttributes(model, outcome.backend));
    else trace.end(outcome.status);
  }
}

/** The request span's closing attributes (built only when spans are recorded). */
function requestAttributes(
  model: ModelConfig,
  backend: Backend | undefined,
): Record<string, string | number | boolean> {
  const attributes: Record<string, string> = { "aiorch.model": model.publicName };
  if (model.variant) attributes["aiorch.variant"] = model.variant;
  if (backend) {
    attributes["aiorch.worker"] = backend.workerId;
    attributes["aiorch.provider"] = backend.provider;
  }
  return attributes;
}

function withHeaders(error: GatewayError, headers: Record<string, string>): GatewayError {
  return new GatewayError(error.status, error.type, error.message, error.code, error.param, {
    ...headers,
    ...error.headers,
  });
}

/** Backends ready for the model, waiting at zero until one is or the deadline passes. */
async function readyBackends(x: Exchange): Promise<Backend[]> {
  const { deps, req, model, requestId, abort: signal, client, trace } = x;
  let backends = await deps.registry.backends(model.name);
  if (backends.length > 0) return backends;
  // No worker is ready: the request joins the model's queue (queue.wait) and, once the controller has heard the
  // demand, waits for a worker to boot (coldstart.wait).
  const queueStep = trace.step("queue.wait");
  let coldStep: StepSpan | undefined;
  let waitError: string | undefined = "no worker became ready";
  try {
    const now = deps.now();
    const deadline = now + model.queueTimeoutSeconds * 1000;
    const waitingKey = deps.keys.waiting(model.name);
    const waitingNow = await deps.redis.zcount(waitingKey, now, "+inf");
    if (waitingNow >= deps.config.gateway.maxWaitingPerModel) {
      deps.metrics.rateLimited.inc({ kind: "queue_full" });
      throw new GatewayError(
        429,
        "rate_limit_error",
        `${waitingNow} requests are already waiting for model "${model.name}" to start; retry shortly`,
        "queue_full",
        null,
        { "retry-after": "5" },
      );
    }
    const metricsModel = deps.metrics.model(model.publicName);
    deps.metrics.queueDepth.inc({ model: metricsModel });
    await deps.redis.zadd(waitingKey, deadline, requestId);
    await deps.redis.publish(
      deps.keys.demandChannel,
      JSON.stringify({ model: model.name, requestId, deadlineMs: deadline }),
    );
    coldStep = trace.step("coldstart.wait");
    const keepAliveMs = deps.config.gateway.keepAliveSeconds * 1000;
    let nextKeepAlive = now + keepAliveMs;
    try {
      for (;;) {
        if (signal.aborted) throw new UpstreamError("aborted", "client went away while waiting");
        const t = deps.now();
        if (t >= deadline) {
          deps.metrics.expired.inc({ model: metricsModel });
          throw noCapacity(
            `No worker for model "${model.name}" became ready within ${model.queueTimeoutSeconds}s; it is starting, retry shortly`,
            Math.min(60, model.queueTimeoutSeconds),
          );
        }
        if (req.stream && t >= nextKeepAlive) {
          // Streaming clients hear from us while a GPU boots, so proxies do not cut the line.
          client.start();
          await client.write(sseComment("waiting for a worker to start"));
          nextKeepAlive = t + keepAliveMs;
        }
        await deps.registry.waitForChange(
          model.name,
          Math.min(1_000, deadline - t, Math.max(0, nextKeepAlive - t)),
          signal,
        );
        backends = await deps.registry.backends(model.name);
        if (backends.length > 0) {
          waitError = undefined;
          return backends;
        }
      }
    } finally {
      deps.metrics.queueDepth.dec({ model: metricsModel });
      deps.redis.zrem(waitingKey, requestId).catch(() => undefined);
    }
  } finally {
    coldStep?.end(waitError);
    queueStep.end(waitError);
  }
}

/**
 * The JSON text sent upstream: the client's own text when nothing in it changes. A stream always asks upstream
 * for usage (the SSE tap hides it again when the client did not ask): `stream_options` is spliced into the
 * client's text before its closing brace when the client sent none — no object copy, no serializing — and the
 * body is serialized again only when the client's own `stream_options` must be merged.
 */
export function upstreamBody(req: InferenceRequest): string {
  // a Responses stream has its usage in its last event whatever the request says: its body goes as it came
  if (!req.stream || req.endpoint === "response") return req.json ?? JSON.stringify(req.body);
  const json = req.json;
  if (json !== undefined && req.body.stream_options === undefined) {
    // the text parsed to a non-empty object (it has a model), so its last "}" closes it and a member can go first
    const end = json.lastIndexOf("}");
    if (end > 0) return `${json.slice(0, end)},"stream_options":{"include_usage":true}${json.slice(end)}`;
  }
  return JSON.stringify({
    ...req.body,
    stream_options: { ...(req.body.stream_options as object | undefined), include_usage: true },
  });
}

async function proxy(x: Exchange, backends: readonly Backend[]): Promise<void> {
  const { deps, req, model, requestId, trace, abort: signal, outcome } = x;
  // an upload (a transcription's multipart body) goes as the bytes the client sent, with its own Content-Type
  const body = req.upload ? req.upload.bytes : upstreamBody(req);
  const contentType = req.upload?.contentType;
  // both built only when an attempt fails (an Error captures a stack): the answered request allocates neither
  let tried: Set<string> | undefined;
  let lastFailure: GatewayError | undefined;

  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const held = holdWorker(deps, model.name, backends, tried ?? NO_BACKENDS);
    if (!held) break;
    const { backend, concurrency } = held;
    const upstreamStep = trace.step("upstream");
    if (trace.recording)
      upstreamStep.set({
        "aiorch.worker": backend.workerId,
        "aiorch.provider": backend.provider,
        "aiorch.attempt": attempt + 1,
      });
    try {
      let response: UpstreamResponse | BufferedResponse;
      try {
        const call = {
          requestId,
          signal,
          traceparent: trace.upstreamTraceparent(upstreamStep),
          ...(contentType ? { contentType } : {}),
        };
        const path = ENDPOINT_PATHS[req.endpoint];
        // a whole answer is read without a stream in between; a streaming one is relayed chunk by chunk
        response = req.stream
          ? await deps.upstream.post(backend, path, body, call)
          : await deps.upstream.postBuffered(backend, path, body, call, MAX_BODY_BYTES);
      } catch (error) {
        const e = error instanceof UpstreamError ? error : new UpstreamError("connect", String(error));
        upstreamStep.end(e.kind);
        if (e.kind === "aborted") {
          // the worker was serving it when the client left: its time is billed, as a streamed request's is
          outcome.backend = backend;
          outcome.concurrency = concurrency;
          throw e;
        }
        if (e.kind === "too_large") throw upstreamFailed("the backend's answer is too large");
        failOver(deps, model.publicName, backend, unreachableVerdict(e.kind));
        lastFailure = upstreamFailed(
          e.kind === "timeout"
            ? `model "${model.name}" did not answer in time`
            : `model "${model.name}" is unreachable`,
          e.kind === "timeout" ? 504 : 502,
        );
        tried = withTried(tried, backend.id);
        continue;
      }
      // 404 means the backend does not serve this model (misconfigured or replaced): never show a known model as missing.
      const verdict = upstreamVerdict(response.status);
      if (verdict.kind === "fail_over") {
        if (!isBuffered(response)) await response.body.dump().catch(() => undefined);
        upstreamStep.set({ "http.response.status_code": response.status });
        upstreamStep.end(`answered ${response.status}`);
        failOver(deps, model.publicName, backend, verdict);
        lastFailure =
          response.status === 429
            ? noCapacity(`model "${model.name}" is at capacity`, 2)
            : upstreamFailed(`model "${model.name}" answered ${response.status}`);
        tried = withTried(tried, backend.id);
        continue;
      }
      outcome.backend = backend;
      outcome.concurrency = concurrency;
      if (trace.recording) upstreamStep.set({ "http.response.status_code": response.status });
      upstreamStep.end();
      if (isBuffered(response)) {
        const sending = relayBody(x, response);
        if (sending) await sending;
      } else if (response.status === 200 && response.contentType.includes("text/event-stream")) {
        const streamStep = trace.step("stream");
        let streamError: string | undefined;
        try {
          await relayStream(x, response);
        } catch (error) {
          streamError = error instanceof Error ? error.message : "stream failed";
          throw error;
        } finally {
          streamStep.set({
            "aiorch.completion_tokens": outcome.usage?.completion_tokens ?? outcome.completionEstimate,
          });
          streamStep.end(streamError);
        }
      } else {
        // asked to stream, answered without: the whole answer, relayed as one event
        const whole = await readAll(response.body, MAX_BODY_BYTES);
        await relayBody(x, { ...response, body: whole }); // rare path
      }
      return;
    } finally {
      releaseWorker(deps, model.name, held);
    }
  }
  throw lastFailure ?? upstreamFailed(`no backend of model "${model.name}" answered`);
}

const NO_BACKENDS: ReadonlySet<string> = new Set();

/** The backends tried so far, with one more (the set is made at the first failed attempt). */
function withTried(tried: Set<string> | undefined, id: string): Set<string> {
  const set = tried ?? new Set<string>();
  set.add(id);
  return set;
}

const isBuffered = (response: UpstreamResponse | BufferedResponse): response is BufferedResponse =>
  response.body instanceof Uint8Array;

/**
 * Send a whole answer to the client. Synchronous (no promise) in the usual case; a promise only when the answer
 * goes out as an event to a streaming client held with keep-alives.
 */
function relayBody(x: Exchange, response: BufferedResponse): Promise<void> | undefined {
  const { client, reply, outcome, started } = x;
  // A worker behind a job queue answers its error as the job's output, which the queue returns as a 200
  // (worker-vllm v2.25.2 src/handler.py:106-107: `{"error": {"message", "type": "worker_error"}}`; RunPod's status for
  // it is not published): an error envelope is a 502, never a success the client cannot read.
  if (response.status === 200 && isErrorEnvelope(response.body)) response = { ...response, status: 502 };
  if (response.status >= 300) response = upstreamErrorAnswer(response); // an OpenAI error, never the backend's bytes
  // a whole answer's first token arrives with the rest of it (an engine sends a non-streamed answer at once)
  outcome.ttftMs = Date.now() - started;
  // The answer goes to the client as the bytes it came in; only its `usage` object is read.
  const body = response.body;
  outcome.status = response.status;
  if (response.status === 200 && response.contentType.includes("json")) {
    const usage = usageOf(body);
    if (usage === "malformed") throw upstreamFailed("the backend answered with malformed JSON");
    if (usage) outcome.usage = POOLING_ENDPOINTS.has(x.req.endpoint) ? pooledUsage(usage) : usage;
  } else if (response.status === 200 && !(x.req.endpoint === "transcription" && isTextAnswer(response))) {
    throw upstreamFailed(
      `the backend answered with ${response.contentType || "no content type"} instead of JSON`,
    );
  }
  if (client.started) {
    // We were holding a streaming client with keep-alives, but the backend answered without a stream.
    const frames =
      x.req.endpoint === "response"
        ? responsesWholeAnswer(response.status, body)
        : Buffer.concat([SSE_DATA, body, SSE_END_DONE]);
    return client.write(frames).then(() => client.end());
  }
  // (x-request-id is on the reply since onRequest). Sent at once: awaiting the reply (a thenable) would only
  // cost two more microtasks.
  reply
    .code(response.status)
    .headers(x.admitted.headers)
    .header("content-type", response.contentType || "application/json")
    .send(body);
  return undefined;
}

/**
 * A transcription asked for as `text`, `srt` or `vtt` comes as text, not JSON, from engines that follow OpenAI
 * (its `createTranscription` answers those formats as plain text); it is relayed as it came, without usage.
 */
const isTextAnswer = (response: BufferedResponse): boolean =>
  /^text\/(plain|vtt)\b/i.test(response.contentType);

/** A whole (non-streamed) answer: one promise, not two per chunk as `for await` makes. */
function readAll(stream: Readable, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        stream.destroy();
        reject(upstreamFailed("the backend's answer is too large"));
      } else chunks.push(chunk);
    });
    stream.once("end", () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
    stream.once("error", reject);
  });
}

/** The stream protocol of a streaming request: the Responses API's typed events, or chat/completions chunks. */
const streamProtocolOf = (req: InferenceRequest): StreamProtocol =>
  req.endpoint === "response" ? "responses" : "chat";

/**
 * A whole Responses answer sent to a client held as a stream: the response as its `response.completed` event, or
 * the (already reshaped) error as the `error` event (`ResponseCompletedEvent` / `ResponseErrorEvent` in OpenAI's
 * Responses streaming reference).
 */
function responsesWholeAnswer(status: number, body: Buffer): Uint8Array {
  if (status === 200) return Buffer.concat([RESPONSE_COMPLETED_HEAD, body, RESPONSE_COMPLETED_TAIL]);
  let message = `the model's backend answered ${status}`;
  let code = "upstream_error";
  try {
    const error = (JSON.parse(body.toString("utf8")) as { error?: { message?: unknown; code?: unknown } })
      .error;
    if (typeof error?.message === "string") message = error.message;
    if (typeof error?.code === "string") code = error.code;
  } catch {
    // the reshaped error is JSON; the defaults above stand otherwise
  }
  return sseErrorFor("responses", message, code);
}
const RESPONSE_COMPLETED_HEAD = Buffer.from(
  'event: response.completed\ndata: {"type":"response.completed","sequence_number":0,"response":',
);
const RESPONSE_COMPLETED_TAIL = Buffer.from("}\n\n");

const SSE_DATA = Buffer.from("data: ");
const SSE_END_DONE = Buffer.from("\n\ndata: [DONE]\n\n");
const USAGE_KEY = Buffer.from('"usage"');
const isWhitespace = (c: number | undefined): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/**
 * The `usage` object of a JSON answer, read without parsing the whole answer: the last `"usage"` key (engines put
 * it after the choices; inside a JSON string its quotes would be escaped), then just its object. "malformed" when
 * the answer is not a JSON object (an engine cut off mid-answer, an HTML error page) or the usage cannot be read.
 */
export function usageOf(body: Buffer): Usage | undefined | "malformed" {
  let first = 0;
  while (first < body.length && isWhitespace(body[first])) first += 1;
  let last = body.length - 1;
  while (last > first && isWhitespace(body[last])) last -= 1;
  if (body[first] !== 0x7b || body[last] !== 0x7d) return "malformed"; // { … }
  const key = body.lastIndexOf(USAGE_KEY, last);
  if (key < first) return undefined;
  let i = key + USAGE_KEY.length;
  while (i < last && isWhitespace(body[i])) i += 1;
  if (body[i] !== 0x3a) return undefined; // not a key after all
  i += 1;
  while (i < last && isWhitespace(body[i])) i += 1;
  if (body[i] !== 0x7b) return undefined; // "usage": null
  // the object's end: braces counted outside strings
  let depth = 0;
  let inString = false;
  for (let j = i; j < last; j++) {
    const c = body[j]!;
    if (inString) {
      // a backslash escapes the next byte
      if (c === 0x5c) j += 1;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b) depth += 1;
    else if (c === 0x7d) {
      depth -= 1;
      if (depth === 0) {
        try {
          // chat/completions usage as it is; the Responses API's input/output_tokens as prompt/completion
          return usageFrom(JSON.parse(body.toString("utf8", i, j + 1)));
        } catch {
          return "malformed";
        }
      }
    }
  }
  return "malformed";
}

async function relayStream(x: Exchange, response: UpstreamResponse): Promise<void> {
  const { deps, req, client, outcome, started, abort: signal, model } = x;
  const metricsModel = deps.metrics.model(model.publicName);
  const protocol = streamProtocolOf(req);
  const tap = new SseUsageTap(req.wantsUsage, protocol);
  client.start();
  outcome.status = 200;
  try {
    await relayFrames(response.body, client, (chunk) => {
      const out = tap.push(chunk);
      if (out && outcome.ttftMs === null && tap.contentFrames > 0) {
        outcome.ttftMs = deps.now() - started;
        deps.metrics.observeTtft(model.publicName, model.variant, outcome.ttftMs / 1000);
      }
      return out;
    });
    const rest = tap.flush();
    if (rest) await client.write(rest);
  } catch (error) {
    if (signal.aborted) throw error;
    deps.metrics.upstreamErrors.inc({ model: metricsModel, kind: "stream_broken" });
  } finally {
    outcome.usage = tap.usage;
    outcome.completionEstimate = tap.contentFrames;
  }
  if (signal.aborted || client.gone) {
    outcome.status = 499;
    outcome.error = "client_disconnected";
    return;
  }
  if (!tap.sawDone && !tap.sawError) {
    // The worker went away mid-answer: tell the client in-band; the retry is theirs to make.
    deps.metrics.upstreamErrors.inc({ model: metricsModel, kind: "stream_broken" });
    outcome.status = 502;
    outcome.error = "stream_broken";
    await client.write(
      sseErrorFor(
        protocol,
        "The worker serving this request stopped before the answer was complete",
        "stream_broken",
        "server_error",
        tap.events,
      ),
    );
    const end = sseEndFor(protocol);
    if (end) await client.write(end);
  }
  client.end();
}

/**
 * Pass upstream chunks through `transform` to the client as they come, pausing upstream while the client's buffer
 * is full; resolves at the end of the answer or when the client went away. Event-driven: no promise per chunk.
 */
function relayFrames(
  body: Readable,
  client: ClientStream,
  transform: (chunk: Buffer) => Uint8Array | undefined,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (error?: unknown) => {
      if (settled) return;
      settled = true;
      body.off("data", onData);
      body.off("end", onEnd);
      body.off("error", onError);
      if (error !== undefined) reject(error);
      else {
        if (!body.readableEnded) body.destroy(); // the client went away: free the upstream connection
        resolve();
      }
    };
    const onData = (chunk: Buffer) => {
      const out = transform(chunk);
      if (out && !client.writeNow(out) && !client.gone) {
        body.pause();
        client.onWritable(() => body.resume());
      }
      if (client.gone) settle();
    };
    const onEnd = () => settle();
    const onError = (error: unknown) => settle(error ?? new Error("the upstream answer broke off"));
    body.on("data", onData);
    body.once("end", onEnd);
    body.once("error", onError);
  });
}

/** Give back what admission took, book the spend, count the metrics and write the audit line (bookkeeping.ts). */
function finish(x: Exchange): void {
  const { deps, req, model, key, requestId, started, queueMs, admitted, promptEstimate, outcome } = x;
  const latencyMs = deps.now() - started;
  const work: FinishedWork = {
    requestId,
    clientRequestId: outcome.clientRequestId,
    keyId: key.id,
    unit: model.name,
    publicModel: model.publicName,
    variant: model.variant,
    endpoint: req.endpoint,
    stream: req.stream,
    status: outcome.status,
    error: outcome.error,
    backend: outcome.backend,
    concurrency: outcome.concurrency,
    startedAtMs: started,
    latencyMs,
    queueMs,
    serviceMs: latencyMs - queueMs,
    ttftMs: outcome.ttftMs,
    usage: outcome.usage,
    promptEstimate,
    completionEstimate: outcome.completionEstimate,
    traceId: outcome.traceId,
    images: req.endpoint === "image" && outcome.status === 200 ? imagesRequested(req.body) : undefined,
    prompt: deps.config.gateway.auditPrompts
      ? (req.body.messages ?? req.body.prompt ?? req.body.input)
      : undefined,
  };
  const bill = billOf(work);
  // batched: the counters reach Redis within a flush period (and on close), summed exactly
  bookSpend(deps.counters, deps.keys, work, bill);
  recordFinished(deps, admitted, work, bill);
}
