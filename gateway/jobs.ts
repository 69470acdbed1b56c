/**
 * Async jobs (`/v1/jobs`): a request waits durably in a Redis stream per model and is processed at least once
 * when a worker is ready — by whichever gateway replica reads it first (one consumer group). A job that fails
 * transiently stays pending and is reclaimed after a visibility timeout; results are kept with a TTL.
 */
import { randomBytes } from "node:crypto";
import { setMaxListeners } from "node:events";
import type { Redis } from "ioredis";
import type { RuntimeConfig } from "../core/config";
import { type KeyRing, open, seal } from "../core/envelope";
import { type ApiKeyRecord, type JobRecord, type JobStatus, ledgerMonth, toMicroUsd } from "../core/protocol";
import { JOBS_GROUP, type RedisKeys } from "../core/redis-keys";
import type { BackendRegistry } from "./routing";
import type { UpstreamClient } from "./upstream";
import { ENDPOINT_PATHS, type Endpoint, type InferenceRequest } from "./validate";

const MAX_ATTEMPTS = 3;
/** A job still pending this long after delivery (its gateway died) is handed to another consumer. */
const VISIBILITY_MS = 60_000;
/** Jobs nobody could serve are dropped after a week rather than kept forever. */
const QUEUED_TTL_SECONDS = 7 * 24 * 3600;

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

const ENDPOINT_OF_PATH: Readonly<Record<string, Endpoint>> = Object.fromEntries(
  Object.entries(ENDPOINT_PATHS).map(([endpoint, path]) => [`/v1${path}`, endpoint as Endpoint]),
);

export const jobEndpoint = (path: unknown): Endpoint | undefined =>
  typeof path === "string" ? ENDPOINT_OF_PATH[path] : undefined;

function decodeJob(fields: Record<string, string>): (JobRecord & { body: string }) | undefined {
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

export class JobQueue {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly now: () => number,
    /** Seals bodies and results at rest when the stack has an encryption key ring. */
    private readonly ring?: KeyRing,
  ) {}

  /** Queue a job (or return the one this key already queued under the same idempotency key). */
  async submit(
    key: ApiKeyRecord,
    req: InferenceRequest,
    idempotencyKey: string | undefined,
  ): Promise<{ job: JobRecord; created: boolean }> {
    const id = `job_${randomBytes(12).toString("hex")}`;
    if (idempotencyKey) {
      const claimed = await this.redis.set(
        this.keys.jobIdempotency(req.model, `${key.id}:${idempotencyKey}`),
        id,
        "EX",
        QUEUED_TTL_SECONDS,
        "NX",
      );
      if (claimed === null) {
        const existingId = await this.redis.get(
          this.keys.jobIdempotency(req.model, `${key.id}:${idempotencyKey}`),
        );
        const existing = existingId ? await this.get(existingId, key.id) : undefined;
        if (existing) return { job: existing, created: false };
      }
    }
    const job: JobRecord & { body: string } = {
      id,
      model: req.model,
      keyId: key.id,
      endpoint: `/v1${ENDPOINT_PATHS[req.endpoint]}`,
      status: "queued",
      createdAtMs: this.now(),
      attempts: 0,
      body: sealBody(this.ring, id, JSON.stringify({ ...req.body, stream: false })),
    };
    await this.redis
      .multi()
      .hset(this.keys.job(id), {
        id,
        model: job.model,
        keyId: job.keyId,
        endpoint: job.endpoint,
        status: job.status,
        createdAtMs: String(job.createdAtMs),
        attempts: "0",
        body: job.body,
      })
      .expire(this.keys.job(id), QUEUED_TTL_SECONDS)
      .xadd(this.keys.jobs(req.model), "*", "job", id)
      .publish(
        this.keys.demandChannel,
        JSON.stringify({
          model: req.model,
          requestId: id,
          deadlineMs: job.createdAtMs + QUEUED_TTL_SECONDS * 1000,
        }),
      )
      .exec();
    return { job, created: true };
  }

  /** A job as its owner sees it; another key's job is indistinguishable from a missing one. */
  async get(id: string, keyId: string): Promise<JobRecord | undefined> {
    if (!/^job_[0-9a-f]{24}$/.test(id)) return undefined;
    const job = decodeJob(await this.redis.hgetall(this.keys.job(id)));
    if (!job || job.keyId !== keyId) return undefined;
    return job.result === undefined
      ? job
      : { ...job, result: open(this.ring, job.result, `${job.id}:result`) };
  }
}

/** Processes jobs of every model whose backends are ready; one blocking Redis connection per model. */
export class JobRunner {
  private running = false;
  private readonly loops: Promise<void>[] = [];
  private readonly connections: Redis[] = [];
  private readonly stop = new AbortController();

  constructor(
    private readonly deps: {
      redis: Redis;
      keys: RedisKeys;
      config: RuntimeConfig;
      registry: BackendRegistry;
      upstream: UpstreamClient;
      now: () => number;
      consumer: string;
      /** How long a delivered job may stay unacknowledged before another consumer takes it. @default 60000 */
      visibilityMs?: number;
      /** Key ring for job bodies and results at rest. */
      ring?: KeyRing;
      onError?: (error: unknown) => void;
    },
  ) {}

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
    const attempts = job.attempts + 1;
    await redis.hset(keys.job(job.id), { status: "running", attempts: String(attempts) });
    const outcome = await this.execute(model, job);
    if (outcome.kind === "retry" && attempts < MAX_ATTEMPTS) {
      await redis.hset(keys.job(job.id), { status: "queued" }); // stays pending: reclaimed after the visibility timeout
      return;
    }
    const status: JobStatus = outcome.kind === "done" ? "succeeded" : "failed";
    const ttl = this.deps.config.gateway.jobResultTtlSeconds;
    const month = keys.spendMonth(ledgerMonth(this.deps.now()));
    await redis
      .multi()
      .hset(keys.job(job.id), {
        status,
        result: this.deps.ring ? seal(this.deps.ring, outcome.text, `${job.id}:result`) : outcome.text,
        completedAtMs: String(this.deps.now()),
        body: "",
      })
      .expire(keys.job(job.id), ttl)
      .hincrby(month, `key:${job.keyId}`, toMicroUsd(outcome.costUsd))
      .xack(stream, JOBS_GROUP, entryId)
      .xdel(stream, entryId)
      .exec();
  }

  private async execute(
    model: string,
    job: JobRecord & { body: string },
  ): Promise<{ kind: "done" | "failed" | "retry"; text: string; costUsd: number }> {
    const backends = await this.deps.registry.backends(model);
    const backend =
      this.deps.registry.pick(backends) ??
      this.deps.registry.pick(backends, new Set(), { ignoreCooldown: true });
    const failure = (message: string) =>
      JSON.stringify({ message, type: "server_error", code: "job_failed" });
    if (!backend) return { kind: "retry", text: failure("no worker was ready"), costUsd: 0 };
    const concurrency = this.deps.registry.acquire(backend);
    const started = this.deps.now();
    try {
      const body = open(this.deps.ring, job.body, job.id);
      const response = await this.deps.upstream.post(backend, job.endpoint.replace(/^\/v1/, ""), body, {
        requestId: job.id,
        signal: this.stop.signal,
      });
      const text = await response.body.text();
      const costUsd = (((this.deps.now() - started) / 1000) * backend.usdPerSecond) / concurrency;
      if (response.status === 200) return { kind: "done", text, costUsd };
      if (response.status === 429 || response.status >= 500 || [401, 403, 404].includes(response.status)) {
        this.deps.registry.coolDown(backend);
        return { kind: "retry", text: failure(`the worker answered ${response.status}`), costUsd };
      }
      return { kind: "failed", text, costUsd }; // the request itself was bad: retrying will not help
    } catch {
      this.deps.registry.coolDown(backend);
      return { kind: "retry", text: failure("the worker could not be reached"), costUsd: 0 };
    } finally {
      this.deps.registry.release(backend);
    }
  }
}
