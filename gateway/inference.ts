/**
 * Serving one inference request: admission (budget, limits), a ready backend — or waiting for one while the
 * model is at zero — then proxying with failover before the first byte, streaming with usage accounting,
 * settlement of reserved tokens, spend, metrics and the audit line.
 */
import type { FastifyReply } from "fastify";
import type { Redis } from "ioredis";
import type { RuntimeConfig } from "../core/config";
import { type ApiKeyRecord, inflightMember, ledgerMonth, toMicroUsd } from "../core/protocol";
import type { RedisKeys } from "../core/redis-keys";
import type { AuditLog } from "./audit";
import { GatewayError, noCapacity, upstreamFailed } from "./errors";
import { type Admission, estimatePromptTokens, type RateLimiter, rateLimitHeaders } from "./limits";
import type { GatewayMetrics } from "./metrics";
import type { Backend, BackendRegistry } from "./routing";
import { SseUsageTap, sseComment, sseError, type Usage } from "./sse";
import { type UpstreamClient, UpstreamError, type UpstreamResponse } from "./upstream";
import { ENDPOINT_PATHS, type InferenceRequest } from "./validate";

type ModelConfig = RuntimeConfig["models"][number];

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
}

/** Tokens reserved for the answer when the client sets no max_tokens; settled to the real count afterwards. */
const DEFAULT_COMPLETION_RESERVE = 512;
/** In-flight leases expire unless renewed, so a crashed gateway's requests stop counting as demand. */
const LEASE_MS = 60_000;
const MAX_ATTEMPTS = 3;
const MAX_BODY_BYTES = 64 * 1024 * 1024;

/** The client side of a response: plain until the first SSE byte, then a hijacked event stream. */
class ClientStream {
  started = false;
  private closed = false;

  constructor(
    private readonly reply: FastifyReply,
    private readonly headers: () => Record<string, string>,
  ) {
    reply.raw.on("close", () => {
      this.closed = true;
    });
  }

  get gone(): boolean {
    return this.closed && !this.reply.raw.writableFinished;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.reply.hijack();
    this.reply.raw.writeHead(200, {
      ...this.headers(),
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (this.closed) return;
    if (!this.reply.raw.write(bytes)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          this.reply.raw.off("drain", done);
          this.reply.raw.off("close", done);
          resolve();
        };
        this.reply.raw.once("drain", done);
        this.reply.raw.once("close", done);
      });
    }
  }

  end(): void {
    if (!this.closed) this.reply.raw.end();
  }
}

export class SpendView {
  private readonly cache = new Map<string, { value: number; at: number }>();
  private blocked: { value: Record<string, string>; at: number } | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly now: () => number,
    private readonly ttlMs = 5_000,
  ) {}

  /** Month-to-date spend attributed to an API key, USD. */
  async keySpendUsd(keyId: string): Promise<number> {
    const field = `key:${keyId}`;
    const cached = this.cache.get(field);
    if (cached && this.now() - cached.at < this.ttlMs) return cached.value;
    const micro = Number((await this.redis.hget(this.keys.spendMonth(ledgerMonth(this.now())), field)) ?? 0);
    const value = micro / 1_000_000;
    this.cache.set(field, { value, at: this.now() });
    return value;
  }

  /** Forget cached budget blocks (the controller announced a change). */
  invalidateBudgetBlocks(): void {
    this.blocked = undefined;
  }

  /** Budget blocks the controller set: `*` for the stack, or a model name → reason. */
  async budgetBlocks(): Promise<Record<string, string>> {
    if (this.blocked && this.now() - this.blocked.at < 2_000) return this.blocked.value;
    const value = await this.redis.hgetall(this.keys.budgetBlocked);
    this.blocked = { value, at: this.now() };
    return value;
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
}

export async function serveInference(
  deps: InferenceDeps,
  req: InferenceRequest,
  model: ModelConfig,
  key: ApiKeyRecord,
  reply: FastifyReply,
  requestId: string,
  traceparent: string | undefined,
): Promise<void> {
  const started = deps.now();
  const metricsModel = deps.metrics.model(model.name);

  // ── budgets ──
  const blocks = await deps.spend.budgetBlocks();
  const block = blocks[model.name] ?? blocks["*"];
  if (block) {
    deps.metrics.rateLimited.inc({ kind: "budget" });
    throw new GatewayError(
      429,
      "insufficient_quota",
      `GPU budget reached: ${block}`,
      "budget_exceeded",
      null,
      {
        "x-should-retry": "false",
      },
    );
  }
  if (key.monthlyBudgetUsd !== undefined && (await deps.spend.keySpendUsd(key.id)) >= key.monthlyBudgetUsd) {
    deps.metrics.rateLimited.inc({ kind: "budget" });
    throw new GatewayError(
      429,
      "insufficient_quota",
      `This API key reached its monthly budget of $${key.monthlyBudgetUsd}`,
      "insufficient_quota",
      null,
      { "x-should-retry": "false" },
    );
  }

  // ── limits: reserve max_tokens + prompt estimate ──
  const promptEstimate = estimatePromptTokens(req.body);
  const reserved =
    promptEstimate + (req.endpoint === "embedding" ? 0 : (req.maxTokens ?? DEFAULT_COMPLETION_RESERVE));
  const limits = {
    rpm: key.rpm ?? deps.config.gateway.limits.rpm,
    tpm: key.tpm ?? deps.config.gateway.limits.tpm,
  };
  const admission = await deps.limiter.admit(key.id, limits, reserved);
  const limitHeaders = rateLimitHeaders(admission);
  if (!admission.allowed) {
    deps.metrics.rateLimited.inc({ kind: admission.rpmRemaining < 1 ? "rpm" : "tpm" });
    const retry = Math.max(1, Math.ceil(admission.retryAfterMs / 1000));
    throw new GatewayError(
      429,
      "rate_limit_error",
      `Rate limit reached for this API key (${limits.rpm} requests and ${limits.tpm} tokens per minute); retry in ${retry}s`,
      "rate_limit_exceeded",
      null,
      { ...limitHeaders, "retry-after": String(retry), "retry-after-ms": String(admission.retryAfterMs) },
    );
  }

  const abort = new AbortController();
  reply.raw.on("close", () => {
    if (!reply.raw.writableFinished) abort.abort();
  });
  const client = new ClientStream(reply, () => ({ "x-request-id": requestId, ...limitHeaders }));
  const outcome: Outcome = { status: 0, completionEstimate: 0, ttftMs: null, error: null, concurrency: 1 };
  let queueMs = 0;
  try {
    const waitStart = deps.now();
    const backends = await readyBackends(deps, req, model, requestId, abort.signal, client);
    queueMs = deps.now() - waitStart;
    if (queueMs > 0) deps.metrics.queueWait.observe({ model: metricsModel }, queueMs / 1000);
    await proxy(
      deps,
      req,
      model,
      backends,
      requestId,
      traceparent,
      abort.signal,
      client,
      reply,
      admission,
      outcome,
      started,
    );
  } catch (error) {
    if (abort.signal.aborted && !(error instanceof GatewayError)) {
      outcome.status = 499; // client closed the request
      outcome.error = "client_disconnected";
      client.end();
    } else if (client.started) {
      // Headers went out already: the error can only travel as an SSE event.
      const e = error instanceof GatewayError ? error : upstreamFailed("the request failed");
      outcome.status = e.status;
      outcome.error = e.code;
      await client.write(sseError(e.message, e.code ?? "error", e.type));
      client.end();
    } else {
      outcome.status = error instanceof GatewayError ? error.status : 500;
      outcome.error = error instanceof GatewayError ? error.code : "internal";
      throw error instanceof GatewayError ? withHeaders(error, limitHeaders) : error;
    }
  } finally {
    finish(deps, req, model, key, requestId, started, queueMs, reserved, promptEstimate, limits.tpm, outcome);
  }
}

function withHeaders(error: GatewayError, headers: Record<string, string>): GatewayError {
  return new GatewayError(error.status, error.type, error.message, error.code, error.param, {
    ...headers,
    ...error.headers,
  });
}

/** Backends ready for the model, waiting at zero until one is or the deadline passes. */
async function readyBackends(
  deps: InferenceDeps,
  req: InferenceRequest,
  model: ModelConfig,
  requestId: string,
  signal: AbortSignal,
  client: ClientStream,
): Promise<Backend[]> {
  let backends = await deps.registry.backends(model.name);
  if (backends.length > 0) return backends;

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
  const metricsModel = deps.metrics.model(model.name);
  deps.metrics.queueDepth.inc({ model: metricsModel });
  await deps.redis.zadd(waitingKey, deadline, requestId);
  await deps.redis.publish(
    deps.keys.demandChannel,
    JSON.stringify({ model: model.name, requestId, deadlineMs: deadline }),
  );
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
      if (backends.length > 0) return backends;
    }
  } finally {
    deps.metrics.queueDepth.dec({ model: metricsModel });
    deps.redis.zrem(waitingKey, requestId).catch(() => undefined);
  }
}

async function proxy(
  deps: InferenceDeps,
  req: InferenceRequest,
  model: ModelConfig,
  backends: Backend[],
  requestId: string,
  traceparent: string | undefined,
  signal: AbortSignal,
  client: ClientStream,
  reply: FastifyReply,
  admission: Admission,
  outcome: Outcome,
  started: number,
): Promise<void> {
  // Always ask upstream for usage; the SSE tap hides it again when the client did not ask.
  const body = req.stream
    ? JSON.stringify({
        ...req.body,
        stream_options: { ...(req.body.stream_options as object | undefined), include_usage: true },
      })
    : JSON.stringify(req.body);
  const metricsModel = deps.metrics.model(model.name);
  const tried = new Set<string>();
  let lastFailure: GatewayError = upstreamFailed(`no backend of model "${model.name}" answered`);

  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const backend =
      deps.registry.pick(backends, tried) ?? deps.registry.pick(backends, tried, { ignoreCooldown: true });
    if (!backend) break;
    tried.add(backend.id);
    const concurrency = deps.registry.acquire(backend);
    const lease = inflightMember(backend.workerId, requestId);
    const inflightKey = deps.keys.inflight(model.name);
    deps.redis.zadd(inflightKey, deps.now() + LEASE_MS, lease).catch(() => undefined);
    const renew = setInterval(() => {
      deps.redis.zadd(inflightKey, deps.now() + LEASE_MS, lease).catch(() => undefined);
    }, LEASE_MS / 3);
    renew.unref();
    try {
      let response: UpstreamResponse;
      try {
        response = await deps.upstream.post(backend, ENDPOINT_PATHS[req.endpoint], body, {
          requestId,
          signal,
          traceparent,
        });
      } catch (error) {
        const e = error instanceof UpstreamError ? error : new UpstreamError("connect", String(error));
        if (e.kind === "aborted") throw e;
        deps.metrics.upstreamErrors.inc({ model: metricsModel, kind: e.kind });
        deps.registry.coolDown(backend);
        lastFailure = upstreamFailed(
          e.kind === "timeout"
            ? `model "${model.name}" did not answer in time`
            : `model "${model.name}" is unreachable`,
          e.kind === "timeout" ? 504 : 502,
        );
        continue;
      }
      // 404 means the backend does not serve this model (misconfigured or replaced): never show a known model as missing.
      if ([401, 403, 404, 429].includes(response.status) || response.status >= 500) {
        await response.body.dump().catch(() => undefined);
        const kind =
          response.status === 429
            ? "status_429"
            : response.status >= 500
              ? "status_5xx"
              : response.status === 404
                ? "status_404"
                : "auth";
        deps.metrics.upstreamErrors.inc({ model: metricsModel, kind });
        deps.registry.coolDown(backend, response.status === 429 ? 2_000 : 5_000);
        lastFailure =
          response.status === 429
            ? noCapacity(`model "${model.name}" is at capacity`, 2)
            : upstreamFailed(`model "${model.name}" answered ${response.status}`);
        continue;
      }
      outcome.backend = backend;
      outcome.concurrency = concurrency;
      if (req.stream && response.status === 200 && response.contentType.includes("text/event-stream")) {
        await relayStream(deps, req, response, client, outcome, started, signal, metricsModel);
      } else {
        await relayBody(response, client, reply, admission, outcome, started, requestId);
      }
      return;
    } finally {
      clearInterval(renew);
      deps.registry.release(backend);
      deps.redis.zrem(inflightKey, lease).catch(() => undefined);
    }
  }
  throw lastFailure;
}

async function relayBody(
  response: UpstreamResponse,
  client: ClientStream,
  reply: FastifyReply,
  admission: Admission,
  outcome: Outcome,
  started: number,
  requestId: string,
): Promise<void> {
  outcome.ttftMs = Date.now() - started;
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw upstreamFailed("the backend's answer is too large");
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  outcome.status = response.status;
  if (response.status === 200 && response.contentType.includes("json")) {
    try {
      const usage = (JSON.parse(text) as { usage?: Usage }).usage;
      if (usage) outcome.usage = usage;
    } catch {
      throw upstreamFailed("the backend answered with malformed JSON");
    }
  } else if (response.status === 200) {
    throw upstreamFailed(
      `the backend answered with ${response.contentType || "no content type"} instead of JSON`,
    );
  }
  if (client.started) {
    // We were holding a streaming client with keep-alives, but the backend answered without a stream.
    await client.write(new TextEncoder().encode(`data: ${text}\n\ndata: [DONE]\n\n`));
    client.end();
    return;
  }
  await reply
    .code(response.status)
    .headers({
      ...rateLimitHeaders(admission),
      "x-request-id": requestId,
      "content-type": response.contentType || "application/json",
    })
    .send(text);
}

async function relayStream(
  deps: InferenceDeps,
  req: InferenceRequest,
  response: UpstreamResponse,
  client: ClientStream,
  outcome: Outcome,
  started: number,
  signal: AbortSignal,
  metricsModel: string,
): Promise<void> {
  const tap = new SseUsageTap(req.wantsUsage);
  client.start();
  outcome.status = 200;
  try {
    for await (const chunk of response.body) {
      const out = tap.push(chunk);
      if (!out) continue;
      if (outcome.ttftMs === null && tap.contentFrames > 0) {
        outcome.ttftMs = deps.now() - started;
        deps.metrics.ttft.observe({ model: metricsModel }, outcome.ttftMs / 1000);
      }
      await client.write(out);
      if (client.gone) break;
    }
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
      sseError("The worker serving this request stopped before the answer was complete", "stream_broken"),
    );
    await client.write(new TextEncoder().encode("data: [DONE]\n\n"));
  }
  client.end();
}

function finish(
  deps: InferenceDeps,
  req: InferenceRequest,
  model: ModelConfig,
  key: ApiKeyRecord,
  requestId: string,
  started: number,
  queueMs: number,
  reserved: number,
  promptEstimate: number,
  tpm: number,
  outcome: Outcome,
): void {
  const latencyMs = deps.now() - started;
  const promptTokens = outcome.usage?.prompt_tokens ?? (outcome.backend ? promptEstimate : 0);
  const completionTokens = outcome.usage?.completion_tokens ?? outcome.completionEstimate;
  const used = outcome.usage?.total_tokens ?? promptTokens + completionTokens;
  const metricsModel = deps.metrics.model(model.name);
  // Busy time on the backend, shared by the requests it served at once.
  const serviceSeconds = Math.max(0, latencyMs - queueMs) / 1000;
  const costUsd = outcome.backend
    ? (serviceSeconds * outcome.backend.usdPerSecond) / Math.max(1, outcome.concurrency)
    : 0;

  deps.limiter.settle(key.id, tpm, reserved, outcome.backend ? used : 0).catch(() => undefined);
  if (outcome.backend) {
    const month = deps.keys.spendMonth(ledgerMonth(started));
    deps.redis
      .multi()
      .hincrby(month, `key:${key.id}`, toMicroUsd(costUsd))
      .hincrby(month, `requests:model:${model.name}`, 1)
      .exec()
      .catch(() => undefined);
  }
  deps.metrics.countRequest(model.name, outcome.status);
  deps.metrics.latency.observe({ model: metricsModel }, latencyMs / 1000);
  if (outcome.ttftMs !== null && !req.stream)
    deps.metrics.ttft.observe({ model: metricsModel }, outcome.ttftMs / 1000);
  deps.metrics.tokens.inc({ model: metricsModel, type: "prompt" }, promptTokens);
  deps.metrics.tokens.inc({ model: metricsModel, type: "completion" }, completionTokens);
  deps.audit.record({
    ts: new Date(started).toISOString(),
    requestId,
    keyId: key.id,
    model: model.name,
    endpoint: req.endpoint,
    backend: outcome.backend?.workerId ?? null,
    provider: outcome.backend?.provider ?? null,
    status: outcome.status,
    stream: req.stream,
    promptTokens,
    completionTokens,
    costUsd: Math.round(costUsd * 1e8) / 1e8,
    latencyMs,
    ttftMs: outcome.ttftMs,
    queueMs,
    error: outcome.error,
    ...(deps.config.gateway.auditPrompts
      ? { prompt: req.body.messages ?? req.body.prompt ?? req.body.input }
      : {}),
  });
}
