/**
 * One attempt at a worker, for inference and async jobs alike (one policy, so a job never retries what a request
 * fails over from, or the other way round): which worker to try, holding it while it works, and what its answer
 * means.
 *
 * Rules:
 * - Pick the least-loaded worker not tried yet that is not cooling down; when every one left is cooling down, one
 *   of those (a worker that failed a moment ago is better than none).
 * - A held worker counts in this replica's load (the registry) and in the in-flight board the controller reads
 *   (it never drains a worker it sees working); `releaseWorker` gives both back, once.
 * - 401/403 (the worker does not take our token), 404 (it does not serve the model: replaced or misconfigured),
 *   429 (at capacity), 5xx, and a worker that cannot be reached or does not answer in time: try another worker,
 *   count it in `aiorch_upstream_errors_total` and cool this one down (429 briefly, the rest longer).
 * - Any other status is the answer: 2xx as it is, another 4xx is the request's own fault (reshaped and scrubbed by
 *   `upstreamErrorBody`, never retried).
 */
import type { InflightBoard } from "./accounting";
import type { GatewayMetrics } from "./metrics";
import type { Backend, BackendRegistry } from "./routing";

export type UpstreamVerdict = { readonly kind: "answer" } | FailOver;

/** Try another worker; this one cools down for `coolDownMs`. */
export interface FailOver {
  readonly kind: "fail_over";
  readonly coolDownMs: number;
  /** The `kind` label of `aiorch_upstream_errors_total`. */
  readonly metricKind: string;
}

const LONG_COOL_DOWN_MS = 5_000;

export function upstreamVerdict(status: number): UpstreamVerdict {
  if (status === 429) return AT_CAPACITY;
  if (status >= 500) return SERVER_ERROR;
  if (status === 404) return NOT_SERVED_HERE;
  if (status === 401 || status === 403) return REFUSED_TOKEN;
  return ANSWER;
}

/** A worker that could not be reached (`connect`) or did not answer in time (`timeout`). */
export function unreachableVerdict(kind: "connect" | "timeout" | (string & {})): FailOver {
  return { kind: "fail_over", coolDownMs: LONG_COOL_DOWN_MS, metricKind: kind };
}

const ANSWER: UpstreamVerdict = { kind: "answer" };
const AT_CAPACITY: FailOver = { kind: "fail_over", coolDownMs: 2_000, metricKind: "status_429" };
const SERVER_ERROR: FailOver = { kind: "fail_over", coolDownMs: LONG_COOL_DOWN_MS, metricKind: "status_5xx" };
const NOT_SERVED_HERE: FailOver = {
  kind: "fail_over",
  coolDownMs: LONG_COOL_DOWN_MS,
  metricKind: "status_404",
};
const REFUSED_TOKEN: FailOver = { kind: "fail_over", coolDownMs: LONG_COOL_DOWN_MS, metricKind: "auth" };

export interface AttemptDeps {
  readonly registry: BackendRegistry;
  /** This replica's in-flight counts per worker, published for the controller (absent in a bare job runner). */
  readonly inflight?: InflightBoard;
  readonly metrics: GatewayMetrics;
}

/** A worker held for one attempt, and how many requests it had on this replica with this one. */
export interface HeldWorker {
  readonly backend: Backend;
  readonly concurrency: number;
}

/** The worker to try next (see the rules), held; undefined when every worker was tried. */
export function holdWorker(
  deps: AttemptDeps,
  unit: string,
  backends: readonly Backend[],
  tried: ReadonlySet<string>,
): HeldWorker | undefined {
  const backend =
    deps.registry.pick(backends, tried) ?? deps.registry.pick(backends, tried, { ignoreCooldown: true });
  if (!backend) return undefined;
  const concurrency = deps.registry.acquire(backend);
  deps.inflight?.acquire(unit, backend.workerId);
  return { backend, concurrency };
}

/** Give back what `holdWorker` took. */
export function releaseWorker(deps: AttemptDeps, unit: string, held: HeldWorker): void {
  deps.registry.release(held.backend);
  deps.inflight?.release(unit, held.backend.workerId);
}

/** An attempt that fails over: counted for the model as clients name it, and the worker cooled down. */
export function failOver(deps: AttemptDeps, publicModel: string, backend: Backend, verdict: FailOver): void {
  deps.metrics.upstreamErrors.inc({ model: deps.metrics.model(publicModel), kind: verdict.metricKind });
  deps.registry.coolDown(backend, verdict.coolDownMs);
}
