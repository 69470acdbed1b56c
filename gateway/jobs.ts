/**
 * Async jobs (`/v1/jobs`): a request waits durably in a Redis stream per model and is processed at least once
 * when a worker is ready — by whichever gateway replica reads it first (one consumer group). A job that fails
 * transiently stays pending and is reclaimed after a visibility timeout; results are kept with a TTL.
 *
 * Admission is the same as a request's (rate limits, with the stored body's size counted as tokens so padding
 * outside the prompt fields is paid for), plus caps on the jobs not finished yet per API key and per model
 * (`gateway.maxQueuedJobsPerKey`, `gateway.maxQueuedJobsPerModel`), each a sorted set of job ids scored by when
 * the job expires (`gateway.jobQueuedTtlSeconds`). When a job is picked up its API key is checked again: a key
 * revoked or expired since fails the job without sending anything upstream. The submission and the run each write
 * an audit line and count in `aiorch_requests_total`; the tokens reserved at submission are settled to the job's
 * usage when it finishes.
 */
import { randomBytes } from "node:crypto";
import { setMaxListeners } from "node:events";
import type { Redis } from "ioredis";
import { ApiKeyStore } from "../core/api-keys";
import type { RuntimeConfig } from "../core/config";
import { type KeyRing, open, seal } from "../core/envelope";
import type { ApiKeyRecord, JobRecord, JobStatus } from "../core/protocol";
import { JOBS_GROUP, type RedisKeys } from "../core/redis-keys";
import type { InflightBoard } from "./accounting";
import { admit } from "./admission";
import { failOver, holdWorker, releaseWorker, unreachableVerdict, upstreamVerdict } from "./attempt";
import { type AuditLog, isoTimestamp, NOT_SERVED } from "./audit";
import { billOf, bookSpend, type FinishedWork, recordFinished } from "./bookkeeping";
import type { KeyBudgetGuard } from "./budget";
import { GatewayError, isErrorEnvelope, upstreamErrorBody } from "./errors";
import { estimatePromptTokens, type RateLimiter } from "./limits";
import type { GatewayMetrics } from "./metrics";
import type { Backend, BackendRegistry } from "./routing";
import type { SpendView } from "./spend";
import type { Usage } from "./sse";
import { type UpstreamClient, UpstreamError } from "./upstream";
import { ENDPOINT_PATHS, type Endpoint, type InferenceRequest, imagesRequested } from "./validate";

const MAX_ATTEMPTS = 3;
/** A job still pending this long after delivery (its gateway died) is handed to another consumer. */
const VISIBILITY_MS = 60_000;
/** Tokens reserved for the answer when the job sets no max_tokens; settled to the real count when it finishes. */
const DEFAULT_COMPLETION_RESERVE = 512;
/** A stored body costs at least one token per this many bytes (what English text averages). */
const BYTES_PER_TOKEN = 4;
/** How long a client refused by a queued-jobs cap is told to wait. */
const CAP_RETRY_SECONDS = 30;

export interface JobView {
  id: string;
  object: "job";
  status: JobStatus;
  model: string;
  endpoint: string;
  created_at: number;
  completed_at: number | null;
  attempts: number;
  result?: unknown;
  error?: unknown;
}

/** A job as stored: the record, its body, and what admission charged for it. */
interface StoredJob extends JobRecord {
  body: string;
  /** The model as clients name it (the record's `model` is the serving unit: `model@variant` in a rollout). */
  publicModel: string;
  variant?: string;
  /** Tokens reserved against the key's tokens per minute at submission; undefined for jobs from before. */
  reserved?: number;
  /** Tokens the stored body costs at least (its bytes / 4), whatever the upstream reports. */
  minTokens: number;
}

// jobs take the four endpoints they always took; the Responses API, rerank and score are interactive only
const JOB_ENDPOINTS: ReadonlySet<string> = new Set(["chat", "completion", "embedding", "image"]);
const ENDPOINT_OF_PATH: Readonly<Record<string, Endpoint>> = Object.fromEntries(
  Object.entries(ENDPOINT_PATHS)
    .filter(([endpoint]) => JOB_ENDPOINTS.has(endpoint))
    .map(([endpoint, path]) => [`/v1${path}`, endpoint as Endpoint]),
);

export const jobEndpoint = (path: unknown): Endpoint | undefined =>
  typeof path === "string" ? ENDPOINT_OF_PATH[path] : undefined;

const optionalNumber = (v: string | undefined): number | undefined =>
  v === undefined || v === "" ? undefined : Number(v);

function decodeJob(fields: Record<string, string>): StoredJob | undefined {
  if (!fields.id || !fields.model) return undefined;
  return {
    id: fields.id,
    model: fields.model,
    keyId: fields.keyId ?? "",
    endpoint: fields.endpoint ?? "",
    status: (fields.status as JobStatus) ?? "queued",
    createdAtMs: Number(fields.createdAtMs ?? 0),
    completedAtMs: fields.completedAtMs ? Number(fields.completedAtMs) : undefined,
    attempts: Number(fields.attempts ?? 0),
    result: fields.result,
    body: fields.body ?? "{}",
    publicModel: fields.publicModel || fields.model,
    variant: fields.variant || undefined,
    reserved: optionalNumber(fields.reserved),
    minTokens: optionalNumber(fields.minTokens) ?? 0,
  };
}

/** A job body as stored: sealed to its job id when the stack encrypts what waits. */
const sealBody = (ring: KeyRing | undefined, jobId: string, body: string): string =>
  ring ? seal(ring, body, jobId) : body;

export function jobView(job: JobRecord): JobView {
  const view: JobView = {
    id: job.id,
    object: "job",
    status: job.status,
    model: job.model,
    endpoint: job.endpoint,
    created_at: Math.floor(job.createdAtMs / 1000),
    completed_at: job.completedAtMs ? Math.floor(job.completedAtMs / 1000) : null,
    attempts: job.attempts,
  };
  if (job.result !== undefined) {
    let parsed: unknown = job.result;
    try {
      parsed = JSON.parse(job.result);
    } catch {
      // keep the text
    }
    if (job.status === "succeeded") view.result = parsed;
    if (job.status === "failed") view.error = parsed;
  }
  return view;
}

// KEYS: a queued-jobs sorted set. ARGV: now ms, the job's expiry ms, job id, cap, set TTL ms.
// Drops members past their expiry, then adds the job if fewer than `cap` remain. Returns -1 when added, else the
// number queued.
const TAKE_SLOT = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[4]) then return n end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return -1
`;

type JobRedis = Redis & {
  aiorchJobSlot(
    set: string,
    now: number,
    expiry: number,
    jobId: string,
    cap: number,
    ttlMs: number,
  ): Promise<number>;
};

/** What a job submission is: the serving unit, and what the route knows of the request. */
export interface JobSubmission {
  /** The serving unit the job runs on (`name`), the model clients name (`publicName`) and its variant. */
  readonly unit: { readonly name: string; readonly publicName: string; readonly variant?: string };
  /** The request's id (the submission's audit line). */
  readonly requestId: string;
  readonly idempotencyKey?: string;
  /** Bytes of the request body as received: charged as tokens (bytes / 4) when the prompt estimate is lower. */
  readonly bodyBytes: number;
}

export class JobQueue {
  private readonly redis: JobRedis;

  constructor(
    private readonly deps: {
      redis: Redis;
      keys: RedisKeys;
      config: RuntimeConfig;
      limiter: RateLimiter;
      metrics: GatewayMetrics;
      audit: AuditLog;
      now: () => number;
      /** Seals bodies and results at rest when the stack has an encryption key ring. */
      ring?: KeyRing;
      /** Cached spend and budget blocks (admission checks budgets as for inference). */
      spend: SpendView;
      budgets: KeyBudgetGuard;
    },
  ) {
    this.redis = deps.redis as JobRedis;
    if (typeof this.redis.aiorchJobSlot !== "function") {
      deps.redis.defineCommand("aiorchJobSlot", { numberOfKeys: 1, lua: TAKE_SLOT });
    }
  }

  /**
   * Admit and queue a job (or return the one this key already queued under the same idempotency key), with the
   * submission's audit line and metrics. Throws a 429 over the key's limits or a queued-jobs cap.
   */
  async submit(
    key: ApiKeyRecord,
    req: InferenceRequest,
    submission: JobSubmission,
  ): Promise<{ job: JobRecord; created: boolean; headers: Record<string, string> }> {
    const { config, metrics } = this.deps;
    const started = this.deps.now();
    const { unit } = submission;
    let status = 500;
    let error: string | null = "internal";
    let jobId: string | undefined;
    try {
      // ── limits: the prompt estimate or the stored body's size, whichever is more, plus the answer ──
      const minTokens = Math.ceil(submission.bodyBytes / BYTES_PER_TOKEN);
      const reserved =
        Math.max(estimatePromptTokens(req.body), minTokens) +
        (req.endpoint === "embedding" ? 0 : (req.maxTokens ?? DEFAULT_COMPLETION_RESERVE));
      // the admission inference takes (budget blocks, the key's budget, rpm/tpm); a queued job holds no budget
      // while it waits (it may run on another replica, much later): its run books what it cost
      const pending = admit(this.deps, key, {
        unit,
        reserved,
        holdBudget: false,
        limitNote: `; a job's body counts at least 1 token per ${BYTES_PER_TOKEN} bytes`,
      });
      const admitted = pending instanceof Promise ? await pending : pending;
      const { headers } = admitted;
      const limits = { tpm: admitted.tpm };
      let queued: { job: JobRecord; created: boolean };
      try {
        queued = await this.store(key, req, submission, reserved, minTokens);
      } catch (e) {
        this.settle(key.id, limits.tpm, reserved, 0); // nothing was queued: the tokens go back
        throw e instanceof GatewayError
          ? new GatewayError(e.status, e.type, e.message, e.code, e.param, { ...headers, ...e.headers })
          : e;
      }
      if (!queued.created) this.settle(key.id, limits.tpm, reserved, 0); // the same job again: charged once
      status = queued.created ? 202 : 200;
      error = null;
      jobId = queued.job.id;
      return { ...queued, headers };
    } catch (e) {
      status = e instanceof GatewayError ? e.status : 500;
      error = e instanceof GatewayError ? e.code : "internal";
      throw e;
    } finally {
      metrics.countRequest(unit.publicName, status, unit.variant);
      this.deps.audit.record({
        ts: isoTimestamp(started),
        requestId: submission.requestId,
        keyId: key.id,
        model: unit.publicName,
        variant: unit.variant || undefined,
        endpoint: "jobs",
        ...NOT_SERVED,
        status,
        latencyMs: this.deps.now() - started,
        error,
        jobId,
        prompt: config.gateway.auditPrompts
          ? (req.body.messages ?? req.body.prompt ?? req.body.input)
          : undefined,
      });
    }
  }

  /** Give back reserved tokens not used (or charge an overrun); a failure only loses the give-back. */
  private settle(keyId: string, tpm: number, reserved: number, used: number): void {
    if (!this.deps.limiter.settleLocal(keyId, tpm, reserved, used))
      this.deps.limiter.settle(keyId, tpm, reserved, used).catch(() => undefined);
  }

  /** Take the job's places under the caps and write it (stream entry, record, demand announcement). */
  private async store(
    key: ApiKeyRecord,
    req: InferenceRequest,
    submission: JobSubmission,
    reserved: number,
    minTokens: number,
  ): Promise<{ job: JobRecord; created: boolean }> {
    const { keys, config } = this.deps;
    const ttlSeconds = config.gateway.jobQueuedTtlSeconds;
    const id = `job_${randomBytes(12).toString("hex")}`;
    const model = submission.unit.name;
    const idempotency = submission.idempotencyKey
      ? keys.jobIdempotency(model, `${key.id}:${submission.idempotencyKey}`)
      : undefined;
    if (idempotency) {
      const claimed = await this.redis.set(idempotency, id, "EX", ttlSeconds, "NX");
      if (claimed === null) {
        const existingId = await this.redis.get(idempotency);
        const existing = existingId ? await this.get(existingId, key.id) : undefined;
        if (existing) return { job: existing, created: false };
      }
    }
    const createdAtMs = this.deps.now();
    const expiresAtMs = createdAtMs + ttlSeconds * 1000;
    try {
      await this.takeSlot(
        keys.queuedJobsOfKey(key.id),
        id,
        createdAtMs,
        expiresAtMs,
        config.gateway.maxQueuedJobsPerKey,
        (n) =>
          `This API key has ${n} jobs queued (at most ${config.gateway.maxQueuedJobsPerKey}, gateway.maxQueuedJobsPerKey); retry once some have finished`,
      );
      try {
        await this.takeSlot(
          keys.queuedJobsOfModel(model),
          id,
          createdAtMs,
          expiresAtMs,
          config.gateway.maxQueuedJobsPerModel,
          (n) =>
            `${n} jobs are queued for model "${submission.unit.publicName}" (at most ${config.gateway.maxQueuedJobsPerModel}, gateway.maxQueuedJobsPerModel); retry later`,
        );
      } catch (e) {
        await this.redis.zrem(keys.queuedJobsOfKey(key.id), id);
        throw e;
      }
    } catch (e) {
      if (idempotency) await this.redis.del(idempotency);
      throw e;
    }
    const job: StoredJob = {
      id,
      model,
      keyId: key.id,
      endpoint: `/v1${ENDPOINT_PATHS[req.endpoint]}`,
      status: "queued",
      createdAtMs,
      attempts: 0,
      body: sealBody(this.deps.ring, id, JSON.stringify({ ...req.body, stream: false })),
      publicModel: submission.unit.publicName,
      variant: submission.unit.variant,
      reserved,
      minTokens,
    };
    await this.redis
      .multi()
      .hset(keys.job(id), {
        id,
        model: job.model,
        keyId: job.keyId,
        endpoint: job.endpoint,
        status: job.status,
        createdAtMs: String(job.createdAtMs),
        attempts: "0",
        body: job.body,
        publicModel: job.publicModel,
        variant: job.variant ?? "",
        reserved: String(reserved),
        minTokens: String(minTokens),
      })
      .expire(keys.job(id), ttlSeconds)
      .xadd(keys.jobs(model), "*", "job", id)
      .publish(keys.demandChannel, JSON.stringify({ model, requestId: id, deadlineMs: expiresAtMs }))
      .exec();
    const { body: _body, publicModel: _p, variant: _v, reserved: _r, minTokens: _m, ...record } = job;
    return { job: record, created: true };
  }

  /** Add the job to a queued-jobs set unless it holds `cap` unexpired jobs already (then a 429). */
  private async takeSlot(
    set: string,
    jobId: string,
    now: number,
    expiresAtMs: number,
    cap: number,
    message: (queued: number) => string,
  ): Promise<void> {
    const ttlMs = Math.max(1, expiresAtMs - now);
    const queued = await this.redis.aiorchJobSlot(set, now, expiresAtMs, jobId, cap, ttlMs);
    if (queued === -1) return;
    this.deps.metrics.rateLimited.inc({ kind: "jobs_queued" });
    throw new GatewayError(429, "rate_limit_error", message(queued), "too_many_queued_jobs", null, {
      "retry-after": String(CAP_RETRY_SECONDS),
    });
  }

  /** A job as its owner sees it; another key's job is indistinguishable from a missing one. */
  async get(id: string, keyId: string): Promise<JobRecord | undefined> {
    if (!/^job_[0-9a-f]{24}$/.test(id)) return undefined;
    const job = decodeJob(await this.redis.hgetall(this.deps.keys.job(id)));
    if (!job || job.keyId !== keyId) return undefined;
    const record: JobRecord = {
      id: job.id,
      model: job.model,
      keyId: job.keyId,
      endpoint: job.endpoint,
      status: job.status,
      createdAtMs: job.createdAtMs,
      completedAtMs: job.completedAtMs,
      attempts: job.attempts,
      result: job.result,
    };
    return job.result === undefined
      ? record
      : { ...record, result: open(this.deps.ring, job.result, `${job.id}:result`) };
  }
}

/** How one attempt at a job ended. */
interface Outcome {
  kind: "done" | "failed" | "retry";
  /** The upstream answer (done, or a bad request) or the error's JSON. */
  text: string;
  /** The status the run's audit line and metrics report. */
  status: number;
  error: string | null;
  /** The worker that answered, when one did (what the run is billed for), and its time on the job. */
  served?: { readonly backend: Backend; readonly concurrency: number; readonly serviceMs: number };
  /** Images generated (an image job answered 200: its body's `n`), as an image request's audit line counts them. */
  images?: number;
}

const NOTHING_TRIED: ReadonlySet<string> = new Set();

/** The kind of a failed upstream call (`connect`, `timeout`, …) for the metric. */
const upstreamErrorKind = (error: unknown): string =>
  error instanceof UpstreamError ? error.kind : "connect";

const failure = (message: string, code: string, type = "server_error"): string =>
  JSON.stringify({ message, type, code });

/**
 * Images an image job's body asks for (`imagesRequested`, what a request's audit line counts); undefined for a
 * body that is not a JSON object (it was validated at submission, so only a corrupted one).
 */
function imagesOfBody(body: string): number | undefined {
  try {
    const parsed: unknown = JSON.parse(body);
    return parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)
      ? imagesRequested(parsed as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** The `usage` of an upstream answer, if it has one. */
function usageOf(text: string): Partial<Usage> | undefined {
  try {
    const usage = (JSON.parse(text) as { usage?: unknown }).usage;
    return usage !== null && typeof usage === "object" ? (usage as Partial<Usage>) : undefined;
  } catch {
    return undefined;
  }
}

/** Processes jobs of every model whose backends are ready; one blocking Redis connection per model. */
export class JobRunner {
  private running = false;
  private readonly loops: Promise<void>[] = [];
  private readonly connections: Redis[] = [];
  private readonly stop = new AbortController();
  private readonly store: ApiKeyStore;

  constructor(
    private readonly deps: {
      redis: Redis;
      keys: RedisKeys;
      config: RuntimeConfig;
      registry: BackendRegistry;
      upstream: UpstreamClient;
      limiter: RateLimiter;
      /** The keys' budget guard; a job's run holds none (it was admitted long before), its settling is a request's. */
      budgets: KeyBudgetGuard;
      /** This replica's in-flight counts per worker (the controller never drains a worker running a job). */
      inflight?: InflightBoard;
      metrics: GatewayMetrics;
      audit: AuditLog;
      now: () => number;
      consumer: string;
      /** How long a delivered job may stay unacknowledged before another consumer takes it. @default 60000 */
      visibilityMs?: number;
      /** Key ring for job bodies and results at rest. */
      ring?: KeyRing;
      onError?: (error: unknown) => void;
    },
  ) {
    this.store = new ApiKeyStore(deps.redis, deps.keys);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    // one abort listener per model loop (and per job in flight) on the shared stop signal is expected
    setMaxListeners(Math.max(10, 2 * this.deps.config.models.length + 10), this.stop.signal);
    for (const model of this.deps.config.models) {
      const connection = this.deps.redis.duplicate();
      // errors (Redis restarting) surface in the loop's commands and are retried there; without a listener
      // ioredis prints every reconnect failure of every model's connection as an unhandled error event
      connection.on("error", () => undefined);
      this.connections.push(connection);
      this.loops.push(this.loop(model.name, connection));
    }
  }

  async close(): Promise<void> {
    this.running = false;
    this.stop.abort();
    for (const c of this.connections) c.disconnect();
    await Promise.allSettled(this.loops);
  }

  private async loop(model: string, blocking: Redis): Promise<void> {
    const stream = this.deps.keys.jobs(model);
    await this.deps.redis.xgroup("CREATE", stream, JOBS_GROUP, "0", "MKSTREAM").catch((e: Error) => {
      if (!e.message.includes("BUSYGROUP")) throw e;
    });
    let lastClaim = 0;
    while (this.running) {
      try {
        const backends = await this.deps.registry.backends(model);
        if (backends.length === 0) {
          await this.deps.registry.waitForChange(model, 2_000, this.stop.signal);
          continue;
        }
        const visibility = this.deps.visibilityMs ?? VISIBILITY_MS;
        if (this.deps.now() - lastClaim > visibility / 4) {
          lastClaim = this.deps.now();
          const [, claimed] = (await this.deps.redis.xautoclaim(
            stream,
            JOBS_GROUP,
            this.deps.consumer,
            visibility,
            "0-0",
            "COUNT",
            10,
          )) as [string, [string, string[]][]];
          for (const [entryId, fields] of claimed) await this.process(model, stream, entryId, fields);
        }
        const read = (await blocking.xreadgroup(
          "GROUP",
          JOBS_GROUP,
          this.deps.consumer,
          "COUNT",
          1,
          "BLOCK",
          Math.min(2_000, visibility),
          "STREAMS",
          stream,
          ">",
        )) as [string, [string, string[]][]][] | null;
        for (const [, entries] of read ?? []) {
          for (const [entryId, fields] of entries) await this.process(model, stream, entryId, fields);
        }
      } catch (error) {
        if (!this.running) return;
        this.deps.onError?.(error);
        await new Promise((r) => setTimeout(r, 1_000));
      }
    }
  }

  private async process(model: string, stream: string, entryId: string, fields: string[]): Promise<void> {
    const { redis, keys } = this.deps;
    const jobId = fields[fields.indexOf("job") + 1];
    const job = jobId ? decodeJob(await redis.hgetall(keys.job(jobId))) : undefined;
    if (!job || job.status === "succeeded" || job.status === "failed") {
      await redis.multi().xack(stream, JOBS_GROUP, entryId).xdel(stream, entryId).exec();
      return;
    }
    const started = this.deps.now();
    const attempts = job.attempts + 1;
    await redis.hset(keys.job(job.id), { status: "running", attempts: String(attempts) });
    // the key is checked again at every pick-up: one revoked or expired since the submission sends nothing upstream
    const key = await this.keyRecord(job.keyId);
    const refusal = this.refusal(key, started);
    const outcome: Outcome = refusal
      ? {
          kind: "failed",
          text: failure(refusal.message, refusal.code, "authentication_error"),
          status: 401,
          error: refusal.code,
        }
      : await this.execute(model, job);
    if (outcome.kind === "retry" && attempts < MAX_ATTEMPTS) {
      await redis.hset(keys.job(job.id), { status: "queued" }); // stays pending: reclaimed after the visibility timeout
      return;
    }
    await this.finish(model, stream, entryId, job, key, outcome, started);
  }

  /** The job's API key as stored now (undefined when it no longer exists). */
  private async keyRecord(keyId: string): Promise<ApiKeyRecord | undefined> {
    const hash = await this.deps.redis.hget(this.deps.keys.apiKeyIds, keyId);
    return hash ? this.store.byHash(hash) : undefined;
  }

  /** Why the job's key may not run it now, if it may not. */
  private refusal(key: ApiKeyRecord | undefined, now: number): { message: string; code: string } | undefined {
    if (!key) return { message: "The API key that submitted this job no longer exists", code: "key_revoked" };
    if (key.revoked)
      return {
        message:
          "The API key that submitted this job was revoked before the job ran; nothing was sent to the model",
        code: "key_revoked",
      };
    if (key.expiresAtMs !== undefined && now >= key.expiresAtMs)
      return {
        message:
          "The API key that submitted this job expired before the job ran; nothing was sent to the model",
        code: "key_expired",
      };
    return undefined;
  }

  /**
   * Store the result and leave the queued-jobs sets, with the spend booked in the same MULTI (a job is billed
   * once, with its result); then settle the reserved tokens, count and audit (bookkeeping.ts, as a request).
   */
  private async finish(
    model: string,
    stream: string,
    entryId: string,
    job: StoredJob,
    key: ApiKeyRecord | undefined,
    outcome: Outcome,
    started: number,
  ): Promise<void> {
    const { redis, keys, config, now } = this.deps;
    const status: JobStatus = outcome.kind === "done" ? "succeeded" : "failed";
    const completedAtMs = now();
    const work: FinishedWork = {
      requestId: job.id,
      keyId: job.keyId,
      unit: model,
      publicModel: job.publicModel,
      variant: job.variant,
      endpoint: jobEndpoint(job.endpoint) ?? job.endpoint,
      stream: false,
      status: outcome.status,
      error: outcome.error,
      backend: outcome.served?.backend,
      concurrency: outcome.served?.concurrency ?? 1,
      startedAtMs: started,
      latencyMs: completedAtMs - started,
      queueMs: Math.max(0, started - job.createdAtMs),
      serviceMs: outcome.served?.serviceMs ?? 0,
      ttftMs: null,
      usage: outcome.served ? usageOf(outcome.text) : undefined,
      promptEstimate: 0,
      completionEstimate: 0,
      minTokens: job.minTokens,
      jobId: job.id,
      images: outcome.images,
    };
    const bill = billOf(work);
    const multi = redis
      .multi()
      .hset(keys.job(job.id), {
        status,
        result: this.deps.ring ? seal(this.deps.ring, outcome.text, `${job.id}:result`) : outcome.text,
        completedAtMs: String(completedAtMs),
        body: "",
      })
      .expire(keys.job(job.id), config.gateway.jobResultTtlSeconds)
      .zrem(keys.queuedJobsOfKey(job.keyId), job.id)
      .zrem(keys.queuedJobsOfModel(job.model), job.id);
    bookSpend({ incr: (hash, field, by) => multi.hincrby(hash, field, by) }, keys, work, bill);
    await multi.xack(stream, JOBS_GROUP, entryId).xdel(stream, entryId).exec();

    // the reservation made at submission, settled to what the job used (jobs from before reservations settle none)
    const taken =
      job.reserved === undefined
        ? undefined
        : {
            keyId: job.keyId,
            reserved: job.reserved,
            tpm: key?.tpm ?? config.gateway.limits.tpm,
            budgetHold: undefined,
          };
    recordFinished(this.deps, taken, work, bill);
  }

  private async execute(model: string, job: StoredJob): Promise<Outcome> {
    let body: string;
    try {
      body = open(this.deps.ring, job.body, job.id);
    } catch (error) {
      // sealed with a key no longer in the ring (or stored in clear where sealing is on): it can never run
      return {
        kind: "failed",
        text: failure(`The job could not be read: ${(error as Error).message}`, "job_unreadable"),
        status: 500,
        error: "job_unreadable",
      };
    }
    const backends = await this.deps.registry.backends(model);
    const held = holdWorker(this.deps, model, backends, NOTHING_TRIED);
    if (!held)
      return {
        kind: "retry",
        text: failure("no worker was ready", "job_failed"),
        status: 503,
        error: "no_capacity",
      };
    const { backend, concurrency } = held;
    const started = this.deps.now();
    try {
      const response = await this.deps.upstream.post(backend, job.endpoint.replace(/^\/v1/, ""), body, {
        requestId: job.id,
        signal: this.stop.signal,
      });
      const text = await response.body.text();
      const served = { backend, concurrency, serviceMs: this.deps.now() - started };
      // a worker's error as a queue's 200 (see relayBody in inference.ts): the job failed there, not retried
      if (response.status === 200 && isErrorEnvelope(text)) {
        const shaped = JSON.stringify(
          upstreamErrorBody(502, response.contentType, Buffer.from(text, "utf8")).error,
        );
        return { kind: "failed", text: shaped, status: 502, error: "upstream_error", served };
      }
      if (response.status === 200) {
        const images = jobEndpoint(job.endpoint) === "image" ? imagesOfBody(body) : undefined;
        return { kind: "done", text, status: 200, error: null, served, images };
      }
      const verdict = upstreamVerdict(response.status);
      if (verdict.kind === "fail_over") {
        // as a request's attempt: not billed, another worker (or this one after its cool-down) tries again
        failOver(this.deps, job.publicModel, backend, verdict);
        return {
          kind: "retry",
          text: failure(`the worker answered ${response.status}`, "job_failed"),
          status: 502,
          error: "upstream_error",
        };
      }
      // the request itself was bad: retrying will not help. The worker's words are reshaped and scrubbed, as
      // inference's are: its paths, addresses and tokens never reach the job's owner.
      const shaped = JSON.stringify(
        upstreamErrorBody(response.status, response.contentType, Buffer.from(text, "utf8")).error,
      );
      return { kind: "failed", text: shaped, status: response.status, error: "upstream_rejected", served };
    } catch (error) {
      // the gateway closing aborts the call: the job is picked up again, the worker did nothing wrong
      if (!this.stop.signal.aborted)
        failOver(this.deps, job.publicModel, backend, unreachableVerdict(upstreamErrorKind(error)));
      return {
        kind: "retry",
        text: failure("the worker could not be reached", "job_failed"),
        status: 502,
        error: "upstream_error",
      };
    } finally {
      releaseWorker(this.deps, model, held);
    }
  }
}
