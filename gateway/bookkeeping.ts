/**
 * What one finished piece of work leaves in the books — an inference request or an async job's run, the same
 * code for both, so they cannot differ in billing, metrics or audit:
 *
 * Rules:
 * 1. Tokens: what the worker reported (`usage`); where it reported nothing, the prompt estimate (only when a
 *    worker took the work) and the completion estimate; at least `minTokens` (what a job's stored body costs).
 * 2. Cost: the worker's busy time on the work × its price per second, shared by the requests it served at once;
 *    $0 when no worker took it. Busy time starts when the upstream call was sent, so work the client abandoned
 *    after that is billed too.
 * 3. Spend: the month's spend hash gets the key's cost and the unit's request (`bookSpend`), written by the caller:
 *    a request's through the replica's `CounterBatch`, a job's in the MULTI that stores its result (atomic with it).
 * 4. What admission took is given back (`release`: tokens settled to the tokens used, the budget hold with the cost).
 * 5. `aiorch_requests_total`, latency and token metrics, and one audit line (with the image count for image
 *    work: the cost of an image request is its busy time like any other; cost per image is that over `images`).
 */
import { ledgerMonth, toMicroUsd } from "../core/protocol";
import type { RedisKeys } from "../core/redis-keys";
import { type AdmissionDeps, type Admitted, release } from "./admission";
import { type AuditLog, isoTimestamp } from "./audit";
import type { GatewayMetrics } from "./metrics";
import type { Backend } from "./routing";
import type { Usage } from "./sse";

/** A finished request or job run, as the books need it. */
export interface FinishedWork {
  /** The request's id, or the job's. */
  readonly requestId: string;
  readonly clientRequestId?: string;
  readonly keyId: string;
  /** The serving unit (`model@variant` in a rollout): what spend is booked on. */
  readonly unit: string;
  /** The model as clients name it: what metrics and the audit line show. */
  readonly publicModel: string;
  readonly variant?: string;
  readonly endpoint: string;
  readonly stream: boolean;
  readonly status: number;
  readonly error: string | null;
  /** The worker that took the work; undefined when none did (nothing is billed). */
  readonly backend?: Backend;
  /** Requests the worker had on this replica with this one (its cost is shared among them). */
  readonly concurrency: number;
  /** When the work started (the request arrived, the job run began), ms. */
  readonly startedAtMs: number;
  readonly latencyMs: number;
  /** Waiting before the upstream call (a worker cold-starting, a job in its queue), ms. */
  readonly queueMs: number;
  /** The worker's busy time on it, ms (from the upstream call to the end of the answer). */
  readonly serviceMs: number;
  readonly ttftMs: number | null;
  readonly usage?: Partial<Usage>;
  readonly promptEstimate: number;
  readonly completionEstimate: number;
  /** Tokens the work costs at least, whatever the worker reports. @default 0 */
  readonly minTokens?: number;
  readonly traceId?: string;
  /** The prompt, when the stack audits prompts. */
  readonly prompt?: unknown;
  readonly jobId?: string;
  /** Images the work generated (image requests); its cost is the busy time, like any other work. */
  readonly images?: number;
}

export interface Bill {
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** Settled against the key's tokens per minute. */
  readonly usedTokens: number;
  readonly costUsd: number;
}

/** Rules 1 and 2. */
export function billOf(work: FinishedWork): Bill {
  const usage = work.usage;
  const promptTokens = count(usage?.prompt_tokens) ?? (work.backend ? work.promptEstimate : 0);
  const completionTokens = count(usage?.completion_tokens) ?? work.completionEstimate;
  const reported = count(usage?.total_tokens) ?? promptTokens + completionTokens;
  const costUsd = work.backend
    ? (Math.max(0, work.serviceMs / 1000) * work.backend.usdPerSecond) / Math.max(1, work.concurrency)
    : 0;
  return { promptTokens, completionTokens, usedTokens: Math.max(work.minTokens ?? 0, reported), costUsd };
}

const count = (v: unknown): number | undefined =>
  typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : undefined;

/** Adds `by` to `field` of the hash `hash`: a `CounterBatch`, or a MULTI's `hincrby` wrapped. */
export interface SpendWriter {
  incr(hash: string, field: string, by: number): void;
}

/** Rule 3: nothing when no worker took the work. */
export function bookSpend(write: SpendWriter, keys: RedisKeys, work: FinishedWork, bill: Bill): void {
  if (!work.backend) return;
  const month = spendMonthKey(keys, work.startedAtMs);
  write.incr(month, `key:${work.keyId}`, toMicroUsd(bill.costUsd));
  write.incr(month, `requests:model:${work.unit}`, 1);
}

export interface RecordDeps extends Pick<AdmissionDeps, "budgets" | "limiter" | "now"> {
  readonly metrics: GatewayMetrics;
  readonly audit: AuditLog;
}

/** Rules 4 and 5; `taken` is what admission took (none for a job stored before reservations existed). */
export function recordFinished(
  deps: RecordDeps,
  taken: Pick<Admitted, "keyId" | "reserved" | "tpm" | "budgetHold"> | undefined,
  work: FinishedWork,
  bill: Bill,
): void {
  const served = work.backend !== undefined;
  if (taken) release(deps, taken, { tokens: served ? bill.usedTokens : 0, costUsd: bill.costUsd, served });
  const { metrics } = deps;
  metrics.countRequest(work.publicModel, work.status, work.variant);
  metrics.observeLatency(work.publicModel, work.latencyMs / 1000);
  if (work.ttftMs !== null && !work.stream)
    metrics.observeTtft(work.publicModel, work.variant, work.ttftMs / 1000);
  metrics.countTokens(work.publicModel, bill.promptTokens, bill.completionTokens);
  deps.audit.record({
    ts: isoTimestamp(work.startedAtMs),
    requestId: work.requestId,
    clientRequestId: work.clientRequestId,
    keyId: work.keyId,
    model: work.publicModel,
    // optional fields are undefined rather than spread in: JSON leaves them out, and a literal without spreads
    // is built by a fast path (each key after a spread is a runtime call, a few microseconds per line)
    variant: work.variant || undefined,
    endpoint: work.endpoint,
    backend: work.backend?.workerId ?? null,
    provider: work.backend?.provider ?? null,
    status: work.status,
    stream: work.stream,
    promptTokens: bill.promptTokens,
    completionTokens: bill.completionTokens,
    costUsd: Math.round(bill.costUsd * 1e8) / 1e8,
    latencyMs: work.latencyMs,
    ttftMs: work.ttftMs,
    queueMs: work.queueMs,
    error: work.error,
    traceId: work.traceId,
    jobId: work.jobId,
    images: work.images,
    prompt: work.prompt,
  });
}

/**
 * The month's spend hash for a time, cached for the current month: `ledgerMonth` formats a date, a few
 * microseconds per request otherwise.
 */
let spendMonth: { keys: RedisKeys | undefined; from: number; until: number; key: string } = {
  keys: undefined,
  from: 0,
  until: 0,
  key: "",
};
export function spendMonthKey(keys: RedisKeys, ms: number): string {
  if (ms < spendMonth.from || ms >= spendMonth.until || spendMonth.keys !== keys) {
    const d = new Date(ms);
    spendMonth = {
      keys,
      from: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1),
      until: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1),
      key: keys.spendMonth(ledgerMonth(ms)),
    };
  }
  return spendMonth.key;
}
