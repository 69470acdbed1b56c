/**
 * Every Redis key and channel the gateway, controller and CLI use, in one place (DESIGN.md §3).
 * Keys that one Lua script touches together share a `{hash tag}` so the same scripts run on Redis Cluster.
 */

export const DEFAULT_KEY_PREFIX = "aiorch:";

/** Consumer group every gateway replica reads async jobs with. */
export const JOBS_GROUP = "gateways";

/** Worker lifecycle; `failed` is reachable from every state before `terminated`. */
export const WORKER_STATES = [
  "requested",
  "provisioning",
  "booting",
  "ready",
  "draining",
  "terminated",
  "failed",
] as const;
export type WorkerState = (typeof WORKER_STATES)[number];

const NEXT_STATES: Readonly<Record<WorkerState, readonly WorkerState[]>> = {
  requested: ["provisioning", "failed", "terminated"],
  provisioning: ["booting", "failed", "draining", "terminated"],
  booting: ["ready", "failed", "draining", "terminated"],
  ready: ["draining", "failed", "terminated"],
  draining: ["terminated", "failed"],
  // A failed worker may still exist at the provider; it is terminated once the provider confirms.
  failed: ["terminated"],
  terminated: [],
};

/** Whether a worker may move from `from` to `to`; the registry refuses any other move. */
export function canTransition(from: WorkerState, to: WorkerState): boolean {
  return NEXT_STATES[from].includes(to);
}

/** A hash tag must not contain braces; model names may contain almost anything else. */
const tag = (value: string): string => `{${value.replace(/[{}]/g, "_")}}`;

export interface RedisKeys {
  readonly prefix: string;
  /** Hash: API key record by SHA-256 of the raw key (raw keys are never stored). */
  apiKey(keyHash: string): string;
  /** Hash: key id → key hash, for list and revoke by id. */
  readonly apiKeyIds: string;
  /** Token bucket of one API key (requests or tokens per minute); both share the key's tag. */
  rateBucket(keyId: string, kind: "rpm" | "tpm"): string;
  /** Sorted set: waiting request ids of a model, scored by deadline (ms). */
  waiting(model: string): string;
  /**
   * Sorted set: in-flight requests of a model, one member per gateway replica and worker
   * (`workerId|replicaId|count`, see `inflightMember`), scored by expiry (ms). Each replica renews its members
   * every second and publishes a worker the moment it gets busy, so a crashed replica's counts fall out by score;
   * the in-flight count of a worker is the sum of the counts of its unexpired members.
   */
  inflight(model: string): string;
  /** Pub/sub channel: a waiting request (or a queued job) wakes the controller at once. */
  readonly demandChannel: string;
  /** Hash: ready backends of a model, worker id → encoded `Route` (written by the controller). */
  routes(model: string): string;
  /** Pub/sub channel: a model's routes changed (waiting requests re-check at once). */
  readonly routesChannel: string;
  /** Pub/sub channel: an API key was revoked or changed (gateways drop it from their cache). */
  readonly apiKeysChannel: string;
  /** Hash: status and result of one async job. */
  job(jobId: string): string;
  /** Stream + consumer group of async jobs of a model. */
  jobs(model: string): string;
  /** String: the result of one async job, kept with a TTL. */
  jobResult(model: string, jobId: string): string;
  /** String: idempotency key → job id. */
  jobIdempotency(model: string, idempotencyKey: string): string;
  /** Sorted set: ids of an API key's async jobs not finished yet, scored by when they expire (ms); capped per key. */
  queuedJobsOfKey(keyId: string): string;
  /** Sorted set: ids of a model's async jobs not finished yet, scored by when they expire (ms); capped per model. */
  queuedJobsOfModel(model: string): string;
  /** Hash: one worker's registry record. */
  worker(workerId: string): string;
  /** Set: ids of every worker not yet terminated. */
  readonly liveWorkers: string;
  /** Hash: intent record written before a provider create, for crash-safe provisioning. */
  intent(workerId: string): string;
  /** Hash: spend of one month (`2026-11`), fields `total`, `model:<name>`, `key:<id>`, `worker:<id>` in micro-USD. */
  spendMonth(month: string): string;
  /** Hash: spend of one day (`2026-11-27`), same fields. */
  spendDay(day: string): string;
  /** Hash: budget blocks set by the controller — `*` (whole stack) or a model name → reason. */
  readonly budgetBlocked: string;
  /** Pub/sub channel: budget blocks changed (gateways re-read them at once). */
  readonly budgetChannel: string;
  /** Stream: the append-only, hash-chained trail of administrative actions. */
  readonly auditStream: string;
  /** String: the controller leader lock (value = holder id). */
  readonly leaderLock: string;
  /** Counter: fencing token, incremented on every leadership change. */
  readonly leaderFence: string;
  /** List: the controller's last scale decisions with their reasons (JSON, newest first, capped); `aiorch status` reads it. */
  readonly scaleDecisions: string;
  /** Hash: run-time variant weights of a model, variant → weight (`aiorch models set-weight`); overrides config. */
  variantWeights(model: string): string;
  /** Pub/sub channel: variant weights changed (gateways re-read them at once). */
  readonly variantWeightsChannel: string;
  /**
   * Hash: weights known to be in a weight cache, `<mirror URL>|<source>@<revision>` → ms when a worker first
   * became ready from it; a cold start that began after that time was a cache hit.
   */
  readonly weightCacheLoaded: string;
  /** Hash: run-time worker bounds of a serving unit (MCP `set_worker_bounds`), unit → JSON `{minWorkers, maxWorkers}`. */
  readonly workerBounds: string;
  /** Hash: paused models (MCP `pause_model`), model → JSON `{reason, actor, atMs}`; the gateway answers 503. */
  readonly pausedModels: string;
  /** Pub/sub channel: pauses changed (gateways re-read them at once). */
  readonly pausesChannel: string;
  /** Hash: lowered monthly budgets, `*` (stack) or a model → JSON `{usd, month}`; only lower, only that month. */
  readonly budgetOverrides: string;
  /** Hash: workers an operator asked to drain, worker id → JSON `{reason, actor, atMs}`; the controller acts on it. */
  readonly drainRequests: string;
  /** Stream: recent request audit lines (no prompt), capped, for the MCP request story. */
  readonly recentRequests: string;
  /** List: the controller's recent provider errors (JSON `{atMs, provider, kind, what, message}`, newest first, capped). */
  readonly providerErrors: string;
  /** Hash: the last successful backup (`atMs`, `url`, `keys`, `bytes`), for the backup-age metric and alert. */
  readonly lastBackup: string;
  /**
   * Hash: up to when each managed unit (RunPod serverless) is booked, unit → ms. In Redis, not in the
   * controller's memory, so a restore books the time since the backup's booking again.
   */
  readonly managedBookedUntil: string;
  /** String: the stack epoch, a random id written by the first API key and kept for the stack's life (core/stack-epoch.ts). */
  readonly stackEpoch: string;
  /** String: set (JSON `{epoch, sinceMs, by}`) while Redis has lost the stack's state and no restore has landed. */
  readonly stateLost: string;
  /** List: the controller's self-healing actions (JSON `{atMs, kind, subject, reason}`, newest first, capped); the hourly guard rail counts them. */
  readonly selfHealingActions: string;
}

export function redisKeys(prefix: string = DEFAULT_KEY_PREFIX): RedisKeys {
  if (!/^[A-Za-z0-9:_-]+$/.test(prefix)) {
    throw new Error(`redis key prefix "${prefix}" may only contain letters, digits and : _ -`);
  }
  return {
    prefix,
    apiKey: (keyHash) => `${prefix}apikey:${keyHash}`,
    apiKeyIds: `${prefix}apikeys`,
    rateBucket: (keyId, kind) => `${prefix}limit:${tag(keyId)}:${kind}`,
    waiting: (model) => `${prefix}queue:${tag(model)}:waiting`,
    inflight: (model) => `${prefix}queue:${tag(model)}:inflight`,
    demandChannel: `${prefix}demand`,
    routes: (model) => `${prefix}routes:${tag(model)}`,
    routesChannel: `${prefix}routes-changed`,
    apiKeysChannel: `${prefix}apikeys-changed`,
    job: (jobId) => `${prefix}job:${jobId}`,
    jobs: (model) => `${prefix}jobs:${tag(model)}`,
    jobResult: (model, jobId) => `${prefix}jobs:${tag(model)}:result:${jobId}`,
    jobIdempotency: (model, idempotencyKey) => `${prefix}jobs:${tag(model)}:idem:${idempotencyKey}`,
    queuedJobsOfKey: (keyId) => `${prefix}jobs:key:${tag(keyId)}:queued`,
    queuedJobsOfModel: (model) => `${prefix}jobs:${tag(model)}:queued`,
    worker: (workerId) => `${prefix}worker:${workerId}`,
    liveWorkers: `${prefix}workers`,
    intent: (workerId) => `${prefix}intent:${workerId}`,
    spendMonth: (month) => `${prefix}spend:month:${month}`,
    spendDay: (day) => `${prefix}spend:day:${day}`,
    budgetBlocked: `${prefix}budget:blocked`,
    budgetChannel: `${prefix}budget-changed`,
    auditStream: `${prefix}audit`,
    leaderLock: `${prefix}leader`,
    leaderFence: `${prefix}leader:fence`,
    scaleDecisions: `${prefix}decisions`,
    variantWeights: (model) => `${prefix}weights:${tag(model)}`,
    variantWeightsChannel: `${prefix}weights-changed`,
    weightCacheLoaded: `${prefix}weight-cache`,
    workerBounds: `${prefix}control:bounds`,
    pausedModels: `${prefix}control:paused`,
    pausesChannel: `${prefix}paused-changed`,
    budgetOverrides: `${prefix}control:budgets`,
    drainRequests: `${prefix}control:drain`,
    recentRequests: `${prefix}requests`,
    providerErrors: `${prefix}provider-errors`,
    lastBackup: `${prefix}backup:last`,
    managedBookedUntil: `${prefix}spend:managed-until`,
    stackEpoch: `${prefix}stack:epoch`,
    stateLost: `${prefix}stack:lost`,
    selfHealingActions: `${prefix}self-healing`,
  };
}

/** The part of a key Redis Cluster hashes: the first `{…}` with something inside, else the whole key. */
export function hashSlotTag(key: string): string {
  const open = key.indexOf("{");
  if (open === -1) return key;
  const close = key.indexOf("}", open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}
